//! The scheduler never runs as root.
//!
//! It executes operator-configured commands on SIMULATOR events and acts
//! for one experiment's user; the original refused to run those commands
//! as root (docs/emulab-model.md §6.6). We refuse earlier: the process will
//! not start when its real or effective uid is 0, so nothing it does can
//! be done as root.

/// True when the real or the effective uid is 0.
pub fn running_as_root() -> bool {
    nix::unistd::getuid().is_root() || nix::unistd::geteuid().is_root()
}
