//! Who the program agent runs as: the experiment's user, never root.
//!
//! The program agent runs commands from the experiment's NS file and
//! from anyone holding the experiment's key, so those commands must run
//! with the experiment user's rights and nothing more. Like Emulab's
//! agent, ours changes its own identity once it has read what only root
//! may read (the key file, the store) and before it connects: every
//! program it starts then inherits the user's identity. After the switch
//! it checks that no trace of root is left: real, effective and saved
//! uid and gid, supplementary groups, and effective capabilities.
//!
//! | started as | `-u USER` | result |
//! |---|---|---|
//! | root | given | switches to USER (refused if USER's uid or primary gid is 0) |
//! | root | absent | refuses to start |
//! | a user | absent, or the same user | stays that user (refused if its gid is 0) |
//! | a user | another user | refuses to start (only root can switch) |

use std::ffi::CString;
use std::path::Path;

use nix::unistd::{Gid, Uid, User};

/// The identity programs run with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunAs {
    /// Login name.
    pub name: String,
    /// Numeric uid.
    pub uid: Uid,
    /// Primary gid.
    pub gid: Gid,
    /// Home directory (from the password database).
    pub home: String,
}

/// Why the agent will not run as asked.
#[derive(Debug, thiserror::Error)]
pub enum PrivilegeError {
    /// Started as root without a user.
    #[error(
        "running as root without -u USER: programs must run as the experiment's user, never as root; give -u USER"
    )]
    RootWithoutUser,
    /// The user does not exist.
    #[error("there is no user `{0}` on this machine (check -u)")]
    NoSuchUser(String),
    /// The user is root or in group root.
    #[error(
        "user `{0}` has uid 0 or primary gid 0; programs never run with root's rights: give the experiment's ordinary user"
    )]
    RootUser(String),
    /// A non-root agent was asked to switch to someone else.
    #[error(
        "only root can run programs as another user: this agent runs as uid {current} and -u asks for `{wanted}`"
    )]
    CannotSwitch {
        /// Current uid.
        current: u32,
        /// The user asked for.
        wanted: String,
    },
    /// A system call failed.
    #[error("cannot switch to user `{user}`: {what} failed: {source}")]
    Switch {
        /// The user.
        user: String,
        /// The step.
        what: &'static str,
        /// The error.
        #[source]
        source: nix::Error,
    },
    /// The switch left some root privilege behind.
    #[error("after switching to `{user}` the process still holds {left}; refusing to run programs")]
    Leftover {
        /// The user.
        user: String,
        /// What is left.
        left: String,
    },
}

fn lookup(name: &str) -> Result<User, PrivilegeError> {
    match User::from_name(name) {
        Ok(Some(user)) => Ok(user),
        _ => Err(PrivilegeError::NoSuchUser(name.to_owned())),
    }
}

fn run_as(user: User) -> RunAs {
    RunAs {
        name: user.name,
        uid: user.uid,
        gid: user.gid,
        home: user.dir.display().to_string(),
    }
}

/// Decides who programs run as (see the table in the module docs).
pub fn resolve(user: Option<&str>) -> Result<RunAs, PrivilegeError> {
    let root = Uid::effective().is_root() || Uid::current().is_root();
    match (root, user) {
        (true, None) => Err(PrivilegeError::RootWithoutUser),
        (true, Some(name)) => {
            let user = lookup(name)?;
            if user.uid.is_root() || user.gid.as_raw() == 0 {
                return Err(PrivilegeError::RootUser(name.to_owned()));
            }
            Ok(run_as(user))
        }
        (false, wanted) => {
            let me = Uid::current();
            let user = match User::from_uid(me) {
                Ok(Some(user)) => user,
                _ => {
                    return Err(PrivilegeError::NoSuchUser(format!("uid {me}")));
                }
            };
            if let Some(wanted) = wanted
                && wanted != user.name
                && lookup(wanted).ok().map(|u| u.uid) != Some(me)
            {
                return Err(PrivilegeError::CannotSwitch {
                    current: me.as_raw(),
                    wanted: wanted.to_owned(),
                });
            }
            if Gid::current().as_raw() == 0 || Gid::effective().as_raw() == 0 {
                return Err(PrivilegeError::RootUser(user.name));
            }
            Ok(run_as(user))
        }
    }
}

/// Becomes `who` for good (when root), then checks nothing of root is
/// left. Call before starting threads: the switch applies to the calling
/// process.
pub fn become_user(who: &RunAs) -> Result<(), PrivilegeError> {
    let fail = |what| {
        move |source| PrivilegeError::Switch {
            user: who.name.clone(),
            what,
            source,
        }
    };
    if Uid::effective().is_root() {
        let name = CString::new(who.name.as_bytes())
            .map_err(|_| PrivilegeError::NoSuchUser(who.name.clone()))?;
        nix::unistd::initgroups(&name, who.gid).map_err(fail("initgroups"))?;
        nix::unistd::setresgid(who.gid, who.gid, who.gid).map_err(fail("setresgid"))?;
        nix::unistd::setresuid(who.uid, who.uid, who.uid).map_err(fail("setresuid"))?;
    }
    check_unprivileged(&who.name)
}

/// Refuses when any uid or gid is 0, a supplementary group is 0, or an
/// effective capability is held.
pub fn check_unprivileged(user: &str) -> Result<(), PrivilegeError> {
    let mut left = Vec::new();
    let ids = nix::unistd::getresuid().map_err(|source| PrivilegeError::Switch {
        user: user.to_owned(),
        what: "getresuid",
        source,
    })?;
    if ids.real.is_root() || ids.effective.is_root() || ids.saved.is_root() {
        left.push("uid 0".to_owned());
    }
    let gids = nix::unistd::getresgid().map_err(|source| PrivilegeError::Switch {
        user: user.to_owned(),
        what: "getresgid",
        source,
    })?;
    if [gids.real, gids.effective, gids.saved]
        .iter()
        .any(|g| g.as_raw() == 0)
    {
        left.push("gid 0".to_owned());
    }
    if nix::unistd::getgroups()
        .map(|groups| groups.iter().any(|g| g.as_raw() == 0))
        .unwrap_or(false)
    {
        left.push("supplementary group 0".to_owned());
    }
    if let Some(caps) = effective_capabilities()
        && caps != 0
    {
        left.push(format!("capabilities {caps:#x}"));
    }
    if left.is_empty() {
        Ok(())
    } else {
        Err(PrivilegeError::Leftover {
            user: user.to_owned(),
            left: left.join(", "),
        })
    }
}

/// The `CapEff` mask of this process, when /proc says.
fn effective_capabilities() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("CapEff:"))?;
    u64::from_str_radix(line.trim_start_matches("CapEff:").trim(), 16).ok()
}

/// Gives `path` to `who` (when running as root), so a directory made by
/// root before the switch stays writable after it.
pub fn hand_over(path: &Path, who: &RunAs) -> std::io::Result<()> {
    if Uid::effective().is_root() {
        std::os::unix::fs::chown(path, Some(who.uid.as_raw()), Some(who.gid.as_raw()))?;
    }
    Ok(())
}
