//! Test fixtures shared by the scheduler's unit tests: a small agent
//! table with two program agents on two nodes, a broadcast SIMULATOR agent
//! and a group of both programs.

use tbevents_store::model::{AgentRow, GroupRow};

use crate::agents::AgentTable;
use crate::intern::Interner;

/// Agents `a` (n1, 127.0.1.1) and `b` (n2, 127.0.1.2), both PROGRAM, and
/// the broadcast SIMULATOR agent `ns`; group `g` = {a, b}.
pub(crate) fn agent_table() -> (AgentTable, Interner) {
    let mut strings = Interner::new();
    let agents = [
        AgentRow {
            vname: "a".into(),
            vnode: "n1".into(),
            objtype: "PROGRAM".into(),
            node_id: Some("pc1".into()),
            ipaddr: Some("127.0.1.1".into()),
        },
        AgentRow {
            vname: "b".into(),
            vnode: "n2".into(),
            objtype: "PROGRAM".into(),
            node_id: Some("pc2".into()),
            ipaddr: Some("127.0.1.2".into()),
        },
        AgentRow {
            vname: "ns".into(),
            vnode: "*".into(),
            objtype: "SIMULATOR".into(),
            node_id: None,
            ipaddr: None,
        },
    ];
    let groups = [
        GroupRow {
            group_name: "g".into(),
            agent_name: "a".into(),
        },
        GroupRow {
            group_name: "g".into(),
            agent_name: "b".into(),
        },
    ];
    let table = AgentTable::build(&agents, &groups, &mut strings).expect("fixture agent table");
    (table, strings)
}
