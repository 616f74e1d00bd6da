//! Giving up root once every endpoint is bound.
//!
//! eventd needs root only to bind ports below 1024 (a site that moves the
//! router to such a port, or binds TLS certificates readable only by
//! root). With `--user`/`--group` (or `user`/`group` in the file) it
//! switches to that account right after binding and before it serves any
//! client: supplementary groups first (just the chosen group), then the
//! group, then the user, and then it checks that root cannot be regained.
//! glibc applies each change to every thread of the process, so the
//! already-running tokio workers change with it.
//!
//! What is read after the switch must be readable by the account: the
//! configuration file on SIGHUP, and the TLS files when a reload re-reads
//! them.

use anyhow::{Context as _, bail};
use nix::unistd::{Gid, Group, Uid, User};

use crate::config::Settings;

/// Switches to the configured account, if any.
pub fn drop_after_bind(settings: &Settings) -> anyhow::Result<()> {
    if settings.user.is_none() && settings.group.is_none() {
        return Ok(());
    }
    if !nix::unistd::geteuid().is_root() {
        bail!(
            "--user/--group need eventd to start as root (it starts as uid {}); start it as root \
             or drop the settings and start it as the account you want",
            nix::unistd::geteuid()
        );
    }
    let user = match &settings.user {
        Some(name) => Some(find_user(name)?),
        None => None,
    };
    let gid = match (&settings.group, &user) {
        (Some(name), _) => find_group(name)?,
        (None, Some(user)) => user.gid,
        (None, None) => nix::unistd::getgid(),
    };
    nix::unistd::setgroups(&[gid]).context("cannot set the supplementary groups")?;
    nix::unistd::setresgid(gid, gid, gid).with_context(|| format!("cannot switch to gid {gid}"))?;
    if let Some(user) = &user {
        nix::unistd::setresuid(user.uid, user.uid, user.uid)
            .with_context(|| format!("cannot switch to user {} ({})", user.name, user.uid))?;
        if !user.uid.is_root() && nix::unistd::setuid(Uid::from_raw(0)).is_ok() {
            bail!(
                "switched to {} but could become root again; refusing to run",
                user.name
            );
        }
    }
    verify_unprivileged(user.is_some())?;
    tracing::info!(
        uid = %nix::unistd::getuid(),
        gid = %nix::unistd::getgid(),
        "switched to an unprivileged account after binding"
    );
    Ok(())
}

/// Refuses to go on if the switch left root behind: a uid or gid of 0
/// (real, effective or saved), group 0 among the supplementary groups, or
/// any capability. Only the uid is exempt, and only when the operator gave
/// `--group` alone (eventd then stays root by request, but still loses
/// group 0). Read back from `/proc/self/status`, the kernel's own account
/// of this process, rather than trusted from the calls above.
fn verify_unprivileged(user_given: bool) -> anyhow::Result<()> {
    let status = std::fs::read_to_string("/proc/self/status")
        .context("cannot read /proc/self/status to check the account switch")?;
    let problems = leftover_privileges(&status, user_given);
    if !problems.is_empty() {
        bail!(
            "after switching accounts eventd still holds {}; refusing to run (choose a --user and \
             --group other than root)",
            problems.join(", ")
        );
    }
    Ok(())
}

/// What `status` (the text of `/proc/<pid>/status`) shows of root: the
/// empty list when nothing is left. A line missing from the text counts as
/// privileged, so a kernel that words it differently fails closed.
pub fn leftover_privileges(status: &str, check_uid: bool) -> Vec<String> {
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
            .map(str::trim)
    };
    let mut problems = Vec::new();
    let mut ids = vec![("Gid", "gid 0"), ("Groups", "group 0")];
    if check_uid {
        ids.insert(0, ("Uid", "uid 0"));
    }
    for (name, what) in ids {
        match field(name) {
            Some(values) if values.split_whitespace().any(|id| id == "0") => {
                problems.push(what.to_string())
            }
            Some(_) => {}
            None => problems.push(format!("an unknown {name} (no {name} line)")),
        }
    }
    if check_uid {
        for name in ["CapPrm", "CapEff", "CapAmb"] {
            match field(name).map(|hex| u64::from_str_radix(hex, 16)) {
                Some(Ok(0)) => {}
                Some(Ok(bits)) => problems.push(format!("capabilities {name}={bits:#x}")),
                _ => problems.push(format!("unknown capabilities (no readable {name} line)")),
            }
        }
    }
    problems
}

/// A user by name or number.
fn find_user(name: &str) -> anyhow::Result<User> {
    let found = match name.parse::<u32>() {
        Ok(uid) => User::from_uid(Uid::from_raw(uid)),
        Err(_) => User::from_name(name),
    };
    found
        .with_context(|| format!("cannot look up user {name}"))?
        .with_context(|| format!("no such user {name}: create it or fix --user"))
}

/// A group's gid by name or number.
fn find_group(name: &str) -> anyhow::Result<Gid> {
    if let Ok(gid) = name.parse::<u32>() {
        return Ok(Gid::from_raw(gid));
    }
    Group::from_name(name)
        .with_context(|| format!("cannot look up group {name}"))?
        .map(|group| group.gid)
        .with_context(|| format!("no such group {name}: create it or fix --group"))
}

#[cfg(test)]
mod tests {
    use super::leftover_privileges;

    const NOBODY: &str = "Name:\teventd\nUid:\t65534\t65534\t65534\t65534\n\
        Gid:\t65534\t65534\t65534\t65534\nGroups:\t65534 \nCapInh:\t0000000000000000\n\
        CapPrm:\t0000000000000000\nCapEff:\t0000000000000000\nCapAmb:\t0000000000000000\n";

    #[test]
    fn an_unprivileged_account_passes() {
        assert!(leftover_privileges(NOBODY, true).is_empty());
    }

    #[test]
    fn any_root_id_or_capability_is_reported() {
        let saved_uid = NOBODY.replace("Uid:\t65534\t65534\t65534", "Uid:\t65534\t65534\t0");
        assert_eq!(leftover_privileges(&saved_uid, true), ["uid 0"]);
        let gid = NOBODY.replace("Gid:\t65534\t65534", "Gid:\t65534\t0");
        assert_eq!(leftover_privileges(&gid, true), ["gid 0"]);
        let groups = NOBODY.replace("Groups:\t65534 ", "Groups:\t0 65534");
        assert_eq!(leftover_privileges(&groups, true), ["group 0"]);
        let caps = NOBODY.replace("CapEff:\t0000000000000000", "CapEff:\t0000000000000400");
        assert_eq!(
            leftover_privileges(&caps, true),
            ["capabilities CapEff=0x400"]
        );
    }

    #[test]
    fn group_alone_keeps_uid_but_not_group_zero() {
        let root = NOBODY
            .replace("Uid:\t65534\t65534\t65534\t65534", "Uid:\t0\t0\t0\t0")
            .replace("CapEff:\t0000000000000000", "CapEff:\t000001ffffffffff");
        assert!(leftover_privileges(&root, false).is_empty());
        let root_group = root.replace("Gid:\t65534", "Gid:\t0");
        assert_eq!(leftover_privileges(&root_group, false), ["gid 0"]);
    }

    #[test]
    fn missing_lines_fail_closed() {
        assert_eq!(leftover_privileges("Name:\teventd\n", false).len(), 2);
        assert_eq!(leftover_privileges("", true).len(), 6);
    }
}
