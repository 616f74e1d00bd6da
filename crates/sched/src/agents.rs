//! The agent table: which network address and object type each event
//! target name stands for (docs/emulab-model.md §6.3).
//!
//! The store gives one [`AgentRow`] per `virt_agents` row, already joined
//! with the physical mapping, and one [`GroupRow`] per event-group member.
//! We turn them into a map from *target name* to a list of [`AgentEntry`]:
//!
//! * an agent on a mapped node gets HOST = the node's control IP;
//! * a `*` agent (links, the simulator, linktest, ...) gets HOST `*`, so
//!   it is broadcast and the node-side agents pick their own events by name;
//! * a group name maps to one entry per member, each keeping the *member's*
//!   object name, so one event to the group reaches every member. This is
//!   used for static events too (the original gave a static group event to
//!   only its first member, docs/emulab-model.md §6.8);
//! * a name used by two rows (the same agent name on two nodes) keeps both
//!   entries, and events fan out to both, as the original's dynamic path did.
//!
//! Agents on nodes that have no physical mapping are left out (the original
//! logged `No node_id for vnode X` and skipped them); we remember them so a
//! static event that targets one fails the load with a message that says
//! why, instead of "unknown object".

use rustc_hash::FxHashMap;
use tbevents_store::{AgentRow, GroupRow};

use crate::intern::{Interner, InternerFull, Sym};

/// The object type of the agent the scheduler handles itself.
pub const SIMULATOR_OBJTYPE: &str = "SIMULATOR";

/// HOST value that addresses every node.
pub const BROADCAST_HOST: &str = "*";

/// Index of an entry in the [`AgentTable`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct EntryId(u32);

/// Where events for one target name go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AgentEntry {
    /// OBJNAME the fired event carries: the agent's own name, which for a
    /// group entry is the member's name, not the group's.
    pub objname: Sym,
    /// The agent's object type (`PROGRAM`, `LINK`, `SIMULATOR`, ...).
    pub objtype: Sym,
    /// HOST the fired event carries: a control IP or `*`.
    pub host: Sym,
    /// The virtual node hosting the agent, or `*`.
    pub vnode: Sym,
    /// The group this entry was added for, when it is a group member entry.
    pub group: Option<Sym>,
    /// True for the SIMULATOR agent, whose events the scheduler runs itself.
    pub is_simulator: bool,
}

/// Why the agent table could not be built.
#[derive(Debug, thiserror::Error)]
pub enum AgentTableError {
    /// A group member is not an agent of the experiment.
    #[error(
        "event group `{group}` lists member `{member}`, which is not an agent of this experiment: \
         fix the experiment's event groups (re-create it from a corrected NS file)"
    )]
    UnknownGroupMember {
        /// The group.
        group: String,
        /// The member that is not an agent.
        member: String,
    },
    /// A group member lives on a node that has no physical mapping.
    #[error(
        "event group `{group}` lists member `{member}` on virtual node `{vnode}`, which has no \
         physical node: swap the experiment in (`tbevents swapin`) with a mapping for `{vnode}`"
    )]
    UnmappedGroupMember {
        /// The group.
        group: String,
        /// The member.
        member: String,
        /// Its unmapped virtual node.
        vnode: String,
    },
    /// Too many distinct strings.
    #[error(transparent)]
    Full(#[from] InternerFull),
    /// More entries than an [`EntryId`] can number.
    #[error("more than {} agent table entries", u32::MAX)]
    TooManyEntries,
}

/// What a target name resolves to.
#[derive(Debug, PartialEq, Eq)]
pub enum Lookup<'a> {
    /// The name maps to these entries (one, or several for a group).
    Found(&'a [EntryId]),
    /// The name is an agent on a virtual node without a physical node.
    Unmapped {
        /// The unmapped virtual node.
        vnode: &'a str,
    },
    /// No agent or group has this name.
    Unknown,
}

/// The agent and group table of one experiment.
#[derive(Debug, Default)]
pub struct AgentTable {
    entries: Vec<AgentEntry>,
    by_name: FxHashMap<Sym, Vec<EntryId>>,
    unmapped: FxHashMap<String, String>,
    agent_count: usize,
    group_count: usize,
}

impl AgentTable {
    /// Builds the table from the store's rows. Strings go into `strings`.
    pub fn build(
        agents: &[AgentRow],
        groups: &[GroupRow],
        strings: &mut Interner,
    ) -> Result<AgentTable, AgentTableError> {
        let mut table = AgentTable::default();
        let star = strings.intern(BROADCAST_HOST)?;
        for row in agents {
            let host = if row.vnode == BROADCAST_HOST {
                star
            } else if let Some(ip) = row.ipaddr.as_deref() {
                strings.intern(ip)?
            } else {
                tracing::warn!(
                    agent = %row.vname,
                    vnode = %row.vnode,
                    "agent `{}` is on virtual node `{}`, which has no physical node: \
                     events for it cannot be delivered",
                    row.vname,
                    row.vnode
                );
                table.unmapped.insert(row.vname.clone(), row.vnode.clone());
                continue;
            };
            let name = strings.intern(&row.vname)?;
            let entry = AgentEntry {
                objname: name,
                objtype: strings.intern(&row.objtype)?,
                host,
                vnode: strings.intern(&row.vnode)?,
                group: None,
                is_simulator: row.objtype == SIMULATOR_OBJTYPE,
            };
            table.push(name, entry)?;
            table.agent_count += 1;
        }
        // Group entries copy the member's entries at the time the group is
        // built; members are plain agents (the front end does not nest
        // groups), so the order of group rows does not matter.
        let mut seen_groups: FxHashMap<Sym, ()> = FxHashMap::default();
        for row in groups {
            let member_entries: Vec<AgentEntry> = match table.lookup(strings, &row.agent_name) {
                Lookup::Found(ids) => ids
                    .iter()
                    .filter_map(|id| table.entry(*id))
                    .filter(|entry| entry.group.is_none())
                    .copied()
                    .collect(),
                Lookup::Unmapped { vnode } => {
                    return Err(AgentTableError::UnmappedGroupMember {
                        group: row.group_name.clone(),
                        member: row.agent_name.clone(),
                        vnode: vnode.to_owned(),
                    });
                }
                Lookup::Unknown => Vec::new(),
            };
            if member_entries.is_empty() {
                return Err(AgentTableError::UnknownGroupMember {
                    group: row.group_name.clone(),
                    member: row.agent_name.clone(),
                });
            }
            let group = strings.intern(&row.group_name)?;
            seen_groups.insert(group, ());
            for mut entry in member_entries {
                entry.group = Some(group);
                table.push(group, entry)?;
            }
        }
        table.group_count = seen_groups.len();
        Ok(table)
    }

    fn push(&mut self, name: Sym, entry: AgentEntry) -> Result<(), AgentTableError> {
        let id = EntryId(
            u32::try_from(self.entries.len()).map_err(|_| AgentTableError::TooManyEntries)?,
        );
        self.entries.push(entry);
        self.by_name.entry(name).or_default().push(id);
        Ok(())
    }

    /// What `name` resolves to.
    pub fn lookup<'a>(&'a self, strings: &Interner, name: &str) -> Lookup<'a> {
        if let Some(ids) = strings.lookup(name).and_then(|sym| self.by_name.get(&sym)) {
            return Lookup::Found(ids);
        }
        match self.unmapped.get(name) {
            Some(vnode) => Lookup::Unmapped { vnode },
            None => Lookup::Unknown,
        }
    }

    /// One entry.
    pub fn entry(&self, id: EntryId) -> Option<&AgentEntry> {
        self.entries.get(id.0 as usize)
    }

    /// Number of agents loaded (rows with a usable address).
    pub fn agent_count(&self) -> usize {
        self.agent_count
    }

    /// Number of distinct event groups.
    pub fn group_count(&self) -> usize {
        self.group_count
    }

    /// Number of agents skipped because their node is not mapped.
    pub fn unmapped_count(&self) -> usize {
        self.unmapped.len()
    }

    /// Every entry with the name it is listed under, for the debug dump.
    pub fn iter(&self) -> impl Iterator<Item = (Sym, &AgentEntry)> {
        self.by_name.iter().flat_map(move |(name, ids)| {
            ids.iter()
                .filter_map(move |id| self.entry(*id).map(|entry| (*name, entry)))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent(vname: &str, vnode: &str, objtype: &str, ip: Option<&str>) -> AgentRow {
        AgentRow {
            vname: vname.into(),
            vnode: vnode.into(),
            objtype: objtype.into(),
            node_id: ip.map(|_| format!("pc-{vnode}")),
            ipaddr: ip.map(str::to_owned),
        }
    }

    fn group(group_name: &str, agent_name: &str) -> GroupRow {
        GroupRow {
            group_name: group_name.into(),
            agent_name: agent_name.into(),
        }
    }

    fn resolve<'a>(table: &'a AgentTable, strings: &Interner, name: &str) -> Vec<&'a AgentEntry> {
        match table.lookup(strings, name) {
            Lookup::Found(ids) => ids.iter().filter_map(|id| table.entry(*id)).collect(),
            other => panic!("{name}: {other:?}"),
        }
    }

    #[test]
    fn agents_get_their_control_ip_or_broadcast() {
        let mut strings = Interner::new();
        let rows = [
            agent("prog0", "client", "PROGRAM", Some("127.0.1.1")),
            agent("link0", "*", "LINK", None),
            agent("ns", "*", "SIMULATOR", None),
        ];
        let table = AgentTable::build(&rows, &[], &mut strings).unwrap();
        assert_eq!(table.agent_count(), 3);
        let prog = resolve(&table, &strings, "prog0");
        assert_eq!(strings.resolve(prog[0].host), "127.0.1.1");
        assert_eq!(strings.resolve(prog[0].objtype), "PROGRAM");
        assert!(!prog[0].is_simulator);
        let link = resolve(&table, &strings, "link0");
        assert_eq!(strings.resolve(link[0].host), "*");
        assert!(resolve(&table, &strings, "ns")[0].is_simulator);
        assert_eq!(table.lookup(&strings, "nobody"), Lookup::Unknown);
    }

    #[test]
    fn groups_fan_out_to_every_member_under_the_member_name() {
        let mut strings = Interner::new();
        let rows = [
            agent("a", "n1", "PROGRAM", Some("127.0.1.1")),
            agent("b", "n2", "PROGRAM", Some("127.0.1.2")),
        ];
        let groups = [group("apps", "a"), group("apps", "b")];
        let table = AgentTable::build(&rows, &groups, &mut strings).unwrap();
        assert_eq!(table.group_count(), 1);
        let members = resolve(&table, &strings, "apps");
        let names: Vec<&str> = members.iter().map(|e| strings.resolve(e.objname)).collect();
        assert_eq!(names, ["a", "b"]);
        let hosts: Vec<&str> = members.iter().map(|e| strings.resolve(e.host)).collect();
        assert_eq!(hosts, ["127.0.1.1", "127.0.1.2"]);
        assert!(members.iter().all(|e| e.group.is_some()));
        // The members themselves still resolve to one entry each.
        assert_eq!(resolve(&table, &strings, "a").len(), 1);
    }

    #[test]
    fn unmapped_agents_are_skipped_but_remembered() {
        let mut strings = Interner::new();
        let rows = [agent("prog0", "client", "PROGRAM", None)];
        let table = AgentTable::build(&rows, &[], &mut strings).unwrap();
        assert_eq!(table.agent_count(), 0);
        assert_eq!(table.unmapped_count(), 1);
        assert_eq!(
            table.lookup(&strings, "prog0"),
            Lookup::Unmapped { vnode: "client" }
        );
        let err = AgentTable::build(&rows, &[group("g", "prog0")], &mut Interner::new())
            .unwrap_err()
            .to_string();
        assert!(err.contains("no physical node"), "{err}");
    }

    #[test]
    fn a_group_member_that_is_no_agent_is_an_error_naming_it() {
        let err = AgentTable::build(&[], &[group("g", "ghost")], &mut Interner::new())
            .unwrap_err()
            .to_string();
        assert!(err.contains("`ghost`") && err.contains("`g`"), "{err}");
    }
}
