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
    tracing::info!(
        uid = %nix::unistd::getuid(),
        gid = %nix::unistd::getgid(),
        "switched to an unprivileged account after binding"
    );
    Ok(())
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
