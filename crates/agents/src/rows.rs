//! This node's rows from the experiment store.
//!
//! An agent serves one virtual node (`--vnode`): the program agent its
//! `virt_programs` rows, the traffic generator its `virt_trafgens` rows.
//! The store is only read, once, at start (Emulab's agents read the same
//! rows once, from files tmcd wrote at boot); a changed experiment means
//! restarting the agents, which swap-in does.
//!
//! Opening an SQLite store that does not exist would create an empty one,
//! so a mistyped `--store` path is refused here instead of silently
//! producing an agent with nothing to do.

use std::collections::BTreeSet;

use tbevents_store::{
    ExperimentId, StoreError, StoreUrl, VirtLanMember, VirtProgram, VirtTrafgen, VirtualExperiment,
};

/// What an agent needs to know about its node.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NodeRows {
    /// The node's control IP from the swap-in mapping, if it is mapped.
    pub control_ip: Option<String>,
    /// The node's program agents.
    pub programs: Vec<VirtProgram>,
    /// The node's traffic generators (sources and sinks).
    pub trafgens: Vec<VirtTrafgen>,
    /// Every member row of every link or LAN the node is on (its own
    /// rows and its peers'), for link agents.
    pub lan_members: Vec<VirtLanMember>,
}

/// Why the node's rows could not be read.
#[derive(Debug, thiserror::Error)]
pub enum RowsError {
    /// The store refused or failed.
    #[error("cannot read experiment {expt} from the store {url}: {source}")]
    Store {
        /// The experiment.
        expt: String,
        /// The store URL.
        url: String,
        /// Why.
        #[source]
        source: Box<StoreError>,
    },
    /// The SQLite file named does not exist.
    #[error(
        "the store {url} does not exist; give the experiment store with --store (or TBEVENTS_STORE)"
    )]
    Missing {
        /// The store URL.
        url: String,
    },
    /// The node is not part of the experiment.
    #[error(
        "virtual node `{vnode}` is not a node of experiment {expt} (its nodes: {known}); check --vnode"
    )]
    UnknownNode {
        /// The node asked for.
        vnode: String,
        /// The experiment.
        expt: String,
        /// The experiment's nodes.
        known: String,
    },
}

/// Reads `vnode`'s rows of experiment `id` from the store at `url`
/// (`None`: `$TBEVENTS_STORE`, else the default store).
pub fn load(url: Option<&str>, id: &ExperimentId, vnode: &str) -> Result<NodeRows, RowsError> {
    let store_error = |url: &str, source| RowsError::Store {
        expt: id.to_string(),
        url: url.to_owned(),
        source: Box::new(source),
    };
    let url = tbevents_store::resolve_store_url(url).map_err(|e| store_error("(unset)", e))?;
    if let Ok(StoreUrl::SqliteFile(path)) = StoreUrl::parse(&url)
        && !path.exists()
    {
        return Err(RowsError::Missing { url });
    }
    // Read-only: an agent only reads its rows, and needs no more access.
    let store = tbevents_store::open_read_only(&url).map_err(|e| store_error(&url, e))?;
    let virt = store
        .virtual_experiment(id)
        .map_err(|e| store_error(&url, e))?;
    let mapping = store
        .physical_mapping(id)
        .map_err(|e| store_error(&url, e))?;
    let control_ip = mapping
        .into_iter()
        .find(|a| a.vnode == vnode)
        .map(|a| a.control_ip);
    select(virt, id, vnode, control_ip)
}

/// Picks `vnode`'s rows out of a whole experiment.
pub fn select(
    virt: VirtualExperiment,
    id: &ExperimentId,
    vnode: &str,
    control_ip: Option<String>,
) -> Result<NodeRows, RowsError> {
    if !virt.nodes.iter().any(|n| n.vname == vnode) {
        let known: Vec<&str> = virt.nodes.iter().map(|n| n.vname.as_str()).collect();
        return Err(RowsError::UnknownNode {
            vnode: vnode.to_owned(),
            expt: id.to_string(),
            known: if known.is_empty() {
                "none".to_owned()
            } else {
                known.join(", ")
            },
        });
    }
    let lans: BTreeSet<&str> = virt
        .lan_members
        .iter()
        .filter(|m| m.vnode == vnode)
        .map(|m| m.vname.as_str())
        .collect();
    let lan_members = virt
        .lan_members
        .iter()
        .filter(|m| lans.contains(m.vname.as_str()))
        .cloned()
        .collect();
    Ok(NodeRows {
        control_ip,
        lan_members,
        programs: virt
            .programs
            .into_iter()
            .filter(|p| p.vnode == vnode)
            .collect(),
        trafgens: virt
            .trafgens
            .into_iter()
            .filter(|t| t.vnode == vnode)
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tbevents_store::VirtNode;

    #[test]
    fn picks_only_this_nodes_rows_and_refuses_unknown_nodes() {
        let node = |n: &str| VirtNode {
            vname: n.into(),
            ..Default::default()
        };
        let program = |n: &str, v: &str| VirtProgram {
            vnode: n.into(),
            vname: v.into(),
            command: "true".into(),
            ..Default::default()
        };
        let member = |lan: &str, n: &str| VirtLanMember {
            vname: lan.into(),
            vnode: n.into(),
            ..Default::default()
        };
        let virt = VirtualExperiment {
            nodes: vec![node("a"), node("b"), node("c")],
            programs: vec![program("a", "p1"), program("b", "p2"), program("a", "p3")],
            lan_members: vec![
                member("link0", "a"),
                member("link0", "b"),
                member("link1", "b"),
                member("link1", "c"),
            ],
            ..Default::default()
        };
        let id = ExperimentId::new("p", "e");
        let rows = select(virt.clone(), &id, "a", Some("10.0.0.1".into())).unwrap();
        let names: Vec<&str> = rows.programs.iter().map(|p| p.vname.as_str()).collect();
        assert_eq!(names, ["p1", "p3"]);
        assert_eq!(rows.control_ip.as_deref(), Some("10.0.0.1"));
        let members: Vec<(&str, &str)> = rows
            .lan_members
            .iter()
            .map(|m| (m.vname.as_str(), m.vnode.as_str()))
            .collect();
        assert_eq!(members, [("link0", "a"), ("link0", "b")]);
        let error = select(virt, &id, "zz", None).unwrap_err().to_string();
        assert!(
            error.contains("`zz`") && error.contains("a, b, c"),
            "{error}"
        );
    }

    #[test]
    fn a_missing_sqlite_file_is_refused_not_created() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("none.db");
        let url = format!("sqlite:{}", path.display());
        let error = load(Some(&url), &ExperimentId::new("p", "e"), "a").unwrap_err();
        assert!(matches!(error, RowsError::Missing { .. }), "{error}");
        assert!(!path.exists());
    }
}
