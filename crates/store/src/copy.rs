//! Copying experiments between stores: the importer (`tbevents import`,
//! a whole store into an empty one, either direction between SQLite and
//! MySQL) and the per-experiment snapshot ([`crate::snapshot`]) share it.
//!
//! It works through [`ExperimentStore`] only, so any two backends (and the
//! XML-RPC client as a source) can be paired. Every value the model holds
//! travels: experiment rows with their state (and, when asked, the event
//! key), every virtual table, the physical mapping with its control IPs,
//! users, groups and memberships. What the model does not hold is made
//! afresh by the target: `idx` numbers, `expt_created` and the
//! membership dates are stamped at import time.
//!
//! Both stores must agree on the type tables (same index, same name), since
//! events refer to types by index; they do unless a site edited one.

use crate::error::StoreError;
use crate::model::{Experiment, NewExperiment, NodeAssignment, TypeTable};
use crate::store::ExperimentStore;

/// What an import copied.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImportSummary {
    /// Experiments copied.
    pub experiments: usize,
    /// Static events copied, over all experiments.
    pub events: usize,
    /// Users copied.
    pub users: usize,
    /// Groups copied.
    pub groups: usize,
    /// Group memberships copied.
    pub memberships: usize,
}

/// Fails unless every type-table entry of `from` is in `to` with the same
/// index and name.
pub fn check_type_tables(
    from: &dyn ExperimentStore,
    to: &dyn ExperimentStore,
) -> Result<(), StoreError> {
    for table in [
        TypeTable::ObjectTypes,
        TypeTable::EventTypes,
        TypeTable::TriggerTypes,
    ] {
        let target = to.type_table(table)?;
        for entry in from.type_table(table)? {
            if !target.contains(&entry) {
                return Err(StoreError::InvalidInput(format!(
                    "{} entry {} `{}` of {} is not in {}: the two stores' type tables differ; \
                     add the type to the target first",
                    table.table_name(),
                    entry.idx,
                    crate::model::shorten(&entry.name),
                    from.location(),
                    to.location()
                )));
            }
        }
    }
    Ok(())
}

/// Copies one experiment's rows from `from` into `to` (where it must not
/// exist yet). The event key is copied only when `with_key` is true.
pub fn copy_experiment(
    from: &dyn ExperimentStore,
    to: &dyn ExperimentStore,
    experiment: &Experiment,
    with_key: bool,
) -> Result<usize, StoreError> {
    let id = &experiment.id;
    let virt = from.virtual_experiment(id)?;
    let mapping = from.physical_mapping(id)?;
    to.create_experiment(&NewExperiment::new(
        id.clone(),
        experiment.gid.clone(),
        experiment.expt_head_uid.clone(),
        experiment.path.clone(),
    ))?;
    let rest = || -> Result<(), StoreError> {
        to.load_virtual(id, &virt)?;
        // A reservation whose node has no control IP cannot be recorded
        // through the model (swap-in always gives one); it was unusable
        // for the scheduler anyway (its agents would get no address).
        let usable: Vec<NodeAssignment> = mapping
            .iter()
            .filter(|a| a.control_ip.parse::<std::net::Ipv4Addr>().is_ok())
            .cloned()
            .collect();
        if !usable.is_empty() {
            to.record_swapin(id, &usable)?;
        }
        if with_key && let Some(key) = &experiment.eventkey {
            to.set_event_key(id, key)?;
        }
        to.set_state(id, experiment.state)
    };
    match rest() {
        Ok(()) => Ok(virt.events.len()),
        Err(err) => {
            let _ = to.delete_experiment(id);
            Err(err)
        }
    }
}

/// Copies everything in `from` into `to`, which must hold no experiments,
/// users or groups yet (so an import never merges two sites' rows by
/// accident). Event keys are copied as stored: a store that holds none
/// gives none.
pub fn import_store(
    from: &dyn ExperimentStore,
    to: &dyn ExperimentStore,
) -> Result<ImportSummary, StoreError> {
    let occupied = !to.list_experiments()?.is_empty()
        || !to.list_users()?.is_empty()
        || !to.list_groups()?.is_empty();
    if occupied {
        return Err(StoreError::InvalidInput(format!(
            "the target store {} already holds experiments, users or groups: import only into \
             an empty store (create a new database or file for it)",
            to.location()
        )));
    }
    check_type_tables(from, to)?;
    let mut summary = ImportSummary::default();
    for user in from.list_users()? {
        to.create_user(&user)?;
        summary.users += 1;
    }
    for group in from.list_groups()? {
        to.create_group(&group)?;
        summary.groups += 1;
    }
    // Memberships user by user, oldest approval first, so the order the
    // SSL XML-RPC server picks a primary group from is kept.
    for user in from.list_users()? {
        for membership in from.memberships(&user.uid)? {
            to.add_member(&membership)?;
            summary.memberships += 1;
        }
    }
    for experiment in from.list_experiments()? {
        summary.events += copy_experiment(from, to, &experiment, true)?;
        summary.experiments += 1;
    }
    Ok(summary)
}
