//! Key custody and data movement: `tbevents snapshot`, `tbevents import`
//! and `tbevents mysql-grants`.
//!
//! These are the operator's tools for keeping each experiment's key and
//! rows away from other experiments' users (see docs/store.md, "Key
//! custody"): a per-experiment snapshot for the scheduler, a restricted
//! MySQL account where the scheduler reads the server directly, and the
//! importer that moves a site between SQLite and MySQL.

use std::path::Path;

use anyhow::{Context as _, bail};
use tbevents_store::tables::{Table, event_groups, eventlist, inventory, reserved, virt_agents};

use crate::experiments::{open_store, parse_experiment};

/// `tbevents snapshot -e pid/eid --to PATH`.
pub(crate) fn snapshot(
    store_url: Option<&str>,
    experiment: &str,
    dest: &Path,
) -> anyhow::Result<()> {
    let id = parse_experiment(experiment)?;
    let store = open_store(store_url)?;
    tbevents_store::write_experiment_snapshot(&*store, &id, dest)
        .with_context(|| format!("cannot write the snapshot of {id} to {}", dest.display()))?;
    println!(
        "wrote the snapshot of {id} to {} (mode 0640); run its scheduler with \
         --store sqlite:{}",
        dest.display(),
        dest.display()
    );
    Ok(())
}

/// `tbevents import --from URL --to URL`.
pub(crate) fn import(from: &str, to: &str) -> anyhow::Result<()> {
    if from == to {
        bail!("--from and --to name the same store ({from}); give two different stores");
    }
    let source = tbevents_store::open_read_only(from)
        .with_context(|| format!("cannot open the source store {from}"))?;
    let target =
        tbevents_store::open(to).with_context(|| format!("cannot open the target store {to}"))?;
    let summary = tbevents_store::import_store(&*source, &*target)?;
    println!(
        "imported {} experiments ({} static events), {} users, {} groups and {} group \
         memberships from {} into {}",
        summary.experiments,
        summary.events,
        summary.users,
        summary.groups,
        summary.memberships,
        source.location(),
        target.location()
    );
    Ok(())
}

/// Which account `mysql-grants` describes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Account {
    /// The scheduler: read-only, only the columns it reads, no keys.
    Scheduler,
    /// The operator's `tbevents`: everything on the database (it migrates).
    Operator,
}

/// The tables and columns `event-sched` reads, besides `experiments`
/// (where it may read only `pid`, `eid` and `state`: never `eventkey`).
fn scheduler_tables() -> Vec<Table> {
    vec![
        virt_agents::TABLE,
        event_groups::TABLE,
        eventlist::TABLE,
        reserved::TABLE,
        inventory::NODES,
        inventory::NODE_TYPES,
        inventory::INTERFACES,
    ]
}

/// The SQL that creates `user`@`host` with `password` and grants it what
/// `account` needs on `database`.
pub(crate) fn grant_statements(
    account: Account,
    user: &str,
    host: &str,
    password: &str,
    database: &str,
) -> anyhow::Result<Vec<String>> {
    let plain = |what: &str, text: &str| -> anyhow::Result<()> {
        let ok = !text.is_empty()
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'%'));
        if ok {
            Ok(())
        } else {
            bail!("{what} `{text}` may hold only letters, digits, `_`, `-`, `.` and `%`")
        }
    };
    plain("user", user)?;
    plain("host", host)?;
    plain("database", database)?;
    if password.contains('\'') || password.contains('\\') {
        bail!("the password may not contain quotes or backslashes");
    }
    let who = format!("'{user}'@'{host}'");
    let mut sql = vec![format!(
        "CREATE USER IF NOT EXISTS {who} IDENTIFIED BY '{password}'"
    )];
    match account {
        Account::Operator => {
            sql.push(format!("GRANT ALL PRIVILEGES ON `{database}`.* TO {who}"));
        }
        Account::Scheduler => {
            sql.push(format!(
                "GRANT SELECT (pid, eid, state) ON `{database}`.experiments TO {who}"
            ));
            for table in [
                "tbevents_schema",
                "event_objecttypes",
                "event_eventtypes",
                "event_triggertypes",
            ] {
                sql.push(format!("GRANT SELECT ON `{database}`.{table} TO {who}"));
            }
            for table in scheduler_tables() {
                sql.push(format!(
                    "GRANT SELECT ON `{database}`.{} TO {who}",
                    table.name
                ));
            }
        }
    }
    Ok(sql)
}

/// `tbevents mysql-grants`.
pub(crate) fn mysql_grants(
    account: Account,
    user: &str,
    host: &str,
    password: &str,
    database: &str,
) -> anyhow::Result<()> {
    for statement in grant_statements(account, user, host, password, database)? {
        println!("{statement};");
    }
    Ok(())
}
