//! The names the testbed gives what it makes in the kernel.
//!
//! Everything an experiment's testbed creates carries one prefix, `tb`
//! followed by six hex digits of a hash of `pid/eid`: its network
//! namespaces are `<prefix>-n-<vnode>` (nodes), `<prefix>-l-<lan>` (LAN
//! switches) and `<prefix>-d-<link>` (delay nodes), and the control
//! forwarder's command line names the prefix. So `testbed down`, and the
//! clean-up `testbed up` does first, can find every leftover of one
//! experiment — also after a crash that lost the state file — and never
//! touch anything of another experiment or of the host.
//!
//! Interfaces are created directly inside their namespaces (`ip link add
//! ... netns A type veth peer ... netns B`), never in the host's, so their
//! names only need to be unique per namespace: `eth<vport>` on nodes, as on
//! an Emulab node, `a`/`b` sides on delay nodes, `p<member>` ports and
//! `br0` on LAN switches. All stay far below the kernel's 15-character limit.

/// Longest interface name the kernel accepts (IFNAMSIZ - 1).
pub const MAX_IFNAME: usize = 15;

/// The start every prefix shares.
pub const PREFIX_START: &str = "tb";

/// FNV-1a, 32 bits: a stable hash that needs no dependency and never
/// changes between releases (the prefix must be the same for the `up` and
/// the `down` of one experiment, possibly by different builds).
fn fnv1a(text: &str) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in text.bytes() {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash
}

/// The name prefix of experiment `pid/eid`: `tb` and 24 bits of its hash.
pub fn prefix_for(expt: &str) -> String {
    format!("{PREFIX_START}{:06x}", fnv1a(expt) & 0x00ff_ffff)
}

/// The namespace of a virtual node.
pub fn node_namespace(prefix: &str, vnode: &str) -> String {
    format!("{prefix}-n-{vnode}")
}

/// The namespace of a LAN's switch.
pub fn lan_namespace(prefix: &str, lan: &str) -> String {
    format!("{prefix}-l-{lan}")
}

/// The namespace of the delay node that shapes `link` (a link name, or
/// `<lan>-<vnode>` for one member of a shaped LAN).
pub fn delay_namespace(prefix: &str, link: &str) -> String {
    format!("{prefix}-d-{link}")
}

/// A node's experimental interface for port `vport`.
pub fn node_interface(vport: u32) -> String {
    format!("eth{vport}")
}

/// The LAN switch's port for member number `index`.
pub fn lan_port(index: usize) -> String {
    format!("p{index}")
}

/// Whether a namespace name belongs to the experiment with `prefix`.
pub fn is_ours(prefix: &str, name: &str) -> bool {
    name.strip_prefix(prefix).is_some_and(|rest| {
        rest.starts_with("-n-") || rest.starts_with("-l-") || rest.starts_with("-d-")
    })
}

/// Whether a node, LAN or link name can be part of a namespace name: what
/// the NS front end accepts (letters, digits, `_`, `-`), at most 200 bytes
/// so that the name stays a valid file name under /run/netns.
pub fn valid_component(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 200
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_is_stable_short_and_distinct() {
        let a = prefix_for("tbdemo/demo");
        assert_eq!(a, prefix_for("tbdemo/demo"));
        assert_eq!(a.len(), 8);
        assert!(a.starts_with("tb"));
        assert_ne!(a, prefix_for("tbdemo/demo2"));
        // Fixed value: a change would orphan running testbeds on upgrade.
        assert_eq!(prefix_for(""), "tb1c9dc5");
        assert_eq!(prefix_for("a").len(), 8);
    }

    #[test]
    fn ownership_needs_the_prefix_and_a_kind() {
        let p = "tb123456";
        assert!(is_ours(p, &node_namespace(p, "client")));
        assert!(is_ours(p, &lan_namespace(p, "lan0")));
        assert!(is_ours(p, &delay_namespace(p, "link0")));
        assert!(!is_ours(p, "tb1234567-n-x"));
        assert!(!is_ours(p, "tb123456"));
        assert!(!is_ours(p, "other-n-x"));
        assert!(node_interface(12).len() <= MAX_IFNAME);
    }

    #[test]
    fn components_are_checked() {
        assert!(valid_component("server-1_a"));
        assert!(!valid_component(""));
        assert!(!valid_component("a/b"));
        assert!(!valid_component("a b"));
        assert!(!valid_component(&"x".repeat(201)));
    }
}
