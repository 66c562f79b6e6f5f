//! In-memory `InventoryStore`: the same semantics as the durable stores, nothing
//! survives the process. For tests and embedding.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;
use serde_json::Value;

use super::{Applied, Batch, EventQuery, InventoryStore};
use crate::cluster::Cluster;
use crate::error::Result;
use crate::event::NodeEvent;
use crate::job::{Job, JobId};
use crate::node::Node;

#[derive(Debug, Default)]
struct Inner {
    revision: u64,
    nodes: BTreeMap<String, Node>,
    events: Vec<NodeEvent>,
    jobs: BTreeMap<JobId, Job>,
    globals: Option<Value>,
    cluster: Option<Cluster>,
}

/// An `InventoryStore` held in process memory.
#[derive(Debug, Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        MemoryStore::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave a half-applied batch (batches are
        // checked before anything is written), so the data is still consistent.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl InventoryStore for MemoryStore {
    fn name(&self) -> &str {
        "memory"
    }

    async fn apply(&self, batch: Batch) -> Result<Applied> {
        let mut inner = self.lock();
        for (node, expect) in &batch.nodes {
            let stored = inner.nodes.get(&node.name).map_or(0, |n| n.revision);
            expect.check(&node.name, stored)?;
        }
        for (name, expect) in &batch.removals {
            let stored = inner.nodes.get(name).map_or(0, |n| n.revision);
            expect.check(name, stored)?;
        }
        inner.revision += 1;
        let revision = inner.revision;
        for (name, _) in &batch.removals {
            inner.nodes.remove(name);
        }
        for (mut node, _) in batch.nodes {
            node.revision = revision;
            inner.nodes.insert(node.name.clone(), node);
        }
        for mut event in batch.events {
            event.seq = inner.events.len() as u64 + 1;
            inner.events.push(event);
        }
        for job in batch.jobs {
            inner.jobs.insert(job.id, job);
        }
        if let Some(g) = batch.globals {
            inner.globals = Some(g);
        }
        if let Some(c) = batch.cluster {
            inner.cluster = Some(c);
        }
        Ok(Applied {
            revision,
            last_event: inner.events.len() as u64,
        })
    }

    async fn get_node(&self, name: &str) -> Result<Option<Node>> {
        Ok(self.lock().nodes.get(name).cloned())
    }

    async fn list_nodes(&self) -> Result<Vec<Node>> {
        Ok(self.lock().nodes.values().cloned().collect())
    }

    async fn events(&self, q: EventQuery) -> Result<Vec<NodeEvent>> {
        let inner = self.lock();
        let start = (q.after as usize).min(inner.events.len());
        Ok(inner.events[start..]
            .iter()
            .filter(|e| q.node.as_deref().is_none_or(|n| e.node == n))
            .take(q.limit)
            .cloned()
            .collect())
    }

    async fn globals(&self) -> Result<Value> {
        Ok(self
            .lock()
            .globals
            .clone()
            .unwrap_or_else(crate::node::empty_object))
    }

    async fn get_job(&self, id: JobId) -> Result<Option<Job>> {
        Ok(self.lock().jobs.get(&id).cloned())
    }

    async fn list_jobs(&self, after: Option<JobId>, limit: usize) -> Result<Vec<Job>> {
        let inner = self.lock();
        let from = after.map_or(std::ops::Bound::Unbounded, std::ops::Bound::Excluded);
        Ok(inner
            .jobs
            .range((from, std::ops::Bound::Unbounded))
            .take(limit)
            .map(|(_, j)| j.clone())
            .collect())
    }

    async fn cluster(&self) -> Result<Option<Cluster>> {
        Ok(self.lock().cluster.clone())
    }
}
