//! The write path: a [`Changes`] set is built from the committed view, checked against
//! the lifecycle table, committed as one store batch, and only then copied into the
//! in-memory view. Nothing else writes the inventory.

use std::collections::{BTreeMap, HashMap};

use serde_json::Value;

use super::{Inner, read, write};
use crate::cluster::Cluster;
use crate::error::Result;
use crate::event::{EventKind, NodeEvent};
use crate::fsm::{self, Action, ClusterAction};
use crate::job::{Job, JobId};
use crate::node::{Node, Timestamp};
use crate::store::{Batch, Expect};

/// What only the holder of the write lock may read or change.
#[derive(Debug, Default)]
pub(super) struct WriteState {
    /// Nodes held by a running job.
    pub busy: HashMap<String, JobId>,
    /// The id the next job gets.
    pub next_job: u64,
    /// The newest job id handed out.
    pub last_job: Option<JobId>,
}

impl WriteState {
    /// Allocates a job id.
    pub fn allocate_job(&mut self) -> JobId {
        self.next_job = self.next_job.max(1);
        let id = JobId(self.next_job);
        self.next_job += 1;
        self.last_job = Some(id);
        id
    }

    /// Releases the nodes `job` holds.
    pub fn release(&mut self, job: JobId, nodes: &[String]) {
        for n in nodes {
            if self.busy.get(n) == Some(&job) {
                self.busy.remove(n);
            }
        }
    }
}

/// A set of changes to commit atomically.
#[derive(Debug)]
pub(super) struct Changes {
    pub now: Timestamp,
    /// Final node records, each with the condition from when it was first read.
    nodes: BTreeMap<String, (Expect, Node)>,
    removed: BTreeMap<String, Expect>,
    events: Vec<NodeEvent>,
    jobs: Vec<Job>,
    cluster: Option<Cluster>,
    globals: Option<Value>,
}

impl Changes {
    pub fn new() -> Self {
        Changes {
            now: chrono::Utc::now(),
            nodes: BTreeMap::new(),
            removed: BTreeMap::new(),
            events: Vec::new(),
            jobs: Vec::new(),
            cluster: None,
            globals: None,
        }
    }

    /// The latest version of `name`: this change set's, else the committed one.
    pub fn node(&self, inner: &Inner, name: &str) -> Option<Node> {
        if self.removed.contains_key(name) {
            return None;
        }
        match self.nodes.get(name) {
            Some((_, n)) => Some(n.clone()),
            None => read(&inner.nodes).get(name).cloned(),
        }
    }

    /// Stages `node`; the store must still hold the revision it was first read at.
    pub fn put(&mut self, inner: &Inner, mut node: Node) {
        node.updated_at = self.now;
        if let Some((_, staged)) = self.nodes.get_mut(&node.name) {
            *staged = node;
            return;
        }
        let expect = read(&inner.nodes)
            .get(&node.name)
            .map_or(Expect::Absent, Expect::read_at);
        self.nodes.insert(node.name.clone(), (expect, node));
    }

    /// Stages the deletion of a committed node.
    pub fn remove(&mut self, inner: &Inner, name: &str) {
        self.nodes.remove(name);
        if let Some(node) = read(&inner.nodes).get(name) {
            self.removed.insert(name.to_owned(), Expect::read_at(node));
        }
    }

    /// Records an audit event.
    pub fn event(
        &mut self,
        node: &str,
        kind: EventKind,
        from: impl Into<String>,
        to: impl Into<String>,
        cause: impl Into<String>,
        job: Option<JobId>,
    ) {
        self.events.push(NodeEvent {
            seq: 0,
            node: node.to_owned(),
            at: self.now,
            kind,
            from: from.into(),
            to: to.into(),
            cause: cause.into(),
            job,
        });
    }

    /// Applies a lifecycle action to the latest version of `node` and stages the
    /// result with its audit record; a move the table refuses stages nothing.
    pub fn transition(
        &mut self,
        inner: &Inner,
        node: &str,
        action: Action,
        cause: &str,
        job: Option<JobId>,
    ) -> Result<Node> {
        let current = self
            .node(inner, node)
            .ok_or_else(|| crate::Error::NodeNotFound { node: node.into() })?;
        let to = fsm::next(node, current.status, action)?;
        let mut next = current.clone();
        next.status = to;
        next.error = match action {
            Action::Fail | Action::VerifyFailed => Some(cause.to_owned()),
            Action::Succeed => None,
            _ => current.error.clone(),
        };
        if job.is_some() {
            next.last_job = job;
        }
        self.event(
            node,
            EventKind::Status,
            current.status.as_str(),
            to.as_str(),
            cause,
            job,
        );
        self.put(inner, next.clone());
        Ok(next)
    }

    /// Stages a job record.
    pub fn job(&mut self, job: Job) {
        self.jobs.push(job);
    }

    /// Moves the cluster record (the latest staged or committed one) by `action`;
    /// returns whether the table allowed it.
    pub fn cluster_step(&mut self, inner: &Inner, action: ClusterAction) -> bool {
        let mut cluster = self.cluster(inner);
        match fsm::cluster_step(cluster.state, action) {
            Some(state) => {
                cluster.state = state;
                cluster.updated_at = self.now;
                self.cluster = Some(cluster);
                true
            }
            None => false,
        }
    }

    /// The latest cluster record.
    pub fn cluster(&self, inner: &Inner) -> Cluster {
        self.cluster
            .clone()
            .unwrap_or_else(|| read(&inner.cluster).clone())
    }

    /// Stages a replaced cluster record.
    pub fn set_cluster(&mut self, cluster: Cluster) {
        self.cluster = Some(cluster);
    }

    /// Stages new globals.
    pub fn set_globals(&mut self, vars: Value) {
        self.globals = Some(vars);
    }

    /// Staged node versions (name -> node).
    pub fn staged(&self) -> impl Iterator<Item = &Node> {
        self.nodes.values().map(|(_, n)| n)
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
            && self.removed.is_empty()
            && self.events.is_empty()
            && self.jobs.is_empty()
            && self.cluster.is_none()
            && self.globals.is_none()
    }
}

impl Inner {
    /// Commits `changes` durably, then publishes them to the read side. The caller
    /// holds the write lock (`_ws` proves it), so the read side cannot move meanwhile.
    pub(super) async fn commit(&self, _ws: &mut WriteState, changes: Changes) -> Result<()> {
        if changes.is_empty() {
            return Ok(());
        }
        let mut batch = Batch::new();
        let mut published = Vec::with_capacity(changes.nodes.len());
        for (_, (expect, node)) in changes.nodes {
            published.push(node.clone());
            batch.put_node(node, expect);
        }
        batch.removals = changes.removed.into_iter().collect();
        let removed: Vec<String> = batch.removals.iter().map(|(n, _)| n.clone()).collect();
        batch.events = changes.events;
        batch.jobs = changes.jobs;
        batch.cluster = changes.cluster.clone();
        batch.globals = changes.globals.clone();
        let appended = !batch.events.is_empty();
        let applied = self.store.apply(batch).await?;

        let mut nodes = write(&self.nodes);
        for name in removed {
            nodes.remove(&name);
        }
        for mut node in published {
            node.revision = applied.revision;
            nodes.insert(node.name.clone(), node);
        }
        drop(nodes);
        if let Some(c) = changes.cluster {
            *write(&self.cluster) = c;
        }
        if let Some(g) = changes.globals {
            *write(&self.globals) = g;
        }
        if appended {
            self.event_seq.send_replace(applied.last_event);
        }
        Ok(())
    }
}
