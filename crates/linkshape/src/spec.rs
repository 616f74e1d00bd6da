//! The `--link` mapping: which interfaces carry which link, and which
//! directions an event's object name reaches.
//!
//! Emulab's delay agent read a map file with one line per link (`name
//! duplex vnode0 vnode1 iface0 iface1 pipe0 pipe1`, or a LAN member with
//! vnode0 = vnode1) and answered events for the link's name and for
//! `<link>-<vnode>`. We take the same facts on the command line:
//!
//! | form | backend | meaning |
//! |---|---|---|
//! | `NAME:IFACE` | tc | shape the egress of IFACE; only `NAME` events |
//! | `NAME:VNODE=IFACE` | tc | as above; IFACE is VNODE's way into the link, so `NAME-VNODE` events too |
//! | `NAME:VA=IA:VB=IB` | shaper | duplex link between VA (behind IA) and VB (behind IB) |
//! | `NAME:VNODE=IA:IB` | shaper | LAN member VNODE (behind IA); IB faces the LAN |
//! | `NAME:IA:IB` | shaper | unnamed sides; only `NAME` events |
//!
//! Interface names are Linux's (at most 15 bytes, no `/`, `:`, `=` or
//! white space); node names are NS names (letters, digits, `-`, `_`).
//! Which directions each object name reaches is [`LinkSpec::target`].

use std::fmt;

use crate::params::Direction;

/// One side of a link: an interface and, optionally, the node behind it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// The experiment node (NS name) whose traffic enters here, if known.
    pub vnode: Option<String>,
    /// The interface.
    pub iface: String,
}

/// One `--link` argument.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkSpec {
    /// The link or LAN name (the OBJNAME of its events).
    pub name: String,
    /// Side A: for tc, the interface whose egress is shaped.
    pub a: Endpoint,
    /// Side B: present for the shaper backend (the bridged peer).
    pub b: Option<Endpoint>,
}

/// What kind of link a spec describes, which decides how object names and
/// queue settings map to directions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkKind {
    /// tc backend: one direction, A's egress.
    Egress,
    /// A duplex link with both nodes named.
    Duplex,
    /// One member of a LAN (only side A named).
    LanMember,
    /// A bridge with no node names.
    Anonymous,
}

/// Which pipes an event for some object name reaches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Target {
    /// Pipes that bandwidth, delay and loss reach when no `PIPE=` is given.
    pub shaping: &'static [Direction],
    /// Pipes that queue settings reach when no `PIPE=` is given.
    pub queue: &'static [Direction],
}

const BOTH: &[Direction] = &Direction::BOTH;
const A_TO_B: &[Direction] = &[Direction::AtoB];
const B_TO_A: &[Direction] = &[Direction::BtoA];

/// A `--link` argument that cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "--link {text:?}: {reason}; use NAME:IFACE, NAME:VNODE=IFACE (tc) or NAME:VA=IFACE_A:VB=IFACE_B, NAME:VNODE=IFACE_A:IFACE_B (shaper)"
)]
pub struct SpecError {
    text: String,
    reason: String,
}

impl LinkSpec {
    /// Parses one `--link` value.
    pub fn parse(text: &str) -> Result<LinkSpec, SpecError> {
        let err = |reason: &str| SpecError {
            text: text.to_string(),
            reason: reason.to_string(),
        };
        let parts: Vec<&str> = text.split(':').collect();
        if !(2..=3).contains(&parts.len()) {
            return Err(err("expected two or three ':'-separated parts"));
        }
        let name = parts[0];
        if !valid_node_name(name) {
            return Err(err("the link name must be letters, digits, '-' or '_'"));
        }
        let endpoint = |part: &str| -> Result<Endpoint, SpecError> {
            let (vnode, iface) = match part.split_once('=') {
                Some((vnode, iface)) => (Some(vnode), iface),
                None => (None, part),
            };
            if let Some(vnode) = vnode
                && !valid_node_name(vnode)
            {
                return Err(err(&format!(
                    "node name {vnode:?} must be letters, digits, '-' or '_'"
                )));
            }
            if !valid_iface_name(iface) {
                return Err(err(&format!(
                    "interface name {iface:?} must be 1 to 15 bytes without '/', ':', '=' or white space"
                )));
            }
            Ok(Endpoint {
                vnode: vnode.map(str::to_string),
                iface: iface.to_string(),
            })
        };
        let a = endpoint(parts[1])?;
        let b = parts.get(2).map(|p| endpoint(p)).transpose()?;
        if let Some(b) = &b {
            if b.vnode.is_some() && a.vnode.is_none() {
                return Err(err(
                    "name side A's node too (a LAN member is NAME:VNODE=IFACE_A:IFACE_B)",
                ));
            }
            if b.iface == a.iface {
                return Err(err("the two interfaces must differ"));
            }
            if b.vnode.is_some() && b.vnode == a.vnode {
                return Err(err("the two nodes of a duplex link must differ"));
            }
        }
        Ok(LinkSpec {
            name: name.to_string(),
            a,
            b,
        })
    }

    /// What kind of link this is.
    pub fn kind(&self) -> LinkKind {
        match (&self.a.vnode, &self.b) {
            (_, None) => LinkKind::Egress,
            (Some(_), Some(Endpoint { vnode: Some(_), .. })) => LinkKind::Duplex,
            (Some(_), Some(_)) => LinkKind::LanMember,
            (None, Some(_)) => LinkKind::Anonymous,
        }
    }

    /// The object names this link answers: its name, and `<name>-<vnode>`
    /// for each named node.
    pub fn object_names(&self) -> Vec<String> {
        let mut names = vec![self.name.clone()];
        for vnode in [
            &self.a.vnode,
            &self.b.as_ref().and_then(|b| b.vnode.clone()),
        ]
        .into_iter()
        .flatten()
        {
            names.push(format!("{}-{vnode}", self.name));
        }
        names
    }

    /// The directions this link has (one for tc, two for the shaper).
    pub fn directions(&self) -> &'static [Direction] {
        match self.kind() {
            LinkKind::Egress => A_TO_B,
            _ => BOTH,
        }
    }

    /// Which pipes an event for `objname` reaches, or `None` when it is not
    /// this link's object.
    ///
    /// - `NAME`: every pipe; queue settings on a LAN member reach only the
    ///   member's own outgoing queue (A to B), as Emulab's agent did.
    /// - `NAME-VA` on a duplex link: only VA's outgoing pipe (A to B);
    ///   `NAME-VB`: only B to A.
    /// - `NAME-VNODE` on a LAN member: both pipes for bandwidth, delay and
    ///   loss, the outgoing queue for queue settings.
    /// - tc egress: its single pipe for `NAME` and `NAME-VNODE`.
    pub fn target(&self, objname: &str) -> Option<Target> {
        let kind = self.kind();
        let member_of = |vnode: &Option<String>| {
            vnode
                .as_deref()
                .and_then(|v| {
                    objname
                        .strip_prefix(self.name.as_str())?
                        .strip_prefix('-')?
                        .eq(v)
                        .then_some(())
                })
                .is_some()
        };
        let whole = objname == self.name;
        let via_a = member_of(&self.a.vnode);
        let via_b = self.b.as_ref().is_some_and(|b| member_of(&b.vnode));
        match kind {
            LinkKind::Egress if whole || via_a => Some(Target {
                shaping: A_TO_B,
                queue: A_TO_B,
            }),
            LinkKind::Duplex if whole => Some(Target {
                shaping: BOTH,
                queue: BOTH,
            }),
            LinkKind::Duplex if via_a => Some(Target {
                shaping: A_TO_B,
                queue: A_TO_B,
            }),
            LinkKind::Duplex if via_b => Some(Target {
                shaping: B_TO_A,
                queue: B_TO_A,
            }),
            LinkKind::LanMember if whole || via_a => Some(Target {
                shaping: BOTH,
                queue: A_TO_B,
            }),
            LinkKind::Anonymous if whole => Some(Target {
                shaping: BOTH,
                queue: BOTH,
            }),
            _ => None,
        }
    }
}

impl fmt::Display for LinkSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let side = |e: &Endpoint| match &e.vnode {
            Some(v) => format!("{v}={}", e.iface),
            None => e.iface.clone(),
        };
        write!(f, "{}:{}", self.name, side(&self.a))?;
        if let Some(b) = &self.b {
            write!(f, ":{}", side(b))?;
        }
        Ok(())
    }
}

fn valid_node_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Linux's rule for interface names (`dev_valid_name`), plus no `=`.
pub fn valid_iface_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 15
        && name != "."
        && name != ".."
        && !name
            .bytes()
            .any(|b| b == b'/' || b == b':' || b == b'=' || b.is_ascii_whitespace() || b == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_parses_to_its_kind() {
        let spec = LinkSpec::parse("link0:eth1").unwrap();
        assert_eq!(spec.kind(), LinkKind::Egress);
        assert_eq!(spec.object_names(), vec!["link0"]);
        let spec = LinkSpec::parse("link0:client=eth1").unwrap();
        assert_eq!(spec.kind(), LinkKind::Egress);
        assert_eq!(spec.object_names(), vec!["link0", "link0-client"]);
        let spec = LinkSpec::parse("access:client=sa:router=sb").unwrap();
        assert_eq!(spec.kind(), LinkKind::Duplex);
        assert_eq!(
            spec.object_names(),
            vec!["access", "access-client", "access-router"]
        );
        assert_eq!(spec.to_string(), "access:client=sa:router=sb");
        let spec = LinkSpec::parse("lan0:server1=s1:lanside").unwrap();
        assert_eq!(spec.kind(), LinkKind::LanMember);
        let spec = LinkSpec::parse("l:x:y").unwrap();
        assert_eq!(spec.kind(), LinkKind::Anonymous);
    }

    #[test]
    fn bad_specs_say_what_is_wrong() {
        for bad in [
            "",
            "link0",
            "link0:a:b:c",
            "link 0:eth0",
            "link0:averyveryverylongname",
            "link0:eth0:eth0",
            "link0:a=x:a=y",
            "link0:x:b=y",
            "link0:bad node=eth0",
        ] {
            let error = LinkSpec::parse(bad).unwrap_err().to_string();
            assert!(error.contains("use NAME:IFACE"), "{bad}: {error}");
        }
    }

    #[test]
    fn object_names_select_directions_as_documented() {
        let duplex = LinkSpec::parse("access:client=sa:router=sb").unwrap();
        assert_eq!(duplex.target("access").unwrap().shaping, BOTH);
        assert_eq!(duplex.target("access-client").unwrap().shaping, A_TO_B);
        assert_eq!(duplex.target("access-router").unwrap().queue, B_TO_A);
        assert_eq!(duplex.target("access-server"), None);
        assert_eq!(duplex.target("other"), None);
        assert_eq!(duplex.target("accessclient"), None);

        let lan = LinkSpec::parse("lan0:server1=s1:l").unwrap();
        let t = lan.target("lan0-server1").unwrap();
        assert_eq!((t.shaping, t.queue), (BOTH, A_TO_B));
        let t = lan.target("lan0").unwrap();
        assert_eq!((t.shaping, t.queue), (BOTH, A_TO_B));
        assert_eq!(lan.target("lan0-server2"), None);

        let egress = LinkSpec::parse("access:client=eth1").unwrap();
        assert_eq!(egress.target("access-client").unwrap().shaping, A_TO_B);
        assert_eq!(egress.target("access").unwrap().shaping, A_TO_B);
        assert_eq!(egress.target("access-router"), None);
    }
}
