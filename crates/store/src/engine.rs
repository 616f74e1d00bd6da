//! The experiment store written once for every SQL backend.
//!
//! [`SqlBackend`] is what a database backend supplies: where it is, its
//! schema version, and a way to run work inside a read or a write
//! transaction. Everything else, every query of every
//! [`ExperimentStore`] method, lives here, against [`Tx`], with the column
//! lists and row mappings of [`crate::tables`] and the input checks of
//! [`crate::model`]. The SQLite and MySQL/MariaDB stores are therefore the
//! same store on two engines, which is what lets one test suite cover both
//! (`tests/store.rs`).
//!
//! Every read of an experiment's rows first checks, in the same
//! transaction, that the experiment exists, so a mistyped pid/eid gives
//! [`StoreError::ExperimentNotFound`] rather than an empty answer.

use std::collections::HashSet;

use rustc_hash::FxHashMap;

use crate::error::StoreError;
use crate::model::{
    AgentRow, EventRow, Experiment, ExperimentId, ExperimentState, Group, GroupMembership,
    GroupRow, NewExperiment, NodeAssignment, StaticEvent, TypeEntry, TypeTable, User, VirtAgent,
    VirtualExperiment, shorten, validate_assignments,
};
use crate::sql::{ColumnError, DbError, Named, OrStore, Tx, Value};
use crate::store::ExperimentStore;
use crate::tables::{
    Table, VIRTUAL_TABLES, event_groups, eventlist, experiment_key, experiments, group_membership,
    groups, inventory, reserved, users, virt_agents, virt_lans, virt_nodes, virt_programs,
    virt_trafgens,
};

/// The `node_types.type` the stores give nodes they record at swap-in.
pub const NODE_TYPE: &str = "pc";

/// The control interface name of [`NODE_TYPE`] (`node_types.control_iface`).
pub const CONTROL_IFACE: &str = "ctrl0";

/// What a database backend supplies; [`ExperimentStore`] follows.
pub trait SqlBackend: Send + Sync {
    /// Where the database is, for messages.
    fn backend_location(&self) -> String;

    /// The schema version the database is at.
    fn backend_schema_version(&self) -> Result<i64, StoreError>;

    /// Runs `work` in a transaction that sees one consistent snapshot.
    fn read<T>(
        &self,
        doing: &str,
        work: impl FnOnce(&mut dyn Tx) -> Result<T, StoreError>,
    ) -> Result<T, StoreError>;

    /// Runs `work` in a write transaction; an error rolls everything back.
    fn write<T>(
        &self,
        doing: &str,
        work: impl FnOnce(&mut dyn Tx) -> Result<T, StoreError>,
    ) -> Result<T, StoreError>;
}

// ----- helpers shared by the trait methods -----

fn require_experiment(tx: &mut dyn Tx, id: &ExperimentId) -> Result<(), StoreError> {
    tx.query_opt(
        "SELECT 1 FROM experiments WHERE pid = ? AND eid = ?",
        &experiment_key(id),
    )?
    .map(|_| ())
    .ok_or_else(|| StoreError::ExperimentNotFound(id.clone()))
}

fn require_user(tx: &mut dyn Tx, uid: &str) -> Result<(), StoreError> {
    tx.query_opt("SELECT 1 FROM users WHERE uid = ?", &[uid.into()])?
        .map(|_| ())
        .ok_or_else(|| StoreError::UserNotFound(shorten(uid)))
}

fn require_group(tx: &mut dyn Tx, pid: &str, gid: &str) -> Result<(), StoreError> {
    tx.query_opt(
        "SELECT 1 FROM `groups` WHERE pid = ? AND gid = ?",
        &[pid.into(), gid.into()],
    )?
    .map(|_| ())
    .ok_or_else(|| StoreError::GroupNotFound {
        pid: shorten(pid),
        gid: shorten(gid),
    })
}

fn fetch_experiment(tx: &mut dyn Tx, id: &ExperimentId) -> Result<Experiment, StoreError> {
    let sql = format!(
        "SELECT {} FROM experiments WHERE pid = ? AND eid = ?",
        experiments::TABLE.select_list()
    );
    let mut found = tx.query_map("experiments", &sql, &experiment_key(id), |row| {
        experiments::from_row(&mut experiments::TABLE.named(row))
    })?;
    found
        .pop()
        .ok_or_else(|| StoreError::ExperimentNotFound(id.clone()))
}

/// An insert where a duplicate key means the caller gave something twice.
fn insert_or(
    result: Result<u64, DbError>,
    duplicate: impl FnOnce() -> StoreError,
) -> Result<(), StoreError> {
    match result {
        Ok(_) => Ok(()),
        Err(DbError::Duplicate(_)) => Err(duplicate()),
        Err(DbError::Store(err)) => Err(err),
    }
}

/// `INSERT INTO table (columns) VALUES (?, ...)` for one row.
fn insert_sql(table: &Table) -> String {
    format!(
        "INSERT INTO {} ({}) VALUES ({})",
        table.name,
        table.select_list(),
        vec!["?"; table.columns.len()].join(", ")
    )
}

fn delete_virtual_rows(tx: &mut dyn Tx, id: &ExperimentId) -> Result<(), StoreError> {
    for table in VIRTUAL_TABLES {
        let sql = format!("DELETE FROM {} WHERE pid = ? AND eid = ?", table.name);
        tx.execute(&sql, &experiment_key(id)).or_store()?;
    }
    Ok(())
}

/// Deletes the experiment's reservations, then the node and interface rows
/// that no reservation uses any more.
fn delete_reservations(tx: &mut dyn Tx, id: &ExperimentId) -> Result<(), StoreError> {
    let node_ids = tx.query_map(
        "reserved",
        "SELECT node_id FROM reserved WHERE pid = ? AND eid = ?",
        &experiment_key(id),
        |row| row.text(0),
    )?;
    tx.execute(
        "DELETE FROM reserved WHERE pid = ? AND eid = ?",
        &experiment_key(id),
    )
    .or_store()?;
    for node_id in &node_ids {
        let still_used = tx
            .query_opt(
                "SELECT 1 FROM reserved WHERE node_id = ?",
                &[node_id.into()],
            )?
            .is_some();
        if !still_used {
            for table in ["interfaces", "nodes"] {
                tx.execute(
                    &format!("DELETE FROM {table} WHERE node_id = ?"),
                    &[node_id.into()],
                )
                .or_store()?;
            }
        }
    }
    Ok(())
}

/// Name → index of one type table.
fn type_map(tx: &mut dyn Tx, table: TypeTable) -> Result<FxHashMap<String, i64>, StoreError> {
    let sql = format!("SELECT type, idx FROM {}", table.table_name());
    Ok(tx
        .query_map(table.table_name(), &sql, &[], |row| {
            Ok((row.text(0)?, row.int(1)?))
        })?
        .into_iter()
        .collect())
}

/// Index → name of one type table.
fn type_names(tx: &mut dyn Tx, table: TypeTable) -> Result<FxHashMap<i64, String>, StoreError> {
    Ok(type_map(tx, table)?
        .into_iter()
        .map(|(name, idx)| (idx, name))
        .collect())
}

/// The names of a type map, sorted by index, comma-separated.
fn known_names(map: &FxHashMap<String, i64>) -> String {
    let mut entries: Vec<(&i64, &String)> = map.iter().map(|(name, idx)| (idx, name)).collect();
    entries.sort();
    let names: Vec<&str> = entries.into_iter().map(|(_, name)| name.as_str()).collect();
    names.join(", ")
}

fn lookup_objtype(
    map: &FxHashMap<String, i64>,
    name: &str,
    context: impl FnOnce() -> String,
) -> Result<i64, StoreError> {
    map.get(name)
        .copied()
        .ok_or_else(|| StoreError::UnknownObjectType {
            name: shorten(name),
            context: context(),
            known: known_names(map),
        })
}

fn lookup_eventtype(
    map: &FxHashMap<String, i64>,
    name: &str,
    context: impl FnOnce() -> String,
) -> Result<i64, StoreError> {
    map.get(name)
        .copied()
        .ok_or_else(|| StoreError::UnknownEventType {
            name: shorten(name),
            context: context(),
            known: known_names(map),
        })
}

/// A type name for an index, or a corruption error naming the row.
fn type_name(
    tx: &dyn Tx,
    names: &FxHashMap<i64, String>,
    idx: i64,
    table: TypeTable,
    row: impl FnOnce() -> String,
) -> Result<String, StoreError> {
    names.get(&idx).cloned().ok_or_else(|| {
        tx.corrupt(format!(
            "{} refers to type index {idx}, missing from {}",
            row(),
            table.table_name()
        ))
    })
}

/// The object and event type names of a stored event.
fn event_types(
    tx: &dyn Tx,
    objtypes: &FxHashMap<i64, String>,
    eventtypes: &FxHashMap<i64, String>,
    event: &eventlist::StoredEvent,
    id: &ExperimentId,
) -> Result<(String, String), StoreError> {
    let row_name = || format!("eventlist row {} of {id}", event.idx);
    Ok((
        type_name(
            tx,
            objtypes,
            event.objecttype,
            TypeTable::ObjectTypes,
            row_name,
        )?,
        type_name(
            tx,
            eventtypes,
            event.eventtype,
            TypeTable::EventTypes,
            row_name,
        )?,
    ))
}

/// Inserts every row of a virtual experiment (already validated and with
/// the old rows deleted).
fn write_virtual(
    tx: &mut dyn Tx,
    id: &ExperimentId,
    virt: &VirtualExperiment,
) -> Result<(), StoreError> {
    let objtypes = type_map(tx, TypeTable::ObjectTypes)?;
    let eventtypes = type_map(tx, TypeTable::EventTypes)?;

    let mut agent_rows = Vec::with_capacity(virt.agents.len());
    for agent in &virt.agents {
        let objtype = lookup_objtype(&objtypes, &agent.objtype, || {
            format!(
                "agent `{}` on vnode `{}`",
                shorten(&agent.vname),
                shorten(&agent.vnode)
            )
        })?;
        agent_rows.push(virt_agents::to_params(
            id,
            &agent.vname,
            &agent.vnode,
            objtype,
        ));
    }
    let group_names: HashSet<&str> = virt.groups.iter().map(|g| g.group_name.as_str()).collect();
    let mut event_rows = Vec::with_capacity(virt.events.len());
    for (position, event) in virt.events.iter().enumerate() {
        let idx = u64::try_from(position)
            .unwrap_or(u64::MAX)
            .saturating_add(1);
        let which = || {
            format!(
                "event {idx} (`{}` {} at {})",
                shorten(&event.vname),
                shorten(&event.eventtype),
                event.time
            )
        };
        let stored = eventlist::StoredEvent {
            idx,
            time: event.time,
            vnode: event.vnode.clone(),
            vname: event.vname.clone(),
            objecttype: lookup_objtype(&objtypes, &event.objtype, which)?,
            eventtype: lookup_eventtype(&eventtypes, &event.eventtype, which)?,
            isgroup: group_names.contains(event.vname.as_str()),
            arguments: event.arguments.clone(),
            atstring: event.atstring.clone(),
        };
        event_rows.push(eventlist::to_params(id, &stored));
    }

    let node_rows: Vec<_> = virt
        .nodes
        .iter()
        .map(|n| virt_nodes::to_params(id, n))
        .collect();
    let lan_rows: Vec<_> = virt
        .lan_members
        .iter()
        .map(|l| virt_lans::to_params(id, l))
        .collect();
    let program_rows: Vec<_> = virt
        .programs
        .iter()
        .map(|p| virt_programs::to_params(id, p))
        .collect();
    let trafgen_rows: Vec<_> = virt
        .trafgens
        .iter()
        .map(|t| virt_trafgens::to_params(id, t))
        .collect();
    let group_rows: Vec<_> = virt
        .groups
        .iter()
        .zip(1_i64..)
        .map(|(g, idx)| event_groups::to_params(id, idx, g))
        .collect();
    for (table, rows) in [
        (virt_nodes::TABLE, node_rows),
        (virt_lans::TABLE, lan_rows),
        (virt_agents::TABLE, agent_rows),
        (virt_programs::TABLE, program_rows),
        (virt_trafgens::TABLE, trafgen_rows),
        (event_groups::TABLE, group_rows),
        (eventlist::TABLE, event_rows),
    ] {
        tx.insert_rows(table.name, table.columns, &rows)
            .or_store()?;
    }
    Ok(())
}

/// One experiment's rows of `table` in `order`, each read with `from_row`.
fn experiment_rows<T>(
    tx: &mut dyn Tx,
    table: Table,
    order: &str,
    id: &ExperimentId,
    from_row: fn(&mut Named<'_>) -> Result<T, ColumnError>,
) -> Result<Vec<T>, StoreError> {
    tx.query_map(
        table.name,
        &table.select_experiment_rows(order),
        &experiment_key(id),
        |row| from_row(&mut table.named(row)),
    )
}

fn read_groups(tx: &mut dyn Tx, id: &ExperimentId) -> Result<Vec<GroupRow>, StoreError> {
    experiment_rows(tx, event_groups::TABLE, "idx", id, event_groups::from_row)
}

fn read_memberships(
    tx: &mut dyn Tx,
    filter: &str,
    order: &str,
    key: &[Value],
) -> Result<Vec<GroupMembership>, StoreError> {
    let table = group_membership::TABLE;
    let sql = format!(
        "SELECT {} FROM group_membership WHERE {filter} ORDER BY {order}",
        table.select_list()
    );
    tx.query_map("group_membership", &sql, key, |row| {
        group_membership::from_row(&mut table.named(row))
    })
}

impl<B: SqlBackend> ExperimentStore for B {
    fn location(&self) -> String {
        SqlBackend::backend_location(self)
    }

    fn schema_version(&self) -> Result<i64, StoreError> {
        SqlBackend::backend_schema_version(self)
    }

    fn create_experiment(&self, new: &NewExperiment) -> Result<Experiment, StoreError> {
        new.validate()?;
        self.write("creating an experiment", |tx| {
            insert_or(
                tx.execute(
                    "INSERT INTO experiments (pid, eid, gid, expt_head_uid, expt_swap_uid, \
                     state, path) VALUES (?, ?, ?, ?, ?, 'new', ?)",
                    &[
                        (&new.id.pid).into(),
                        (&new.id.eid).into(),
                        (&new.gid).into(),
                        (&new.creator_uid).into(),
                        (&new.creator_uid).into(),
                        (&new.path).into(),
                    ],
                ),
                || StoreError::ExperimentExists(new.id.clone()),
            )?;
            fetch_experiment(tx, &new.id)
        })
    }

    fn experiment(&self, id: &ExperimentId) -> Result<Experiment, StoreError> {
        self.read("reading an experiment", |tx| fetch_experiment(tx, id))
    }

    fn list_experiments(&self) -> Result<Vec<Experiment>, StoreError> {
        self.read("listing experiments", |tx| {
            let table = experiments::TABLE;
            let sql = format!(
                "SELECT {} FROM experiments ORDER BY pid, eid",
                table.select_list()
            );
            tx.query_map("experiments", &sql, &[], |row| {
                experiments::from_row(&mut table.named(row))
            })
        })
    }

    fn delete_experiment(&self, id: &ExperimentId) -> Result<(), StoreError> {
        self.write("deleting an experiment", |tx| {
            require_experiment(tx, id)?;
            delete_virtual_rows(tx, id)?;
            delete_reservations(tx, id)?;
            tx.execute(
                "DELETE FROM experiments WHERE pid = ? AND eid = ?",
                &experiment_key(id),
            )
            .or_store()?;
            Ok(())
        })
    }

    fn state(&self, id: &ExperimentId) -> Result<ExperimentState, StoreError> {
        self.read("reading an experiment's state", |tx| {
            let mut row = tx
                .query_opt(
                    "SELECT state FROM experiments WHERE pid = ? AND eid = ?",
                    &experiment_key(id),
                )?
                .ok_or_else(|| StoreError::ExperimentNotFound(id.clone()))?;
            let state = row.text(0).map_err(|e| tx.corrupt(e))?;
            state.parse::<ExperimentState>().map_err(|_| {
                tx.corrupt(format!(
                    "experiment {id} has state `{}`, which is not an Emulab experiment state",
                    shorten(&state)
                ))
            })
        })
    }

    fn set_state(&self, id: &ExperimentId, state: ExperimentState) -> Result<(), StoreError> {
        self.write("setting an experiment's state", |tx| {
            require_experiment(tx, id)?;
            tx.execute(
                "UPDATE experiments SET state = ? WHERE pid = ? AND eid = ?",
                &[state.as_str().into(), (&id.pid).into(), (&id.eid).into()],
            )
            .or_store()?;
            Ok(())
        })
    }

    fn set_event_key(&self, id: &ExperimentId, key: &str) -> Result<(), StoreError> {
        crate::eventkey::validate_event_key(key)?;
        self.write("setting an experiment's event key", |tx| {
            require_experiment(tx, id)?;
            tx.execute(
                "UPDATE experiments SET eventkey = ? WHERE pid = ? AND eid = ?",
                &[key.into(), (&id.pid).into(), (&id.eid).into()],
            )
            .or_store()?;
            Ok(())
        })
    }

    fn load_virtual(&self, id: &ExperimentId, virt: &VirtualExperiment) -> Result<(), StoreError> {
        virt.validate()?;
        self.write("loading a virtual experiment", |tx| {
            require_experiment(tx, id)?;
            delete_virtual_rows(tx, id)?;
            tx.execute(
                "UPDATE experiments SET simulator_name = ? WHERE pid = ? AND eid = ?",
                &[
                    (&virt.simulator_name).into(),
                    (&id.pid).into(),
                    (&id.eid).into(),
                ],
            )
            .or_store()?;
            write_virtual(tx, id, virt)
        })
    }

    fn virtual_experiment(&self, id: &ExperimentId) -> Result<VirtualExperiment, StoreError> {
        self.read("reading a virtual experiment", |tx| {
            let simulator_name = tx
                .query_opt(
                    "SELECT simulator_name FROM experiments WHERE pid = ? AND eid = ?",
                    &experiment_key(id),
                )?
                .ok_or_else(|| StoreError::ExperimentNotFound(id.clone()))?
                .text(0)
                .map_err(|e| tx.corrupt(e))?;
            let order = tx.dialect().insertion_order();

            let nodes = experiment_rows(tx, virt_nodes::TABLE, order, id, virt_nodes::from_row)?;
            let lan_members =
                experiment_rows(tx, virt_lans::TABLE, order, id, virt_lans::from_row)?;
            let programs =
                experiment_rows(tx, virt_programs::TABLE, order, id, virt_programs::from_row)?;
            let trafgens =
                experiment_rows(tx, virt_trafgens::TABLE, order, id, virt_trafgens::from_row)?;
            let groups = read_groups(tx, id)?;

            let objtypes = type_names(tx, TypeTable::ObjectTypes)?;
            let eventtypes = type_names(tx, TypeTable::EventTypes)?;
            let stored_agents =
                experiment_rows(tx, virt_agents::TABLE, order, id, virt_agents::from_row)?;
            let mut agents = Vec::with_capacity(stored_agents.len());
            for agent in stored_agents {
                let objtype = type_name(
                    tx,
                    &objtypes,
                    agent.objecttype,
                    TypeTable::ObjectTypes,
                    || format!("virt_agents row `{}` of {id}", agent.vname),
                )?;
                agents.push(VirtAgent {
                    vname: agent.vname,
                    vnode: agent.vnode,
                    objtype,
                });
            }
            let stored_events =
                experiment_rows(tx, eventlist::TABLE, "idx", id, eventlist::from_row)?;
            let mut events = Vec::with_capacity(stored_events.len());
            for event in stored_events {
                let (objtype, eventtype) = event_types(tx, &objtypes, &eventtypes, &event, id)?;
                events.push(StaticEvent {
                    objtype,
                    eventtype,
                    time: event.time,
                    vnode: event.vnode,
                    vname: event.vname,
                    arguments: event.arguments,
                    atstring: event.atstring,
                });
            }
            Ok(VirtualExperiment {
                nodes,
                lan_members,
                agents,
                programs,
                trafgens,
                groups,
                events,
                simulator_name,
            })
        })
    }

    fn record_swapin(
        &self,
        id: &ExperimentId,
        assignments: &[NodeAssignment],
    ) -> Result<(), StoreError> {
        validate_assignments(assignments)?;
        self.write("recording a swap-in", |tx| {
            require_experiment(tx, id)?;
            for assignment in assignments {
                let known = tx.query_opt(
                    "SELECT 1 FROM virt_nodes WHERE pid = ? AND eid = ? AND vname = ?",
                    &[
                        (&id.pid).into(),
                        (&id.eid).into(),
                        (&assignment.vnode).into(),
                    ],
                )?;
                if known.is_none() {
                    return Err(StoreError::InvalidInput(format!(
                        "vnode `{}` is not a node of experiment {id}: load its virtual \
                         experiment first, or fix the assignment",
                        shorten(&assignment.vnode)
                    )));
                }
                let holder = tx.query_opt(
                    "SELECT pid, eid FROM reserved WHERE node_id = ? AND NOT (pid = ? AND eid = ?)",
                    &[
                        (&assignment.node_id).into(),
                        (&id.pid).into(),
                        (&id.eid).into(),
                    ],
                )?;
                if let Some(mut row) = holder {
                    let holder = ExperimentId::new(
                        row.text(0).map_err(|e| tx.corrupt(e))?,
                        row.text(1).map_err(|e| tx.corrupt(e))?,
                    );
                    return Err(StoreError::NodeReserved {
                        node_id: assignment.node_id.clone(),
                        holder,
                    });
                }
            }
            delete_reservations(tx, id)?;
            let node_type = tx.query_opt(
                "SELECT control_iface FROM node_types WHERE type = ?",
                &[NODE_TYPE.into()],
            )?;
            let control_iface = match node_type {
                Some(mut row) => row
                    .opt_text(0)
                    .map_err(|e| tx.corrupt(e))?
                    .unwrap_or_else(|| CONTROL_IFACE.to_owned()),
                None => {
                    tx.execute(
                        &insert_sql(&inventory::NODE_TYPES),
                        &[NODE_TYPE.into(), NODE_TYPE.into(), CONTROL_IFACE.into()],
                    )
                    .or_store()?;
                    CONTROL_IFACE.to_owned()
                }
            };
            for assignment in assignments {
                let node: Value = (&assignment.node_id).into();
                tx.execute(
                    &insert_sql(&reserved::TABLE),
                    &[
                        node.clone(),
                        (&id.pid).into(),
                        (&id.eid).into(),
                        (&assignment.vnode).into(),
                    ],
                )
                .or_store()?;
                tx.execute(
                    "DELETE FROM nodes WHERE node_id = ?",
                    std::slice::from_ref(&node),
                )
                .or_store()?;
                tx.execute(
                    &insert_sql(&inventory::NODES),
                    &[node.clone(), NODE_TYPE.into(), node.clone()],
                )
                .or_store()?;
                tx.execute(
                    "DELETE FROM interfaces WHERE node_id = ? AND (iface = ? OR (card = 0 AND port = 1))",
                    &[node.clone(), (&control_iface).into()],
                )
                .or_store()?;
                tx.execute(
                    &insert_sql(&inventory::INTERFACES),
                    &[
                        node,
                        Value::Int(0),
                        Value::Int(1),
                        (&assignment.control_ip).into(),
                        (&control_iface).into(),
                        "ctrl".into(),
                    ],
                )
                .or_store()?;
            }
            Ok(())
        })
    }

    fn physical_mapping(&self, id: &ExperimentId) -> Result<Vec<NodeAssignment>, StoreError> {
        self.read("reading the physical mapping", |tx| {
            require_experiment(tx, id)?;
            let sql = format!(
                "SELECT r.vname, r.node_id, COALESCE(({}), '') \
                 FROM reserved r WHERE r.pid = ? AND r.eid = ? ORDER BY r.vname",
                inventory::CONTROL_IP_OF_NODE
            );
            tx.query_map("reserved", &sql, &experiment_key(id), |row| {
                Ok(NodeAssignment {
                    vnode: row.opt_text(0)?.unwrap_or_default(),
                    node_id: row.text(1)?,
                    control_ip: row.text(2)?,
                })
            })
        })
    }

    fn record_swapout(&self, id: &ExperimentId) -> Result<(), StoreError> {
        self.write("recording a swap-out", |tx| {
            require_experiment(tx, id)?;
            delete_reservations(tx, id)
        })
    }

    fn agents(&self, id: &ExperimentId) -> Result<Vec<AgentRow>, StoreError> {
        self.read("reading the agent table", |tx| {
            require_experiment(tx, id)?;
            let objtypes = type_names(tx, TypeTable::ObjectTypes)?;
            let sql = format!(
                "SELECT {}, r.node_id, ({}) FROM virt_agents vi \
                 LEFT JOIN reserved r ON r.pid = vi.pid AND r.eid = vi.eid \
                      AND r.vname = vi.vnode AND vi.vnode <> '*' \
                 WHERE vi.pid = ? AND vi.eid = ? ORDER BY vi.{}",
                virt_agents::TABLE.select_list_as("vi"),
                inventory::CONTROL_IP_OF_NODE,
                tx.dialect().insertion_order()
            );
            let width = virt_agents::TABLE.columns.len();
            let raws = tx.query_map("virt_agents", &sql, &experiment_key(id), |row| {
                Ok((
                    virt_agents::from_row(&mut virt_agents::TABLE.named(row))?,
                    row.opt_text(width)?,
                    row.opt_text(width + 1)?,
                ))
            })?;
            let mut agents = Vec::with_capacity(raws.len());
            for (agent, node_id, ipaddr) in raws {
                let objtype = type_name(
                    tx,
                    &objtypes,
                    agent.objecttype,
                    TypeTable::ObjectTypes,
                    || format!("virt_agents row `{}` of {id}", agent.vname),
                )?;
                agents.push(AgentRow {
                    vname: agent.vname,
                    vnode: agent.vnode,
                    objtype,
                    node_id,
                    ipaddr,
                });
            }
            Ok(agents)
        })
    }

    fn groups(&self, id: &ExperimentId) -> Result<Vec<GroupRow>, StoreError> {
        self.read("reading event groups", |tx| {
            require_experiment(tx, id)?;
            read_groups(tx, id)
        })
    }

    fn events(&self, id: &ExperimentId) -> Result<Vec<EventRow>, StoreError> {
        self.read("reading the static events", |tx| {
            require_experiment(tx, id)?;
            // The type names are resolved in memory rather than by joining:
            // two small maps instead of 200,000 index lookups.
            let objtypes = type_names(tx, TypeTable::ObjectTypes)?;
            let eventtypes = type_names(tx, TypeTable::EventTypes)?;
            let stored = experiment_rows(
                tx,
                eventlist::SCHEDULE,
                "time, idx",
                id,
                eventlist::scheduled_from_row,
            )?;
            let mut events = Vec::with_capacity(stored.len());
            for event in stored {
                let (objtype, eventtype) = event_types(tx, &objtypes, &eventtypes, &event, id)?;
                events.push(EventRow {
                    idx: event.idx,
                    time: event.time,
                    objtype,
                    eventtype,
                    vnode: event.vnode,
                    vname: event.vname,
                    arguments: event.arguments,
                });
            }
            Ok(events)
        })
    }

    fn type_table(&self, table: TypeTable) -> Result<Vec<TypeEntry>, StoreError> {
        self.read("reading a type table", |tx| {
            let sql = format!("SELECT idx, type FROM {} ORDER BY idx", table.table_name());
            tx.query_map(table.table_name(), &sql, &[], |row| {
                Ok(TypeEntry {
                    idx: row.int_as(0)?,
                    name: row.text(1)?,
                })
            })
        })
    }

    fn create_user(&self, user: &User) -> Result<(), StoreError> {
        user.validate()?;
        self.write("creating a user", |tx| {
            insert_or(
                tx.execute(&insert_sql(&users::TABLE), &users::to_params(user)),
                || StoreError::UserExists(user.uid.clone()),
            )
        })
    }

    fn user(&self, uid: &str) -> Result<User, StoreError> {
        self.read("reading a user", |tx| {
            let table = users::TABLE;
            let sql = format!("SELECT {} FROM users WHERE uid = ?", table.select_list());
            tx.query_map("users", &sql, &[uid.into()], |row| {
                users::from_row(&mut table.named(row))
            })?
            .pop()
            .ok_or_else(|| StoreError::UserNotFound(shorten(uid)))
        })
    }

    fn list_users(&self) -> Result<Vec<User>, StoreError> {
        self.read("listing users", |tx| {
            let table = users::TABLE;
            let sql = format!("SELECT {} FROM users ORDER BY uid", table.select_list());
            tx.query_map("users", &sql, &[], |row| {
                users::from_row(&mut table.named(row))
            })
        })
    }

    fn delete_user(&self, uid: &str) -> Result<(), StoreError> {
        self.write("deleting a user", |tx| {
            require_user(tx, uid)?;
            for sql in [
                "DELETE FROM group_membership WHERE uid = ?",
                "DELETE FROM users WHERE uid = ?",
            ] {
                tx.execute(sql, &[uid.into()]).or_store()?;
            }
            Ok(())
        })
    }

    fn create_group(&self, group: &Group) -> Result<(), StoreError> {
        group.validate()?;
        self.write("creating a group", |tx| {
            insert_or(
                tx.execute(&insert_sql(&groups::TABLE), &groups::to_params(group)),
                || StoreError::GroupExists {
                    pid: group.pid.clone(),
                    gid: group.gid.clone(),
                },
            )
        })
    }

    fn group(&self, pid: &str, gid: &str) -> Result<Group, StoreError> {
        self.read("reading a group", |tx| {
            let table = groups::TABLE;
            let sql = format!(
                "SELECT {} FROM `groups` WHERE pid = ? AND gid = ?",
                table.select_list()
            );
            tx.query_map("groups", &sql, &[pid.into(), gid.into()], |row| {
                groups::from_row(&mut table.named(row))
            })?
            .pop()
            .ok_or_else(|| StoreError::GroupNotFound {
                pid: shorten(pid),
                gid: shorten(gid),
            })
        })
    }

    fn list_groups(&self) -> Result<Vec<Group>, StoreError> {
        self.read("listing groups", |tx| {
            let table = groups::TABLE;
            let sql = format!(
                "SELECT {} FROM `groups` ORDER BY pid, gid",
                table.select_list()
            );
            tx.query_map("groups", &sql, &[], |row| {
                groups::from_row(&mut table.named(row))
            })
        })
    }

    fn delete_group(&self, pid: &str, gid: &str) -> Result<(), StoreError> {
        self.write("deleting a group", |tx| {
            require_group(tx, pid, gid)?;
            for sql in [
                "DELETE FROM group_membership WHERE pid = ? AND gid = ?",
                "DELETE FROM `groups` WHERE pid = ? AND gid = ?",
            ] {
                tx.execute(sql, &[pid.into(), gid.into()]).or_store()?;
            }
            Ok(())
        })
    }

    fn add_member(&self, membership: &GroupMembership) -> Result<(), StoreError> {
        self.write("adding a group member", |tx| {
            require_user(tx, &membership.uid)?;
            require_group(tx, &membership.pid, &membership.gid)?;
            let key = [
                (&membership.uid).into(),
                (&membership.gid).into(),
                (&membership.pid).into(),
            ];
            let exists = tx
                .query_opt(
                    "SELECT 1 FROM group_membership WHERE uid = ? AND gid = ? AND pid = ?",
                    &key,
                )?
                .is_some();
            let trust: Value = membership.trust.as_str().into();
            if exists {
                let mut params = vec![trust];
                params.extend(key);
                tx.execute(
                    "UPDATE group_membership SET trust = ? WHERE uid = ? AND gid = ? AND pid = ?",
                    &params,
                )
                .or_store()?;
            } else {
                let mut params = key.to_vec();
                params.push(trust);
                tx.execute(
                    "INSERT INTO group_membership (uid, gid, pid, trust, date_applied, \
                     date_approved) VALUES (?, ?, ?, ?, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)",
                    &params,
                )
                .or_store()?;
            }
            Ok(())
        })
    }

    fn remove_member(&self, uid: &str, pid: &str, gid: &str) -> Result<(), StoreError> {
        self.write("removing a group member", |tx| {
            let key = [uid.into(), pid.into(), gid.into()];
            let exists = tx
                .query_opt(
                    "SELECT 1 FROM group_membership WHERE uid = ? AND pid = ? AND gid = ?",
                    &key,
                )?
                .is_some();
            if !exists {
                return Err(StoreError::MembershipNotFound {
                    uid: shorten(uid),
                    pid: shorten(pid),
                    gid: shorten(gid),
                });
            }
            tx.execute(
                "DELETE FROM group_membership WHERE uid = ? AND pid = ? AND gid = ?",
                &key,
            )
            .or_store()?;
            Ok(())
        })
    }

    fn memberships(&self, uid: &str) -> Result<Vec<GroupMembership>, StoreError> {
        self.read("reading a user's groups", |tx| {
            require_user(tx, uid)?;
            let order = format!("date_approved, {}", tx.dialect().insertion_order());
            read_memberships(tx, "uid = ?", &order, &[uid.into()])
        })
    }

    fn group_members(&self, pid: &str, gid: &str) -> Result<Vec<GroupMembership>, StoreError> {
        self.read("reading a group's members", |tx| {
            require_group(tx, pid, gid)?;
            read_memberships(tx, "pid = ? AND gid = ?", "uid", &[pid.into(), gid.into()])
        })
    }
}
