//! Python objects as `cluster-core` components: any object with `run(job)` is a
//! [`ConfigPush`], any object with `members()` is a [`Discovery`]. Python code always
//! runs on a thread of its own (never on a runtime worker), so a slow playbook wrapper
//! cannot stall the manager, and the callback may call back into the manager.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use cluster_core::{
    ConfigPush, Discovery, Error, HostResult, JobReport, JobSpec, LogSink, Member, MemberStatus,
    MembershipEvent, MembershipKind, MembershipStream, Result,
};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::json::{self, Json};
use crate::types;

/// Runs `f` attached to the interpreter on a fresh thread and waits for it.
async fn on_python_thread<T: Send + 'static>(
    what: &str,
    f: impl FnOnce(Python<'_>) -> T + Send + 'static,
) -> std::result::Result<T, String> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name(format!("clusterm-py-{what}"))
        .spawn(move || {
            let _ = tx.send(Python::attach(f));
        })
        .map_err(|e| format!("cannot start a thread for the Python {what}: {e}"))?;
    rx.await
        .map_err(|_| format!("the Python {what} thread ended without an answer"))
}

/// `ExceptionClass: message` of a Python error, for job logs and error messages.
fn describe(py: Python<'_>, e: &PyErr) -> String {
    let class = e
        .get_type(py)
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "Exception".into());
    format!("{class}: {}", e.value(py))
}

/// The registry name of a Python component: its `name` attribute, else its class name.
fn component_name(obj: &Bound<'_, PyAny>) -> String {
    obj.getattr("name")
        .ok()
        .and_then(|n| n.extract::<String>().ok())
        .or_else(|| obj.get_type().name().ok().map(|n| n.to_string()))
        .unwrap_or_else(|| "python".into())
}

/// One host of a push, as the Python `run(job)` sees it.
#[pyclass(frozen, module = "clusterm")]
#[derive(Debug, Clone)]
pub struct PushHost(cluster_core::HostSpec);

#[pymethods]
impl PushHost {
    /// Node name.
    #[getter]
    fn name(&self) -> &str {
        &self.0.name
    }
    /// Management address.
    #[getter]
    fn addr(&self) -> &str {
        &self.0.addr
    }
    /// Host group, when the node has one.
    #[getter]
    fn group(&self) -> Option<&str> {
        self.0.group.as_ref().map(|g| g.as_str())
    }
    /// Fully merged extra vars (globals < node < request < backend).
    #[getter]
    fn vars(&self) -> Json {
        Json(self.0.vars.clone())
    }
    fn __repr__(&self) -> String {
        format!(
            "PushHost(name={:?}, addr={:?}, group={:?})",
            self.0.name,
            self.0.addr,
            self.group()
        )
    }
}

/// What a Python push is asked to do: one action over a set of hosts.
#[pyclass(frozen, module = "clusterm")]
#[derive(Debug)]
pub struct PushJob {
    job: u64,
    action: &'static str,
    hosts: Vec<cluster_core::HostSpec>,
    timeout: Option<Duration>,
    cancel: CancellationToken,
    log: LogSink,
}

#[pymethods]
impl PushJob {
    /// The job id.
    #[getter]
    fn job(&self) -> u64 {
        self.job
    }
    /// `discover`, `provision`, `cleanup`, `upgrade` or `verify`.
    #[getter]
    fn action(&self) -> &'static str {
        self.action
    }
    /// The hosts, all handled by this run.
    #[getter]
    fn hosts(&self) -> Vec<PushHost> {
        self.hosts.iter().cloned().map(PushHost).collect()
    }
    /// Seconds the push may take, when bounded.
    #[getter]
    fn timeout(&self) -> Option<f64> {
        self.timeout.map(|d| d.as_secs_f64())
    }
    /// Whether the job was cancelled or timed out; the push should stop promptly.
    #[getter]
    fn cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }
    /// Appends a line to the job log.
    fn log(&self, line: String) {
        self.log.line(line);
    }
    /// Waits up to `timeout` seconds for cancellation (without holding the GIL);
    /// returns whether the job was cancelled.
    fn wait_cancelled(&self, py: Python<'_>, timeout: f64) -> bool {
        let token = self.cancel.clone();
        let wait = Duration::try_from_secs_f64(timeout.max(0.0)).unwrap_or(Duration::MAX);
        py.detach(|| {
            crate::runtime()
                .block_on(async { tokio::time::timeout(wait, token.cancelled()).await.is_ok() })
        })
    }
    fn __repr__(&self) -> String {
        format!(
            "PushJob(job={}, action={:?}, hosts={})",
            self.job,
            self.action,
            self.hosts.len()
        )
    }
}

/// A Python object with `run(job)` used as the manager's configuration push.
#[derive(Debug)]
pub struct PyPush {
    /// Shared so async code can hand it to a Python thread without taking the GIL.
    obj: Arc<Py<PyAny>>,
    name: String,
}

impl PyPush {
    /// Wraps `obj`, which must have a callable `run`.
    pub fn new(obj: &Bound<'_, PyAny>) -> PyResult<Self> {
        if !obj.getattr("run").is_ok_and(|r| r.is_callable()) {
            return Err(pyo3::exceptions::PyTypeError::new_err(
                "push must have a run(job) method",
            ));
        }
        Ok(PyPush {
            name: component_name(obj),
            obj: Arc::new(obj.clone().unbind()),
        })
    }
}

/// Reads what `run(job)` returned: None means every host succeeded; a dict maps host
/// names to True/None (ok), False (failed) or a str (failed, with that reason).
fn read_report(
    spec_hosts: &[String],
    ret: &Bound<'_, PyAny>,
) -> std::result::Result<JobReport, String> {
    let ok = |message| HostResult { ok: true, message };
    if ret.is_none() {
        return Ok(JobReport {
            hosts: spec_hosts.iter().map(|h| (h.clone(), ok(None))).collect(),
        });
    }
    let dict = ret
        .cast::<PyDict>()
        .map_err(|_| "run(job) must return None or a dict of host results".to_owned())?;
    let mut hosts = BTreeMap::new();
    for (k, v) in dict.iter() {
        let name: String = k
            .extract()
            .map_err(|_| "host result keys must be str".to_owned())?;
        let result = if v.is_none() {
            ok(None)
        } else if let Ok(s) = v.cast::<PyString>() {
            HostResult {
                ok: false,
                message: Some(s.to_string()),
            }
        } else if let Ok(b) = v.extract::<bool>() {
            HostResult {
                ok: b,
                message: None,
            }
        } else {
            return Err(format!(
                "result for host {name:?} must be bool, str or None"
            ));
        };
        hosts.insert(name, result);
    }
    Ok(JobReport { hosts })
}

#[async_trait]
impl ConfigPush for PyPush {
    fn name(&self) -> &str {
        &self.name
    }

    async fn run(&self, spec: JobSpec, log: LogSink) -> Result<JobReport> {
        let action = spec.action;
        let obj = self.obj.clone();
        let names: Vec<String> = spec.hosts.iter().map(|h| h.name.clone()).collect();
        let job = PushJob {
            job: spec.job.0,
            action: action.as_str(),
            hosts: spec.hosts,
            timeout: spec.timeout,
            cancel: spec.cancel,
            log,
        };
        let outcome = on_python_thread("push", move |py| {
            let ret = obj
                .bind(py)
                .call_method1("run", (job,))
                .map_err(|e| describe(py, &e))?;
            read_report(&names, &ret)
        })
        .await
        .and_then(|r| r);
        outcome.map_err(|message| Error::Push {
            action: action.to_string(),
            message,
        })
    }
}

/// A Python object with `members()` (and optionally `enroll(addrs, vars)`) used as the
/// manager's discovery source. Membership changes are found by comparing successive
/// `members()` answers every `poll_interval` seconds (attribute, default 1.0).
#[derive(Debug)]
pub struct PyDiscovery {
    /// Shared so async code can hand it to a Python thread without taking the GIL.
    obj: Arc<Py<PyAny>>,
    name: String,
    interval: Duration,
}

impl PyDiscovery {
    /// Wraps `obj`, which must have a callable `members`.
    pub fn new(obj: &Bound<'_, PyAny>) -> PyResult<Self> {
        if !obj.getattr("members").is_ok_and(|r| r.is_callable()) {
            return Err(pyo3::exceptions::PyTypeError::new_err(
                "discovery must have a members() method",
            ));
        }
        let secs = obj
            .getattr("poll_interval")
            .ok()
            .and_then(|v| v.extract::<f64>().ok())
            .unwrap_or(1.0);
        let interval = Duration::try_from_secs_f64(secs)
            .ok()
            .filter(|d| !d.is_zero())
            .ok_or_else(|| {
                pyo3::exceptions::PyValueError::new_err("poll_interval must be a positive number")
            })?;
        Ok(PyDiscovery {
            name: component_name(obj),
            obj: Arc::new(obj.clone().unbind()),
            interval,
        })
    }
}

async fn poll_members(obj: Arc<Py<PyAny>>) -> Result<Vec<Member>> {
    on_python_thread("discovery", move |py| {
        let ret = obj
            .bind(py)
            .call_method0("members")
            .map_err(|e| describe(py, &e))?;
        ret.try_iter()
            .map_err(|e| describe(py, &e))?
            .map(|m| {
                m.and_then(|m| m.extract::<types::Member>().map_err(PyErr::from))
                    .map(|m| m.0)
                    .map_err(|e| {
                        format!("members() must return Member objects: {}", describe(py, &e))
                    })
            })
            .collect::<std::result::Result<Vec<_>, String>>()
    })
    .await
    .and_then(|r| r)
    .map_err(Error::Discovery)
}

/// The events that turn the `before` member list into `after`.
fn diff(
    before: &BTreeMap<String, Member>,
    after: &BTreeMap<String, Member>,
) -> Vec<MembershipEvent> {
    let mut events = Vec::new();
    for (name, m) in after {
        let kind = match before.get(name) {
            Some(old) if old == m => continue,
            Some(old) if old.status == m.status => MembershipKind::Updated,
            _ => match m.status {
                MemberStatus::Alive => MembershipKind::Joined,
                MemberStatus::Failed => MembershipKind::Failed,
                MemberStatus::Left => MembershipKind::Left,
            },
        };
        events.push(MembershipEvent {
            kind,
            member: m.clone(),
        });
    }
    for (name, m) in before {
        if !after.contains_key(name) {
            events.push(MembershipEvent {
                kind: MembershipKind::Reaped,
                member: m.clone(),
            });
        }
    }
    events
}

fn by_name(members: Vec<Member>) -> BTreeMap<String, Member> {
    members.into_iter().map(|m| (m.name.clone(), m)).collect()
}

#[async_trait]
impl Discovery for PyDiscovery {
    fn name(&self) -> &str {
        &self.name
    }

    async fn members(&self) -> Result<Vec<Member>> {
        poll_members(self.obj.clone()).await
    }

    async fn subscribe(&self) -> Result<MembershipStream> {
        use futures::StreamExt;
        let obj = self.obj.clone();
        let first = by_name(poll_members(obj.clone()).await?);
        let interval = self.interval;
        let batches = futures::stream::unfold(Some((obj, first)), move |state| async move {
            let (obj, before) = state?;
            tokio::time::sleep(interval).await;
            // A failing members() ends the stream; the manager reconnects and re-reads.
            match poll_members(obj.clone()).await {
                Ok(now) => {
                    let after = by_name(now);
                    let events = diff(&before, &after);
                    Some((events, Some((obj, after))))
                }
                Err(e) => {
                    tracing::warn!(error = %e, "Python discovery failed; reconnecting");
                    None
                }
            }
        });
        Ok(batches.flat_map(futures::stream::iter).boxed())
    }

    async fn enroll(&self, addrs: &[String], vars: &Value) -> Result<Value> {
        let obj = self.obj.clone();
        let (addrs, vars) = (addrs.to_vec(), vars.clone());
        on_python_thread("discovery", move |py| {
            let obj = obj.bind(py);
            if !obj.hasattr("enroll").unwrap_or(false) {
                return Ok(Value::Null);
            }
            let vars = json::to_py(py, &vars).map_err(|e| describe(py, &e))?;
            let ret = obj
                .call_method1("enroll", (addrs, vars))
                .map_err(|e| describe(py, &e))?;
            json::from_py("enroll() result", &ret).map_err(|e| describe(py, &e))
        })
        .await
        .and_then(|r| r)
        .map_err(Error::Discovery)
    }
}

/// Adds the push classes to the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PushJob>()?;
    m.add_class::<PushHost>()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_reports_joins_failures_updates_and_reaps() {
        let a = Member::alive("a", "10.0.0.1");
        let b = Member::alive("b", "10.0.0.2");
        let mut b_failed = b.clone();
        b_failed.status = MemberStatus::Failed;
        let mut a_moved = a.clone();
        a_moved.addr = "10.0.0.9".into();
        let c = Member::alive("c", "10.0.0.3");
        let before = by_name(vec![a.clone(), b.clone()]);
        let after = by_name(vec![a_moved.clone(), b_failed.clone(), c.clone()]);
        let kinds: Vec<_> = diff(&before, &after)
            .into_iter()
            .map(|e| (e.kind, e.member.name))
            .collect();
        assert_eq!(
            kinds,
            vec![
                (MembershipKind::Updated, "a".to_owned()),
                (MembershipKind::Failed, "b".to_owned()),
                (MembershipKind::Joined, "c".to_owned()),
            ]
        );
        let gone = diff(&after, &by_name(vec![c]));
        assert_eq!(gone.len(), 2);
        assert!(gone.iter().all(|e| e.kind == MembershipKind::Reaped));
        assert!(diff(&after, &after).is_empty());
    }
}
