//! The scheduler never runs with privilege.
//!
//! It executes operator-configured commands on SIMULATOR events and acts
//! for one experiment's user; the original refused to run those commands
//! as root. We refuse earlier and more widely: the process will not start
//! when it holds any of root's powers, because each of them would let a
//! scheduler (or a command it runs) read or forge another experiment's
//! rows and keys:
//! * a real or effective uid of 0;
//! * a real or effective gid of 0, or group 0 among the supplementary
//!   groups (group root owns files such as the store and the snapshots);
//! * any effective or permitted capability (a non-root process with, say,
//!   `CAP_DAC_READ_SEARCH` reads every key file).
//!
//! The root-side starter drops all of these before it runs the scheduler
//! (set the uid, the experiment's gid and supplementary groups; a uid
//! change from 0 clears the capabilities).

/// What makes this process privileged, or `None` when it holds no
/// privilege. The text names the offending id or capability set.
pub fn privilege_problem() -> Option<String> {
    use nix::unistd::{getegid, geteuid, getgid, getgroups, getuid};
    if getuid().is_root() || geteuid().is_root() {
        return Some("the uid or effective uid is 0".to_owned());
    }
    if getgid().as_raw() == 0 || getegid().as_raw() == 0 {
        return Some("the gid or effective gid is 0 (group root)".to_owned());
    }
    match getgroups() {
        Ok(groups) if groups.iter().any(|g| g.as_raw() == 0) => {
            return Some("group 0 (root) is one of the supplementary groups".to_owned());
        }
        Ok(_) => {}
        Err(err) => return Some(format!("the supplementary groups cannot be read ({err})")),
    }
    match std::fs::read_to_string("/proc/self/status") {
        Ok(status) => capability_problem(&status),
        // Without /proc (not Linux) there are no capability sets to read.
        Err(_) => None,
    }
}

/// Looks for non-empty effective or permitted capability sets in the text
/// of `/proc/self/status`.
pub fn capability_problem(status: &str) -> Option<String> {
    for (field, name) in [("CapEff:", "effective"), ("CapPrm:", "permitted")] {
        let Some(line) = status.lines().find(|line| line.starts_with(field)) else {
            continue;
        };
        let mask = line[field.len()..].trim();
        match u64::from_str_radix(mask, 16) {
            Ok(0) => {}
            Ok(bits) => {
                return Some(format!(
                    "the process holds {name} capabilities (mask {bits:#x})"
                ));
            }
            Err(_) => return Some(format!("the {name} capability set `{mask}` is unreadable")),
        }
    }
    None
}

/// True when the process holds any privilege (see [`privilege_problem`]).
pub fn running_as_root() -> bool {
    privilege_problem().is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capability_sets_are_read_from_proc_status() {
        let clean = "Name:\tx\nCapInh:\t0000000000000000\nCapPrm:\t0000000000000000\n\
                     CapEff:\t0000000000000000\nCapBnd:\t000001ffffffffff\n";
        assert_eq!(capability_problem(clean), None, "a bounding set is fine");
        let effective = clean.replace("CapEff:\t0000000000000000", "CapEff:\t0000000000000004");
        assert!(
            capability_problem(&effective)
                .expect("refused")
                .contains("effective")
        );
        let permitted = clean.replace("CapPrm:\t0000000000000000", "CapPrm:\t0000000000200000");
        assert!(
            capability_problem(&permitted)
                .expect("refused")
                .contains("permitted")
        );
        let garbled = clean.replace("CapEff:\t0000000000000000", "CapEff:\tzz");
        assert!(capability_problem(&garbled).is_some());
    }

    #[test]
    fn this_test_process_is_judged_by_its_ids() {
        // Tests run as root in CI: root must be refused; as a user, a
        // process without capabilities passes.
        let root = nix::unistd::geteuid().is_root();
        assert_eq!(privilege_problem().is_some(), root || running_as_root());
        if root {
            assert!(running_as_root());
        }
    }
}
