//! Who the scheduler runs as, and who may control it.
//!
//! The scheduler of an experiment runs as the user who swapped it in
//! (`experiments.expt_swap_uid`), with the experiment's project group
//! (`experiments.gid`) as its group and the user's other project groups as
//! supplementary groups, as Emulab runs it. The store's `users` and
//! `groups` rows carry the Unix ids (`unix_uid`, `unix_gid`); where a
//! small installation has no such rows (`tbevents create` records the Unix
//! user name as the creator), the names are looked up in the system's
//! account database instead.
//!
//! Root (uid 0), group 0 and root's groups are never handed out: a
//! scheduler runs commands on the experiment's behalf.

use nix::unistd::{Gid, Group as UnixGroup, Uid, User as UnixUser};
use tbevents_store::{Experiment, ExperimentId, ExperimentStore, StoreError, Trust};

use crate::error::ControlError;

/// The Unix identity a scheduler runs with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunAs {
    /// The user's name (for `USER`/`LOGNAME`).
    pub name: String,
    /// The user's uid.
    pub uid: u32,
    /// The experiment's group.
    pub gid: u32,
    /// Every group the process gets, `gid` first.
    pub groups: Vec<u32>,
    /// The home directory (for `HOME`).
    pub home: String,
}

/// The identity the scheduler of `experiment` runs with.
pub fn run_as(store: &dyn ExperimentStore, experiment: &Experiment) -> Result<RunAs, ControlError> {
    let id = &experiment.id;
    let refuse = |why: String| ControlError::Account {
        id: id.clone(),
        why,
    };
    let name = experiment.expt_swap_uid.clone();
    let unix_user = UnixUser::from_name(&name).ok().flatten();
    let uid = match store.user(&name) {
        Ok(user) => user.unix_uid,
        Err(StoreError::UserNotFound(_)) => match &unix_user {
            Some(u) => u.uid.as_raw(),
            None => {
                return Err(refuse(format!(
                    "its swapper `{name}` has no users row in the store and no Unix account"
                )));
            }
        },
        Err(error) => return Err(error.into()),
    };
    let gid = match store.group(&id.pid, &experiment.gid) {
        Ok(group) => group.unix_gid,
        Err(StoreError::GroupNotFound { .. }) => {
            match UnixGroup::from_name(&experiment.gid).ok().flatten() {
                Some(group) => group.gid.as_raw(),
                None => match &unix_user {
                    Some(u) => u.gid.as_raw(),
                    None => {
                        return Err(refuse(format!(
                            "its group `{}` has no groups row in the store and no Unix group",
                            experiment.gid
                        )));
                    }
                },
            }
        }
        Err(error) => return Err(error.into()),
    };
    let mut groups = vec![gid];
    let memberships = memberships_of(store, &name)?;
    if memberships.is_empty() {
        // No project rows: the system's view of the user's groups.
        if let Some(u) = &unix_user
            && let Ok(name_c) = std::ffi::CString::new(u.name.clone())
            && let Ok(list) = nix::unistd::getgrouplist(&name_c, u.gid)
        {
            groups.extend(list.into_iter().map(Gid::as_raw));
        }
    } else {
        for m in memberships.iter().filter(|m| m.trust != Trust::None) {
            if let Ok(group) = store.group(&m.pid, &m.gid) {
                groups.push(group.unix_gid);
            }
        }
    }
    let mut seen = Vec::with_capacity(groups.len());
    for g in groups {
        if !seen.contains(&g) {
            seen.push(g);
        }
    }
    let groups = seen;
    if uid == 0 {
        return Err(refuse(format!("its swapper `{name}` maps to uid 0 (root)")));
    }
    if groups.contains(&0) {
        return Err(refuse(format!(
            "its swapper `{name}` would get group 0 (root's group)"
        )));
    }
    let home = unix_user
        .as_ref()
        .map(|u| u.dir.display().to_string())
        .unwrap_or_else(|| "/".to_owned());
    Ok(RunAs {
        name,
        uid,
        gid,
        groups,
        home,
    })
}

/// Checks that the Unix user `caller` may start and stop the scheduler of
/// `id`: root, the experiment's swapper or creator, a testbed
/// administrator, or a member (trust `user` or above) of the experiment's
/// group. The caller's name is its Unix account name, which is its testbed
/// user id.
pub fn authorize(
    store: &dyn ExperimentStore,
    experiment: &Experiment,
    caller: u32,
) -> Result<(), ControlError> {
    if caller == 0 {
        return Ok(());
    }
    let id: &ExperimentId = &experiment.id;
    let name = UnixUser::from_uid(Uid::from_raw(caller))
        .ok()
        .flatten()
        .map(|u| u.name);
    let denied = || ControlError::NotPermitted {
        caller: name.clone().unwrap_or_else(|| format!("uid {caller}")),
        id: id.clone(),
    };
    let Some(name) = name.clone() else {
        return Err(denied());
    };
    if name == experiment.expt_swap_uid || name == experiment.expt_head_uid {
        return Ok(());
    }
    match store.user(&name) {
        // The store's record must be this very Unix account.
        Ok(user) if user.unix_uid != caller => return Err(denied()),
        Ok(user) if user.admin => return Ok(()),
        Ok(_) | Err(StoreError::UserNotFound(_)) => {}
        Err(error) => return Err(error.into()),
    }
    let member = memberships_of(store, &name)?
        .iter()
        .any(|m| m.pid == id.pid && m.gid == experiment.gid && m.trust >= Trust::User);
    if member { Ok(()) } else { Err(denied()) }
}

/// A user's project memberships; none when the store has no row for the
/// user (a small installation without Emulab's user tables).
fn memberships_of(
    store: &dyn ExperimentStore,
    name: &str,
) -> Result<Vec<tbevents_store::GroupMembership>, ControlError> {
    match store.memberships(name) {
        Ok(list) => Ok(list),
        Err(StoreError::UserNotFound(_)) => Ok(Vec::new()),
        Err(error) => Err(error.into()),
    }
}
