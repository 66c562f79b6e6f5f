//! Test doubles that record every call and can be told to fail or hang: a
//! [`RecordingPush`] and a [`RecordingBackend`] that keeps a member list like a real
//! orchestrator would. For manager tests and for implementations' tests that need the
//! other side of the manager.

use std::collections::{BTreeMap, HashSet};
use std::sync::Mutex;

use async_trait::async_trait;
use serde_json::{Value, json};

use crate::backend::{BackendMember, BackendNode, ClusterBackend};
use crate::error::{Error, Result};
use crate::job::{HostResult, HostSpec, JobId, JobReport, JobSpec, PushAction};
use crate::node::Role;
use crate::push::{ConfigPush, LogSink};

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// One recorded push run.
#[derive(Debug, Clone, PartialEq)]
pub struct PushCall {
    /// The job.
    pub job: JobId,
    /// The action.
    pub action: PushAction,
    /// The hosts with their merged vars.
    pub hosts: Vec<HostSpec>,
}

/// A `ConfigPush` that records calls; hosts or whole runs can be made to fail or hang.
#[derive(Debug, Default)]
pub struct RecordingPush {
    calls: Mutex<Vec<PushCall>>,
    fail_hosts: Mutex<HashSet<(PushAction, String)>>,
    fail_runs: Mutex<HashSet<PushAction>>,
    hang: Mutex<HashSet<PushAction>>,
}

impl RecordingPush {
    /// A push where everything succeeds.
    pub fn new() -> Self {
        RecordingPush::default()
    }

    /// Every run so far.
    pub fn calls(&self) -> Vec<PushCall> {
        lock(&self.calls).clone()
    }

    /// Runs of one action.
    pub fn calls_of(&self, action: PushAction) -> Vec<PushCall> {
        self.calls()
            .into_iter()
            .filter(|c| c.action == action)
            .collect()
    }

    /// Makes `host` fail whenever `action` runs.
    pub fn fail_host(&self, action: PushAction, host: &str) {
        lock(&self.fail_hosts).insert((action, host.to_owned()));
    }

    /// Makes every run of `action` fail as a whole.
    pub fn fail_run(&self, action: PushAction) {
        lock(&self.fail_runs).insert(action);
    }

    /// Makes runs of `action` wait until cancelled.
    pub fn hang(&self, action: PushAction) {
        lock(&self.hang).insert(action);
    }

    /// Undoes `hang`, `fail_run` and every `fail_host`.
    pub fn heal(&self) {
        lock(&self.hang).clear();
        lock(&self.fail_runs).clear();
        lock(&self.fail_hosts).clear();
    }
}

#[async_trait]
impl ConfigPush for RecordingPush {
    fn name(&self) -> &str {
        "recording"
    }

    async fn run(&self, spec: JobSpec, log: LogSink) -> Result<JobReport> {
        lock(&self.calls).push(PushCall {
            job: spec.job,
            action: spec.action,
            hosts: spec.hosts.clone(),
        });
        log.line(format!("{} on {} host(s)", spec.action, spec.hosts.len()));
        if lock(&self.hang).contains(&spec.action) {
            spec.cancel.cancelled().await;
            return Err(Error::Push {
                action: spec.action.to_string(),
                message: "stopped".into(),
            });
        }
        if lock(&self.fail_runs).contains(&spec.action) {
            return Err(Error::Push {
                action: spec.action.to_string(),
                message: "playbook could not start".into(),
            });
        }
        let fail = lock(&self.fail_hosts).clone();
        let hosts = spec
            .hosts
            .iter()
            .map(|h| {
                let failed = fail.contains(&(spec.action, h.name.clone()));
                let result = HostResult {
                    ok: !failed,
                    message: failed.then(|| format!("{} failed on {}", spec.action, h.name)),
                };
                (h.name.clone(), result)
            })
            .collect();
        Ok(JobReport { hosts })
    }
}

/// The join token a [`RecordingBackend`] hands out; tests check it never leaks.
pub const SECRET_JOIN_TOKEN: &str = "SWMTKN-secret-token-do-not-log";

#[derive(Debug, Default)]
struct Cluster {
    created: bool,
    members: BTreeMap<String, (Role, bool)>,
}

/// A `ClusterBackend` that keeps members like an orchestrator and records every call
/// as `"op node"`; operations can be made to fail per node.
#[derive(Debug, Default)]
pub struct RecordingBackend {
    ops: Mutex<Vec<String>>,
    fail: Mutex<HashSet<(String, String)>>,
    hang: Mutex<HashSet<(String, String)>>,
    cluster: Mutex<Cluster>,
    restores: Mutex<Vec<Vec<BackendNode>>>,
}

impl RecordingBackend {
    /// An empty cluster.
    pub fn new() -> Self {
        RecordingBackend::default()
    }

    /// Every call so far, as `"op node"`.
    pub fn ops(&self) -> Vec<String> {
        lock(&self.ops).clone()
    }

    /// The nodes handed to every `restore` so far (kept apart from [`Self::ops`]: every
    /// manager start restores).
    pub fn restores(&self) -> Vec<Vec<BackendNode>> {
        lock(&self.restores).clone()
    }

    /// Makes `op` (`bootstrap`, `join`, `drain`, ...) fail for `node`; a `restore`
    /// fails when it is handed a node it is made to fail for.
    pub fn fail(&self, op: &str, node: &str) {
        lock(&self.fail).insert((op.to_owned(), node.to_owned()));
    }

    /// Makes `op` for `node` never return (the manager must cancel or time it out).
    pub fn hang(&self, op: &str, node: &str) {
        lock(&self.hang).insert((op.to_owned(), node.to_owned()));
    }

    async fn record(&self, op: &str, node: &BackendNode) -> Result<()> {
        lock(&self.ops).push(format!("{op} {}", node.name));
        let key = (op.to_owned(), node.name.clone());
        if lock(&self.hang).contains(&key) {
            std::future::pending::<()>().await;
        }
        if lock(&self.fail).contains(&key) {
            return Err(Error::Backend {
                backend: "recording".into(),
                operation: op.into(),
                node: node.name.clone(),
                message: "refused".into(),
            });
        }
        Ok(())
    }
}

#[async_trait]
impl ClusterBackend for RecordingBackend {
    fn kind(&self) -> &str {
        "recording"
    }

    async fn bootstrap(&self, master: &BackendNode) -> Result<()> {
        self.record("bootstrap", master).await?;
        let mut c = lock(&self.cluster);
        c.created = true;
        c.members.insert(master.name.clone(), (Role::Master, true));
        Ok(())
    }

    async fn join_vars(&self, node: &BackendNode) -> Result<Value> {
        self.record("join_vars", node).await?;
        Ok(json!({ "join_token": SECRET_JOIN_TOKEN }))
    }

    async fn join(&self, node: &BackendNode) -> Result<()> {
        self.record("join", node).await?;
        let mut c = lock(&self.cluster);
        if !c.created {
            return Err(Error::Backend {
                backend: "recording".into(),
                operation: "join".into(),
                node: node.name.clone(),
                message: "no cluster to join".into(),
            });
        }
        c.members
            .entry(node.name.clone())
            .or_insert((node.role, true));
        Ok(())
    }

    async fn drain(&self, node: &BackendNode) -> Result<()> {
        self.record("drain", node).await
    }

    async fn activate(&self, node: &BackendNode) -> Result<()> {
        self.record("activate", node).await
    }

    async fn leave(&self, node: &BackendNode) -> Result<()> {
        self.record("leave", node).await?;
        lock(&self.cluster).members.remove(&node.name);
        Ok(())
    }

    async fn set_role(&self, node: &BackendNode) -> Result<()> {
        self.record("set_role", node).await?;
        if let Some(m) = lock(&self.cluster).members.get_mut(&node.name) {
            m.0 = node.role;
        }
        Ok(())
    }

    async fn restore(&self, nodes: &[BackendNode]) -> Result<()> {
        lock(&self.restores).push(nodes.to_vec());
        let fail = lock(&self.fail);
        match nodes
            .iter()
            .find(|n| fail.contains(&("restore".to_owned(), n.name.clone())))
        {
            Some(n) => Err(Error::Backend {
                backend: "recording".into(),
                operation: "restore".into(),
                node: n.name.clone(),
                message: "refused".into(),
            }),
            None => Ok(()),
        }
    }

    async fn members(&self) -> Result<Vec<BackendMember>> {
        Ok(lock(&self.cluster)
            .members
            .iter()
            .map(|(name, (role, ready))| BackendMember {
                name: name.clone(),
                role: *role,
                ready: *ready,
            })
            .collect())
    }
}
