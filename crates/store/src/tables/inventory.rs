//! `nodes`, `node_types` and `interfaces`: the node inventory rows that
//! make Emulab's control-IP join work. The stores own no inventory of their
//! own; swap-in writes these rows and swap-out removes the unused ones.

use super::Table;

/// `nodes`, as swap-in writes it.
pub const NODES: Table = Table {
    name: "nodes",
    columns: &["node_id", "type", "phys_nodeid"],
};

/// `node_types`, as swap-in writes it.
pub const NODE_TYPES: Table = Table {
    name: "node_types",
    columns: &["type", "class", "control_iface"],
};

/// `interfaces`, as swap-in writes it.
pub const INTERFACES: Table = Table {
    name: "interfaces",
    columns: &["node_id", "card", "port", "IP", "iface", "role"],
};

/// The control IP of `r.node_id`'s physical host, as Emulab's
/// `mydb_nodeidtoip` resolves it: the node's physical host, its type's
/// control interface, that interface's IP (first card/port wins).
pub const CONTROL_IP_OF_NODE: &str = "SELECT i.IP FROM nodes n2 \
     JOIN nodes n1 ON n1.node_id = n2.phys_nodeid \
     JOIN node_types nt ON nt.type = n1.type \
     JOIN interfaces i ON i.node_id = n1.node_id AND i.iface = nt.control_iface \
     WHERE n2.node_id = r.node_id ORDER BY i.card, i.port LIMIT 1";
