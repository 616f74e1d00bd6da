//! The methods the server offers, in Emulab's envelope.
//!
//! Every call is `method(version, {arguments})` and every answer is a struct
//! `{code, value, output}` with one of Emulab's response codes
//! ([`Code`]); `docs/rpc.md` lists them. A call that fails never carries a
//! partial value: refusals are decided before any row is read for the
//! answer. Transport-level problems (an undecodable request, an unknown
//! method) come back as XML-RPC faults with the same codes.
//!
//! The store is synchronous (see `tbevents_store::store`), so the service
//! is too; the transports call it from `spawn_blocking`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use tbevents_store::{ExperimentId, ExperimentState, ExperimentStore, StoreError};

use crate::codec::{MethodCall, MethodResponse, Value};

/// The protocol version Emulab clients send (a double).
pub const PROTOCOL_VERSION: f64 = 0.1;

/// Emulab's response codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Code {
    /// 0: the call succeeded.
    Success = 0,
    /// 1: a missing or malformed argument.
    BadArgs = 1,
    /// 2: the call failed (for example no such experiment).
    Error = 2,
    /// 3: the caller may not do this.
    Forbidden = 3,
    /// 4: the client speaks another protocol version.
    BadVersion = 4,
    /// 5: the server failed.
    ServerError = 5,
    /// 6: the request or answer is too big.
    TooBig = 6,
    /// 7: the server refuses service (for example too many connections).
    Refused = 7,
    /// 8: a wait timed out.
    TimedOut = 8,
}

impl Code {
    /// The code for a number, if it is one of Emulab's.
    pub fn from_i64(code: i64) -> Option<Code> {
        Some(match code {
            0 => Code::Success,
            1 => Code::BadArgs,
            2 => Code::Error,
            3 => Code::Forbidden,
            4 => Code::BadVersion,
            5 => Code::ServerError,
            6 => Code::TooBig,
            7 => Code::Refused,
            8 => Code::TimedOut,
            _ => return None,
        })
    }
}

/// An Emulab reply: `{code, value, output}`.
fn reply(code: Code, value: Value, output: impl Into<String>) -> MethodResponse {
    MethodResponse::Success(Value::Struct(vec![
        ("code".into(), Value::Int(code as i64)),
        ("value".into(), value),
        ("output".into(), Value::String(output.into())),
    ]))
}

/// A refusal: code, no value, a message.
fn refuse(code: Code, output: impl Into<String>) -> MethodResponse {
    reply(code, Value::Int(0), output)
}

/// A fault for a call that could not be dispatched at all.
pub fn fault(code: Code, message: impl Into<String>) -> MethodResponse {
    MethodResponse::Fault {
        code: code as i64,
        message: message.into(),
    }
}

/// Longest `waitforactive` wait a caller may ask for, and the default.
pub const MAX_WAIT: Duration = Duration::from_secs(24 * 3600);

/// Wakes `waitforactive` callers when a state changes through this server,
/// and bounds how long they sleep between store re-checks otherwise.
#[derive(Default)]
pub struct StateBell {
    generation: Mutex<u64>,
    rung: Condvar,
}

impl StateBell {
    /// Wakes every waiter.
    pub fn ring(&self) {
        *self.generation.lock() += 1;
        self.rung.notify_all();
    }

    /// Sleeps until rung or `timeout` passes.
    fn wait(&self, timeout: Duration) {
        let mut generation = self.generation.lock();
        let seen = *generation;
        let deadline = Instant::now() + timeout;
        while *generation == seen {
            if self.rung.wait_until(&mut generation, deadline).timed_out() {
                return;
            }
        }
    }
}

/// The methods, over one store.
pub struct Service {
    store: Arc<dyn ExperimentStore>,
    bell: Arc<StateBell>,
    /// First and longest pause between store re-checks in `waitforactive`.
    recheck: (Duration, Duration),
}

impl Service {
    /// A service over `store`.
    pub fn new(store: Arc<dyn ExperimentStore>) -> Service {
        Service {
            store,
            bell: Arc::new(StateBell::default()),
            recheck: (Duration::from_millis(50), Duration::from_secs(2)),
        }
    }

    /// The bell `waitforactive` listens to.
    pub fn bell(&self) -> Arc<StateBell> {
        Arc::clone(&self.bell)
    }

    /// Answers one call from `user` (the authenticated Emulab uid).
    pub fn call(&self, user: &str, call: &MethodCall) -> MethodResponse {
        let method = call.method.as_str();
        let known = matches!(
            method,
            "experiment.event_agentlist"
                | "experiment.event_grouplist"
                | "experiment.event_eventlist"
                | "experiment.waitforactive"
                | "experiment.state"
                | "experiment.eventkey"
                | "experiment.statewait"
        );
        if !known {
            return fault(Code::BadArgs, format!("unknown method `{method}`"));
        }
        let [version, args] = call.params.as_slice() else {
            return fault(
                Code::BadArgs,
                "a call takes two parameters: the protocol version and an argument struct",
            );
        };
        let version_ok = match version {
            Value::Double(v) => (*v - PROTOCOL_VERSION).abs() < 1e-9,
            _ => false,
        };
        if !version_ok {
            return refuse(Code::BadVersion, "Client version mismatch!");
        }
        if !matches!(args, Value::Struct(_)) {
            return refuse(Code::BadArgs, "the second parameter must be a struct");
        }
        let id = match experiment_arg(args) {
            Ok(id) => id,
            Err(response) => return response,
        };
        // Permission first: nothing about the experiment is read for the
        // answer until the caller is known to be a member of its group.
        let experiment = match self.store.experiment(&id) {
            Ok(e) => e,
            Err(StoreError::ExperimentNotFound(_)) => {
                return refuse(Code::Error, format!("No such experiment: {id}"));
            }
            Err(e) => return server_error(&e),
        };
        match self.store.memberships(user) {
            Ok(list) => {
                let member = list.iter().any(|m| {
                    m.pid == experiment.id.pid
                        && m.gid == experiment.gid
                        && m.trust != tbevents_store::Trust::None
                });
                if !member {
                    return refuse(
                        Code::Forbidden,
                        format!("You do not have permission to access experiment: {id}"),
                    );
                }
            }
            Err(StoreError::UserNotFound(_)) => {
                return refuse(
                    Code::Forbidden,
                    format!("You do not have permission to access experiment: {id}"),
                );
            }
            Err(e) => return server_error(&e),
        }
        let result = match method {
            "experiment.event_agentlist" => self.agentlist(&id),
            "experiment.event_grouplist" => self.grouplist(&id),
            "experiment.event_eventlist" => self.eventlist(&id),
            "experiment.state" => self
                .store
                .state(&id)
                .map(|s| reply(Code::Success, Value::string(s.to_string()), s.to_string())),
            "experiment.eventkey" => Ok(match experiment.eventkey {
                Some(key) => reply(Code::Success, Value::String(key), ""),
                None => refuse(Code::Error, format!("Experiment {id} has no event key")),
            }),
            _ => return self.waitforactive(&id, args),
        };
        result.unwrap_or_else(|e| server_error(&e))
    }

    fn agentlist(&self, id: &ExperimentId) -> Result<MethodResponse, StoreError> {
        let rows = self.store.agents(id)?;
        let value = rows
            .into_iter()
            .map(|a| {
                Value::Array(vec![
                    Value::String(a.vname),
                    Value::String(a.vnode),
                    Value::String(a.node_id.unwrap_or_default()),
                    Value::String(a.ipaddr.unwrap_or_default()),
                    Value::String(a.objtype),
                ])
            })
            .collect();
        Ok(reply(Code::Success, Value::Array(value), ""))
    }

    fn grouplist(&self, id: &ExperimentId) -> Result<MethodResponse, StoreError> {
        let rows = self.store.groups(id)?;
        let value = rows
            .into_iter()
            .map(|g| {
                Value::Array(vec![
                    Value::String(g.group_name),
                    Value::String(g.agent_name),
                ])
            })
            .collect();
        Ok(reply(Code::Success, Value::Array(value), ""))
    }

    fn eventlist(&self, id: &ExperimentId) -> Result<MethodResponse, StoreError> {
        let rows = self.store.events(id)?;
        let value = rows
            .into_iter()
            .map(|e| {
                // Emulab's six columns, plus vnode (HEAD carries more
                // columns too; old clients read only the first six).
                Value::Array(vec![
                    Value::String(e.idx.to_string()),
                    Value::String(format!("{:?}", e.time)),
                    Value::String(e.vname),
                    Value::String(e.objtype),
                    Value::String(e.eventtype),
                    Value::String(e.arguments),
                    Value::String(e.vnode),
                ])
            })
            .collect();
        Ok(reply(Code::Success, Value::Array(value), ""))
    }

    /// Blocks until the experiment is `active` or the optional `timeout`
    /// (seconds) passes. Wakes at once when a state changes through this
    /// server's bell and otherwise re-reads the store with a backoff from
    /// 50 ms to 2 s, so a change made by another program is seen within
    /// two seconds at a cost of one cheap query per pause.
    fn waitforactive(&self, id: &ExperimentId, args: &Value) -> MethodResponse {
        let timeout = match args.member("timeout") {
            None => MAX_WAIT,
            Some(Value::Int(s)) if *s >= 0 => Duration::from_secs(*s as u64).min(MAX_WAIT),
            Some(Value::String(s)) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
                Duration::from_secs(s.parse::<u64>().unwrap_or(u64::MAX)).min(MAX_WAIT)
            }
            Some(_) => return refuse(Code::BadArgs, "Improperly formed timeout!"),
        };
        let deadline = Instant::now() + timeout;
        let mut pause = self.recheck.0;
        loop {
            match self.store.state(id) {
                Ok(ExperimentState::Active) => {
                    return reply(Code::Success, Value::string("active"), "active");
                }
                Ok(_) => {}
                Err(e) => return server_error(&e),
            }
            let now = Instant::now();
            if now >= deadline {
                return refuse(Code::TimedOut, "Timed out waiting for states: [active]");
            }
            self.bell.wait(pause.min(deadline - now));
            pause = (pause * 2).min(self.recheck.1);
        }
    }
}

fn server_error(e: &StoreError) -> MethodResponse {
    tracing::warn!("store error: {e}");
    refuse(Code::ServerError, "the server could not read its database")
}

/// `proj`/`pid` and `exp`/`eid` from the argument struct, checked.
fn experiment_arg(args: &Value) -> Result<ExperimentId, MethodResponse> {
    let get = |names: [&str; 2]| -> Result<String, MethodResponse> {
        let value = names
            .iter()
            .find_map(|n| args.member(n))
            .ok_or_else(|| refuse(Code::BadArgs, format!("Must supply '{}'", names[0])))?;
        let text = value
            .as_str()
            .ok_or_else(|| refuse(Code::BadArgs, "Improperly formed proj/exp!"))?;
        let ok = !text.is_empty()
            && text.len() <= 48
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if ok {
            Ok(text.to_owned())
        } else {
            Err(refuse(Code::BadArgs, "Improperly formed proj/exp!"))
        }
    };
    Ok(ExperimentId::new(
        get(["proj", "pid"])?,
        get(["exp", "eid"])?,
    ))
}
