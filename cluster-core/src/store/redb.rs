//! `RedbStore`: the embedded durable default, one redb file in a data directory.
//!
//! Every [`Batch`] is one redb write transaction committed with immediate durability
//! (fsync before `apply` returns), so an acknowledged batch survives `kill -9` and a
//! batch cut short by a crash is absent as a whole. redb is synchronous; calls run on
//! tokio's blocking pool so the manager's tasks never wait on disk I/O. Records are JSON
//! so the file stays readable across model changes that add defaulted fields.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::{Applied, Batch, EventQuery, InventoryStore};
use crate::cluster::Cluster;
use crate::error::{Error, Result};
use crate::event::NodeEvent;
use crate::job::{Job, JobId};
use crate::node::Node;
use crate::registry::{BuildFuture, StoreFactory};

/// Counters (`revision`, `last_event`).
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// Singletons (`globals`, `cluster`) as JSON.
const STATE: TableDefinition<&str, &[u8]> = TableDefinition::new("state");
/// Node name -> the node's revision (8 bytes, little endian) then its JSON, so
/// compare-and-set checks read the revision without parsing the record.
const NODES: TableDefinition<&str, &[u8]> = TableDefinition::new("nodes");
/// Global log: seq -> event JSON.
const EVENTS: TableDefinition<u64, &[u8]> = TableDefinition::new("events");
/// Per-node index of the log: (node, seq), so one node's history reads without a scan.
const NODE_EVENTS: TableDefinition<(&str, u64), ()> = TableDefinition::new("node_events");
/// Job id -> job JSON.
const JOBS: TableDefinition<u64, &[u8]> = TableDefinition::new("jobs");

/// The file name inside the data directory.
pub const FILE_NAME: &str = "inventory.redb";

/// Configuration of the `redb` registry entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedbConfig {
    /// Data directory (created when missing); the store is one file inside it.
    #[serde(alias = "path", default = "default_dir")]
    pub dir: PathBuf,
    /// Page cache size in MiB; the manager keeps its own copy of every node, so a small
    /// cache is enough and keeps memory per node low.
    #[serde(default = "default_cache_mib")]
    pub cache_mib: usize,
}

impl Default for RedbConfig {
    fn default() -> Self {
        RedbConfig {
            dir: default_dir(),
            cache_mib: default_cache_mib(),
        }
    }
}

fn default_cache_mib() -> usize {
    8
}

fn default_dir() -> PathBuf {
    PathBuf::from("./clusterm-data")
}

/// The embedded durable `InventoryStore`.
#[derive(Clone)]
pub struct RedbStore {
    db: Arc<Database>,
    path: PathBuf,
}

impl std::fmt::Debug for RedbStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedbStore")
            .field("path", &self.path)
            .finish()
    }
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(Error::store)
}

fn from_json<T: DeserializeOwned>(what: &str, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| Error::Store(format!("corrupt {what} record: {e}")))
}

fn encode_node(node: &Node) -> Result<Vec<u8>> {
    let mut buf = node.revision.to_le_bytes().to_vec();
    serde_json::to_writer(&mut buf, node).map_err(Error::store)?;
    Ok(buf)
}

fn split_node(bytes: &[u8]) -> Result<(u64, &[u8])> {
    let (rev, json) = bytes
        .split_first_chunk::<8>()
        .ok_or_else(|| Error::Store("corrupt node record: shorter than its header".into()))?;
    Ok((u64::from_le_bytes(*rev), json))
}

fn decode_node(bytes: &[u8]) -> Result<Node> {
    from_json("node", split_node(bytes)?.1)
}

impl RedbStore {
    /// Opens (or creates) the store in `dir` with default settings.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        Self::from_config(&RedbConfig {
            dir: dir.as_ref().to_owned(),
            ..RedbConfig::default()
        })
    }

    /// Opens (or creates) the store `config` describes; a crash-interrupted file is
    /// repaired here.
    pub fn from_config(config: &RedbConfig) -> Result<Self> {
        let dir = config.dir.as_path();
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::Store(format!("create data dir {}: {e}", dir.display())))?;
        let path = dir.join(FILE_NAME);
        let db = redb::Builder::new()
            .set_cache_size(config.cache_mib << 20)
            .create(&path)
            .map_err(|e| Error::Store(format!("open {}: {e}", path.display())))?;
        // Create every table up front so readers never meet a missing table.
        let txn = db.begin_write().map_err(Error::store)?;
        {
            txn.open_table(META).map_err(Error::store)?;
            txn.open_table(STATE).map_err(Error::store)?;
            txn.open_table(NODES).map_err(Error::store)?;
            txn.open_table(EVENTS).map_err(Error::store)?;
            txn.open_table(NODE_EVENTS).map_err(Error::store)?;
            txn.open_table(JOBS).map_err(Error::store)?;
        }
        txn.commit().map_err(Error::store)?;
        Ok(RedbStore {
            db: Arc::new(db),
            path,
        })
    }

    /// The file the store lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs blocking redb work off the async runtime.
    async fn blocking<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Database) -> Result<T> + Send + 'static,
    {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || f(&db))
            .await
            .map_err(|e| Error::Store(format!("store task failed: {e}")))?
    }

    fn read_state<T: DeserializeOwned>(db: &Database, key: &str) -> Result<Option<T>> {
        let txn = db.begin_read().map_err(Error::store)?;
        let table = txn.open_table(STATE).map_err(Error::store)?;
        let value = table.get(key).map_err(Error::store)?;
        value.map(|v| from_json(key, v.value())).transpose()
    }
}

/// Applies a batch inside one write transaction; nothing is written when a check fails.
fn apply_batch(db: &Database, batch: Batch) -> Result<Applied> {
    let txn = db.begin_write().map_err(Error::store)?;
    let applied = {
        let mut meta = txn.open_table(META).map_err(Error::store)?;
        let mut nodes = txn.open_table(NODES).map_err(Error::store)?;
        let stored_revision = |nodes: &redb::Table<&str, &[u8]>, name: &str| -> Result<u64> {
            match nodes.get(name).map_err(Error::store)? {
                Some(v) => Ok(split_node(v.value())?.0),
                None => Ok(0),
            }
        };
        for (node, expect) in &batch.nodes {
            expect.check(&node.name, stored_revision(&nodes, &node.name)?)?;
        }
        for (name, expect) in &batch.removals {
            expect.check(name, stored_revision(&nodes, name)?)?;
        }

        let revision = meta
            .get("revision")
            .map_err(Error::store)?
            .map_or(0, |v| v.value())
            + 1;
        let mut last_event = meta
            .get("last_event")
            .map_err(Error::store)?
            .map_or(0, |v| v.value());
        meta.insert("revision", revision).map_err(Error::store)?;

        for (name, _) in &batch.removals {
            nodes.remove(name.as_str()).map_err(Error::store)?;
        }
        for (mut node, _) in batch.nodes {
            node.revision = revision;
            nodes
                .insert(node.name.as_str(), encode_node(&node)?.as_slice())
                .map_err(Error::store)?;
        }
        if !batch.events.is_empty() {
            let mut events = txn.open_table(EVENTS).map_err(Error::store)?;
            let mut index = txn.open_table(NODE_EVENTS).map_err(Error::store)?;
            for mut event in batch.events {
                last_event += 1;
                event.seq = last_event;
                events
                    .insert(last_event, to_json(&event)?.as_slice())
                    .map_err(Error::store)?;
                index
                    .insert((event.node.as_str(), last_event), ())
                    .map_err(Error::store)?;
            }
            meta.insert("last_event", last_event)
                .map_err(Error::store)?;
        }
        if !batch.jobs.is_empty() {
            let mut jobs = txn.open_table(JOBS).map_err(Error::store)?;
            for job in batch.jobs {
                jobs.insert(job.id.0, to_json(&job)?.as_slice())
                    .map_err(Error::store)?;
            }
        }
        if batch.globals.is_some() || batch.cluster.is_some() {
            let mut state = txn.open_table(STATE).map_err(Error::store)?;
            if let Some(globals) = &batch.globals {
                state
                    .insert("globals", to_json(globals)?.as_slice())
                    .map_err(Error::store)?;
            }
            if let Some(cluster) = &batch.cluster {
                state
                    .insert("cluster", to_json(cluster)?.as_slice())
                    .map_err(Error::store)?;
            }
        }
        Applied {
            revision,
            last_event,
        }
    };
    // Durability::Immediate is redb's default: commit returns after the fsync.
    txn.commit().map_err(Error::store)?;
    Ok(applied)
}

fn read_events(db: &Database, q: EventQuery) -> Result<Vec<NodeEvent>> {
    let txn = db.begin_read().map_err(Error::store)?;
    let events = txn.open_table(EVENTS).map_err(Error::store)?;
    let Some(from) = q.after.checked_add(1) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    match &q.node {
        None => {
            for entry in events.range(from..).map_err(Error::store)?.take(q.limit) {
                let (_, v) = entry.map_err(Error::store)?;
                out.push(from_json("event", v.value())?);
            }
        }
        Some(node) => {
            let index = txn.open_table(NODE_EVENTS).map_err(Error::store)?;
            let range = index
                .range((node.as_str(), from)..=(node.as_str(), u64::MAX))
                .map_err(Error::store)?;
            for entry in range.take(q.limit) {
                let (key, _) = entry.map_err(Error::store)?;
                let seq = key.value().1;
                let v = events
                    .get(seq)
                    .map_err(Error::store)?
                    .ok_or_else(|| Error::Store(format!("event {seq} indexed but missing")))?;
                out.push(from_json("event", v.value())?);
            }
        }
    }
    Ok(out)
}

#[async_trait]
impl InventoryStore for RedbStore {
    fn name(&self) -> &str {
        "redb"
    }

    async fn apply(&self, batch: Batch) -> Result<Applied> {
        self.blocking(move |db| apply_batch(db, batch)).await
    }

    async fn get_node(&self, name: &str) -> Result<Option<Node>> {
        let name = name.to_owned();
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(Error::store)?;
            let nodes = txn.open_table(NODES).map_err(Error::store)?;
            let v = nodes.get(name.as_str()).map_err(Error::store)?;
            v.map(|v| decode_node(v.value())).transpose()
        })
        .await
    }

    async fn list_nodes(&self) -> Result<Vec<Node>> {
        self.blocking(|db| {
            let txn = db.begin_read().map_err(Error::store)?;
            let nodes = txn.open_table(NODES).map_err(Error::store)?;
            let mut out = Vec::with_capacity(nodes.len().map_err(Error::store)? as usize);
            for entry in nodes.iter().map_err(Error::store)? {
                let (_, v) = entry.map_err(Error::store)?;
                out.push(decode_node(v.value())?);
            }
            Ok(out)
        })
        .await
    }

    async fn events(&self, query: EventQuery) -> Result<Vec<NodeEvent>> {
        self.blocking(move |db| read_events(db, query)).await
    }

    async fn globals(&self) -> Result<Value> {
        self.blocking(|db| {
            Ok(Self::read_state(db, "globals")?.unwrap_or_else(crate::node::empty_object))
        })
        .await
    }

    async fn get_job(&self, id: JobId) -> Result<Option<Job>> {
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(Error::store)?;
            let jobs = txn.open_table(JOBS).map_err(Error::store)?;
            let v = jobs.get(id.0).map_err(Error::store)?;
            v.map(|v| from_json("job", v.value())).transpose()
        })
        .await
    }

    async fn list_jobs(&self, after: Option<JobId>, limit: usize) -> Result<Vec<Job>> {
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(Error::store)?;
            let jobs = txn.open_table(JOBS).map_err(Error::store)?;
            let Some(from) = after.map_or(Some(0), |j| j.0.checked_add(1)) else {
                return Ok(Vec::new());
            };
            let mut out = Vec::new();
            for entry in jobs.range(from..).map_err(Error::store)?.take(limit) {
                let (_, v) = entry.map_err(Error::store)?;
                out.push(from_json("job", v.value())?);
            }
            Ok(out)
        })
        .await
    }

    async fn cluster(&self) -> Result<Option<Cluster>> {
        self.blocking(|db| Self::read_state(db, "cluster")).await
    }
}

fn build_redb(config: Value) -> BuildFuture<dyn InventoryStore> {
    Box::pin(async move {
        let config: RedbConfig = crate::registry::parse_config("redb store", config)?;
        let store = tokio::task::spawn_blocking(move || RedbStore::from_config(&config))
            .await
            .map_err(|e| Error::Store(format!("open task failed: {e}")))??;
        Ok(Arc::new(store) as Arc<dyn InventoryStore>)
    })
}

inventory::submit! { StoreFactory::new("redb", build_redb) }
