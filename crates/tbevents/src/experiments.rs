//! The experiment subcommands: create, swapin, swapout, state, list,
//! agents, events, delete.
//!
//! Each opens the store named by `--store` / `TBEVENTS_STORE` / the
//! default, does one thing, and prints what an operator needs to know next.
//! Failures are errors with the store's or the NS parser's message, which
//! already says what to fix.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use tbevents_store::{
    ExperimentId, ExperimentState, ExperimentStore, NewExperiment, NodeAssignment,
    VirtualExperiment,
};

use crate::table::Table;

/// Opens the store the global flag, the environment or the default names.
pub(crate) fn open_store(url: Option<&str>) -> anyhow::Result<Box<dyn ExperimentStore>> {
    let url = tbevents_store::resolve_store_url(url)?;
    Ok(tbevents_store::open(&url)?)
}

/// Parses `pid/eid` with a message that says what is expected.
pub(crate) fn parse_experiment(text: &str) -> anyhow::Result<ExperimentId> {
    let id = ExperimentId::parse(text).with_context(|| {
        format!("`{text}` is not an experiment name: write it as pid/eid, e.g. testbed/web")
    })?;
    id.validate()?;
    Ok(id)
}

/// The conventional experiment directory, `/proj/<pid>/exp/<eid>`.
pub(crate) fn default_experiment_dir(id: &ExperimentId) -> PathBuf {
    PathBuf::from("/proj")
        .join(&id.pid)
        .join("exp")
        .join(&id.eid)
}

/// What `create` made.
#[derive(Debug)]
pub(crate) struct Created {
    /// The key file's path.
    pub key_path: PathBuf,
    /// The parsed experiment.
    pub virt: VirtualExperiment,
}

/// Where the event key goes besides the key file.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct KeyCustody {
    /// Also record it in the store (`--store-key`).
    pub in_store: bool,
    /// The Unix group the key file belongs to.
    pub unix_gid: Option<u32>,
}

/// Creates an experiment from parsed rows, writes its key, and leaves it
/// `swapped`. On failure after the experiment row exists, the row is
/// deleted again so the command can simply be re-run.
pub(crate) fn create_from(
    store: &dyn ExperimentStore,
    id: &ExperimentId,
    gid: &str,
    uid: &str,
    dir: &Path,
    virt: VirtualExperiment,
    custody: KeyCustody,
) -> anyhow::Result<Created> {
    let dir = if dir.is_absolute() {
        dir.to_owned()
    } else {
        std::env::current_dir()
            .context("cannot find the current directory")?
            .join(dir)
    };
    let path = dir
        .to_str()
        .with_context(|| format!("the experiment directory {} is not UTF-8", dir.display()))?;
    store.create_experiment(&NewExperiment::new(id.clone(), gid, uid, path))?;
    let rest = || -> anyhow::Result<PathBuf> {
        store.load_virtual(id, &virt)?;
        let key = tbevents_store::try_generate_event_key()?;
        let key_path =
            tbevents_store::write_event_key_file_for_group(&dir, &key, custody.unix_gid)?;
        if custody.in_store {
            store.set_event_key(id, &key)?;
        }
        store.set_state(id, ExperimentState::Swapped)?;
        Ok(key_path)
    };
    match rest() {
        Ok(key_path) => Ok(Created { key_path, virt }),
        Err(error) => {
            let _ = store.delete_experiment(id);
            Err(error)
        }
    }
}

/// The current Unix user's name (the default creator).
fn current_user() -> String {
    nix::unistd::User::from_uid(nix::unistd::getuid())
        .ok()
        .flatten()
        .map(|user| user.name)
        .unwrap_or_else(|| "tbevents".to_owned())
}

/// The options of `tbevents create`.
#[derive(Debug, Default)]
pub(crate) struct CreateOptions<'a> {
    /// Project group (default: the pid).
    pub gid: Option<&'a str>,
    /// Creating user (default: the current Unix user).
    pub uid: Option<&'a str>,
    /// Experiment directory (default: /proj/PID/exp/EID).
    pub path: Option<PathBuf>,
    /// Also keep the key in the store.
    pub store_key: bool,
    /// The key file's Unix group, by name.
    pub unix_group: Option<&'a str>,
}

/// The Unix group the key file gets: `--unix-group`, else the store's
/// `groups` row for pid/gid, else a system group named like gid (both only
/// when run as root), else none (the file keeps the creator's group).
fn key_file_gid(
    store: &dyn ExperimentStore,
    id: &ExperimentId,
    gid: &str,
    named: Option<&str>,
) -> anyhow::Result<Option<u32>> {
    if let Some(name) = named {
        let group = nix::unistd::Group::from_name(name)
            .with_context(|| format!("cannot look up Unix group `{name}`"))?
            .with_context(|| format!("there is no Unix group `{name}`"))?;
        return Ok(Some(group.gid.as_raw()));
    }
    // Only root may give a file to a group it is not in; an ordinary
    // operator's key file keeps their own group unless they name one.
    if !nix::unistd::geteuid().is_root() {
        return Ok(None);
    }
    if let Ok(group) = store.group(&id.pid, gid) {
        return Ok(Some(group.unix_gid));
    }
    Ok(nix::unistd::Group::from_name(gid)
        .ok()
        .flatten()
        .map(|group| group.gid.as_raw()))
}

/// `tbevents create`.
pub(crate) fn create(
    store_url: Option<&str>,
    experiment: &str,
    options: CreateOptions<'_>,
    nsfile: &Path,
) -> anyhow::Result<()> {
    let id = parse_experiment(experiment)?;
    // Parse first: a bad NS file should not need a store at all.
    let virt = tbevents_ns::parse_file(nsfile)?;
    let store = open_store(store_url)?;
    let dir = options.path.unwrap_or_else(|| default_experiment_dir(&id));
    let gid = options.gid.unwrap_or(&id.pid).to_owned();
    let uid = options.uid.map(str::to_owned).unwrap_or_else(current_user);
    let unix_gid = key_file_gid(&*store, &id, &gid, options.unix_group)?;
    if unix_gid.is_none() && nix::unistd::geteuid().is_root() {
        eprintln!(
            "tbevents: warning: no Unix group for {}/{gid} (no groups row, no system group of \
             that name): the key file keeps your group; pass --unix-group",
            id.pid
        );
    }
    let custody = KeyCustody {
        in_store: options.store_key,
        unix_gid,
    };
    let created = create_from(&*store, &id, &gid, &uid, &dir, virt, custody)?;
    let v = &created.virt;
    println!(
        "created {id} from {}: {} nodes, {} link/LAN members, {} agents, {} event groups, {} static events",
        nsfile.display(),
        v.nodes.len(),
        v.lan_members.len(),
        v.agents.len(),
        count_groups(v),
        v.events.len(),
    );
    println!("event key: {}", created.key_path.display());
    println!("state: swapped; next: tbevents swapin -e {id}");
    Ok(())
}

fn count_groups(virt: &VirtualExperiment) -> usize {
    let mut names: Vec<&str> = virt.groups.iter().map(|g| g.group_name.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    names.len()
}

/// Most virtual nodes one experiment can have with default addresses.
pub(crate) const MAX_DEFAULT_NODES: usize = 1022;

/// The default mapping for virtual node number `index` (from 0) of the
/// experiment with store index `idx`: node id `tb<idx>-<vnode>` and the
/// loopback address `127.0.0.0 | (idx mod 16383 + 1) << 10 | (index + 1)`,
/// so each experiment has its own /22 in 127.0.0.0/8 and two experiments'
/// nodes never share an address unless 16,383 experiments apart.
pub(crate) fn default_assignment(
    idx: u64,
    index: usize,
    vnode: &str,
) -> anyhow::Result<NodeAssignment> {
    if index >= MAX_DEFAULT_NODES {
        bail!(
            "more than {MAX_DEFAULT_NODES} nodes cannot get default loopback addresses: give \
             --map for node `{vnode}` and the ones after it"
        );
    }
    let block = u32::try_from(idx % 16_383).unwrap_or(0) + 1;
    let host = u32::try_from(index).unwrap_or(0) + 1;
    let address = Ipv4Addr::from(0x7f00_0000u32 | (block << 10) | host);
    Ok(NodeAssignment {
        vnode: vnode.to_owned(),
        node_id: format!("tb{idx}-{vnode}"),
        control_ip: address.to_string(),
    })
}

/// Parses one `--map vnode=node_id:control_ip`.
pub(crate) fn parse_map(text: &str) -> anyhow::Result<NodeAssignment> {
    let usage = || format!("`{text}` is not a mapping: write VNODE=NODE_ID:CONTROL_IP");
    let (vnode, rest) = text.split_once('=').with_context(usage)?;
    let (node_id, ip) = rest.split_once(':').with_context(usage)?;
    if vnode.is_empty() || node_id.is_empty() {
        bail!(usage());
    }
    ip.parse::<Ipv4Addr>().with_context(|| {
        format!("`{ip}` in `{text}` is not an IPv4 address (the control IP, e.g. 10.0.0.12)")
    })?;
    Ok(NodeAssignment {
        vnode: vnode.to_owned(),
        node_id: node_id.to_owned(),
        control_ip: ip.to_owned(),
    })
}

/// The mapping for every virtual node: `--map` entries where given,
/// defaults for the rest.
pub(crate) fn mapping(
    store: &dyn ExperimentStore,
    id: &ExperimentId,
    maps: &[String],
) -> anyhow::Result<Vec<NodeAssignment>> {
    let experiment = store.experiment(id)?;
    let virt = store.virtual_experiment(id)?;
    let mut overrides = Vec::with_capacity(maps.len());
    for text in maps {
        let assignment = parse_map(text)?;
        if !virt.nodes.iter().any(|n| n.vname == assignment.vnode) {
            let names: Vec<&str> = virt.nodes.iter().map(|n| n.vname.as_str()).collect();
            bail!(
                "`{}` is not a node of {id}; its nodes are: {}",
                assignment.vnode,
                names.join(", ")
            );
        }
        overrides.push(assignment);
    }
    virt.nodes
        .iter()
        .enumerate()
        .map(
            |(index, node)| match overrides.iter().rev().find(|a| a.vnode == node.vname) {
                Some(given) => Ok(given.clone()),
                None => default_assignment(experiment.idx, index, &node.vname),
            },
        )
        .collect()
}

/// Records the mapping and makes the experiment active.
pub(crate) fn swapin_with(
    store: &dyn ExperimentStore,
    id: &ExperimentId,
    maps: &[String],
) -> anyhow::Result<Vec<NodeAssignment>> {
    let assignments = mapping(store, id, maps)?;
    store.record_swapin(id, &assignments)?;
    store.set_state(id, ExperimentState::Active)?;
    Ok(assignments)
}

/// `tbevents swapin`.
pub(crate) fn swapin(
    store_url: Option<&str>,
    experiment: &str,
    maps: &[String],
) -> anyhow::Result<()> {
    let id = parse_experiment(experiment)?;
    let store = open_store(store_url)?;
    let assignments = swapin_with(&*store, &id, maps)?;
    let mut table = Table::new(&["VNODE", "NODE", "CONTROL IP"]);
    for a in &assignments {
        table.row(vec![
            a.vnode.clone(),
            a.node_id.clone(),
            a.control_ip.clone(),
        ]);
    }
    print!("{}", table.render());
    println!("{id} is active ({} nodes mapped)", assignments.len());
    Ok(())
}

/// `tbevents swapout`.
pub(crate) fn swapout(store_url: Option<&str>, experiment: &str) -> anyhow::Result<()> {
    let id = parse_experiment(experiment)?;
    let store = open_store(store_url)?;
    store.record_swapout(&id)?;
    store.set_state(&id, ExperimentState::Swapped)?;
    println!("{id} is swapped out (mapping removed)");
    Ok(())
}

/// `tbevents state`.
pub(crate) fn state(
    store_url: Option<&str>,
    experiment: &str,
    new: Option<&str>,
) -> anyhow::Result<()> {
    let id = parse_experiment(experiment)?;
    let store = open_store(store_url)?;
    match new {
        None => println!("{}", store.state(&id)?),
        Some(text) => {
            let state: ExperimentState = text.parse()?;
            let old = store.state(&id)?;
            store.set_state(&id, state)?;
            println!("{id}: {old} -> {state}");
        }
    }
    Ok(())
}

/// `tbevents list`.
pub(crate) fn list(store_url: Option<&str>) -> anyhow::Result<()> {
    let store = open_store(store_url)?;
    let experiments = store.list_experiments()?;
    if experiments.is_empty() {
        println!(
            "no experiments in {}; create one with `tbevents create -e pid/eid FILE.ns`",
            store.location()
        );
        return Ok(());
    }
    let mut table = Table::new(&["EXPERIMENT", "STATE", "CREATED", "CREATOR", "DIRECTORY"]);
    for e in &experiments {
        table.row(vec![
            e.id.to_string(),
            e.state.to_string(),
            e.expt_created.clone(),
            e.expt_head_uid.clone(),
            e.path.clone(),
        ]);
    }
    print!("{}", table.render());
    Ok(())
}

/// `tbevents agents`.
pub(crate) fn agents(store_url: Option<&str>, experiment: &str) -> anyhow::Result<()> {
    let id = parse_experiment(experiment)?;
    let store = open_store(store_url)?;
    let agents = store.agents(&id)?;
    let groups = store.groups(&id)?;
    let mut table = Table::new(&["AGENT", "TYPE", "VNODE", "NODE", "HOST"]);
    for a in &agents {
        let host = match (&a.ipaddr, a.vnode.as_str()) {
            (_, "*") => "*".to_owned(),
            (Some(ip), _) => ip.clone(),
            (None, _) => "(not swapped in)".to_owned(),
        };
        table.row(vec![
            a.vname.clone(),
            a.objtype.clone(),
            a.vnode.clone(),
            a.node_id.clone().unwrap_or_else(|| "-".to_owned()),
            host,
        ]);
    }
    print!("{}", table.render());
    if !groups.is_empty() {
        println!();
        let mut members: Vec<(String, Vec<String>)> = Vec::new();
        for g in &groups {
            match members.iter_mut().find(|(name, _)| *name == g.group_name) {
                Some((_, list)) => list.push(g.agent_name.clone()),
                None => members.push((g.group_name.clone(), vec![g.agent_name.clone()])),
            }
        }
        let mut table = Table::new(&["GROUP", "MEMBERS"]);
        for (name, list) in members {
            table.row(vec![name, list.join(" ")]);
        }
        print!("{}", table.render());
    }
    Ok(())
}

/// `tbevents events`.
pub(crate) fn events(store_url: Option<&str>, experiment: &str) -> anyhow::Result<()> {
    let id = parse_experiment(experiment)?;
    let store = open_store(store_url)?;
    let events = store.events(&id)?;
    if events.is_empty() {
        println!("{id} has no static events");
        return Ok(());
    }
    let mut table = Table::new(&["TIME", "OBJECT", "TYPE", "EVENT", "ARGS"]);
    for e in &events {
        table.row(vec![
            format!("{:.3}", e.time),
            e.vname.clone(),
            e.objtype.clone(),
            e.eventtype.clone(),
            e.arguments.clone(),
        ]);
    }
    print!("{}", table.render());
    println!(
        "{} static events; times are seconds after time zero",
        events.len()
    );
    Ok(())
}

/// `tbevents delete`.
pub(crate) fn delete(store_url: Option<&str>, experiment: &str) -> anyhow::Result<()> {
    let id = parse_experiment(experiment)?;
    let store = open_store(store_url)?;
    let path = store.experiment(&id)?.path;
    store.delete_experiment(&id)?;
    println!("deleted {id} (its directory {path} and key file were left alone)");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_addresses_are_loopback_and_distinct() {
        let a = default_assignment(1, 0, "client").unwrap();
        let b = default_assignment(1, 1, "router").unwrap();
        let c = default_assignment(2, 0, "client").unwrap();
        assert_eq!(a.node_id, "tb1-client");
        assert_eq!(a.control_ip, "127.0.8.1");
        assert_eq!(b.control_ip, "127.0.8.2");
        assert_eq!(c.control_ip, "127.0.12.1");
        let last = default_assignment(16_382, MAX_DEFAULT_NODES - 1, "x").unwrap();
        let ip: Ipv4Addr = last.control_ip.parse().unwrap();
        assert!(ip.is_loopback());
        assert!(default_assignment(1, MAX_DEFAULT_NODES, "x").is_err());
    }

    #[test]
    fn map_flags_parse_and_explain_mistakes() {
        let a = parse_map("client=pc12:10.0.0.12").unwrap();
        assert_eq!(
            (a.vnode.as_str(), a.node_id.as_str(), a.control_ip.as_str()),
            ("client", "pc12", "10.0.0.12")
        );
        assert!(
            parse_map("client")
                .unwrap_err()
                .to_string()
                .contains("VNODE=")
        );
        assert!(
            parse_map("client=pc12:banana")
                .unwrap_err()
                .to_string()
                .contains("IPv4")
        );
    }
}
