//! `clusterm.Client` (blocking, GIL released while waiting) and `clusterm.AsyncClient`
//! (every call returns an awaitable): the same operations, generated from one list so
//! the two cannot drift apart.

use std::future::Future;
use std::time::Duration;

use pyo3::BoundObject;
use pyo3::exceptions::{PyTimeoutError, PyValueError};
use pyo3::prelude::*;
use serde_json::Value;

use crate::client::{Http, Op};
use crate::json::{self, Json};
use crate::logs::LogStream;
use crate::request::{self, Names};
use crate::types::{Cluster, Job, Node, NodeEvent, NodeStatus};
use crate::{block, inventory};

/// Runs a call to completion on the runtime, GIL released, and converts the result.
fn run_blocking<T>(
    py: Python<'_>,
    fut: impl Future<Output = PyResult<T>> + Send + 'static,
) -> PyResult<Py<PyAny>>
where
    T: for<'py> IntoPyObject<'py> + Send + 'static,
{
    let v = block(py, fut)??;
    v.into_pyobject(py)
        .map(|o| o.into_any().unbind())
        .map_err(Into::into)
}

/// Starts a call on the runtime and returns an asyncio awaitable for its result.
fn run_async<T>(
    py: Python<'_>,
    fut: impl Future<Output = PyResult<T>> + Send + 'static,
) -> PyResult<Py<PyAny>>
where
    T: for<'py> IntoPyObject<'py> + Send + 'static,
{
    pyo3_async_runtimes::tokio::future_into_py(py, fut).map(Bound::unbind)
}

fn seconds(what: &str, secs: f64) -> PyResult<Duration> {
    Duration::try_from_secs_f64(secs)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| {
            PyValueError::new_err(format!("{what} must be a positive number of seconds"))
        })
}

fn wrap<T, W>(items: Vec<T>, f: impl Fn(T) -> W) -> Vec<W> {
    items.into_iter().map(f).collect()
}

macro_rules! client_class {
    ($(#[$doc:meta])* $class:ident, $run:ident) => {
        $(#[$doc])*
        #[pyclass(frozen, module = "clusterm")]
        pub struct $class {
            http: Http,
        }

        #[pymethods]
        impl $class {
            /// A client for the daemon at `url`; `token` is the bearer token when auth
            /// is on; `timeout` bounds each request (seconds).
            #[new]
            #[pyo3(signature = (url, token = None, timeout = 30.0))]
            fn new(url: &str, token: Option<String>, timeout: f64) -> PyResult<Self> {
                Ok($class { http: Http::new(url, token, seconds("timeout", timeout)?)? })
            }

            /// The daemon's base URL.
            #[getter]
            fn url(&self) -> &str {
                self.http.url()
            }

            /// Every node (only those in `status` when given), ordered by name.
            #[pyo3(signature = (status = None))]
            fn nodes(&self, py: Python<'_>, status: Option<NodeStatus>) -> PyResult<Py<PyAny>> {
                let h = self.http.clone();
                $run(py, async move { Ok(wrap(h.nodes(status.map(Into::into)).await?, Node)) })
            }

            /// One node; raises NotFound.
            fn node(&self, py: Python<'_>, name: String) -> PyResult<Py<PyAny>> {
                let h = self.http.clone();
                $run(py, async move { h.node(&name).await.map(Node) })
            }

            /// A page of one node's audit log.
            #[pyo3(signature = (name, after = 0, limit = 1000))]
            fn node_events(&self, py: Python<'_>, name: String, after: u64, limit: usize) -> PyResult<Py<PyAny>> {
                let h = self.http.clone();
                $run(py, async move { Ok(wrap(h.node_events(&name, after, limit).await?, NodeEvent)) })
            }

            /// Commissions one node (str) or many (list) under `host_group`; returns the job id.
            #[pyo3(signature = (nodes, host_group = None, extra_vars = None))]
            fn commission(
                &self,
                py: Python<'_>,
                nodes: &Bound<'_, PyAny>,
                host_group: Option<String>,
                extra_vars: Option<&Bound<'_, PyAny>>,
            ) -> PyResult<Py<PyAny>> {
                self.lifecycle(py, Op::Commission, nodes, host_group, extra_vars, None, None)
            }

            /// Decommissions one node or many; returns the job id.
            #[pyo3(signature = (nodes, extra_vars = None))]
            fn decommission(
                &self,
                py: Python<'_>,
                nodes: &Bound<'_, PyAny>,
                extra_vars: Option<&Bound<'_, PyAny>>,
            ) -> PyResult<Py<PyAny>> {
                self.lifecycle(py, Op::Decommission, nodes, None, extra_vars, None, None)
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
            ) -> PyResult<Py<PyAny>> {
                self.lifecycle(py, Op::Upgrade, nodes, host_group, extra_vars, batch_size, max_failures)
            }

            /// Enrolls hosts by address (they enter as New); returns the job id.
            #[pyo3(signature = (addrs, extra_vars = None))]
            fn discover(&self, py: Python<'_>, addrs: &Bound<'_, PyAny>, extra_vars: Option<&Bound<'_, PyAny>>) -> PyResult<Py<PyAny>> {
                let addrs = Names::extract(addrs)?.into_vec();
                let vars = json::opt_from_py("extra_vars", extra_vars)?;
                let h = self.http.clone();
                $run(py, async move { h.discover(addrs, vars).await })
            }

            /// The cluster-wide extra vars.
            fn globals(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
                let h = self.http.clone();
                $run(py, async move { h.globals().await.map(Json) })
            }

            /// Replaces the cluster-wide extra vars (a dict).
            fn set_globals(&self, py: Python<'_>, globals: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
                let v = json::from_py("globals", globals)?;
                let h = self.http.clone();
                $run(py, async move { h.set_globals(v).await.map(|_| Json(Value::Null)) })
            }

            /// Every job, in id order.
            fn jobs(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
                let h = self.http.clone();
                $run(py, async move { Ok(wrap(h.jobs().await?, Job)) })
            }

            /// One job; raises NotFound.
            fn job(&self, py: Python<'_>, id: u64) -> PyResult<Py<PyAny>> {
                let h = self.http.clone();
                $run(py, async move { h.job(&id.to_string()).await.map(Job) })
            }

            /// The oldest running job, if any.
            fn active_job(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
                let h = self.http.clone();
                $run(py, async move { Ok(h.job_opt("active").await?.map(Job)) })
            }

            /// The most recent job, if any.
            fn last_job(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
                let h = self.http.clone();
                $run(py, async move { Ok(h.job_opt("last").await?.map(Job)) })
            }

            /// The job's log lines (an iterator, also async); with `follow`, new lines
            /// arrive until the job ends.
            #[pyo3(signature = (id, follow = false))]
            fn job_logs(&self, id: u64, follow: bool) -> LogStream {
                LogStream::new(self.http.job_logs(id, follow))
            }

            /// Waits until the job has finished (at most `timeout` seconds) and returns it.
            #[pyo3(signature = (id, timeout = None))]
            fn wait_job(&self, py: Python<'_>, id: u64, timeout: Option<f64>) -> PyResult<Py<PyAny>> {
                let limit = timeout.map(|t| seconds("timeout", t)).transpose()?.unwrap_or(Duration::MAX);
                let h = self.http.clone();
                $run(py, async move {
                    match tokio::time::timeout(limit, h.wait_job(id)).await {
                        Ok(job) => job.map(Job),
                        Err(_) => Err(PyTimeoutError::new_err(format!("job {id} still running"))),
                    }
                })
            }

            /// Cancels a running job; its nodes go to Failed.
            fn cancel(&self, py: Python<'_>, id: u64) -> PyResult<Py<PyAny>> {
                let h = self.http.clone();
                $run(py, async move { h.cancel(id).await.map(|()| Json(Value::Null)) })
            }

            /// The cluster record.
            fn cluster(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
                let h = self.http.clone();
                $run(py, async move { h.cluster().await.map(Cluster) })
            }

            /// The nodes as an Ansible dynamic inventory (`--list` JSON as a dict).
            fn ansible_inventory(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
                let h = self.http.clone();
                $run(py, async move {
                    let (nodes, globals) = futures::try_join!(h.nodes(None), h.globals())?;
                    Ok(Json(inventory::list(&nodes, &globals)))
                })
            }

            /// The audit log as it grows, from sequence `after` (an endless iterator, also async).
            #[pyo3(signature = (after = 0, node = None))]
            fn watch_events(&self, after: u64, node: Option<String>) -> crate::logs::EventStream {
                crate::logs::EventStream::new(self.http.watch_events(after, node))
            }

            fn __repr__(&self) -> String {
                format!("{}(url={:?})", stringify!($class), self.http.url())
            }
        }

        impl $class {
            #[allow(clippy::too_many_arguments)]
            fn lifecycle(
                &self,
                py: Python<'_>,
                op: Op,
                nodes: &Bound<'_, PyAny>,
                host_group: Option<String>,
                extra_vars: Option<&Bound<'_, PyAny>>,
                batch_size: Option<usize>,
                max_failures: Option<usize>,
            ) -> PyResult<Py<PyAny>> {
                let (req, batch) = request::lifecycle(nodes, host_group, extra_vars, batch_size, max_failures)?;
                let h = self.http.clone();
                $run(py, async move { h.lifecycle(op, req, batch).await })
            }
        }
    };
}

client_class!(
    /// A blocking client of the clusterm REST API v1.
    Client,
    run_blocking
);
client_class!(
    /// An asyncio client of the clusterm REST API v1: every call returns an awaitable.
    AsyncClient,
    run_async
);

/// Adds the classes to the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Client>()?;
    m.add_class::<AsyncClient>()?;
    Ok(())
}
