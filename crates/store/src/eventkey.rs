//! Experiment event keys: generating them and writing the key file.
//!
//! Emulab's key (docs/emulab-model.md §3) is 32 lower-case hex characters
//! made from OS randomness, and the HMAC key is those 32 ASCII bytes, not
//! the 16 bytes they encode. Every keyed program reads the *whole* key file
//! as the key, so the file must hold exactly those characters: no trailing
//! newline. It lives at `<experiment dir>/tbdata/eventkey`, readable by the
//! experiment's group (mode 0640) and by nobody else.
//!
//! The file is written to a temporary file in the same directory, fsynced,
//! given its final mode, and renamed over the old one, so a reader sees
//! either the old key or the new one (never a half-written key), and the
//! key is never readable by others even briefly: the temporary file is
//! created with mode 0640 narrowed by the umask, and only ever widened to
//! exactly 0640.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rand::TryRng;

use crate::error::StoreError;

/// Mode of the key file.
pub const EVENT_KEY_FILE_MODE: u32 = 0o640;

/// Mode `tbdata` is created with (narrowed by the umask): the project group
/// shares the experiment directory, as in Emulab.
pub const TBDATA_DIR_MODE: u32 = 0o770;

/// Longest key accepted (Emulab's `experiments.eventkey varchar(64)`).
pub const MAX_EVENT_KEY_LEN: usize = 64;

/// Number of random bytes in a generated key (32 hex characters).
const EVENT_KEY_BYTES: usize = 16;

/// Makes a fresh event key: 32 lower-case hex characters from the operating
/// system's random number generator, or an error if the OS cannot supply
/// randomness.
pub fn try_generate_event_key() -> Result<String, StoreError> {
    let mut bytes = [0u8; EVENT_KEY_BYTES];
    rand::rngs::SysRng
        .try_fill_bytes(&mut bytes)
        .map_err(|err| StoreError::Random(err.to_string()))?;
    Ok(hex::encode(bytes))
}

/// Makes a fresh event key: 32 lower-case hex characters from the operating
/// system's random number generator. The HMAC key is those ASCII bytes.
///
/// # Panics
///
/// Only if the operating system cannot supply random bytes at all (no
/// `getrandom(2)` and no `/dev/urandom`), which no usable host does; use
/// [`try_generate_event_key`] to handle that as an error instead.
#[allow(clippy::panic)] // documented above; the fallible form is try_generate_event_key
pub fn generate_event_key() -> String {
    match try_generate_event_key() {
        Ok(key) => key,
        Err(err) => panic!("cannot generate an event key: {err}"),
    }
}

/// Checks that `key` can be stored and used as a key file: 1 to 64
/// printable ASCII characters with no spaces (a trailing newline or space
/// would silently become part of the HMAC key).
pub fn validate_event_key(key: &str) -> Result<(), StoreError> {
    if key.is_empty() {
        return Err(StoreError::InvalidEventKey("the key is empty"));
    }
    if key.len() > MAX_EVENT_KEY_LEN {
        return Err(StoreError::InvalidEventKey(
            "the key is longer than 64 characters; generate one with `generate_event_key`",
        ));
    }
    if !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(StoreError::InvalidEventKey(
            "the key may hold only printable ASCII characters without spaces or newlines",
        ));
    }
    Ok(())
}

/// The key file's path for an experiment directory:
/// `<experiment_dir>/tbdata/eventkey`.
pub fn event_key_path(experiment_dir: &Path) -> PathBuf {
    experiment_dir.join("tbdata").join("eventkey")
}

/// Writes `key` to `<experiment_dir>/tbdata/eventkey` with no trailing
/// newline and mode 0640, creating `tbdata` if needed, atomically (temporary
/// file + rename). Returns the key file's path. The file keeps the
/// creator's group; see [`write_event_key_file_for_group`].
pub fn write_event_key_file(experiment_dir: &Path, key: &str) -> Result<PathBuf, StoreError> {
    write_event_key_file_for_group(experiment_dir, key, None)
}

/// [`write_event_key_file`], with the file (and a `tbdata` directory it
/// creates) given to Unix group `group`: the experiment's group, whose
/// members (the experiment's users and their scheduler) may read the key
/// and nobody else may. The group is set before the file appears under its
/// name, so there is no moment in which another group could read it.
pub fn write_event_key_file_for_group(
    experiment_dir: &Path,
    key: &str,
    group: Option<u32>,
) -> Result<PathBuf, StoreError> {
    validate_event_key(key)?;
    let chgrp = |path: &Path, doing: &'static str| -> Result<(), StoreError> {
        match group {
            Some(gid) => nix::unistd::chown(path, None, Some(nix::unistd::Gid::from_raw(gid)))
                .map_err(|errno| StoreError::Io {
                    doing,
                    path: path.to_owned(),
                    source: errno.into(),
                }),
            None => Ok(()),
        }
    };
    let tbdata = experiment_dir.join("tbdata");
    if !tbdata.is_dir() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(TBDATA_DIR_MODE)
            .create(&tbdata)
            .map_err(|source| StoreError::Io {
                doing: "creating the experiment data directory",
                path: tbdata.clone(),
                source,
            })?;
        chgrp(
            &tbdata,
            "giving the experiment data directory to the experiment's group",
        )?;
    }
    let final_path = tbdata.join("eventkey");
    let io_err = |doing: &'static str| {
        let path = final_path.clone();
        move |source| StoreError::Io {
            doing,
            path,
            source,
        }
    };
    let mut temp = tempfile::Builder::new()
        .prefix(".eventkey.")
        .permissions(std::fs::Permissions::from_mode(EVENT_KEY_FILE_MODE))
        .tempfile_in(&tbdata)
        .map_err(|source| StoreError::Io {
            doing: "creating a temporary key file in",
            path: tbdata.clone(),
            source,
        })?;
    chgrp(
        temp.path(),
        "giving the event key file to the experiment's group",
    )?;
    temp.write_all(key.as_bytes())
        .map_err(io_err("writing the event key file"))?;
    // The umask may have narrowed the creation mode; set exactly 0640 before
    // the file becomes visible under its real name.
    temp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(EVENT_KEY_FILE_MODE))
        .map_err(io_err("setting the mode of the event key file"))?;
    temp.as_file()
        .sync_all()
        .map_err(io_err("flushing the event key file"))?;
    temp.persist(&final_path).map_err(|err| StoreError::Io {
        doing: "renaming the new event key file into place at",
        path: final_path.clone(),
        source: err.error,
    })?;
    // Make the rename itself durable; failure here does not undo the write.
    if let Ok(dir) = std::fs::File::open(&tbdata) {
        let _ = dir.sync_all();
    }
    Ok(final_path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_are_32_lower_hex_and_differ() {
        let first = generate_event_key();
        let second = generate_event_key();
        assert_eq!(first.len(), 32);
        assert!(
            first
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        );
        assert_ne!(first, second);
    }

    #[test]
    fn key_validation_rejects_what_would_corrupt_a_key_file() {
        assert!(validate_event_key(&generate_event_key()).is_ok());
        assert!(validate_event_key("").is_err());
        assert!(validate_event_key("abc\n").is_err());
        assert!(validate_event_key("a b").is_err());
        assert!(validate_event_key(&"a".repeat(65)).is_err());
        assert!(validate_event_key(&"a".repeat(64)).is_ok());
    }
}
