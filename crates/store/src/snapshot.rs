//! A per-experiment, read-only snapshot: what a scheduler is given instead
//! of the site's store.
//!
//! The scheduler runs as the experiment's user. Giving it the site's store
//! would give it every experiment's rows (and, where the operator keeps
//! them there, every key). So the root-side starter writes, just before it
//! starts the scheduler, an SQLite file holding only that experiment: its
//! `experiments` row (without the event key), its virtual tables, its
//! physical mapping and the node rows that resolve it, and the type
//! tables. No other experiment, no users, groups or memberships.
//!
//! The file is mode 0640, owned by root and the experiment's Unix group
//! (when written by root), so the experiment's users can read it and
//! nobody else can; it uses a rollback journal, not WAL, so a reader that
//! may not write beside it can still open it read-only. It is written
//! under a temporary name in the destination directory and renamed into
//! place, so a scheduler never sees half a snapshot.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::copy::{check_type_tables, copy_experiment};
use crate::error::StoreError;
use crate::model::ExperimentId;
use crate::sqlite::SqliteStore;
use crate::store::ExperimentStore;

/// Mode of a snapshot file: owner read-write, group read.
pub const SNAPSHOT_FILE_MODE: u32 = 0o640;

/// The Unix group id of an experiment's group: the `groups` row of its
/// project group if the store has one, else the system group of that name.
pub fn experiment_unix_gid(
    store: &dyn ExperimentStore,
    id: &ExperimentId,
) -> Result<Option<u32>, StoreError> {
    let experiment = store.experiment(id)?;
    match store.group(&id.pid, &experiment.gid) {
        Ok(group) => Ok(Some(group.unix_gid)),
        Err(StoreError::GroupNotFound { .. }) => Ok(nix::unistd::Group::from_name(&experiment.gid)
            .ok()
            .flatten()
            .map(|group| group.gid.as_raw())),
        Err(err) => Err(err),
    }
}

/// Writes `dest`: an SQLite store holding only experiment `id`'s rows and
/// the type tables (see the module docs), mode 0640, and, when running as
/// root, owned by root and the experiment's Unix group. Replaces an older
/// snapshot at `dest` atomically.
pub fn write_experiment_snapshot(
    store: &dyn ExperimentStore,
    id: &ExperimentId,
    dest: &Path,
) -> Result<(), StoreError> {
    id.validate()?;
    let experiment = store.experiment(id)?;
    let as_root = nix::unistd::geteuid().is_root();
    let gid = experiment_unix_gid(store, id)?;
    if as_root && gid.is_none() {
        return Err(StoreError::InvalidInput(format!(
            "experiment {id}'s group `{}` has no Unix group (no `groups` row for {}/{} and no \
             system group of that name), so nobody could be allowed to read its snapshot: \
             create the group first",
            experiment.gid, id.pid, experiment.gid
        )));
    }
    let dir = match dest.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_owned(),
        _ => std::path::PathBuf::from("."),
    };
    let io = |doing: &'static str, path: &Path| {
        let path = path.to_owned();
        move |source| StoreError::Io {
            doing,
            path,
            source,
        }
    };
    let temp = tempfile::Builder::new()
        .prefix(".snapshot.")
        .permissions(std::fs::Permissions::from_mode(0o600))
        .tempfile_in(&dir)
        .map_err(io("creating a temporary snapshot file in", &dir))?;
    {
        let snapshot = SqliteStore::open(temp.path())?;
        check_type_tables(store, &snapshot)?;
        copy_experiment(store, &snapshot, &experiment, false)?;
        snapshot.use_rollback_journal()?;
    }
    let file = temp.as_file();
    if as_root && let Some(gid) = gid {
        nix::unistd::fchown(
            file,
            Some(nix::unistd::Uid::from_raw(0)),
            Some(nix::unistd::Gid::from_raw(gid)),
        )
        .map_err(|errno| StoreError::Io {
            doing: "giving the snapshot to the experiment's group",
            path: temp.path().to_owned(),
            source: errno.into(),
        })?;
    }
    file.set_permissions(std::fs::Permissions::from_mode(SNAPSHOT_FILE_MODE))
        .map_err(io("setting the mode of", temp.path()))?;
    file.sync_all().map_err(io("flushing", temp.path()))?;
    temp.persist(dest).map_err(|err| StoreError::Io {
        doing: "renaming the snapshot into place at",
        path: dest.to_owned(),
        source: err.error,
    })?;
    Ok(())
}
