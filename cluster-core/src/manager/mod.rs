//! The manager engine (design.md section 4): validates requests against the lifecycle
//! table, commits every change durably before acknowledging it, runs one job per node
//! (jobs on disjoint nodes run concurrently) and folds discovery events into the
//! inventory in group commits.
//!
//! The manager owns the only writable view of the inventory: every write goes through
//! [`commit`], under one async lock, so reads of the in-memory cache never see a change
//! the store has not made durable.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::backend::ClusterBackend;
use crate::cluster::Cluster;
use crate::discovery::Discovery;
use crate::error::{Error, Result};
use crate::event::{MembershipEvent, NodeEvent};
use crate::job::{Job, JobId, Rolling};
use crate::node::{HostGroup, HostGroups, Node};
use crate::push::{ConfigPush, JobLog, NoopPush};
use crate::store::{EventQuery, InventoryStore};

mod commit;
mod jobs;
mod membership;
mod requests;
mod runners;
mod steps;

use commit::WriteState;
use jobs::JobTable;

/// What to do with a node that came back and failed verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Remediation {
    /// Provision it again (it goes back through `Commissioning`).
    #[default]
    Reprovision,
    /// Mark it `Failed` and leave it to an operator.
    MarkFailed,
    /// Only record the outcome.
    None,
}

/// Commissions newly discovered nodes whose tag matches, under a host group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AutoCommission {
    /// Discovery tag to look at (e.g. `role`).
    pub tag: String,
    /// Value the tag must have; any value when absent.
    #[serde(default)]
    pub value: Option<String>,
    /// Host group the matching nodes are commissioned under.
    pub host_group: HostGroup,
}

impl AutoCommission {
    /// Whether a node with these tags matches the rule.
    pub fn matches(&self, tags: &BTreeMap<String, String>) -> bool {
        match (tags.get(&self.tag), &self.value) {
            (Some(v), Some(want)) => v == want,
            (Some(_), None) => true,
            (None, _) => false,
        }
    }
}

/// Manager settings; the defaults suit one machine with nothing else configured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ManagerConfig {
    /// Names of the master and worker host groups.
    pub host_groups: HostGroups,
    /// A job running longer than this is stopped and marked `Errored`.
    #[serde(with = "opt_secs")]
    pub job_timeout: Option<Duration>,
    /// Verify nodes that reappear while in service.
    pub verify_on_reappear: bool,
    /// What a failed verification leads to.
    pub remediation: Remediation,
    /// Rules that commission newly discovered nodes by tag (first match wins; none by
    /// default: commissioning is an operator's decision).
    pub auto_commission: Vec<AutoCommission>,
    /// Log lines of a job kept in memory (older ones live in the spill file only).
    pub log_capacity: usize,
    /// Where job logs are spilled whole (`<dir>/job-<id>.log`); none keeps only the ring.
    pub log_dir: Option<PathBuf>,
    /// Finished jobs whose logs stay readable in memory.
    pub logs_kept: usize,
    /// How long a cancelled push may take to stop before it is abandoned.
    #[serde(with = "secs")]
    pub cancel_grace: Duration,
}

impl Default for ManagerConfig {
    fn default() -> Self {
        ManagerConfig {
            host_groups: HostGroups::default(),
            job_timeout: Some(Duration::from_secs(3600)),
            verify_on_reappear: true,
            remediation: Remediation::default(),
            auto_commission: Vec::new(),
            log_capacity: 10_000,
            log_dir: None,
            logs_kept: 64,
            cancel_grace: Duration::from_secs(10),
        }
    }
}

mod secs {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let v = f64::deserialize(d)?;
        Duration::try_from_secs_f64(v).map_err(serde::de::Error::custom)
    }
}

mod opt_secs {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&d.as_secs_f64()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        Option::<f64>::deserialize(d)?
            .map(|v| Duration::try_from_secs_f64(v).map_err(serde::de::Error::custom))
            .transpose()
    }
}

/// A lifecycle request for one or many nodes.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    /// Node names, in the order they should be handled.
    pub nodes: Vec<String>,
    /// Host group to commission under (or to move to on upgrade).
    #[serde(default)]
    pub host_group: Option<HostGroup>,
    /// Request-level extra vars (a JSON object), merged over node vars and globals.
    #[serde(default)]
    pub extra_vars: Value,
    /// Rolling options (upgrades only).
    #[serde(default)]
    pub rolling: Option<Rolling>,
}

impl Request {
    /// A request for `names` with no host group, vars or rolling options.
    pub fn nodes(names: impl IntoIterator<Item = impl Into<String>>) -> Self {
        Request {
            nodes: names.into_iter().map(Into::into).collect(),
            ..Request::default()
        }
    }

    /// Sets the host group.
    pub fn host_group(mut self, group: &str) -> Self {
        self.host_group = Some(group.into());
        self
    }

    /// Sets the request's extra vars.
    pub fn vars(mut self, vars: Value) -> Self {
        self.extra_vars = vars;
        self
    }

    /// Sets rolling options.
    pub fn rolling(mut self, batch_size: usize, max_failures: usize) -> Self {
        self.rolling = Some(Rolling {
            batch_size,
            max_failures,
        });
        self
    }
}

/// Builds a [`Manager`]; only the store is required.
pub struct ManagerBuilder {
    store: Arc<dyn InventoryStore>,
    push: Arc<dyn ConfigPush>,
    backend: Option<Arc<dyn ClusterBackend>>,
    discovery: Option<Arc<dyn Discovery>>,
    config: ManagerConfig,
}

impl ManagerBuilder {
    /// The configuration push (default: [`NoopPush`]).
    pub fn push(mut self, push: Arc<dyn ConfigPush>) -> Self {
        self.push = push;
        self
    }

    /// The clustering backend (default: none, nodes are only configured).
    pub fn backend(mut self, backend: Arc<dyn ClusterBackend>) -> Self {
        self.backend = Some(backend);
        self
    }

    /// The discovery source (default: none, events come through [`Manager::membership`]).
    pub fn discovery(mut self, discovery: Arc<dyn Discovery>) -> Self {
        self.discovery = Some(discovery);
        self
    }

    /// Settings.
    pub fn config(mut self, config: ManagerConfig) -> Self {
        self.config = config;
        self
    }

    /// Loads the inventory, reconciles what a crash left behind, hands the backend the
    /// nodes in service ([`ClusterBackend::restore`]) and starts the loops.
    pub async fn start(self) -> Result<Manager> {
        if self.config.host_groups.master == self.config.host_groups.worker {
            return Err(Error::Config {
                component: "manager".into(),
                message: "master and worker host groups must differ".into(),
            });
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let backend_kind = self.backend.as_ref().map_or("", |b| b.kind()).to_owned();
        let inner = Arc::new(Inner {
            store: self.store,
            push: self.push,
            backend: self.backend,
            discovery: self.discovery,
            config: self.config,
            nodes: RwLock::new(BTreeMap::new()),
            cluster: RwLock::new(Cluster::empty(backend_kind, chrono::Utc::now())),
            globals: RwLock::new(crate::node::empty_object()),
            write: tokio::sync::Mutex::new(WriteState::default()),
            jobs: JobTable::default(),
            membership_tx: tx,
            event_seq: tokio::sync::watch::channel(0).0,
            shutdown: CancellationToken::new(),
            tasks: TaskTracker::new(),
        });
        inner.reconcile().await?;
        inner.restore_backend().await;
        membership::spawn(&inner, rx);
        Ok(Manager { inner })
    }
}

/// State shared by the manager handle, its loops and its jobs.
pub(crate) struct Inner {
    store: Arc<dyn InventoryStore>,
    push: Arc<dyn ConfigPush>,
    backend: Option<Arc<dyn ClusterBackend>>,
    discovery: Option<Arc<dyn Discovery>>,
    config: ManagerConfig,
    /// Committed nodes, the read side; written only by `commit`.
    nodes: RwLock<BTreeMap<String, Node>>,
    cluster: RwLock<Cluster>,
    globals: RwLock<Value>,
    /// Serialises writes; holds what must change atomically with them.
    write: tokio::sync::Mutex<WriteState>,
    jobs: JobTable,
    membership_tx: mpsc::UnboundedSender<membership::Msg>,
    /// Sequence number of the newest audit event committed, for log followers.
    event_seq: tokio::sync::watch::Sender<u64>,
    shutdown: CancellationToken,
    tasks: TaskTracker,
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    // Writers replace whole values after the store committed, so a poisoned lock still
    // guards consistent data.
    lock.read().unwrap_or_else(|p| p.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|p| p.into_inner())
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The engine handle; cheap to clone.
#[derive(Clone)]
pub struct Manager {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Manager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Manager")
            .field("store", &self.inner.store.name())
            .field("push", &self.inner.push.name())
            .field(
                "backend",
                &self.inner.backend.as_ref().map(|b| b.kind().to_owned()),
            )
            .finish()
    }
}

impl Manager {
    /// Starts building a manager on `store`.
    pub fn builder(store: Arc<dyn InventoryStore>) -> ManagerBuilder {
        ManagerBuilder {
            store,
            push: Arc::new(NoopPush),
            backend: None,
            discovery: None,
            config: ManagerConfig::default(),
        }
    }

    /// The settings in force.
    pub fn config(&self) -> &ManagerConfig {
        &self.inner.config
    }

    /// Every node, ordered by name.
    pub fn nodes(&self) -> Vec<Node> {
        read(&self.inner.nodes).values().cloned().collect()
    }

    /// Calls `f` on every node without copying them (for large listings).
    pub fn for_each_node(&self, mut f: impl FnMut(&Node)) {
        read(&self.inner.nodes).values().for_each(&mut f);
    }

    /// Number of nodes.
    pub fn node_count(&self) -> usize {
        read(&self.inner.nodes).len()
    }

    /// One node.
    pub fn node(&self, name: &str) -> Result<Node> {
        read(&self.inner.nodes)
            .get(name)
            .cloned()
            .ok_or_else(|| Error::NodeNotFound { node: name.into() })
    }

    /// The cluster record.
    pub fn cluster(&self) -> Cluster {
        read(&self.inner.cluster).clone()
    }

    /// The globals.
    pub fn globals(&self) -> Value {
        read(&self.inner.globals).clone()
    }

    /// A page of the audit log (one node's or everyone's).
    pub async fn events(&self, query: EventQuery) -> Result<Vec<NodeEvent>> {
        if let Some(node) = &query.node {
            self.node(node)?;
        }
        self.inner.store.events(query).await
    }

    /// Watches the sequence number of the newest committed audit event: it moves after
    /// every commit that appended events, so followers of the log know when to read on.
    pub fn event_seq(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.event_seq.subscribe()
    }

    /// One job.
    pub async fn job(&self, id: JobId) -> Result<Job> {
        self.inner
            .store
            .get_job(id)
            .await?
            .ok_or_else(|| Error::JobNotFound {
                job: id.to_string(),
            })
    }

    /// Every job in id order.
    pub async fn jobs(&self) -> Result<Vec<Job>> {
        self.inner.store.list_jobs(None, usize::MAX).await
    }

    /// The oldest job still running, if any.
    pub async fn active_job(&self) -> Result<Option<Job>> {
        match self.inner.jobs.running_ids().first() {
            Some(id) => self.job(*id).await.map(Some),
            None => Ok(None),
        }
    }

    /// The most recently created job, if any.
    pub async fn last_job(&self) -> Result<Option<Job>> {
        let last = self.inner.write.lock().await.last_job;
        match last {
            Some(id) => self.job(id).await.map(Some),
            None => Ok(None),
        }
    }

    /// The log of a running or recently finished job.
    pub fn job_log(&self, id: JobId) -> Option<Arc<JobLog>> {
        self.inner.jobs.log(id)
    }

    /// Waits until job `id` has finished and returns its record.
    pub async fn wait_job(&self, id: JobId) -> Result<Job> {
        if let Some(mut done) = self.inner.jobs.done_signal(id) {
            // The sender is dropped or set once the final record is committed.
            let _ = done.wait_for(|d| *d).await;
        }
        self.job(id).await
    }

    /// Stops a running job; its nodes go to `Failed` and the job to `Cancelled`.
    pub async fn cancel(&self, id: JobId) -> Result<()> {
        if self.inner.jobs.cancel(id, "cancelled by request") {
            return Ok(());
        }
        let job = self.job(id).await?;
        Err(Error::JobState {
            job: id,
            message: format!("job is {:?}, not running", job.status),
        })
    }

    /// Feeds one discovery event; it is applied in the next group commit.
    pub fn membership(&self, event: MembershipEvent) -> Result<()> {
        self.inner
            .membership_tx
            .send(membership::Msg::Event(event))
            .map_err(|_| Error::Shutdown)
    }

    /// Waits until every membership event fed before this call is committed.
    pub async fn settle(&self) -> Result<()> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.inner
            .membership_tx
            .send(membership::Msg::Settle(tx))
            .map_err(|_| Error::Shutdown)?;
        rx.await.map_err(|_| Error::Shutdown)
    }

    /// Stops the loops, cancels running jobs (their state is recorded) and waits for them.
    pub async fn shutdown(&self) {
        for id in self.inner.jobs.running_ids() {
            self.inner.jobs.cancel(id, "manager shutting down");
        }
        self.inner.shutdown.cancel();
        self.inner.tasks.close();
        self.inner.tasks.wait().await;
    }

    /// Jobs currently holding each busy node.
    pub async fn busy_nodes(&self) -> HashMap<String, JobId> {
        self.inner.write.lock().await.busy.clone()
    }
}
