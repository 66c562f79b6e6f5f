//! The `InventoryStore` trait and its implementations: in-memory ([`MemoryStore`]) and
//! the embedded durable default on redb ([`RedbStore`]).
//!
//! The trait is shaped after etcd: every commit gets a store-wide revision, node writes
//! compare-and-set on the revision the writer read, and a [`Batch`] is one atomic,
//! durable transaction. Stores keep data; they never apply lifecycle rules.

use async_trait::async_trait;
use serde_json::Value;

use crate::cluster::Cluster;
use crate::error::Result;
use crate::event::NodeEvent;
use crate::job::{Job, JobId};
use crate::node::Node;

pub mod memory;
#[cfg(feature = "redb")]
pub mod redb;

#[cfg(feature = "redb")]
pub use self::redb::RedbStore;
pub use memory::MemoryStore;

/// The condition a node write requires of the stored record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Write whatever is stored.
    Any,
    /// The node must not exist yet.
    Absent,
    /// The stored node must have exactly this revision.
    Revision(u64),
}

impl Expect {
    /// The condition matching a node as it was read: absent when never stored.
    pub fn read_at(node: &Node) -> Self {
        match node.revision {
            0 => Expect::Absent,
            r => Expect::Revision(r),
        }
    }

    /// Checks the condition against the stored revision (0: absent).
    pub fn check(self, node: &str, stored: u64) -> Result<()> {
        let expected = match self {
            Expect::Any => return Ok(()),
            Expect::Absent => 0,
            Expect::Revision(r) => r,
        };
        if expected == stored {
            Ok(())
        } else {
            Err(crate::Error::Conflict {
                node: node.to_owned(),
                expected,
                actual: stored,
            })
        }
    }
}

/// One atomic commit: all of it is applied and durable, or none of it is.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Batch {
    /// Node records to write, each with its compare-and-set condition.
    pub nodes: Vec<(Node, Expect)>,
    /// Node records to delete (by name), each with its compare-and-set condition;
    /// deleting an absent node under `Expect::Any` is a no-op.
    pub removals: Vec<(String, Expect)>,
    /// Audit records to append (their `seq` is assigned by the store).
    pub events: Vec<NodeEvent>,
    /// Job records to insert or replace.
    pub jobs: Vec<Job>,
    /// New globals, if they change.
    pub globals: Option<Value>,
    /// New cluster record, if it changes.
    pub cluster: Option<Cluster>,
}

impl Batch {
    /// An empty batch.
    pub fn new() -> Self {
        Batch::default()
    }

    /// Adds a node write.
    pub fn put_node(&mut self, node: Node, expect: Expect) -> &mut Self {
        self.nodes.push((node, expect));
        self
    }

    /// Adds a node deletion.
    pub fn remove_node(&mut self, name: impl Into<String>, expect: Expect) -> &mut Self {
        self.removals.push((name.into(), expect));
        self
    }

    /// Adds an audit record.
    pub fn event(&mut self, event: NodeEvent) -> &mut Self {
        self.events.push(event);
        self
    }

    /// Adds a job record.
    pub fn job(&mut self, job: Job) -> &mut Self {
        self.jobs.push(job);
        self
    }

    /// Replaces the globals.
    pub fn globals(&mut self, vars: Value) -> &mut Self {
        self.globals = Some(vars);
        self
    }

    /// Replaces the cluster record.
    pub fn cluster(&mut self, cluster: Cluster) -> &mut Self {
        self.cluster = Some(cluster);
        self
    }

    /// Whether the batch writes nothing.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
            && self.removals.is_empty()
            && self.events.is_empty()
            && self.jobs.is_empty()
            && self.globals.is_none()
            && self.cluster.is_none()
    }
}

/// What a successful [`InventoryStore::apply`] assigned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Applied {
    /// The commit's revision; every node written now carries it.
    pub revision: u64,
    /// Sequence number of the last event in the global log after the commit.
    pub last_event: u64,
}

/// A page request on the event log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventQuery {
    /// Only this node's events, or all.
    pub node: Option<String>,
    /// Cursor: events with `seq` greater than this.
    pub after: u64,
    /// At most this many.
    pub limit: usize,
}

impl EventQuery {
    /// Every event of every node after `after`, up to `limit`.
    pub fn all(after: u64, limit: usize) -> Self {
        EventQuery {
            node: None,
            after,
            limit,
        }
    }

    /// One node's events after `after`, up to `limit`.
    pub fn node(node: impl Into<String>, after: u64, limit: usize) -> Self {
        EventQuery {
            node: Some(node.into()),
            after,
            limit,
        }
    }
}

/// Durable inventory: nodes, the audit log, globals, jobs and the cluster record.
#[async_trait]
pub trait InventoryStore: Send + Sync + std::fmt::Debug {
    /// Registry name of the implementation (`memory`, `redb`, ...).
    fn name(&self) -> &str;

    /// Commits `batch` atomically and durably. A failed condition is an
    /// [`crate::Error::Conflict`] and nothing of the batch is applied.
    async fn apply(&self, batch: Batch) -> Result<Applied>;

    /// One node.
    async fn get_node(&self, name: &str) -> Result<Option<Node>>;

    /// Every node, ordered by name.
    async fn list_nodes(&self) -> Result<Vec<Node>>;

    /// A page of the audit log in `seq` order.
    async fn events(&self, query: EventQuery) -> Result<Vec<NodeEvent>>;

    /// The globals (an empty object until set).
    async fn globals(&self) -> Result<Value>;

    /// One job.
    async fn get_job(&self, id: JobId) -> Result<Option<Job>>;

    /// Jobs in id order, those with an id greater than `after`, up to `limit`.
    async fn list_jobs(&self, after: Option<JobId>, limit: usize) -> Result<Vec<Job>>;

    /// The cluster record, once written.
    async fn cluster(&self) -> Result<Option<Cluster>>;
}
