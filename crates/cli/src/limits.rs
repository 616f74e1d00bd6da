//! Raising the open-files limit: every client of a server is a file
//! descriptor, and the usual soft limit of 1024 is far below what a router
//! serving 10,000 agents or a relay with thousands of connections needs.

use nix::sys::resource::{Resource, getrlimit, setrlimit};

/// The open-files limit before and after [`raise_open_files`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpenFiles {
    /// The soft limit before.
    pub before: u64,
    /// The soft limit now.
    pub now: u64,
    /// The hard limit (the most an unprivileged process can get).
    pub hard: u64,
}

/// Raises the soft RLIMIT_NOFILE to `wanted` (or to the hard limit when
/// `wanted` is `None`), never above the hard limit and never lowering it.
/// The caller compares [`OpenFiles::now`] with what it needs.
pub fn raise_open_files(wanted: Option<u64>) -> nix::Result<OpenFiles> {
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    let target = wanted.unwrap_or(hard).min(hard);
    if target <= soft {
        return Ok(OpenFiles {
            before: soft,
            now: soft,
            hard,
        });
    }
    setrlimit(Resource::RLIMIT_NOFILE, target, hard)?;
    Ok(OpenFiles {
        before: soft,
        now: target,
        hard,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raising_never_lowers_and_never_passes_the_hard_limit() {
        let first = raise_open_files(None).unwrap();
        assert_eq!(first.now, first.hard);
        let again = raise_open_files(Some(10)).unwrap();
        assert_eq!(again.now, first.hard, "a smaller wish does not lower it");
        let huge = raise_open_files(Some(u64::MAX)).unwrap();
        assert_eq!(huge.now, huge.hard);
    }
}
