//! The storage interface: what the scheduler, the operator command and the
//! control plane may ask of an experiment store.
//!
//! The trait speaks only in model types ([`crate::model`]), never in SQL, so
//! that the SQLite default, the MySQL/MariaDB backend on the Emulab schema
//! and a future XML-RPC client can all sit behind the same
//! `Box<dyn ExperimentStore>` without callers changing.
//!
//! It is synchronous on purpose. Every backend is a blocking
//! library (rusqlite, a MySQL driver used from a pool, an XML-RPC call over
//! ssh), the callers that are not async (`tbevents`) stay simple, and the
//! async callers (`event-sched`) make a handful of store calls per
//! experiment start, which belong in `tokio::task::spawn_blocking` anyway
//! so a slow backend never stalls the runtime's event loop.
//!
//! Every read of an experiment's rows first checks that the experiment
//! exists, so a mistyped pid/eid gives [`StoreError::ExperimentNotFound`]
//! instead of an empty, silently "valid" answer.

use crate::error::StoreError;
use crate::model::{
    AgentRow, EventRow, Experiment, ExperimentId, ExperimentState, Group, GroupMembership,
    GroupRow, NewExperiment, NodeAssignment, TypeEntry, TypeTable, User, VirtualExperiment,
};

/// An experiment store. Implementations are shareable between threads; each
/// call is one transaction against the backend.
pub trait ExperimentStore: Send + Sync {
    /// Where this store lives, for messages (`sqlite:/var/lib/...`).
    fn location(&self) -> String;

    /// The backend's schema version (SQLite `user_version`, MySQL
    /// `tbevents_schema.version`; the same numbers).
    fn schema_version(&self) -> Result<i64, StoreError>;

    // ----- experiments -----

    /// Creates an experiment in state `new`, with no virtual rows and no
    /// event key. Names are checked against Emulab's rules and the path must
    /// be absolute. Fails with [`StoreError::ExperimentExists`] if the
    /// pid/eid is taken.
    fn create_experiment(&self, new: &NewExperiment) -> Result<Experiment, StoreError>;

    /// One experiment's row.
    fn experiment(&self, id: &ExperimentId) -> Result<Experiment, StoreError>;

    /// Every experiment, ordered by pid then eid.
    fn list_experiments(&self) -> Result<Vec<Experiment>, StoreError>;

    /// Deletes an experiment with all its virtual rows and its physical
    /// reservations. The store does not police the life cycle: the caller
    /// decides whether deleting an active experiment is allowed.
    fn delete_experiment(&self, id: &ExperimentId) -> Result<(), StoreError>;

    /// The experiment's current state.
    fn state(&self, id: &ExperimentId) -> Result<ExperimentState, StoreError>;

    /// Sets the experiment's state. Any state may follow any other: the
    /// transition rules belong to the control plane.
    fn set_state(&self, id: &ExperimentId, state: ExperimentState) -> Result<(), StoreError>;

    /// Records the experiment's HMAC event key (`experiments.eventkey`).
    /// The key must be 1 to 64 printable ASCII characters without spaces;
    /// [`crate::generate_event_key`] makes a fresh one.
    fn set_event_key(&self, id: &ExperimentId, key: &str) -> Result<(), StoreError>;

    // ----- virtual experiment -----

    /// Replaces every virtual row of the experiment (`virt_nodes`,
    /// `virt_lans`, `virt_agents`, `virt_programs`, `virt_trafgens`,
    /// `event_groups`, `eventlist`) with `virt`, atomically: on any error
    /// (an unknown object or event type name, a duplicate row, a negative
    /// event time) nothing is changed. Events get `idx` 1, 2, 3, ... in
    /// `virt.events` order.
    fn load_virtual(&self, id: &ExperimentId, virt: &VirtualExperiment) -> Result<(), StoreError>;

    /// Reads the virtual experiment back, every list in the order it was
    /// loaded (events in `idx` order, not time order).
    fn virtual_experiment(&self, id: &ExperimentId) -> Result<VirtualExperiment, StoreError>;

    // ----- physical mapping (swap-in / swap-out) -----

    /// Records the physical nodes assigned at swap-in, replacing any
    /// previous mapping of this experiment: a `reserved` row per
    /// assignment, and the `nodes`, `node_types` and `interfaces` rows that
    /// let the control IP resolve as Emulab resolves it (spec
    /// docs/emulab-model.md §6.3). Each vnode must be a node of the experiment's
    /// virtual topology; a node reserved by another experiment is refused.
    fn record_swapin(
        &self,
        id: &ExperimentId,
        assignments: &[NodeAssignment],
    ) -> Result<(), StoreError>;

    /// The experiment's current physical mapping, ordered by vnode.
    fn physical_mapping(&self, id: &ExperimentId) -> Result<Vec<NodeAssignment>, StoreError>;

    /// Removes the experiment's reservations (and the node rows that only
    /// existed for them).
    fn record_swapout(&self, id: &ExperimentId) -> Result<(), StoreError>;

    // ----- what the scheduler reads -----

    /// The agent table: `virt_agents` joined with the physical mapping.
    /// A mapped vnode gets its `node_id` and the control IP of its
    /// physical host; an unmapped vnode gets `None` for both; `*` agents
    /// keep vnode `*` and get `None` for both (the scheduler addresses them
    /// with HOST `*`). In load order.
    fn agents(&self, id: &ExperimentId) -> Result<Vec<AgentRow>, StoreError>;

    /// Event group membership, in load order.
    fn groups(&self, id: &ExperimentId) -> Result<Vec<GroupRow>, StoreError>;

    /// The static events joined with the type tables, ordered by time and,
    /// for equal times, by `idx` (load order).
    fn events(&self, id: &ExperimentId) -> Result<Vec<EventRow>, StoreError>;

    /// A type table's rows, ordered by index.
    fn type_table(&self, table: TypeTable) -> Result<Vec<TypeEntry>, StoreError>;

    // ----- users and groups (for the control plane) -----

    /// Adds a user. Fails with [`StoreError::UserExists`] if the uid is taken.
    fn create_user(&self, user: &User) -> Result<(), StoreError>;

    /// One user.
    fn user(&self, uid: &str) -> Result<User, StoreError>;

    /// Every user, ordered by uid.
    fn list_users(&self) -> Result<Vec<User>, StoreError>;

    /// Deletes a user and their group memberships.
    fn delete_user(&self, uid: &str) -> Result<(), StoreError>;

    /// Adds a project group. Fails with [`StoreError::GroupExists`] if taken.
    fn create_group(&self, group: &Group) -> Result<(), StoreError>;

    /// One project group.
    fn group(&self, pid: &str, gid: &str) -> Result<Group, StoreError>;

    /// Every group, ordered by pid then gid.
    fn list_groups(&self) -> Result<Vec<Group>, StoreError>;

    /// Deletes a group and its memberships.
    fn delete_group(&self, pid: &str, gid: &str) -> Result<(), StoreError>;

    /// Adds a user to a group, or changes their trust if already a member.
    /// Both the user and the group must exist. Records the approval time.
    fn add_member(&self, membership: &GroupMembership) -> Result<(), StoreError>;

    /// Removes a user from a group.
    fn remove_member(&self, uid: &str, pid: &str, gid: &str) -> Result<(), StoreError>;

    /// A user's memberships, oldest approval first (the order the SSL
    /// XML-RPC server picks the primary Unix group from).
    fn memberships(&self, uid: &str) -> Result<Vec<GroupMembership>, StoreError>;

    /// A group's members, ordered by uid.
    fn group_members(&self, pid: &str, gid: &str) -> Result<Vec<GroupMembership>, StoreError>;
}

impl std::fmt::Debug for dyn ExperimentStore {
    /// Shows where the store lives, so `Box<dyn ExperimentStore>` can appear
    /// in callers' `Debug` output.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExperimentStore")
            .field("location", &self.location())
            .finish_non_exhaustive()
    }
}
