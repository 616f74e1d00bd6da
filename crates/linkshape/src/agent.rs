//! `delay-agent`: turns `LINK` events into link changes.
//!
//! One agent serves every link named with `--link` on its node (or delay
//! node). For each it keeps the two pipes' settings and whether the link is
//! up, and tells the link's [`LinkBackend`] what to install. The rules are
//! Emulab's:
//!
//! - `UP` on an up link does nothing; otherwise the link is marked up and
//!   every stored setting is re-applied.
//! - `DOWN` on a down link does nothing; otherwise traffic stops. Settings
//!   are kept.
//! - `MODIFY` updates the stored settings of the pipes the object name and
//!   any `PIPE=` select ([`LinkSpec::target`]); while the link is up they
//!   are applied at once, while it is down at the next `UP`.
//! - Anything else, bad ARGS, or an object this agent does not serve is
//!   logged and ignored; the agent never stops for a bad event.
//!
//! [`LinkState`] holds these rules without any networking, so they are
//! tested directly; [`run`] connects them to the event router.

use std::path::PathBuf;

use tbevents_event::{AddressTuple, EventHandle, EventNotification, Reconnect, RegisterOptions};
use tbevents_store::ExperimentId;

use crate::backend::{BackendError, LinkBackend};
use crate::params::{Direction, Modification, ModifyError, PipeParams};
use crate::spec::{LinkKind, LinkSpec};
use crate::store_params::pipes_for;

/// The Elvin object type of link events.
pub const OBJTYPE_LINK: &str = "LINK";

/// What handling one event did.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// The data path changed.
    Applied,
    /// Stored only (the link is down); applied at the next `UP`.
    Stored,
    /// Nothing to do (`UP` while up, `DOWN` while down).
    Unchanged,
}

/// Why one event was not acted on.
#[derive(Debug, thiserror::Error)]
pub enum LinkEventError {
    /// The event type is not UP, DOWN or MODIFY.
    #[error("unknown link event type {0:?} (use UP, DOWN or MODIFY)")]
    UnknownType(String),
    /// The ARGS were refused.
    #[error(transparent)]
    Args(#[from] ModifyError),
    /// The backend failed.
    #[error(transparent)]
    Backend(#[from] BackendError),
}

/// One link: its settings, its state and its backend.
pub struct LinkState {
    spec: LinkSpec,
    pipes: [PipeParams; 2],
    up: bool,
    backend: Box<dyn LinkBackend>,
}

impl LinkState {
    /// Takes over `backend` and installs `pipes` (the link starts up).
    pub fn new(
        spec: LinkSpec,
        pipes: [PipeParams; 2],
        backend: Box<dyn LinkBackend>,
    ) -> Result<LinkState, BackendError> {
        let mut link = LinkState {
            spec,
            pipes,
            up: true,
            backend,
        };
        link.backend.set_up(true)?;
        link.apply_all()?;
        Ok(link)
    }

    /// The link's `--link` mapping.
    pub fn spec(&self) -> &LinkSpec {
        &self.spec
    }

    /// The stored settings of `direction`.
    pub fn pipe(&self, direction: Direction) -> &PipeParams {
        &self.pipes[direction.index()]
    }

    /// Whether traffic may pass.
    pub fn is_up(&self) -> bool {
        self.up
    }

    fn apply_all(&mut self) -> Result<(), BackendError> {
        for &direction in self.spec.directions() {
            self.backend
                .apply(direction, &self.pipes[direction.index()])?;
        }
        Ok(())
    }

    /// Handles one event addressed to `objname` (which must be one of
    /// [`LinkSpec::object_names`]; others return `Unchanged`).
    pub fn handle(
        &mut self,
        objname: &str,
        eventtype: &str,
        args: &str,
    ) -> Result<Outcome, LinkEventError> {
        let Some(target) = self.spec.target(objname) else {
            return Ok(Outcome::Unchanged);
        };
        match eventtype.to_ascii_uppercase().as_str() {
            "UP" => {
                if self.up {
                    return Ok(Outcome::Unchanged);
                }
                self.up = true;
                self.backend.set_up(true)?;
                self.apply_all()?;
                Ok(Outcome::Applied)
            }
            "DOWN" => {
                if !self.up {
                    return Ok(Outcome::Unchanged);
                }
                self.up = false;
                self.backend.set_up(false)?;
                Ok(Outcome::Applied)
            }
            "MODIFY" => {
                let modification = Modification::parse(args)?;
                for key in &modification.unknown_keys {
                    tracing::warn!(link = %self.spec.name, key = %key, "unknown MODIFY key ignored");
                }
                let mut touched = [false; 2];
                let served = self.spec.directions();
                for (pipe, change) in &modification.changes {
                    let targets: &[Direction] = match pipe {
                        Some(Direction::AtoB) => &[Direction::AtoB],
                        Some(Direction::BtoA) => &[Direction::BtoA],
                        None if change.is_queue_setting() => target.queue,
                        None => target.shaping,
                    };
                    for direction in targets {
                        if !served.contains(direction) {
                            tracing::warn!(link = %self.spec.name, %direction, ?change, "this link has no such pipe here; change ignored");
                            continue;
                        }
                        change.apply_to(&mut self.pipes[direction.index()]);
                        touched[direction.index()] = true;
                    }
                }
                if !self.up {
                    return Ok(Outcome::Stored);
                }
                for direction in Direction::BOTH {
                    if touched[direction.index()] {
                        self.backend
                            .apply(direction, &self.pipes[direction.index()])?;
                    }
                }
                Ok(Outcome::Applied)
            }
            other => Err(LinkEventError::UnknownType(other.to_string())),
        }
    }

    /// One line for logs.
    pub fn describe(&self) -> String {
        let mut text = format!(
            "{} [{}] {}",
            self.spec,
            self.backend.describe(),
            if self.up { "up" } else { "down" }
        );
        for &direction in self.spec.directions() {
            text.push_str(&format!("; {direction}: {}", self.pipes[direction.index()]));
        }
        text
    }
}

/// Which backend shapes the links.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum BackendKind {
    /// Kernel queueing disciplines on the egress of one interface.
    Tc,
    /// The built-in user-space shaper bridging two interfaces.
    Shaper,
}

/// Everything `delay-agent` is told on its command line.
#[derive(Clone, Debug)]
pub struct AgentConfig {
    /// The event router's URI.
    pub server: String,
    /// `pid/eid`, if given.
    pub experiment: Option<String>,
    /// The experiment's event key.
    pub keyfile: Option<PathBuf>,
    /// The HOST value this node answers to (besides `*`).
    pub host: Option<String>,
    /// The store to read the links' starting settings from.
    pub store: Option<String>,
    /// The backend.
    pub backend: BackendKind,
    /// The network namespace holding the links' interfaces, when it is not
    /// the agent's own (the event connection stays in the agent's).
    pub netns: Option<String>,
    /// The links served.
    pub links: Vec<LinkSpec>,
}

/// A start-up problem, with what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The configuration cannot work.
    #[error("{0}")]
    Config(String),
    /// The store could not be read.
    #[error("reading the store: {0}")]
    Store(String),
    /// A backend could not be set up.
    #[error("link {link}: {source}")]
    Backend {
        /// The link.
        link: String,
        /// What failed.
        source: BackendError,
    },
    /// The event router could not be reached or refused the subscription.
    #[error("event router: {0}")]
    Event(#[from] tbevents_event::EventError),
}

/// The starting settings of every link: from the store when one is given,
/// otherwise unshaped.
pub fn starting_pipes(config: &AgentConfig) -> Result<Vec<[PipeParams; 2]>, AgentError> {
    let Some(url) = &config.store else {
        return Ok(vec![[PipeParams::default(); 2]; config.links.len()]);
    };
    let experiment = config.experiment.as_deref().ok_or_else(|| {
        AgentError::Config(
            "--store needs -e PID/EID to know which experiment's rows to read".into(),
        )
    })?;
    let id = ExperimentId::parse(experiment)
        .ok_or_else(|| AgentError::Config(format!("-e {experiment:?} is not PID/EID")))?;
    let store = tbevents_store::open(url).map_err(|e| AgentError::Store(e.to_string()))?;
    let virt = store
        .virtual_experiment(&id)
        .map_err(|e| AgentError::Store(e.to_string()))?;
    config
        .links
        .iter()
        .map(|spec| {
            if spec.a.vnode.is_none() {
                // Without node names the rows cannot be told apart; the
                // link still works, it just starts unshaped.
                tracing::warn!(
                    link = %spec.name,
                    "--link names no node, so its settings are not read from the store; it starts unshaped (use NAME:VA=IFACE_A:VB=IFACE_B or NAME:VNODE=IFACE_A:IFACE_B)"
                );
                return Ok([PipeParams::default(); 2]);
            }
            pipes_for(spec, &virt.lan_members).map_err(|e| AgentError::Store(e.to_string()))
        })
        .collect()
}

/// Builds the backend for `spec`.
pub fn make_backend(
    kind: BackendKind,
    spec: &LinkSpec,
    netns: Option<&str>,
) -> Result<Box<dyn LinkBackend>, AgentError> {
    match (kind, &spec.b, spec.kind()) {
        (BackendKind::Tc, None, _) => Ok(Box::new(crate::tc::TcBackend::with_runner(
            &spec.a.iface,
            netns,
            Box::new(crate::tc::SystemRunner),
        ))),
        (BackendKind::Shaper, Some(b), _) => {
            let started = match netns {
                Some(ns) => crate::shaper::Shaper::start_in_netns(ns, &spec.a.iface, &b.iface),
                None => crate::shaper::Shaper::start(&spec.a.iface, &b.iface),
            };
            let shaper = started.map_err(|source| AgentError::Backend {
                link: spec.name.clone(),
                source,
            })?;
            Ok(Box::new(shaper))
        }
        (BackendKind::Tc, Some(_), _) => Err(AgentError::Config(format!(
            "--link {spec}: the tc backend shapes one interface; use NAME:IFACE or NAME:VNODE=IFACE"
        ))),
        (BackendKind::Shaper, None, LinkKind::Egress) | (BackendKind::Shaper, None, _) => {
            Err(AgentError::Config(format!(
                "--link {spec}: the shaper bridges two interfaces; use NAME:VA=IFACE_A:VB=IFACE_B or NAME:VNODE=IFACE_A:IFACE_B"
            )))
        }
    }
}

/// The subscription: this experiment's LINK events for every object served.
pub fn subscription(config: &AgentConfig) -> AddressTuple {
    let names: Vec<String> = config.links.iter().flat_map(|l| l.object_names()).collect();
    let mut tuple = AddressTuple::new()
        .objtype(OBJTYPE_LINK)
        .objname(names.join(","));
    if let Some(expt) = &config.experiment {
        tuple = tuple.expt(expt.clone());
    }
    if let Some(host) = &config.host {
        tuple = tuple.host(format!("*,{host}"));
    }
    tuple
}

/// The address of a live LINK event for experiment `expt`, as the
/// scheduler sends it (HOST `*`): for tools and tests that change links.
pub fn link_event_tuple(expt: &str, objname: &str, eventtype: &str) -> AddressTuple {
    AddressTuple::new()
        .expt(expt)
        .host("*")
        .objtype(OBJTYPE_LINK)
        .objname(objname)
        .eventtype(eventtype)
}

/// Handles one received event on every link it names.
pub fn dispatch(links: &mut [LinkState], event: &EventNotification) {
    let objname = event.objname().unwrap_or("");
    let eventtype = event.eventtype().unwrap_or("");
    let args = event.arguments().unwrap_or("");
    let mut matched = false;
    for link in links.iter_mut() {
        if link.spec().target(objname).is_none() {
            continue;
        }
        matched = true;
        match link.handle(objname, eventtype, args) {
            Ok(outcome) => tracing::info!(
                object = objname,
                event = eventtype,
                args,
                ?outcome,
                "{}",
                link.describe()
            ),
            Err(error) => tracing::error!(
                object = objname,
                event = eventtype,
                args,
                "event not applied: {error}"
            ),
        }
    }
    if !matched {
        tracing::warn!(
            object = objname,
            event = eventtype,
            "no link here answers this object; ignored"
        );
    }
}

/// Runs the agent until the connection to the router is lost for good.
/// Returns once `shutdown` resolves.
pub async fn run(
    config: AgentConfig,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), AgentError> {
    if config.links.is_empty() {
        return Err(AgentError::Config(
            "no links to serve; give at least one --link".into(),
        ));
    }
    let pipes = starting_pipes(&config)?;
    let mut links = Vec::new();
    for (spec, pipes) in config.links.iter().zip(pipes) {
        let backend = make_backend(config.backend, spec, config.netns.as_deref())?;
        let link =
            LinkState::new(spec.clone(), pipes, backend).map_err(|source| AgentError::Backend {
                link: spec.name.clone(),
                source,
            })?;
        tracing::info!("serving {}", link.describe());
        links.push(link);
    }
    let mut options = RegisterOptions::new().retry(Reconnect::default());
    if let Some(path) = &config.keyfile {
        options = options.key_file(path)?;
    } else {
        tracing::warn!("no -k key file: events are not authenticated");
    }
    let handle = EventHandle::register_with(&config.server, options).await?;
    let tuple = subscription(&config);
    let mut events = handle.subscribe(&tuple).await?;
    tracing::info!(server = %config.server, expression = ?events.expression(), "subscribed");
    println!("delay-agent: ready");
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            event = events.recv() => match event {
                Some(event) => dispatch(&mut links, &event),
                None => {
                    let reason = events.end_reason().map(|e| e.to_string()).unwrap_or_default();
                    return Err(AgentError::Config(format!("the event subscription ended: {reason}")));
                }
            },
        }
    }
    tracing::info!(
        "stopping; {} events rejected for a bad HMAC",
        events.rejected()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use parking_lot::Mutex;

    use super::*;

    /// Records what the agent asks of its backend.
    #[derive(Clone, Default)]
    struct Fake {
        log: Arc<Mutex<Vec<String>>>,
    }

    impl LinkBackend for Fake {
        fn apply(&mut self, direction: Direction, params: &PipeParams) -> Result<(), BackendError> {
            self.log
                .lock()
                .push(format!("apply {} {params}", direction.index()));
            Ok(())
        }
        fn set_up(&mut self, up: bool) -> Result<(), BackendError> {
            self.log.lock().push(format!("up {up}"));
            Ok(())
        }
        fn describe(&self) -> String {
            "fake".into()
        }
    }

    fn link(spec: &str) -> (LinkState, Arc<Mutex<Vec<String>>>) {
        let fake = Fake::default();
        let log = fake.log.clone();
        let state = LinkState::new(
            LinkSpec::parse(spec).unwrap(),
            [PipeParams::default(); 2],
            Box::new(fake),
        )
        .unwrap();
        log.lock().clear();
        (state, log)
    }

    #[test]
    fn modify_while_down_is_stored_and_applied_at_up() {
        let (mut l, log) = link("access:client=a:router=b");
        assert_eq!(l.handle("access", "DOWN", "").unwrap(), Outcome::Applied);
        assert_eq!(l.handle("access", "DOWN", "").unwrap(), Outcome::Unchanged);
        assert_eq!(
            l.handle("access", "MODIFY", "DELAY=50ms").unwrap(),
            Outcome::Stored
        );
        assert_eq!(*log.lock(), vec!["up false"]);
        assert_eq!(l.handle("access", "UP", "").unwrap(), Outcome::Applied);
        assert_eq!(l.handle("access", "UP", "").unwrap(), Outcome::Unchanged);
        let lines = log.lock().clone();
        assert_eq!(lines.len(), 4);
        assert_eq!(lines[1], "up true");
        assert!(lines[2].starts_with("apply 0 bw unlimited, delay 50.000 ms"));
        assert!(lines[3].starts_with("apply 1 bw unlimited, delay 50.000 ms"));
    }

    #[test]
    fn member_objects_and_pipe_select_one_direction() {
        let (mut l, log) = link("access:client=a:router=b");
        l.handle("access-router", "MODIFY", "BANDWIDTH=1000")
            .unwrap();
        assert_eq!(l.pipe(Direction::BtoA).bandwidth_kbps, 1000);
        assert_eq!(l.pipe(Direction::AtoB).bandwidth_kbps, 0);
        assert_eq!(log.lock().len(), 1);
        l.handle("access", "MODIFY", "PLR=0.1 PIPE=pipe0 DELAY=7")
            .unwrap();
        assert_eq!(l.pipe(Direction::AtoB).plr, 0.1);
        assert_eq!(l.pipe(Direction::BtoA).plr, 0.1);
        assert_eq!(l.pipe(Direction::AtoB).delay, Duration::from_millis(7));
        assert_eq!(l.pipe(Direction::BtoA).delay, Duration::ZERO);
    }

    #[test]
    fn lan_queue_settings_reach_only_the_outgoing_queue() {
        let (mut l, _log) = link("lan0:s1=a:b");
        l.handle("lan0-s1", "MODIFY", "LIMIT=10 DELAY=3").unwrap();
        assert_eq!(l.pipe(Direction::AtoB).queue.limit, 10);
        assert_eq!(l.pipe(Direction::BtoA).queue.limit, 50);
        assert_eq!(l.pipe(Direction::BtoA).delay, Duration::from_millis(3));
    }

    #[test]
    fn bad_events_change_nothing() {
        let (mut l, log) = link("access:client=a:router=b");
        assert!(matches!(
            l.handle("access", "EXPLODE", ""),
            Err(LinkEventError::UnknownType(_))
        ));
        assert!(l.handle("access", "MODIFY", "DELAY=5 PLR=7").is_err());
        assert_eq!(l.pipe(Direction::AtoB).delay, Duration::ZERO);
        assert_eq!(
            l.handle("elsewhere", "DOWN", "").unwrap(),
            Outcome::Unchanged
        );
        assert!(l.is_up());
        assert!(log.lock().is_empty());
    }

    #[test]
    fn subscription_lists_every_object() {
        let config = AgentConfig {
            server: "elvin://localhost".into(),
            experiment: Some("p/e".into()),
            keyfile: None,
            host: Some("10.0.0.1".into()),
            store: None,
            backend: BackendKind::Shaper,
            netns: None,
            links: vec![LinkSpec::parse("access:client=a:router=b").unwrap()],
        };
        let expression = subscription(&config).subscription_expression().unwrap();
        assert_eq!(
            expression,
            " ( EXPT == \"p/e\" ) && ( HOST == \"*\" || HOST == \"10.0.0.1\" ) && ( OBJTYPE == \"LINK\" ) && ( OBJNAME == \"access\" || OBJNAME == \"access-client\" || OBJNAME == \"access-router\" ) && SCHEDULER == 0 "
        );
    }
}
