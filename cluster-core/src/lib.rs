//! `cluster-core`: the node model and lifecycle table, the component traits
//! ([`Discovery`], [`InventoryStore`], [`ConfigPush`], [`ClusterBackend`]), the
//! in-memory and embedded durable stores, the [`Manager`] engine and the plugin registry.
//!
//! Everything that talks to the outside world (Serf, Ansible, Docker, ...) lives in its
//! own crate behind these traits; this crate holds the rules and the bookkeeping.

#![warn(missing_docs)]

#[cfg(feature = "http")]
pub mod api;
pub mod backend;
pub mod cluster;
pub mod discovery;
pub mod error;
pub mod event;
pub mod fsm;
pub mod job;
pub mod manager;
pub mod node;
pub mod push;
pub mod registry;
pub mod store;
#[cfg(feature = "testkit")]
pub mod testkit;
pub mod vars;

pub use backend::{BackendMember, BackendNode, ClusterBackend};
pub use cluster::{Cluster, ClusterState};
pub use discovery::{Discovery, MembershipStream};
pub use error::{Error, Result};
pub use event::{EventKind, MembershipEvent, MembershipKind, NodeEvent};
pub use fsm::{Action, IllegalTransition};
pub use job::{
    HostResult, HostSpec, Job, JobId, JobKind, JobReport, JobSpec, JobStatus, PushAction, Rolling,
};
pub use manager::{Manager, ManagerConfig};
pub use node::{
    HostGroup, HostGroups, Member, MemberStatus, Node, NodeStatus, Reachability, Role, Timestamp,
};
pub use push::{ConfigPush, JobLog, LogSink, NoopPush};
pub use store::{Batch, EventQuery, Expect, InventoryStore, MemoryStore};

/// Re-exported so implementations can register without naming the crate themselves.
pub use inventory;
