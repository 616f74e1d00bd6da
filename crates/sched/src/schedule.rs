//! The armed schedule: compact records ordered by (due time, sequence).
//!
//! # Why records and not notifications
//!
//! An experiment can have 100,000 static events. Keeping each as a fully
//! built, signed notification (a dozen owned strings plus a MAC) would cost
//! hundreds of bytes apiece; instead a static event is a [`Scheduled`]
//! record of a few integers: its due time, a sequence number, the agent
//! table entry it targets and interned event type and ARGS. The firing
//! thread builds and signs the notification at the moment it fires
//! (`firing`), which costs a few microseconds.
//!
//! # Order
//!
//! Records are ordered by due time, then by sequence number. Static events
//! get sequence numbers in the store's order (time, then load order), so
//! events due at the same instant fire in the order the NS file listed
//! them; the TIME START broadcast is numbered before them and therefore
//! fires first at time zero; dynamic events are numbered as they arrive.
//! The original's heap compared times only and did not keep ties in any
//! order (docs/emulab-model.md §6.7).

use std::cmp::Ordering;

use elvin_proto::Attributes;
use tbevents_store::EventRow;

use crate::agents::{AgentTable, AgentTableError, EntryId, Lookup, SIMULATOR_OBJTYPE};
use crate::intern::{Interner, InternerFull, Sym};
use crate::time::offset_micros;

/// Everything the firing thread needs to turn a record into a
/// notification: the experiment, the interned strings and the agent table.
/// Built once at load time and shared read-only afterwards.
#[derive(Debug)]
pub struct Catalog {
    /// `pid/eid`, the EXPT of every fired event.
    pub expt: String,
    /// Strings the records and agent entries refer to.
    pub strings: Interner,
    /// The agent and group table.
    pub agents: AgentTable,
}

impl Catalog {
    /// A catalog with an empty agent table (before loading, and in tests).
    pub fn empty(expt: impl Into<String>) -> Catalog {
        Catalog {
            expt: expt.into(),
            strings: Interner::new(),
            agents: AgentTable::default(),
        }
    }
}

/// What happens when a record comes due.
#[derive(Debug)]
pub enum Action {
    /// A static event for one agent entry.
    Static {
        /// The target entry (for a group, one member).
        entry: EntryId,
        /// OBJTYPE to send: the eventlist row's type for a direct target
        /// (as the original), the member's type for a group member.
        objtype: Sym,
        /// EVENTTYPE.
        eventtype: Sym,
        /// ARGS (possibly empty; always sent, as the original did).
        args: Sym,
    },
    /// The `TIME START` broadcast at time zero.
    TimeStart,
    /// A dynamic event, already rewritten for its agent (SCHEDULER 0,
    /// HOST, OBJTYPE, OBJNAME), to be re-signed when it fires.
    Dynamic(Box<Attributes>),
    /// A SIMULATOR event, which the scheduler runs itself and never sends.
    Simulator {
        /// The EVENTTYPE (`SWAPOUT`, `HALT`, ...).
        eventtype: Box<str>,
        /// Where it came from, for the log.
        origin: SimulatorOrigin,
    },
}

/// Where a SIMULATOR event came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SimulatorOrigin {
    /// The experiment's static event list.
    Static,
    /// A dynamic request (`tevc`).
    Dynamic,
}

/// One armed record.
#[derive(Debug)]
pub struct Scheduled {
    /// Due time, microseconds since the epoch.
    pub due: i64,
    /// Tie-breaker: lower fires first among equal due times.
    pub seq: u64,
    /// What to do.
    pub action: Action,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        self.due == other.due && self.seq == other.seq
    }
}
impl Eq for Scheduled {}

impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Scheduled {
    /// Reversed (earliest is greatest) so a `BinaryHeap` pops the earliest.
    fn cmp(&self, other: &Self) -> Ordering {
        other
            .due
            .cmp(&self.due)
            .then_with(|| other.seq.cmp(&self.seq))
    }
}

/// Why the static event list could not be loaded. Each variant names the
/// event (its `idx` and time) so the operator can find the NS line.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The event names an object that is neither an agent nor a group.
    #[error(
        "static event {idx} at {time} s names object `{name}`, which is not an agent or event \
         group of this experiment: correct the NS file and re-create the experiment"
    )]
    UnknownObject {
        /// `eventlist.idx`.
        idx: u64,
        /// Offset in seconds.
        time: f64,
        /// The unmappable OBJNAME.
        name: String,
    },
    /// The event targets an agent on a node without a physical node.
    #[error(
        "static event {idx} at {time} s is for `{name}` on virtual node `{vnode}`, which has no \
         physical node: swap the experiment in with a mapping for `{vnode}`"
    )]
    Unmapped {
        /// `eventlist.idx`.
        idx: u64,
        /// Offset in seconds.
        time: f64,
        /// The OBJNAME.
        name: String,
        /// Its unmapped virtual node.
        vnode: String,
    },
    /// The event's time is negative, not a number, or absurdly far away.
    #[error(
        "static event {idx} has time {time}, which is not a number of seconds from 0 to ten \
         years: correct the NS file and re-create the experiment"
    )]
    BadTime {
        /// `eventlist.idx`.
        idx: u64,
        /// The bad time.
        time: f64,
    },
    /// The agent table could not be built.
    #[error(transparent)]
    Agents(#[from] AgentTableError),
    /// Too many distinct strings.
    #[error(transparent)]
    Full(#[from] InternerFull),
}

/// The static events of an experiment, resolved against its agent table
/// but not yet given absolute times.
#[derive(Debug, Default)]
pub struct Plan {
    records: Vec<(i64, Action)>,
    /// Rows read from the event list.
    pub rows: usize,
    /// Group events expanded (each became one record per member).
    pub group_rows: usize,
    /// SIMULATOR events among the records.
    pub simulator_events: usize,
    /// Offset of the last event, microseconds after time zero.
    pub last_offset: i64,
}

impl Plan {
    /// Resolves every event row against the agent table. Rows must come in
    /// the store's order (time, then load order). A row whose object is not
    /// in the table fails the whole load, as in the original.
    pub fn build(
        rows: &[EventRow],
        agents: &AgentTable,
        strings: &mut Interner,
    ) -> Result<Plan, LoadError> {
        let mut plan = Plan {
            records: Vec::with_capacity(rows.len()),
            rows: rows.len(),
            ..Plan::default()
        };
        for row in rows {
            let offset = offset_micros(row.time).ok_or(LoadError::BadTime {
                idx: row.idx,
                time: row.time,
            })?;
            let ids = match agents.lookup(strings, &row.vname) {
                Lookup::Found(ids) => ids,
                Lookup::Unmapped { vnode } => {
                    return Err(LoadError::Unmapped {
                        idx: row.idx,
                        time: row.time,
                        name: row.vname.clone(),
                        vnode: vnode.to_owned(),
                    });
                }
                Lookup::Unknown => {
                    return Err(LoadError::UnknownObject {
                        idx: row.idx,
                        time: row.time,
                        name: row.vname.clone(),
                    });
                }
            };
            let row_objtype = strings.intern(&row.objtype)?;
            let eventtype = strings.intern(&row.eventtype)?;
            let args = strings.intern(&row.arguments)?;
            // A direct target may be listed twice (same agent name on two
            // nodes); both copies get the event. A group name lists its
            // members, each of which gets the event under its own name.
            let mut grouped = false;
            for id in ids {
                let Some(entry) = agents.entry(*id) else {
                    continue;
                };
                grouped |= entry.group.is_some();
                let objtype = if entry.group.is_some() {
                    entry.objtype
                } else {
                    row_objtype
                };
                let simulator = if entry.group.is_some() {
                    entry.is_simulator
                } else {
                    row.objtype == SIMULATOR_OBJTYPE
                };
                let action = if simulator {
                    plan.simulator_events += 1;
                    Action::Simulator {
                        eventtype: row.eventtype.as_str().into(),
                        origin: SimulatorOrigin::Static,
                    }
                } else {
                    Action::Static {
                        entry: *id,
                        objtype,
                        eventtype,
                        args,
                    }
                };
                plan.records.push((offset, action));
            }
            if grouped {
                plan.group_rows += 1;
            }
            plan.last_offset = plan.last_offset.max(offset);
        }
        Ok(plan)
    }

    /// The resolved records in order: offset from time zero in
    /// microseconds, and the action (the demo uses this to tell static
    /// events from dynamic ones).
    pub fn records(&self) -> impl Iterator<Item = (i64, &Action)> {
        self.records
            .iter()
            .map(|(offset, action)| (*offset, action))
    }

    /// Number of records (static sends plus SIMULATOR events).
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// True when there are no static events.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Gives every record its absolute due time `time_zero + offset` and a
    /// sequence number from `next_seq`, preceded by the TIME START record at
    /// `time_zero`. Offsets were range-checked at build time, so the
    /// additions saturate only for a nonsensical time zero.
    pub fn arm(self, time_zero: i64, next_seq: &mut u64) -> Vec<Scheduled> {
        let mut armed = Vec::with_capacity(self.records.len() + 1);
        armed.push(Scheduled {
            due: time_zero,
            seq: take_seq(next_seq),
            action: Action::TimeStart,
        });
        for (offset, action) in self.records {
            armed.push(Scheduled {
                due: time_zero.saturating_add(offset),
                seq: take_seq(next_seq),
                action,
            });
        }
        armed
    }
}

/// Returns the current sequence number and advances it.
pub fn take_seq(next_seq: &mut u64) -> u64 {
    let seq = *next_seq;
    *next_seq = next_seq.wrapping_add(1);
    seq
}

#[cfg(test)]
mod tests {
    use std::collections::BinaryHeap;

    use super::*;

    fn row(idx: u64, time: f64, vname: &str, objtype: &str, eventtype: &str) -> EventRow {
        EventRow {
            idx,
            time,
            vnode: String::new(),
            vname: vname.into(),
            objtype: objtype.into(),
            eventtype: eventtype.into(),
            arguments: format!("N={idx}"),
        }
    }

    fn catalog() -> (AgentTable, Interner) {
        crate::test_fixtures::agent_table()
    }

    #[test]
    fn equal_times_pop_in_load_order_after_time_start() {
        let (agents, mut strings) = catalog();
        let rows = [
            row(1, 0.0, "a", "PROGRAM", "START"),
            row(2, 0.0, "b", "PROGRAM", "START"),
            row(3, 0.0, "a", "PROGRAM", "STOP"),
            row(4, 1.5, "b", "PROGRAM", "STOP"),
        ];
        let plan = Plan::build(&rows, &agents, &mut strings).unwrap();
        assert_eq!(plan.last_offset, 1_500_000);
        let mut seq = 0;
        let mut heap: BinaryHeap<Scheduled> = plan.arm(1_000_000, &mut seq).into_iter().collect();
        let first = heap.pop().unwrap();
        assert!(matches!(first.action, Action::TimeStart));
        assert_eq!(first.due, 1_000_000);
        let mut order = Vec::new();
        while let Some(record) = heap.pop() {
            if let Action::Static { args, .. } = record.action {
                order.push((record.due, strings.resolve(args).to_owned()));
            }
        }
        assert_eq!(
            order,
            [
                (1_000_000, "N=1".to_owned()),
                (1_000_000, "N=2".to_owned()),
                (1_000_000, "N=3".to_owned()),
                (2_500_000, "N=4".to_owned()),
            ]
        );
    }

    #[test]
    fn a_static_group_event_reaches_every_member() {
        let (agents, mut strings) = catalog();
        let plan = Plan::build(
            &[row(1, 2.0, "g", "PROGRAM", "START")],
            &agents,
            &mut strings,
        )
        .unwrap();
        assert_eq!(plan.len(), 2);
        assert_eq!(plan.group_rows, 1);
        let names: Vec<String> = plan
            .records
            .iter()
            .map(|(_, action)| match action {
                Action::Static { entry, .. } => strings
                    .resolve(agents.entry(*entry).unwrap().objname)
                    .to_owned(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(names, ["a", "b"]);
    }

    #[test]
    fn simulator_events_are_kept_for_the_scheduler() {
        let (agents, mut strings) = catalog();
        let plan = Plan::build(
            &[row(1, 5.0, "ns", "SIMULATOR", "SWAPOUT")],
            &agents,
            &mut strings,
        )
        .unwrap();
        assert_eq!(plan.simulator_events, 1);
        assert!(matches!(
            &plan.records[0].1,
            Action::Simulator { eventtype, origin: SimulatorOrigin::Static } if &**eventtype == "SWAPOUT"
        ));
    }

    #[test]
    fn an_unknown_object_fails_the_load_naming_it() {
        let (agents, mut strings) = catalog();
        let err = Plan::build(
            &[row(7, 3.0, "ghost", "LINK", "DOWN")],
            &agents,
            &mut strings,
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, LoadError::UnknownObject { idx: 7, .. }));
        assert!(text.contains("`ghost`") && text.contains("3 s"), "{text}");
        let err = Plan::build(
            &[row(8, -1.0, "a", "PROGRAM", "START")],
            &agents,
            &mut strings,
        )
        .unwrap_err();
        assert!(matches!(err, LoadError::BadTime { idx: 8, .. }));
    }

    #[test]
    fn records_stay_small() {
        // The memory budget (100,000 events well under 100 MB) rests on this.
        assert!(std::mem::size_of::<Scheduled>() <= 48);
    }
}
