//! The agent runtime: one registered, keyed connection to the node's
//! router, the Emulab-shaped subscription for this node's objects, and the
//! replies agents publish.
//!
//! # What an agent receives
//!
//! [`Agent::connect`] subscribes to
//!
//! ```text
//!  ( EXPT == "pid/eid" ) && ( HOST == "*" || HOST == "<host>" )
//!    && ( OBJTYPE == "<type>" ) && ( OBJNAME == "a" || OBJNAME == "b" ) && SCHEDULER == 0
//! ```
//!
//! the events the scheduler fires at this node's agents: it rewrites HOST
//! to the target node's control IP (or `*` for agents every node may
//! answer) and OBJTYPE from the agent table. Without a host (`--host`
//! absent and the node not mapped) the HOST clause is left out, as
//! Emulab's program agent did. When the names would make the expression
//! longer than a router accepts by default (2048 bytes), the OBJNAME
//! clause is left out and names are filtered here instead.
//!
//! Every event is verified with the experiment's key by the event library
//! before this module sees it: unsigned and forged events are dropped,
//! counted and logged there. [`Inbox::recv`] then checks the routing
//! fields once more (a router is not trusted to filter) and hands the
//! agent an [`Incoming`]: the object, the event type, the raw `ARGS` and
//! the request's `TOKEN`, if any.
//!
//! # What an agent sends
//!
//! - [`Agent::complete`]: a `COMPLETE` for one of its objects, sent as a
//!   request to the experiment's scheduler (`SCHEDULER` = 1, time = now),
//!   as Emulab's later agents did. The scheduler re-publishes it as an
//!   event (`SCHEDULER` = 0) for watchers such as `eventdebug` and the
//!   demo's view. An agent receives its own re-published `COMPLETE` and
//!   ignores it.
//! - [`Agent::request_now`]: any other reply the same way (trafgen's
//!   `REPORT`), so it reaches the experiment's router from a node.
//! - [`Agent::notify`]: an event now (`SCHEDULER` = 0) on the agent's own
//!   router only.
//!
//! The connection is registered with retry: an agent started before its
//! router waits for it, and one whose router restarts reconnects with its
//! subscription.

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime};

use tbevents_event::constants::ATTR_TOKEN;
use tbevents_event::{
    AddressTuple, EventError, EventHandle, EventKey, EventSubscription, Reconnect, RegisterOptions,
};

/// Longest subscription expression sent; the router's default limit is
/// 2048 bytes.
const MAX_SUBSCRIPTION_BYTES: usize = 2000;

/// HOST value that addresses every node.
pub const ALL_HOSTS: &str = "*";

/// Who this agent is and what it serves.
#[derive(Clone, Debug)]
pub struct AgentSpec {
    /// The router's URI (`elvin://host:port`).
    pub server: String,
    /// `pid/eid`.
    pub expt: String,
    /// The HOST value this node answers to, besides `*`.
    pub host: Option<String>,
    /// The object type served (`PROGRAM`, `TRAFGEN`, ...).
    pub objtype: String,
    /// The object names served.
    pub names: Vec<String>,
}

/// One event for this agent, verified and routed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Incoming {
    /// `OBJNAME`: which of this agent's objects.
    pub objname: String,
    /// `EVENTTYPE`.
    pub eventtype: String,
    /// `ARGS` (empty when absent).
    pub args: String,
    /// The request's `TOKEN`, echoed as `CTOKEN` in a `COMPLETE`.
    pub token: Option<i32>,
    /// `___SENDER___`.
    pub sender: String,
}

/// A registered agent: publishes replies. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Agent {
    handle: EventHandle,
    expt: String,
    host: Option<String>,
    objtype: String,
}

/// The stream of events for an agent.
#[derive(Debug)]
pub struct Inbox {
    subscription: Option<EventSubscription>,
    expt: String,
    host: Option<String>,
    objtype: String,
    names: BTreeSet<String>,
}

impl Agent {
    /// Registers with the router (waiting for it if it is not up yet) with
    /// `key`, and subscribes to this node's events for `spec.names`. With
    /// no names there is nothing to subscribe to: the inbox never yields.
    pub async fn connect(spec: &AgentSpec, key: EventKey) -> Result<(Agent, Inbox), EventError> {
        let options = RegisterOptions::new().key(key).retry(Reconnect {
            retry_interval: Duration::from_secs(1),
            max_retries: None,
        });
        let handle = EventHandle::register_with(&spec.server, options).await?;
        let names: BTreeSet<String> = spec.names.iter().cloned().collect();
        let subscription = if names.is_empty() {
            None
        } else {
            let tuple = subscription_tuple(spec, &names);
            Some(handle.subscribe(&tuple).await?)
        };
        if let Some(sub) = &subscription {
            tracing::debug!(expression = ?sub.expression(), "subscribed");
        }
        let agent = Agent {
            handle,
            expt: spec.expt.clone(),
            host: spec.host.clone(),
            objtype: spec.objtype.clone(),
        };
        let inbox = Inbox {
            subscription,
            expt: spec.expt.clone(),
            host: spec.host.clone(),
            objtype: spec.objtype.clone(),
            names,
        };
        Ok((agent, inbox))
    }

    /// The event library handle (for tests and special replies).
    pub fn handle(&self) -> &EventHandle {
        &self.handle
    }

    fn tuple(&self, objname: &str, eventtype: &str, scheduler: i32) -> AddressTuple {
        AddressTuple::new()
            .expt(self.expt.clone())
            .host(self.host.clone().unwrap_or_else(|| ALL_HOSTS.to_owned()))
            .objtype(self.objtype.clone())
            .objname(objname)
            .eventtype(eventtype)
            .scheduler(scheduler)
    }

    /// Closes the connection after everything sent so far has reached the
    /// router (the router confirms the close). Call before exiting, so
    /// final replies are not lost.
    pub async fn close(&self) {
        if let Err(error) = self.handle.clone().unregister().await {
            tracing::debug!("closing the router connection: {error}");
        }
    }

    /// Publishes `eventtype` for `objname` now (`SCHEDULER` = 0), signed.
    pub async fn notify(
        &self,
        objname: &str,
        eventtype: &str,
        args: &str,
    ) -> Result<(), EventError> {
        let mut event = self
            .handle
            .new_notification(&self.tuple(objname, eventtype, 0));
        if !args.is_empty() {
            event.set_arguments(args);
        }
        self.handle.notify(&mut event).await
    }

    /// Sends `COMPLETE` for `objname` to the experiment's scheduler, with
    /// `args` (`ERROR=<n> CTOKEN=<token> ...`), signed.
    pub async fn complete(&self, objname: &str, args: &str) -> Result<(), EventError> {
        self.request_now(objname, "COMPLETE", args).await
    }

    /// Sends `eventtype` for `objname` as a request to the experiment's
    /// scheduler to fire now (`SCHEDULER` = 1), signed. The scheduler
    /// re-publishes it as an event for every watcher of the experiment;
    /// `evproxy` carries such requests from a node's router upstream.
    pub async fn request_now(
        &self,
        objname: &str,
        eventtype: &str,
        args: &str,
    ) -> Result<(), EventError> {
        let mut event = self
            .handle
            .new_notification(&self.tuple(objname, eventtype, 1));
        if !args.is_empty() {
            event.set_arguments(args);
        }
        self.handle.schedule(&mut event, SystemTime::now()).await
    }
}

/// The subscription tuple for `spec` (see the module docs).
pub fn subscription_tuple(spec: &AgentSpec, names: &BTreeSet<String>) -> AddressTuple {
    let mut tuple = AddressTuple::new()
        .expt(spec.expt.clone())
        .objtype(spec.objtype.clone());
    if let Some(host) = &spec.host {
        tuple = tuple.host(format!("{ALL_HOSTS},{host}"));
    }
    let listed = tuple
        .clone()
        .objname(names.iter().cloned().collect::<Vec<_>>().join(","));
    match listed.subscription_expression() {
        Ok(expression) if expression.len() <= MAX_SUBSCRIPTION_BYTES => listed,
        _ => {
            tracing::info!(
                names = names.len(),
                "too many object names for one subscription; filtering names locally"
            );
            tuple
        }
    }
}

impl Inbox {
    /// The next event for this agent; `None` when the subscription has
    /// ended for good (the connection was closed).
    pub async fn recv(&mut self) -> Option<Incoming> {
        let Some(subscription) = self.subscription.as_mut() else {
            return std::future::pending().await;
        };
        loop {
            let event = subscription.recv().await?;
            let field = |value: Option<&str>| value.unwrap_or("").to_owned();
            let objname = field(event.objname());
            let host = event.host().unwrap_or("");
            let routed = event.expt() == Some(self.expt.as_str())
                && event.objtype() == Some(self.objtype.as_str())
                && event.scheduler() == Some(0)
                && self.names.contains(&objname)
                && (host == ALL_HOSTS || self.host.as_deref().is_none_or(|h| h == host));
            if !routed {
                tracing::debug!(
                    objname,
                    host,
                    "ignored an event not addressed to this agent"
                );
                continue;
            }
            return Some(Incoming {
                objname,
                eventtype: field(event.eventtype()),
                args: field(event.arguments()),
                token: event.get_int32(ATTR_TOKEN),
                sender: field(event.sender()),
            });
        }
    }

    /// Events dropped because their signature was missing or wrong.
    pub fn rejected(&self) -> u64 {
        self.subscription
            .as_ref()
            .map_or(0, EventSubscription::rejected)
    }

    /// Why the subscription ended, once it has, as a message.
    pub fn end_message(&self) -> String {
        let why = self
            .subscription
            .as_ref()
            .and_then(|s| s.end_reason())
            .map_or_else(|| "closed".to_owned(), |e| e.to_string());
        format!("the event subscription ended: {why}")
    }
}

/// The body of an agent binary once its rows and key are loaded: on a
/// fresh tokio runtime with `threads`,
/// registers and subscribes as `spec` says, logs `describe`, and runs
/// `serve` with the connection until it returns.
pub fn serve<F, Fut>(
    spec: AgentSpec,
    key: EventKey,
    threads: tbevents_cli::runtime::Threads,
    describe: String,
    serve: F,
) -> Result<(), String>
where
    F: FnOnce(Agent, Inbox) -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    // The runtime gives a stuck router connection at most a second at exit.
    tbevents_cli::runtime::block_on("tbevents-agent", threads, async move {
        tracing::info!("{describe}");
        let (agent, inbox) = Agent::connect(&spec, key)
            .await
            .map_err(|e| format!("cannot register with the event router {}: {e}", spec.server))?;
        tracing::info!("registered with {}; waiting for events", spec.server);
        serve(agent, inbox).await
    })
    .map_err(|e| format!("cannot start the async runtime: {e}"))?
}

/// An agent binary's exit: status 0, or the message logged and status 1.
pub fn exit(program: &str, result: Result<(), String>) -> std::process::ExitCode {
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(message) => {
            tracing::error!("{program}: {message}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// `items` joined with commas, or `none`.
pub fn list(items: impl Iterator<Item = String>) -> String {
    let items: Vec<String> = items.collect();
    if items.is_empty() {
        "none".to_owned()
    } else {
        items.join(", ")
    }
}

/// Resolves when the process is asked to stop (SIGTERM or SIGINT). Call
/// it once, before serving, so a signal that arrives early is not lost.
/// Needs a tokio runtime.
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    let signals = tbevents_cli::shutdown_requested();
    async move {
        match signals {
            Ok(requested) => requested.await,
            // Without handlers the default action of the signal stops
            // the process anyway.
            Err(_) => std::future::pending::<()>().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(names: &[&str], host: Option<&str>) -> AgentSpec {
        AgentSpec {
            server: "elvin://localhost".into(),
            expt: "p/e".into(),
            host: host.map(str::to_owned),
            objtype: "PROGRAM".into(),
            names: names.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn the_emulab_shape_for_this_node() {
        let s = spec(&["b", "a"], Some("10.0.0.2"));
        let names = s.names.iter().cloned().collect();
        let expression = subscription_tuple(&s, &names)
            .subscription_expression()
            .unwrap();
        assert_eq!(
            expression,
            r#" ( EXPT == "p/e" ) && ( HOST == "*" || HOST == "10.0.0.2" ) && ( OBJTYPE == "PROGRAM" ) && ( OBJNAME == "a" || OBJNAME == "b" ) && SCHEDULER == 0 "#
        );
        let s = spec(&["a"], None);
        let names = s.names.iter().cloned().collect();
        let expression = subscription_tuple(&s, &names)
            .subscription_expression()
            .unwrap();
        assert!(!expression.contains("HOST"), "{expression}");
    }

    #[test]
    fn many_names_fall_back_to_local_filtering() {
        let many: Vec<String> = (0..200).map(|i| format!("program{i:04}")).collect();
        let refs: Vec<&str> = many.iter().map(String::as_str).collect();
        let s = spec(&refs, Some("10.0.0.2"));
        let names = s.names.iter().cloned().collect();
        let expression = subscription_tuple(&s, &names)
            .subscription_expression()
            .unwrap();
        assert!(!expression.contains("OBJNAME"), "{expression}");
        assert!(expression.len() <= MAX_SUBSCRIPTION_BYTES);
    }
}
