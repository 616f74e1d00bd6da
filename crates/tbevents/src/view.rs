//! The demo's live view: one line per fired event, and the summary.
//!
//! Every event the scheduler fires carries its due time (`time_sec` /
//! `time_usec`), so the view can show, for each event, the time since time
//! zero and its lateness (when it arrived here minus when it was due:
//! scheduler, router and network together).
//!
//! The wire does not say whether an event was static or dynamic. The view
//! knows the static schedule (resolved with the scheduler's own code, so
//! group fan-out matches exactly): an arriving event that matches an
//! outstanding static entry (same offset, object and event type) is
//! static, anything else is dynamic, i.e. sent with `tevc`.

use std::collections::HashMap;

use elvin_proto::Attributes;
use hdrhistogram::Histogram;
use tbevents_sched::agents::AgentTable;
use tbevents_sched::intern::Interner;
use tbevents_sched::schedule::{Action, Plan};
use tbevents_sched::time::{MICROS_PER_SEC, from_sec_usec};
use tbevents_store::{AgentRow, EventRow, GroupRow};

/// The static events the view expects, by (offset µs, object, event type).
#[derive(Debug, Default)]
pub(crate) struct StaticIndex {
    expected: HashMap<(i64, String, String), u32>,
    /// Number of static notifications expected (SIMULATOR events excluded:
    /// they are not sent).
    pub total: usize,
    /// Offset of the last static event, µs.
    pub last_offset: i64,
}

impl StaticIndex {
    /// Resolves the rows as the scheduler will.
    pub(crate) fn build(
        agents: &[AgentRow],
        groups: &[GroupRow],
        events: &[EventRow],
    ) -> anyhow::Result<StaticIndex> {
        let mut strings = Interner::new();
        let table = AgentTable::build(agents, groups, &mut strings)?;
        let plan = Plan::build(events, &table, &mut strings)?;
        let mut index = StaticIndex {
            last_offset: plan.last_offset,
            ..StaticIndex::default()
        };
        for (offset, action) in plan.records() {
            if let Action::Static {
                entry, eventtype, ..
            } = action
                && let Some(entry) = table.entry(*entry)
            {
                let key = (
                    offset,
                    strings.resolve(entry.objname).to_owned(),
                    strings.resolve(*eventtype).to_owned(),
                );
                *index.expected.entry(key).or_default() += 1;
                index.total += 1;
            }
        }
        Ok(index)
    }

    /// Marks one matching static event as seen; false if none is
    /// outstanding (so the event is dynamic).
    pub(crate) fn claim(&mut self, offset: i64, objname: &str, eventtype: &str) -> bool {
        let key = (offset, objname.to_owned(), eventtype.to_owned());
        match self.expected.get_mut(&key) {
            Some(count) if *count > 0 => {
                *count -= 1;
                true
            }
            _ => false,
        }
    }
}

/// The view's state.
#[derive(Debug)]
pub(crate) struct View {
    index: StaticIndex,
    time_zero: Option<i64>,
    static_lateness: Histogram<u64>,
    static_seen: usize,
    dynamic_seen: usize,
    dynamic_lateness: Vec<i64>,
}

/// One printed line's facts (kept for tests).
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Seen {
    /// Static (from the NS file) or dynamic (tevc).
    pub dynamic: bool,
    /// The formatted line.
    pub line: String,
}

impl View {
    /// A view expecting `index`'s static events.
    pub(crate) fn new(index: StaticIndex) -> anyhow::Result<View> {
        Ok(View {
            index,
            time_zero: None,
            static_lateness: Histogram::new_with_bounds(1, 3_600_000_000, 3)?,
            static_seen: 0,
            dynamic_seen: 0,
            dynamic_lateness: Vec::new(),
        })
    }

    /// Time zero, once TIME START was seen.
    pub(crate) fn time_zero(&self) -> Option<i64> {
        self.time_zero
    }

    /// True once every expected static event has been seen.
    pub(crate) fn all_static_seen(&self) -> bool {
        self.static_seen >= self.index.total
    }

    /// Takes one fired event received at `received` (µs since the epoch)
    /// and returns the line to print.
    pub(crate) fn observe(&mut self, event: &Attributes, received: i64) -> Seen {
        let text = |name: &str| event.get_str(name).unwrap_or("").to_owned();
        let (objtype, objname, eventtype, args) = (
            text("OBJTYPE"),
            text("OBJNAME"),
            text("EVENTTYPE"),
            text("ARGS"),
        );
        let due = match (event.get_i32("time_sec"), event.get_i32("time_usec")) {
            (Some(sec), Some(usec)) => Some(from_sec_usec(sec, usec)),
            _ => None,
        };
        if objtype == "TIME" && eventtype == "START" && self.time_zero.is_none() {
            self.time_zero = due.or(Some(received));
        }
        let lateness = due.map(|d| received - d);
        let offset = match (due, self.time_zero) {
            (Some(due), Some(zero)) => Some(due - zero),
            _ => None,
        };
        let is_time_start = objtype == "TIME" && eventtype == "START";
        let dynamic = !is_time_start
            && !offset.is_some_and(|offset| self.index.claim(offset, &objname, &eventtype));
        match (dynamic, lateness) {
            (false, Some(late)) if !is_time_start => {
                self.static_seen += 1;
                self.static_lateness
                    .saturating_record(u64::try_from(late).unwrap_or(0).max(1));
            }
            (true, late) => {
                self.dynamic_seen += 1;
                if let Some(late) = late {
                    self.dynamic_lateness.push(late);
                }
            }
            _ => {}
        }
        let when = offset.map_or_else(|| "      ?".to_owned(), format_offset);
        let kind = if is_time_start {
            "time"
        } else if dynamic {
            "DYNAMIC"
        } else {
            "static"
        };
        let late = lateness.map_or_else(|| "-".to_owned(), format_lateness);
        let line = format!(
            "{when:>10}  {kind:<7}  {objname:<12} {objtype:<9} {eventtype:<8} {args:<34} late {late}"
        );
        Seen {
            dynamic,
            line: line.trim_end().to_owned(),
        }
    }

    /// The closing summary.
    pub(crate) fn summary(&self) -> String {
        let h = &self.static_lateness;
        let mut text = format!(
            "static events seen: {} of {}",
            self.static_seen, self.index.total
        );
        if !h.is_empty() {
            text.push_str(&format!(
                "; lateness (arrival here minus due time) p50 {}, p99 {}, max {}",
                format_lateness(i64::try_from(h.value_at_quantile(0.5)).unwrap_or(i64::MAX)),
                format_lateness(i64::try_from(h.value_at_quantile(0.99)).unwrap_or(i64::MAX)),
                format_lateness(i64::try_from(h.max()).unwrap_or(i64::MAX)),
            ));
        }
        text.push_str(&format!("\ndynamic events seen: {}", self.dynamic_seen));
        if !self.dynamic_lateness.is_empty() {
            let mut sorted = self.dynamic_lateness.clone();
            sorted.sort_unstable();
            let median = sorted.get(sorted.len() / 2).copied().unwrap_or(0);
            text.push_str(&format!(
                " (median {} after their requested time)",
                format_lateness(median)
            ));
        }
        text
    }
}

/// `+12.345 s` style offset.
pub(crate) fn format_offset(offset: i64) -> String {
    let sign = if offset < 0 { "-" } else { "+" };
    let abs = offset.unsigned_abs();
    let per = MICROS_PER_SEC.unsigned_abs();
    format!("{sign}{}.{:03} s", abs / per, (abs % per) / 1000)
}

/// `0.183 ms` style lateness.
pub(crate) fn format_lateness(micros: i64) -> String {
    format!("{:.3} ms", micros as f64 / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows() -> (Vec<AgentRow>, Vec<GroupRow>, Vec<EventRow>) {
        let agents = vec![
            AgentRow {
                vname: "a".into(),
                vnode: "n1".into(),
                objtype: "PROGRAM".into(),
                node_id: Some("pc1".into()),
                ipaddr: Some("127.0.4.1".into()),
            },
            AgentRow {
                vname: "b".into(),
                vnode: "n2".into(),
                objtype: "PROGRAM".into(),
                node_id: Some("pc2".into()),
                ipaddr: Some("127.0.4.2".into()),
            },
        ];
        let groups = vec![
            GroupRow {
                group_name: "g".into(),
                agent_name: "a".into(),
            },
            GroupRow {
                group_name: "g".into(),
                agent_name: "b".into(),
            },
        ];
        let events = vec![EventRow {
            idx: 1,
            time: 1.5,
            vnode: String::new(),
            vname: "g".into(),
            objtype: "PROGRAM".into(),
            eventtype: "START".into(),
            arguments: String::new(),
        }];
        (agents, groups, events)
    }

    fn event(objname: &str, objtype: &str, eventtype: &str, due: i64) -> Attributes {
        let mut a = Attributes::new();
        a.insert("OBJNAME", objname);
        a.insert("OBJTYPE", objtype);
        a.insert("EVENTTYPE", eventtype);
        a.insert("time_sec", i32::try_from(due / 1_000_000).unwrap());
        a.insert("time_usec", i32::try_from(due % 1_000_000).unwrap());
        a
    }

    #[test]
    fn static_and_dynamic_events_are_told_apart() {
        let (agents, groups, events) = rows();
        let index = StaticIndex::build(&agents, &groups, &events).unwrap();
        assert_eq!(index.total, 2, "the group event fans out");
        let mut view = View::new(index).unwrap();
        let zero = 1_700_000_000_000_000;
        let start = view.observe(&event("*", "TIME", "START", zero), zero + 100);
        assert!(!start.dynamic);
        assert_eq!(view.time_zero(), Some(zero));
        let a = view.observe(
            &event("a", "PROGRAM", "START", zero + 1_500_000),
            zero + 1_500_250,
        );
        assert!(!a.dynamic);
        assert!(
            a.line.contains("+1.500 s") && a.line.contains("late 0.250 ms"),
            "{}",
            a.line
        );
        // A second START for `a` at the same time is not in the schedule.
        let extra = view.observe(
            &event("a", "PROGRAM", "START", zero + 1_500_000),
            zero + 1_500_300,
        );
        assert!(extra.dynamic);
        assert!(extra.line.contains("DYNAMIC"));
        assert!(!view.all_static_seen());
        let b = view.observe(
            &event("b", "PROGRAM", "START", zero + 1_500_000),
            zero + 1_500_400,
        );
        assert!(!b.dynamic);
        assert!(view.all_static_seen());
        let summary = view.summary();
        assert!(summary.contains("static events seen: 2 of 2"), "{summary}");
        assert!(summary.contains("dynamic events seen: 1"), "{summary}");
    }
}
