//! `clusterm.Manager`: the embedded engine (memory or redb store) with the client's
//! operations, driven by Python pushes and discovery sources when given.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use cluster_core as core;
use cluster_core::store::EventQuery;
use cluster_core::{InventoryStore, JobId, ManagerConfig, MembershipEvent};
use pyo3::exceptions::PyTimeoutError;
use pyo3::prelude::*;

use crate::errors::core as err;
use crate::json::{self, Json};
use crate::logs::{self, EventStream, LogStream};
use crate::plugins::{PyDiscovery, PyPush};
use crate::request::{self, Names};
use crate::types::{Cluster, Job, Member, MembershipKind, Node, NodeEvent, NodeStatus};
use crate::{block, inventory};

/// The embedded clusterm engine.
#[pyclass(frozen, module = "clusterm")]
pub struct Manager {
    /// Taken out on shutdown, so the store (and its file lock) is released.
    inner: RwLock<Option<core::Manager>>,
}

fn wait_limit(timeout: Option<f64>) -> PyResult<Duration> {
    match timeout {
        None => Ok(Duration::MAX),
        Some(t) => Duration::try_from_secs_f64(t).map_err(|_| {
            pyo3::exceptions::PyValueError::new_err("timeout must be a non-negative number")
        }),
    }
}

impl Manager {
    /// The engine, or ShutdownError once shut down.
    fn engine(&self) -> PyResult<core::Manager> {
        self.inner
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or_else(|| err(core::Error::Shutdown))
    }

    fn run(
        &self,
        py: Python<'_>,
        kind: core::JobKind,
        req: core::manager::Request,
    ) -> PyResult<u64> {
        let m = self.engine()?;
        let id = block(py, async move {
            match kind {
                core::JobKind::Commission => m.commission(req).await,
                core::JobKind::Upgrade => m.upgrade(req).await,
                _ => m.decommission(req).await,
            }
        })?
        .map_err(err)?;
        Ok(id.0)
    }
}

#[pymethods]
impl Manager {
    /// Starts an engine on a redb store in `data_dir` (in memory when None), pushing
    /// with `push` (an object with `run(job)`; no-op when None) and discovering with
    /// `discovery` (an object with `members()`). `config` takes the daemon's
    /// `[manager]` settings as a dict; job logs are spilled to `data_dir/logs` unless
    /// it sets `log_dir`.
    #[new]
    #[pyo3(signature = (data_dir = None, *, push = None, discovery = None, config = None))]
    fn new(
        py: Python<'_>,
        data_dir: Option<PathBuf>,
        push: Option<Bound<'_, PyAny>>,
        discovery: Option<Bound<'_, PyAny>>,
        config: Option<Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let given = json::opt_from_py("config", config.as_ref())?;
        let log_dir_given = given.get("log_dir").is_some();
        let mut config: ManagerConfig =
            core::registry::parse_config("manager", given).map_err(err)?;
        if let (Some(dir), false) = (&data_dir, log_dir_given) {
            // Like the daemon: job logs are spilled next to the store.
            let logs = dir.join("logs");
            std::fs::create_dir_all(&logs).map_err(|e| {
                err(core::Error::Config {
                    component: "manager".into(),
                    message: format!("cannot create {}: {e}", logs.display()),
                })
            })?;
            config.log_dir = Some(logs);
        }
        let push = push.as_ref().map(PyPush::new).transpose()?;
        let discovery = discovery.as_ref().map(PyDiscovery::new).transpose()?;
        let started = block(py, async move {
            let store: Arc<dyn InventoryStore> = match data_dir {
                None => Arc::new(core::MemoryStore::new()),
                Some(dir) => {
                    let opened =
                        tokio::task::spawn_blocking(move || core::store::RedbStore::open(dir))
                            .await
                            .map_err(core::Error::store)??;
                    Arc::new(opened)
                }
            };
            let mut b = core::Manager::builder(store).config(config);
            if let Some(p) = push {
                b = b.push(Arc::new(p));
            }
            if let Some(d) = discovery {
                b = b.discovery(Arc::new(d));
            }
            b.start().await
        })?;
        Ok(Manager {
            inner: RwLock::new(Some(started.map_err(err)?)),
        })
    }

    /// Every node (only those in `status` when given), ordered by name.
    #[pyo3(signature = (status = None))]
    fn nodes(&self, status: Option<NodeStatus>) -> PyResult<Vec<Node>> {
        let want = status.map(core::NodeStatus::from);
        let mut nodes = Vec::new();
        self.engine()?.for_each_node(|n| {
            if want.is_none_or(|s| s == n.status) {
                nodes.push(Node(n.clone()));
            }
        });
        Ok(nodes)
    }

    /// One node; raises NotFound.
    fn node(&self, name: &str) -> PyResult<Node> {
        self.engine()?.node(name).map(Node).map_err(err)
    }

    /// A page of the audit log: one node's (when `node` is given) or everyone's.
    #[pyo3(signature = (node = None, after = 0, limit = 1000))]
    fn events(
        &self,
        py: Python<'_>,
        node: Option<String>,
        after: u64,
        limit: usize,
    ) -> PyResult<Vec<NodeEvent>> {
        let q = EventQuery { node, after, limit };
        let m = self.engine()?;
        let events = block(py, async move { m.events(q).await })?.map_err(err)?;
        Ok(events.into_iter().map(NodeEvent).collect())
    }

    /// A page of one node's audit log; raises NotFound.
    #[pyo3(signature = (name, after = 0, limit = 1000))]
    fn node_events(
        &self,
        py: Python<'_>,
        name: String,
        after: u64,
        limit: usize,
    ) -> PyResult<Vec<NodeEvent>> {
        self.events(py, Some(name), after, limit)
    }

    /// Commissions one node (str) or many (list) under `host_group`; returns the job id.
    #[pyo3(signature = (nodes, host_group = None, extra_vars = None))]
    fn commission(
        &self,
        py: Python<'_>,
        nodes: &Bound<'_, PyAny>,
        host_group: Option<String>,
        extra_vars: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<u64> {
        let (req, _) = request::lifecycle(nodes, host_group, extra_vars, None, None)?;
        self.run(py, core::JobKind::Commission, req)
    }

    /// Decommissions one node or many; returns the job id.
    #[pyo3(signature = (nodes, extra_vars = None))]
    fn decommission(
        &self,
        py: Python<'_>,
        nodes: &Bound<'_, PyAny>,
        extra_vars: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<u64> {
        let (req, _) = request::lifecycle(nodes, None, extra_vars, None, None)?;
        self.run(py, core::JobKind::Decommission, req)
    }

    /// Upgrades one node or many, rolling in batches of `batch_size` when given;
    /// returns the job id.
    #[pyo3(signature = (nodes, host_group = None, extra_vars = None, batch_size = None, max_failures = None))]
    fn upgrade(
        &self,
        py: Python<'_>,
        nodes: &Bound<'_, PyAny>,
        host_group: Option<String>,
        extra_vars: Option<&Bound<'_, PyAny>>,
        batch_size: Option<usize>,
        max_failures: Option<usize>,
    ) -> PyResult<u64> {
        let (req, _) = request::lifecycle(nodes, host_group, extra_vars, batch_size, max_failures)?;
        self.run(py, core::JobKind::Upgrade, req)
    }

    /// Enrolls hosts by address (they enter as New); returns the job id.
    #[pyo3(signature = (addrs, extra_vars = None))]
    fn discover(
        &self,
        py: Python<'_>,
        addrs: &Bound<'_, PyAny>,
        extra_vars: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<u64> {
        let addrs = Names::extract(addrs)?.into_vec();
        let vars = json::opt_from_py("extra_vars", extra_vars)?;
        let m = self.engine()?;
        let id = block(py, async move { m.discover(addrs, vars).await })?.map_err(err)?;
        Ok(id.0)
    }

    /// The cluster-wide extra vars.
    fn globals(&self) -> PyResult<Json> {
        Ok(Json(self.engine()?.globals()))
    }

    /// Replaces the cluster-wide extra vars (a dict).
    fn set_globals(&self, py: Python<'_>, globals: &Bound<'_, PyAny>) -> PyResult<()> {
        let v = json::from_py("globals", globals)?;
        let m = self.engine()?;
        block(py, async move { m.set_globals(v).await })?.map_err(err)
    }

    /// Replaces one node's own extra vars (a dict); returns the node.
    fn set_node_vars(
        &self,
        py: Python<'_>,
        name: String,
        vars: &Bound<'_, PyAny>,
    ) -> PyResult<Node> {
        let v = json::from_py("vars", vars)?;
        let m = self.engine()?;
        block(py, async move { m.set_node_vars(&name, v).await })?
            .map(Node)
            .map_err(err)
    }

    /// Every job, in id order.
    fn jobs(&self, py: Python<'_>) -> PyResult<Vec<Job>> {
        let m = self.engine()?;
        let jobs = block(py, async move { m.jobs().await })?.map_err(err)?;
        Ok(jobs.into_iter().map(Job).collect())
    }

    /// One job; raises NotFound.
    fn job(&self, py: Python<'_>, id: u64) -> PyResult<Job> {
        let m = self.engine()?;
        block(py, async move { m.job(JobId(id)).await })?
            .map(Job)
            .map_err(err)
    }

    /// The oldest running job, if any.
    fn active_job(&self, py: Python<'_>) -> PyResult<Option<Job>> {
        let m = self.engine()?;
        Ok(block(py, async move { m.active_job().await })?
            .map_err(err)?
            .map(Job))
    }

    /// The most recent job, if any.
    fn last_job(&self, py: Python<'_>) -> PyResult<Option<Job>> {
        let m = self.engine()?;
        Ok(block(py, async move { m.last_job().await })?
            .map_err(err)?
            .map(Job))
    }

    /// The job's log lines; with `follow`, waits for new lines until the job ends.
    #[pyo3(signature = (id, follow = false))]
    fn job_logs(&self, py: Python<'_>, id: u64, follow: bool) -> PyResult<LogStream> {
        let m = self.engine()?;
        match m.job_log(JobId(id)) {
            Some(log) => Ok(LogStream::new(logs::local(log, follow))),
            None => {
                // A finished job no longer in memory: its spill file, if one was kept.
                self.job(py, id)?;
                let spill = m
                    .config()
                    .log_dir
                    .as_ref()
                    .map(|d| d.join(format!("job-{id}.log")));
                Ok(LogStream::new(logs::spilled(spill)))
            }
        }
    }

    /// The audit log as it grows, from sequence `after` (an endless iterator, also
    /// async), one node's when `node` is given.
    #[pyo3(signature = (after = 0, node = None))]
    fn watch_events(&self, after: u64, node: Option<String>) -> PyResult<EventStream> {
        let m = self.engine()?;
        if let Some(n) = &node {
            m.node(n).map_err(err)?;
        }
        Ok(EventStream::new(logs::local_events(m, after, node)))
    }

    /// Waits until the job has finished (at most `timeout` seconds) and returns it.
    #[pyo3(signature = (id, timeout = None))]
    fn wait_job(&self, py: Python<'_>, id: u64, timeout: Option<f64>) -> PyResult<Job> {
        let limit = wait_limit(timeout)?;
        let m = self.engine()?;
        let done = block(py, async move {
            tokio::time::timeout(limit, m.wait_job(JobId(id))).await
        })?
        .map_err(|_| PyTimeoutError::new_err(format!("job {id} still running")))?;
        done.map(Job).map_err(err)
    }

    /// Cancels a running job; its nodes go to Failed.
    fn cancel(&self, py: Python<'_>, id: u64) -> PyResult<()> {
        let m = self.engine()?;
        block(py, async move { m.cancel(JobId(id)).await })?.map_err(err)
    }

    /// The cluster record.
    fn cluster(&self) -> PyResult<Cluster> {
        Ok(Cluster(self.engine()?.cluster()))
    }

    /// Feeds one discovery event (applied in the next group commit; see `settle`).
    fn membership(&self, kind: MembershipKind, member: Member) -> PyResult<()> {
        self.engine()?
            .membership(MembershipEvent {
                kind: kind.into(),
                member: member.0,
            })
            .map_err(err)
    }

    /// Waits until every membership event fed so far is committed.
    fn settle(&self, py: Python<'_>) -> PyResult<()> {
        let m = self.engine()?;
        block(py, async move { m.settle().await })?.map_err(err)
    }

    /// The nodes as an Ansible dynamic inventory (`--list` JSON).
    fn ansible_inventory(&self) -> PyResult<Json> {
        let m = self.engine()?;
        Ok(Json(inventory::list(&m.nodes(), &m.globals())))
    }

    /// Stops the engine: running jobs are cancelled and recorded, the store is closed
    /// and every later call raises ShutdownError. Calling it again does nothing.
    fn shutdown(&self, py: Python<'_>) -> PyResult<()> {
        let taken = self.inner.write().unwrap_or_else(|p| p.into_inner()).take();
        match taken {
            Some(m) => block(py, async move { m.shutdown().await }),
            None => Ok(()),
        }
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __exit__(
        &self,
        py: Python<'_>,
        _exc_type: Option<&Bound<'_, PyAny>>,
        _exc: Option<&Bound<'_, PyAny>>,
        _tb: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<bool> {
        self.shutdown(py)?;
        Ok(false)
    }

    fn __repr__(&self) -> String {
        match &*self.inner.read().unwrap_or_else(|p| p.into_inner()) {
            Some(m) => format!("{m:?}"),
            None => "Manager(shut down)".into(),
        }
    }
}

impl Drop for Manager {
    /// A manager dropped without `shutdown()` still stops its loops and closes its store
    /// (in the background), so the data directory can be opened again.
    fn drop(&mut self) {
        let taken = self
            .inner
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(m) = taken {
            crate::runtime().spawn(async move { m.shutdown().await });
        }
    }
}

/// Adds the class to the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Manager>()
}
