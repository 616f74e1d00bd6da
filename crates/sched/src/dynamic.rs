//! Dynamic events: requests (`SCHEDULER == 1`, normally from `tevc`) turned
//! into deliverable events (docs/emulab-model.md §6.5).
//!
//! For every agent-table entry named by the request's OBJNAME the request
//! is cloned, SCHEDULER set to 0, HOST and OBJTYPE replaced from the entry,
//! OBJNAME replaced by the member's name when the entry came from a group,
//! the old MAC removed (the outlet re-signs it with the experiment key when
//! it fires), and the copy armed for `time_sec`/`time_usec`, or at once if
//! that time has passed. Every other attribute passes through unchanged.
//! A request without a time or without OBJNAME, or naming no agent, is
//! logged and dropped. Unsigned or forged requests never reach this module:
//! the keyed connection drops them.
//!
//! # Requests that arrive before the agent table is loaded
//!
//! The original subscribed before it loaded its tables and dropped such
//! requests as unmappable (docs/emulab-model.md §6.2). We hold them, in arrival
//! order, and handle them as soon as the table is loaded. The hold queue
//! is bounded ([`DEFAULT_HOLD_LIMIT`] requests): past the bound, new
//! requests are dropped with a warning and counted, so a flood sent while
//! an experiment waits to become active cannot exhaust memory. For the
//! same reason at most [`MAX_PENDING_DYNAMIC`] dynamic events may be armed
//! and waiting to fire at any time; a request that would exceed that is
//! dropped with a warning.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use elvin_proto::Attributes;

use crate::agents::Lookup;
use crate::firing::{FiringHandle, attr};
use crate::schedule::{Action, Catalog, Scheduled, SimulatorOrigin, take_seq};
use crate::stats::Stats;
use crate::time::{format_sec_usec, from_sec_usec, now_micros};

/// How many early requests are held at most.
pub const DEFAULT_HOLD_LIMIT: usize = 10_000;

/// How many dynamic events may be armed and not yet fired. Each holds its
/// notification (well under 1 KiB typically), so this bounds the memory a
/// key holder can make the scheduler use with far-future requests.
pub const MAX_PENDING_DYNAMIC: u64 = 100_000;

/// Why a request was dropped.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum DropReason {
    /// No int32 `time_sec` / `time_usec`.
    #[error("dynamic event has no time_sec/time_usec; dropped")]
    NoTime,
    /// No string OBJNAME.
    #[error("dynamic event has no OBJNAME; dropped")]
    NoObjname,
    /// OBJNAME is not an agent or group.
    #[error("Could not map object to an agent: {0}")]
    UnknownObject(String),
    /// OBJNAME is an agent on an unmapped node.
    #[error("Could not map object to an agent: {name} (virtual node {vnode} has no physical node)")]
    Unmapped {
        /// The OBJNAME.
        name: String,
        /// Its unmapped virtual node.
        vnode: String,
    },
}

/// Rewrites one request into armed records, one per agent entry.
pub fn expand(
    request: &Attributes,
    catalog: &Catalog,
    now: i64,
    next_seq: &mut u64,
) -> Result<Vec<Scheduled>, DropReason> {
    let (Some(sec), Some(usec)) = (
        request.get_i32(attr::TIME_SEC),
        request.get_i32(attr::TIME_USEC),
    ) else {
        return Err(DropReason::NoTime);
    };
    let objname = request
        .get_str(attr::OBJNAME)
        .ok_or(DropReason::NoObjname)?;
    let ids = match catalog.agents.lookup(&catalog.strings, objname) {
        Lookup::Found(ids) => ids,
        Lookup::Unmapped { vnode } => {
            return Err(DropReason::Unmapped {
                name: objname.to_owned(),
                vnode: vnode.to_owned(),
            });
        }
        Lookup::Unknown => return Err(DropReason::UnknownObject(objname.to_owned())),
    };
    // A time in the past fires now; the attributes keep the requested time.
    let due = from_sec_usec(sec, usec).max(now);
    let strings = &catalog.strings;
    let mut records = Vec::with_capacity(ids.len());
    for id in ids {
        let Some(entry) = catalog.agents.entry(*id) else {
            continue;
        };
        let action = if entry.is_simulator {
            Action::Simulator {
                eventtype: request.get_str(attr::EVENTTYPE).unwrap_or("").into(),
                origin: SimulatorOrigin::Dynamic,
            }
        } else {
            let mut copy = request.clone();
            copy.remove(attr::HMAC);
            copy.insert(attr::SCHEDULER, 0i32);
            copy.insert(attr::HOST, strings.resolve(entry.host));
            copy.insert(attr::OBJTYPE, strings.resolve(entry.objtype));
            if entry.group.is_some() {
                copy.insert(attr::OBJNAME, strings.resolve(entry.objname));
            }
            Action::Dynamic(Box::new(copy))
        };
        records.push(Scheduled {
            due,
            seq: take_seq(next_seq),
            action,
        });
    }
    Ok(records)
}

/// Where arriving requests go: held until the agent table is loaded, then
/// expanded and armed.
#[derive(Debug)]
pub struct Intake {
    state: State,
    stats: Arc<Stats>,
    hold_limit: usize,
}

#[derive(Debug)]
enum State {
    Holding(VecDeque<Attributes>),
    Ready {
        catalog: Arc<Catalog>,
        firing: FiringHandle,
        next_seq: u64,
    },
}

impl Intake {
    /// An intake that holds requests until [`Intake::ready`].
    pub fn new(stats: Arc<Stats>, hold_limit: usize) -> Intake {
        Intake {
            state: State::Holding(VecDeque::new()),
            stats,
            hold_limit,
        }
    }

    /// Takes one verified request.
    pub fn accept(&mut self, request: Attributes) {
        Stats::bump(&self.stats.dynamic_received);
        match &mut self.state {
            State::Holding(held) => {
                if held.len() >= self.hold_limit {
                    Stats::bump(&self.stats.dropped_hold_full);
                    tracing::warn!(
                        objname = request.get_str(attr::OBJNAME).unwrap_or(""),
                        "dynamic event dropped: {} requests are already waiting for the agent \
                         table to load (the limit)",
                        self.hold_limit
                    );
                    return;
                }
                tracing::info!(
                    objname = request.get_str(attr::OBJNAME).unwrap_or(""),
                    eventtype = request.get_str(attr::EVENTTYPE).unwrap_or(""),
                    "dynamic event arrived before the experiment's agents were loaded; held \
                     until they are"
                );
                Stats::bump(&self.stats.dynamic_held);
                held.push_back(request);
            }
            State::Ready {
                catalog,
                firing,
                next_seq,
            } => {
                let catalog = Arc::clone(catalog);
                let firing = firing.clone();
                handle(&request, &catalog, &firing, next_seq, &self.stats);
            }
        }
    }

    /// The agent table is loaded: handles the held requests in arrival
    /// order, then handles new ones as they come. Dynamic records are
    /// numbered from `next_seq`, after the static ones.
    pub fn ready(&mut self, catalog: Arc<Catalog>, firing: FiringHandle, mut next_seq: u64) {
        let held = match std::mem::replace(&mut self.state, State::Holding(VecDeque::new())) {
            State::Holding(held) => held,
            State::Ready { .. } => VecDeque::new(),
        };
        if !held.is_empty() {
            tracing::info!(
                "handling {} dynamic event(s) that arrived before the agents were loaded",
                held.len()
            );
        }
        for request in held {
            handle(&request, &catalog, &firing, &mut next_seq, &self.stats);
        }
        self.state = State::Ready {
            catalog,
            firing,
            next_seq,
        };
    }

    /// Number of requests waiting for the agent table.
    pub fn held(&self) -> usize {
        match &self.state {
            State::Holding(held) => held.len(),
            State::Ready { .. } => 0,
        }
    }
}

fn handle(
    request: &Attributes,
    catalog: &Catalog,
    firing: &FiringHandle,
    next_seq: &mut u64,
    stats: &Stats,
) {
    let now = now_micros();
    match expand(request, catalog, now, next_seq) {
        Ok(records) => {
            let count = records
                .iter()
                .filter(|r| matches!(r.action, Action::Dynamic(_)))
                .count();
            let count = u64::try_from(count).unwrap_or(u64::MAX);
            let pending = stats.pending_dynamic.load(Ordering::Relaxed);
            if pending.saturating_add(count) > MAX_PENDING_DYNAMIC {
                Stats::bump(&stats.dropped_too_many_pending);
                tracing::warn!(
                    objname = request.get_str(attr::OBJNAME).unwrap_or(""),
                    "dynamic event dropped: {pending} dynamic events are already waiting to \
                     fire (the limit is {MAX_PENDING_DYNAMIC})"
                );
                return;
            }
            stats.pending_dynamic.fetch_add(count, Ordering::Relaxed);
            Stats::bump(&stats.dynamic_accepted);
            let due = records.first().map_or(now, |r| r.due);
            tracing::info!(
                objname = request.get_str(attr::OBJNAME).unwrap_or(""),
                eventtype = request.get_str(attr::EVENTTYPE).unwrap_or(""),
                args = request.get_str(attr::ARGS).unwrap_or(""),
                agents = records.len(),
                due = %format_sec_usec(due),
                in_us = due.saturating_sub(now),
                "dynamic event accepted"
            );
            if !firing.add(records) {
                tracing::error!("the firing thread has stopped; dynamic event lost");
            }
        }
        Err(reason) => {
            Stats::bump(match reason {
                DropReason::NoTime => &stats.dropped_no_time,
                DropReason::NoObjname => &stats.dropped_no_objname,
                DropReason::UnknownObject(_) | DropReason::Unmapped { .. } => {
                    &stats.dropped_unknown_object
                }
            });
            tracing::warn!("{reason}");
        }
    }
}

#[cfg(test)]
mod tests {

    use super::*;

    fn catalog() -> Catalog {
        let (agents, strings) = crate::test_fixtures::agent_table();
        Catalog {
            expt: "p/e".into(),
            strings,
            agents,
        }
    }

    fn request(objname: &str, sec: i32) -> Attributes {
        let mut a = Attributes::new();
        a.insert("EXPT", "p/e");
        a.insert("HOST", "*");
        a.insert("OBJTYPE", "*");
        a.insert("OBJNAME", objname);
        a.insert("EVENTTYPE", "START");
        a.insert("SCHEDULER", 1i32);
        a.insert("ARGS", "X=1 ");
        a.insert("time_sec", sec);
        a.insert("time_usec", 250_000i32);
        a.insert("__hmac__", vec![1u8; 20]);
        a
    }

    #[test]
    fn a_group_request_is_rewritten_for_each_member() {
        let catalog = catalog();
        let mut seq = 100;
        let records = expand(&request("g", 2_000_000_000), &catalog, 0, &mut seq).unwrap();
        assert_eq!(records.len(), 2);
        assert_eq!(seq, 102);
        let mut seen = Vec::new();
        for record in records {
            assert_eq!(record.due, from_sec_usec(2_000_000_000, 250_000));
            let Action::Dynamic(a) = record.action else {
                panic!("not dynamic")
            };
            assert_eq!(a.get_i32("SCHEDULER"), Some(0));
            assert_eq!(a.get_str("OBJTYPE"), Some("PROGRAM"));
            assert_eq!(a.get_str("ARGS"), Some("X=1 "));
            assert!(!a.contains("__hmac__"), "old MAC must be removed");
            seen.push((
                a.get_str("OBJNAME").unwrap().to_owned(),
                a.get_str("HOST").unwrap().to_owned(),
            ));
        }
        assert_eq!(
            seen,
            [
                ("a".to_owned(), "127.0.1.1".to_owned()),
                ("b".to_owned(), "127.0.1.2".to_owned())
            ]
        );
    }

    #[test]
    fn a_past_time_fires_now_but_keeps_the_requested_time() {
        let catalog = catalog();
        let mut seq = 0;
        let records = expand(&request("a", 10), &catalog, 5_000_000_000, &mut seq).unwrap();
        assert_eq!(records[0].due, 5_000_000_000);
        let Action::Dynamic(a) = &records[0].action else {
            panic!()
        };
        assert_eq!(a.get_i32("time_sec"), Some(10));
        assert_eq!(a.get_str("OBJNAME"), Some("a"));
    }

    #[test]
    fn bad_requests_are_dropped_with_the_reason() {
        let catalog = catalog();
        let mut seq = 0;
        let mut no_time = request("a", 1);
        no_time.remove("time_usec");
        assert_eq!(
            expand(&no_time, &catalog, 0, &mut seq).unwrap_err(),
            DropReason::NoTime
        );
        let mut no_name = request("a", 1);
        no_name.remove("OBJNAME");
        assert_eq!(
            expand(&no_name, &catalog, 0, &mut seq).unwrap_err(),
            DropReason::NoObjname
        );
        let err = expand(&request("ghost", 1), &catalog, 0, &mut seq).unwrap_err();
        assert_eq!(err.to_string(), "Could not map object to an agent: ghost");
        assert_eq!(seq, 0);
    }

    #[test]
    fn simulator_requests_become_simulator_actions() {
        let catalog = catalog();
        let mut seq = 0;
        let mut halt = request("ns", 1);
        halt.insert("EVENTTYPE", "HALT");
        let records = expand(&halt, &catalog, 0, &mut seq).unwrap();
        assert!(matches!(
            &records[0].action,
            Action::Simulator { eventtype, origin: SimulatorOrigin::Dynamic } if &**eventtype == "HALT"
        ));
    }

    #[test]
    fn armed_dynamic_events_are_bounded() {
        let stats = Arc::new(Stats::new());
        stats
            .pending_dynamic
            .store(MAX_PENDING_DYNAMIC - 1, Ordering::Relaxed);
        let (commands, _inbox) = std::sync::mpsc::channel();
        let firing = crate::firing::FiringHandle::for_tests(commands);
        let mut intake = Intake::new(Arc::clone(&stats), 10);
        intake.ready(Arc::new(catalog()), firing, 0);
        // A group request needs two slots; only one is left.
        intake.accept(request("g", 2_000_000_000));
        assert_eq!(stats.summary().dropped, 1);
        intake.accept(request("a", 2_000_000_000));
        assert_eq!(stats.summary().dynamic_accepted, 1);
        assert_eq!(
            stats.pending_dynamic.load(Ordering::Relaxed),
            MAX_PENDING_DYNAMIC
        );
    }

    #[test]
    fn early_requests_are_held_then_handled_and_the_hold_is_bounded() {
        let stats = Arc::new(Stats::new());
        let mut intake = Intake::new(Arc::clone(&stats), 2);
        intake.accept(request("a", 1));
        intake.accept(request("ghost", 1));
        intake.accept(request("b", 1));
        assert_eq!(intake.held(), 2);
        assert_eq!(
            stats.summary().dropped,
            1,
            "the third request is past the bound"
        );

        let recorder = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        struct Keep(std::sync::Arc<std::sync::Mutex<Vec<Attributes>>>);
        impl crate::firing::Outlet for Keep {
            fn send_batch(&mut self, batch: &mut [Attributes]) -> Result<(), String> {
                self.0.lock().unwrap().extend(batch.iter().cloned());
                Ok(())
            }
        }
        let (sim_tx, _sim_rx) = std::sync::mpsc::channel();
        let catalog = Arc::new(catalog());
        let firing = crate::firing::Firing::start(
            Arc::clone(&catalog),
            Box::new(Keep(Arc::clone(&recorder))),
            sim_tx,
            Arc::clone(&stats),
            crate::firing::FiringConfig::default(),
        )
        .unwrap();
        intake.ready(catalog, firing.handle(), 10);
        assert_eq!(intake.held(), 0);
        // The held request is due now: wait for it with a deadline. The
        // unknown one was already dropped by `ready` (counted below).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while recorder.lock().unwrap().is_empty() {
            assert!(
                std::time::Instant::now() < deadline,
                "the held request never fired"
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        firing.stop();
        let sent = recorder.lock().unwrap();
        assert_eq!(sent.len(), 1, "the held request for `a` fired");
        assert_eq!(sent[0].get_str("OBJNAME"), Some("a"));
        let summary = stats.summary();
        assert_eq!(summary.dynamic_held, 2);
        assert_eq!(summary.dynamic_accepted, 1);
        assert_eq!(summary.dropped_unknown_object, 1);
    }
}
