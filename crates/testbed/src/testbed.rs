//! `up`, `down` and `status`: carrying out a [`Plan`] and undoing it.
//!
//! The state file (`<state dir>/<pid>_<eid>.json`, root-only) records the
//! plan and every process started. It is written *before* anything is
//! made and rewritten after each process starts, so a crash at any point
//! leaves a record of at least what was attempted. Clean-up does not rely
//! on it alone, though: everything made carries the experiment's name
//! prefix, so `down` (and `up`, which first cleans leftovers of the same
//! experiment) also sweeps namespaces by prefix and finds a lost forwarder
//! by its command line. Processes inside the namespaces — agents, user
//! programs they started, anything else — are found with `ip netns pids`
//! and stopped before their namespace is deleted.

use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde::{Deserialize, Serialize};
use tbevents_store::{ExperimentId, ExperimentStore};

use crate::netns;
use crate::plan::{self, AgentKind, BOSS_ADDRESS, NODE_ROUTER_PORT, NamespaceKind, Plan};
use crate::process::{self, ProcessRecord};

/// Where state files live by default (tmpfs: gone after a reboot, like the
/// namespaces they describe).
pub const DEFAULT_STATE_DIR: &str = "/run/tbevents/testbed";
/// The forwarder's program name.
pub const FORWARDER: &str = "tbevents-ctlfwd";
/// State file format version.
const STATE_VERSION: u32 = 1;
/// What an agent logs once it is subscribed (the agent runtime's line).
const AGENT_READY: &str = "waiting for events";
/// What the linktest daemon logs once it is subscribed.
const LINKTEST_READY: &str = "linktest daemon ready";
/// What `delay-agent` prints on standard output once it is subscribed.
const DELAY_AGENT_READY: &str = "delay-agent: ready";
/// The agent programs (as opposed to routers and proxies).
const AGENT_PROGRAMS: [&str; 4] = ["program-agent", "trafgen", "delay-agent", "linktest"];
/// How long a router or the forwarder may take to come up.
const START_TIMEOUT: Duration = Duration::from_secs(15);

/// How to build a testbed.
#[derive(Clone, Debug)]
pub struct Config {
    /// The experiment store URL (agents get it too).
    pub store_url: String,
    /// The experiment's event server as reached from the host, `HOST:PORT`.
    pub server: String,
    /// Directory holding `eventd`, `evproxy`, `tbevents-ctlfwd` and the
    /// agents (`program-agent`, `trafgen`, `delay-agent`).
    pub bin_dir: PathBuf,
    /// Directory for state files.
    pub state_dir: PathBuf,
    /// Log directory; default `<experiment dir>/logs/testbed`.
    pub log_dir: Option<PathBuf>,
    /// The user programs run as; default the experiment's swapper
    /// (`expt_swap_uid`).
    pub user: Option<String>,
}

impl Config {
    /// A configuration with the default state directory and log directory.
    pub fn new(store_url: impl Into<String>, server: impl Into<String>, bin_dir: PathBuf) -> Self {
        Config {
            store_url: store_url.into(),
            server: server.into(),
            bin_dir,
            state_dir: PathBuf::from(DEFAULT_STATE_DIR),
            log_dir: None,
            user: None,
        }
    }

    /// The state file of an experiment.
    pub fn state_file(&self, id: &ExperimentId) -> PathBuf {
        self.state_dir.join(format!("{}_{}.json", id.pid, id.eid))
    }
}

/// What `up` made, as recorded in the state file.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct State {
    /// Format version.
    pub version: u32,
    /// The plan that was carried out.
    pub plan: Plan,
    /// The event server the forwarder relays to.
    pub server: String,
    /// Where the logs are.
    pub log_dir: PathBuf,
    /// Every process started, in start order.
    pub processes: Vec<ProcessRecord>,
}

impl State {
    /// The namespace path of virtual node `vnode` (for tools that work
    /// inside a node, such as linktest).
    pub fn node_namespace(&self, vnode: &str) -> Option<PathBuf> {
        self.plan.node(vnode).map(|ns| netns::path(&ns.name))
    }

    fn save(&self, path: &Path) -> anyhow::Result<()> {
        let text = serde_json::to_string_pretty(self).context("cannot encode the state")?;
        let temp = path.with_extension("json.new");
        {
            use std::io::Write as _;
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&temp)
                .with_context(|| format!("cannot write {}", temp.display()))?;
            file.write_all(text.as_bytes())
                .and_then(|()| file.sync_all())
                .with_context(|| format!("cannot write {}", temp.display()))?;
        }
        std::fs::rename(&temp, path).with_context(|| format!("cannot replace {}", path.display()))
    }

    /// Reads a state file; `None` if there is none.
    pub fn load(path: &Path) -> anyhow::Result<Option<State>> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(error) => {
                return Err(error).with_context(|| format!("cannot read {}", path.display()));
            }
        };
        let state: State = serde_json::from_str(&text).with_context(|| {
            format!(
                "{} is not a testbed state file; move it away and run `tbevents testbed down` \
                 again (clean-up by name prefix does not need it)",
                path.display()
            )
        })?;
        if state.version != STATE_VERSION {
            bail!(
                "{} has state version {}, this tbevents understands {STATE_VERSION}",
                path.display(),
                state.version
            );
        }
        Ok(Some(state))
    }
}

/// Fails unless running as root on Linux.
pub fn require_root() -> anyhow::Result<()> {
    if !cfg!(target_os = "linux") {
        bail!("the emulated testbed needs Linux network namespaces");
    }
    if !nix::unistd::geteuid().is_root() {
        bail!("the emulated testbed creates network namespaces and needs root: run it with sudo");
    }
    Ok(())
}

/// The programs a plan needs, found in the configured directory.
fn programs(config: &Config, plan: &Plan) -> anyhow::Result<Vec<(String, PathBuf)>> {
    let names: Vec<&str> = plan.programs().into_iter().map(|(name, _)| name).collect();
    let missing: Vec<&str> = names
        .iter()
        .copied()
        .filter(|n| !config.bin_dir.join(n).is_file())
        .collect();
    if !missing.is_empty() {
        bail!(
            "{} not found in {}: build them with `cargo build --release` in the tbevents source \
             tree (this experiment needs {})",
            missing.join(", "),
            config.bin_dir.display(),
            names.join(", ")
        );
    }
    Ok(names
        .into_iter()
        .map(|n| (n.to_owned(), config.bin_dir.join(n)))
        .collect())
}

/// The experiment's user: `--user`, else the swapper; never root.
fn resolve_user(
    config: &Config,
    store: &dyn ExperimentStore,
    swapper: &str,
) -> anyhow::Result<String> {
    let name = match &config.user {
        Some(user) => user.clone(),
        None => {
            // An Emulab uid in the store maps to a Unix uid; else the uid
            // is the login name.
            match store.user(swapper) {
                Ok(user) => nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(user.unix_uid))
                    .ok()
                    .flatten()
                    .map(|u| u.name)
                    .unwrap_or_else(|| swapper.to_owned()),
                Err(_) => swapper.to_owned(),
            }
        }
    };
    let user = nix::unistd::User::from_name(&name)
        .ok()
        .flatten()
        .with_context(|| {
            format!(
                "the experiment's user `{name}` has no account on this machine; create it or \
                 give another user (tbevents testbed up --user NAME)"
            )
        })?;
    if user.uid.is_root() || user.gid.as_raw() == 0 {
        bail!(
            "the experiment's user is `{name}`, which has root's uid or group: programs never \
             run as root; give an ordinary user (tbevents testbed up --user NAME)"
        );
    }
    Ok(name)
}

/// Fails unless the event server accepts connections: without it no node
/// would ever get an event, and `up` would only time out later.
fn check_server(server: &str) -> anyhow::Result<()> {
    use std::net::ToSocketAddrs as _;
    let addresses: Vec<std::net::SocketAddr> = server
        .to_socket_addrs()
        .with_context(|| format!("the event server `{server}` is not HOST:PORT"))?
        .collect();
    let mut last = None;
    for address in &addresses {
        match std::net::TcpStream::connect_timeout(address, Duration::from_secs(2)) {
            Ok(_) => return Ok(()),
            Err(error) => last = Some(error),
        }
    }
    bail!(
        "the experiment's event server {server} does not accept connections ({}); start it \
         first (eventd --listen elvin://{server}) or name the right one with --server",
        last.map_or_else(|| "no address".to_owned(), |e| e.to_string())
    )
}

/// The experiment's plan, read from the store (for callers that want to
/// look before they build, such as finding the programs it needs).
pub fn plan_for(store_url: &str, id: &ExperimentId) -> anyhow::Result<Plan> {
    let store = tbevents_store::open(store_url)?;
    let virt = store.virtual_experiment(id)?;
    let mapping = store.physical_mapping(id)?;
    plan::plan(&id.to_string(), &virt, &mapping)
}

/// Builds the experiment's testbed: cleans leftovers of the same
/// experiment, then makes every namespace, link, route and process of its
/// plan. On failure everything made so far is removed again.
pub fn up(config: &Config, id: &ExperimentId) -> anyhow::Result<State> {
    require_root()?;
    let expt = id.to_string();
    let store = tbevents_store::open(&config.store_url)?;
    let experiment = store.experiment(id)?;
    let virt = store.virtual_experiment(id)?;
    let mapping = store.physical_mapping(id)?;
    let plan = plan::plan(&expt, &virt, &mapping)?;
    let programs = programs(config, &plan)?;
    let user = if plan
        .agents
        .iter()
        .any(|a| a.kind == AgentKind::ProgramAgent)
    {
        Some(resolve_user(config, &*store, &experiment.expt_swap_uid)?)
    } else {
        None
    };
    drop(store);
    let key = tbevents_store::event_key_path(Path::new(&experiment.path));
    if !key.is_file() {
        bail!(
            "the experiment's key file {} is missing; re-create the experiment with `tbevents create`",
            key.display()
        );
    }
    let log_dir = config
        .log_dir
        .clone()
        .unwrap_or_else(|| Path::new(&experiment.path).join("logs").join("testbed"));

    check_server(&config.server)?;
    clean(config, id, &plan.prefix)?;

    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&config.state_dir)
        .with_context(|| format!("cannot create {}", config.state_dir.display()))?;
    std::fs::create_dir_all(&log_dir)
        .with_context(|| format!("cannot create the log directory {}", log_dir.display()))?;
    let mut state = State {
        version: STATE_VERSION,
        plan,
        server: config.server.clone(),
        log_dir,
        processes: Vec::new(),
    };
    let state_file = config.state_file(id);
    state.save(&state_file)?;
    let context = Build {
        config,
        expt: &expt,
        programs: &programs,
        key: &key,
        user: user.as_deref(),
        state_file: &state_file,
    };
    match context.build(&mut state) {
        Ok(()) => Ok(state),
        Err(error) => {
            let _ = teardown(&state.plan.prefix, Some(&state));
            let _ = std::fs::remove_file(&state_file);
            Err(error.context(format!(
                "building the testbed of {expt} failed; removed what was made"
            )))
        }
    }
}

struct Build<'a> {
    config: &'a Config,
    expt: &'a str,
    programs: &'a [(String, PathBuf)],
    key: &'a Path,
    user: Option<&'a str>,
    state_file: &'a Path,
}

impl Build<'_> {
    fn program(&self, name: &str) -> anyhow::Result<&Path> {
        self.programs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, p)| p.as_path())
            .with_context(|| format!("internal error: {name} was not looked up"))
    }

    fn build(&self, state: &mut State) -> anyhow::Result<()> {
        let plan = state.plan.clone();
        for ns in &plan.namespaces {
            netns::ip(&["netns", "add", &ns.name])?;
            netns::ip(&["-n", &ns.name, "link", "set", "lo", "up"])?;
            // No IPv6 chatter (router solicitations, DAD) on experimental
            // links: it would show up in traffic measurements.
            netns::sysctl(&ns.name, "net/ipv6/conf/all/disable_ipv6", "1")?;
            netns::sysctl(&ns.name, "net/ipv6/conf/default/disable_ipv6", "1")?;
            if let Some(control) = &ns.control_ip
                && !control.starts_with("127.")
            {
                netns::ip(&[
                    "-n",
                    &ns.name,
                    "addr",
                    "add",
                    &format!("{control}/32"),
                    "dev",
                    "lo",
                ])?;
            }
            if ns.forwarding {
                netns::sysctl(&ns.name, "net/ipv4/ip_forward", "1")?;
            }
            if ns.kind == NamespaceKind::Lan {
                netns::ip(&["-n", &ns.name, "link", "add", "br0", "type", "bridge"])?;
                netns::ip(&["-n", &ns.name, "link", "set", "br0", "up"])?;
            }
        }
        for veth in &plan.veths {
            netns::ip(&[
                "link",
                "add",
                &veth.a.interface,
                "netns",
                &veth.a.namespace,
                "type",
                "veth",
                "peer",
                "name",
                &veth.b.interface,
                "netns",
                &veth.b.namespace,
            ])?;
            for end in [&veth.a, &veth.b] {
                let ns = end.namespace.as_str();
                if let Some(address) = &end.address {
                    netns::ip(&["-n", ns, "addr", "add", address, "dev", &end.interface])?;
                }
                if let Some(bridge) = &end.bridge {
                    netns::ip(&[
                        "-n",
                        ns,
                        "link",
                        "set",
                        "dev",
                        &end.interface,
                        "master",
                        bridge,
                    ])?;
                }
                if end.full_checksums {
                    netns::full_checksums(ns, &end.interface)?;
                }
                netns::ip(&["-n", ns, "link", "set", "dev", &end.interface, "up"])?;
            }
        }
        for route in &plan.routes {
            netns::ip(&[
                "-n",
                &route.namespace,
                "route",
                "add",
                &route.destination,
                "via",
                &route.via,
            ])?;
        }
        self.start_forwarder(state)?;
        for ns in plan.routed() {
            self.start_router(state, ns)?;
        }
        for agent in &plan.agents {
            self.start_agent(state, agent)?;
        }
        // An event sent before an agent subscribed would be lost: `up`
        // returns once every agent says it is waiting for events (the
        // agent runtime's start-up line, see docs/agents.md).
        for record in state.processes.iter().filter(|r| r.vnode.is_some()) {
            if record.program == "linktest" {
                wait_for_log(record, LINKTEST_READY)?;
            } else if record.program == "delay-agent" {
                // delay-agent logs to its own file under -l and says
                // "ready" on standard output once subscribed.
                wait_for_log(record, DELAY_AGENT_READY)?;
            } else if AGENT_PROGRAMS.contains(&record.program.as_str()) {
                wait_for_log(record, AGENT_READY)?;
            }
        }
        // Anything that died at once (bad flags, unreadable key) is a
        // failed `up`, not a silent one.
        for record in &state.processes {
            if !record.alive() {
                bail!(
                    "{} in {} exited right after starting; the end of its log {}:\n{}",
                    record.program,
                    record.namespace.as_deref().unwrap_or("the host"),
                    record.log.display(),
                    process::log_tail(&record.log, 15)
                );
            }
        }
        Ok(())
    }

    fn record(&self, state: &mut State, record: ProcessRecord) -> anyhow::Result<()> {
        state.processes.push(record);
        state.save(self.state_file)
    }

    fn log_path(&self, state: &State, name: &str) -> PathBuf {
        state.log_dir.join(format!("{name}.log"))
    }

    fn start_forwarder(&self, state: &mut State) -> anyhow::Result<()> {
        use std::io::BufRead as _;
        let mut command = Command::new(self.program(FORWARDER)?);
        command
            .arg("--testbed")
            .arg(&state.plan.prefix)
            .arg("--upstream")
            .arg(&state.server);
        for ns in state.plan.routed() {
            command
                .arg("--listen")
                .arg(format!("{}={BOSS_ADDRESS}:{NODE_ROUTER_PORT}", ns.name));
        }
        // The forwarder says `ready` on stdout once every listener exists.
        let log = self.log_path(state, "ctlfwd");
        let file = std::fs::File::create(&log)
            .with_context(|| format!("cannot create {}", log.display()))?;
        command
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(file);
        // Its own session, so a Ctrl-C meant for `tbevents` leaves it alone.
        // SAFETY: setsid is async-signal-safe.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut command, || {
                nix::unistd::setsid().map_err(std::io::Error::from)?;
                Ok(())
            });
        }
        let mut child = command.spawn().context("cannot start tbevents-ctlfwd")?;
        let pid = i32::try_from(child.id()).context("pid out of range")?;
        let record = ProcessRecord {
            program: FORWARDER.to_owned(),
            namespace: None,
            vnode: None,
            pid,
            start_time: process::stat(pid).map(|(_, s)| s).unwrap_or(0),
            log: log.clone(),
        };
        self.record(state, record)?;
        let stdout = child.stdout.take().context("no pipe from the forwarder")?;
        let mut line = String::new();
        let _ = std::io::BufReader::new(stdout).read_line(&mut line);
        std::thread::spawn(move || {
            let _ = child.wait();
        });
        if line.trim() != "ready" {
            bail!(
                "tbevents-ctlfwd did not start; its log {}:\n{}",
                log.display(),
                process::log_tail(&log, 15)
            );
        }
        Ok(())
    }

    fn start_router(&self, state: &mut State, ns: &plan::NamespacePlan) -> anyhow::Result<()> {
        let control = ns.control_ip.clone().unwrap_or_default();
        let label = ns.vname.clone();
        let log = self.log_path(state, &format!("{label}-eventd"));
        let mut eventd = netns::command_in(&ns.name, self.program("eventd")?)?;
        eventd
            .arg("--listen")
            .arg(format!("elvin://127.0.0.1:{NODE_ROUTER_PORT}"));
        let record = process::spawn(eventd, "eventd", Some(&ns.name), Some(&ns.vname), &log)?;
        self.record(state, record.clone())?;
        wait_for_router(&ns.name, &record)?;

        let log = self.log_path(state, &format!("{label}-evproxy"));
        let mut evproxy = netns::command_in(&ns.name, self.program("evproxy")?)?;
        evproxy
            .arg("-s")
            .arg(format!("{BOSS_ADDRESS}:{NODE_ROUTER_PORT}"))
            .arg("-l")
            .arg(format!("127.0.0.1:{NODE_ROUTER_PORT}"))
            .arg("-e")
            .arg(self.expt)
            .arg("-i")
            .arg(&control)
            .arg("--retry-interval")
            .arg("200ms");
        let record = process::spawn(evproxy, "evproxy", Some(&ns.name), Some(&ns.vname), &log)?;
        self.record(state, record.clone())?;
        // Events sent before evproxy subscribed upstream would be lost:
        // `up` returns only once it forwards.
        wait_for_log(&record, "forwarding upstream_subscription")
    }

    fn start_agent(&self, state: &mut State, agent: &plan::AgentPlan) -> anyhow::Result<()> {
        let program = agent.kind.program();
        let ns = state
            .plan
            .namespaces
            .iter()
            .find(|n| n.name == agent.namespace)
            .cloned()
            .with_context(|| format!("internal error: no namespace {}", agent.namespace))?;
        let agent_logs = state.log_dir.join(&agent.vnode);
        std::fs::create_dir_all(&agent_logs)
            .with_context(|| format!("cannot create {}", agent_logs.display()))?;
        let mut command = netns::command_in(&agent.namespace, self.program(program)?)?;
        if agent.kind == AgentKind::Linktest {
            // The linktest daemon talks to the experiment's event server
            // itself (through the control forwarder): its reports must
            // reach `tbevents linktest`, and a node's own router only
            // carries events down.
            command
                .arg("-s")
                .arg(BOSS_ADDRESS.to_string())
                .arg("-p")
                .arg(NODE_ROUTER_PORT.to_string())
                .arg("-e")
                .arg(self.expt)
                .arg("-k")
                .arg(self.key)
                .arg("--vnode")
                .arg(&agent.vnode);
        } else {
            command
                .arg("-s")
                .arg("127.0.0.1")
                .arg("-p")
                .arg(NODE_ROUTER_PORT.to_string())
                .arg("-e")
                .arg(self.expt)
                .arg("-k")
                .arg(self.key)
                .arg("--host")
                .arg(ns.control_ip.as_deref().unwrap_or_default())
                .arg("--vnode")
                .arg(&agent.vnode)
                .arg("--store")
                .arg(&self.config.store_url)
                .arg("-l")
                .arg(&agent_logs);
        }
        match agent.kind {
            AgentKind::ProgramAgent => {
                let user = self
                    .user
                    .context("internal error: no user for the program agent")?;
                // The agent switches to the user itself, after reading the
                // key and the store; its run logs must be the user's.
                let account = nix::unistd::User::from_name(user)
                    .ok()
                    .flatten()
                    .with_context(|| format!("no user {user}"))?;
                nix::unistd::chown(&agent_logs, Some(account.uid), Some(account.gid))
                    .with_context(|| format!("cannot give {} to {user}", agent_logs.display()))?;
                std::fs::set_permissions(&agent_logs, std::fs::Permissions::from_mode(0o750))
                    .with_context(|| format!("cannot set the mode of {}", agent_logs.display()))?;
                command.arg("-u").arg(user);
            }
            AgentKind::Trafgen => {}
            AgentKind::DelayAgent => {
                let shaper = agent
                    .shaper
                    .as_ref()
                    .context("internal error: a delay agent without a shaper")?;
                command
                    .arg("--backend")
                    .arg("shaper")
                    .arg("--link")
                    .arg(format!(
                        "{}:{}:{}",
                        shaper.link, shaper.side_a, shaper.side_b
                    ));
            }
            // Its own flags, set above.
            AgentKind::Linktest => {}
        }
        let log = self.log_path(state, &format!("{}-{program}", agent.vnode));
        let record = process::spawn(
            command,
            program,
            Some(&agent.namespace),
            Some(&agent.vnode),
            &log,
        )?;
        self.record(state, record)
    }
}

/// Waits until the router in `namespace` accepts connections.
fn wait_for_router(namespace: &str, record: &ProcessRecord) -> anyhow::Result<()> {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        let accepted = netns::run_in(namespace, || {
            Ok(std::net::TcpStream::connect_timeout(
                &std::net::SocketAddr::from(([127, 0, 0, 1], NODE_ROUTER_PORT)),
                Duration::from_millis(200),
            )
            .is_ok())
        })?;
        if accepted {
            return Ok(());
        }
        if !record.alive() {
            bail!(
                "eventd in {namespace} exited; its log {}:\n{}",
                record.log.display(),
                process::log_tail(&record.log, 15)
            );
        }
        if Instant::now() > deadline {
            bail!("eventd in {namespace} did not accept connections within {START_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until a process's log contains `needle`.
fn wait_for_log(record: &ProcessRecord, needle: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if std::fs::read_to_string(&record.log).is_ok_and(|text| text.contains(needle)) {
            return Ok(());
        }
        if !record.alive() {
            bail!(
                "{} in {} exited; its log {}:\n{}",
                record.program,
                record.namespace.as_deref().unwrap_or("the host"),
                record.log.display(),
                process::log_tail(&record.log, 15)
            );
        }
        if Instant::now() > deadline {
            bail!(
                "{} in {} was not ready within {START_TIMEOUT:?}; its log {}:\n{}",
                record.program,
                record.namespace.as_deref().unwrap_or("the host"),
                record.log.display(),
                process::log_tail(&record.log, 15)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// What `down` removed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Removed {
    /// Processes stopped.
    pub processes: usize,
    /// Namespaces deleted.
    pub namespaces: Vec<String>,
    /// Whether a state file was found.
    pub had_state: bool,
}

/// Removes everything of the experiment's testbed: with its state file if
/// there is one, and by name prefix in any case.
pub fn down(config: &Config, id: &ExperimentId) -> anyhow::Result<Removed> {
    require_root()?;
    clean(config, id, &crate::names::prefix_for(&id.to_string()))
}

/// The clean-up shared by `down` and the start of `up`.
fn clean(config: &Config, id: &ExperimentId, prefix: &str) -> anyhow::Result<Removed> {
    let state_file = config.state_file(id);
    let state = match State::load(&state_file) {
        Ok(state) => state,
        Err(error) => {
            tracing::warn!("{error:#}; cleaning up by name prefix only");
            None
        }
    };
    let mut removed = teardown(prefix, state.as_ref())?;
    removed.had_state = state.is_some();
    match std::fs::remove_file(&state_file) {
        Ok(()) => {}
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => {
            return Err(error).with_context(|| format!("cannot remove {}", state_file.display()));
        }
    }
    Ok(removed)
}

/// Stops every process and deletes every namespace with `prefix`.
fn teardown(prefix: &str, state: Option<&State>) -> anyhow::Result<Removed> {
    let namespaces: Vec<String> = netns::list()?
        .into_iter()
        .filter(|name| crate::names::is_ours(prefix, name))
        .collect();
    let mut pids: Vec<i32> = state
        .map(|s| {
            s.processes
                .iter()
                .filter(|p| p.alive())
                .map(|p| p.pid)
                .collect()
        })
        .unwrap_or_default();
    pids.extend(process::find_by_arguments(&["--testbed", prefix]));
    for ns in &namespaces {
        pids.extend(netns::pids(ns));
    }
    pids.sort_unstable();
    pids.dedup();
    let own = i32::try_from(std::process::id()).unwrap_or(0);
    pids.retain(|&p| p != own && p > 1);
    let left = process::stop_all(&pids, Duration::from_secs(3));
    if !left.is_empty() {
        bail!(
            "processes {left:?} of testbed {prefix} did not exit even after SIGKILL; \
             its namespaces were left in place"
        );
    }
    let mut failures = Vec::new();
    for ns in &namespaces {
        if let Err(error) = netns::ip(&["netns", "del", ns]) {
            failures.push(format!("{error:#}"));
        }
    }
    if !failures.is_empty() {
        bail!("could not delete every namespace: {}", failures.join("; "));
    }
    Ok(Removed {
        processes: pids.len(),
        namespaces,
        had_state: false,
    })
}

/// What `status` reports.
#[derive(Clone, Debug)]
pub struct Status {
    /// The state file's content, if any.
    pub state: Option<State>,
    /// Namespaces with the experiment's prefix that exist now.
    pub namespaces: Vec<String>,
}

/// Reads the state file and looks at what exists.
pub fn status(config: &Config, id: &ExperimentId) -> anyhow::Result<Status> {
    let prefix = crate::names::prefix_for(&id.to_string());
    let state = State::load(&config.state_file(id))?;
    let namespaces = netns::list()?
        .into_iter()
        .filter(|name| crate::names::is_ours(&prefix, name))
        .collect();
    Ok(Status { state, namespaces })
}
