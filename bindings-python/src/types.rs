//! Typed results: Python classes over the `cluster-core` model. Each class wraps the
//! Rust value unchanged, so a `Node` from the daemon and one from the embedded manager
//! are the same thing; `to_dict()` gives the JSON shape the REST API uses.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use cluster_core as core;
use pyo3::prelude::*;

use crate::json::Json;

macro_rules! py_enum {
    ($(#[$doc:meta])* $name:ident => $core:ty { $($variant:ident),* $(,)? }) => {
        $(#[$doc])*
        #[pyclass(eq, eq_int, hash, frozen, module = "clusterm", from_py_object)]
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($variant),* }

        impl From<$core> for $name {
            fn from(v: $core) -> Self {
                match v { $(<$core>::$variant => $name::$variant),* }
            }
        }

        impl From<$name> for $core {
            fn from(v: $name) -> Self {
                match v { $($name::$variant => <$core>::$variant),* }
            }
        }

        #[pymethods]
        impl $name {
            fn __str__(&self) -> &'static str {
                match self { $($name::$variant => stringify!($variant)),* }
            }

            /// The member whose name is `name` (as `str()` gives it).
            #[staticmethod]
            fn parse(name: &str) -> PyResult<Self> {
                match name {
                    $(stringify!($variant) => Ok($name::$variant),)*
                    _ => Err(pyo3::exceptions::PyValueError::new_err(format!(
                        "{name:?} is not a {}", stringify!($name)
                    ))),
                }
            }
        }
    };
}

py_enum!(
    /// Lifecycle status of a node.
    NodeStatus => core::NodeStatus {
        New, Discovered, Commissioning, Commissioned, Upgrading, Upgraded,
        Decommissioning, Decommissioned, Failed,
    }
);
py_enum!(
    /// Where a job is in its life.
    JobStatus => core::JobStatus { Queued, Running, Complete, Errored, Cancelled }
);
py_enum!(
    /// The lifecycle operation a job performs.
    JobKind => core::JobKind { Discover, Commission, Upgrade, Decommission, Verify }
);
py_enum!(
    /// State of the cluster.
    ClusterState => core::ClusterState { Empty, Bootstrapping, Active, Degraded }
);
py_enum!(
    /// Liveness of a discovery member.
    MemberStatus => core::MemberStatus { Alive, Failed, Left }
);
py_enum!(
    /// What happened to a discovery member.
    MembershipKind => core::MembershipKind { Joined, Failed, Left, Updated, Reaped }
);

fn dict<T: serde::Serialize>(v: &T) -> Json {
    Json(serde_json::to_value(v).unwrap_or(serde_json::Value::Null))
}

/// One server in the inventory.
#[pyclass(frozen, module = "clusterm")]
#[derive(Debug, Clone)]
pub struct Node(pub core::Node);

#[pymethods]
impl Node {
    /// Unique name (Serf tag `NodeLabel`, else the member name).
    #[getter]
    fn name(&self) -> &str {
        &self.0.name
    }
    /// Hardware serial, empty when unknown.
    #[getter]
    fn serial(&self) -> &str {
        &self.0.serial
    }
    /// Management address.
    #[getter]
    fn addr(&self) -> &str {
        &self.0.addr
    }
    /// Every tag discovery reported.
    #[getter]
    fn tags(&self) -> BTreeMap<String, String> {
        self.0.tags.clone()
    }
    /// The host group the node was commissioned under.
    #[getter]
    fn host_group(&self) -> Option<&str> {
        self.0.host_group.as_ref().map(|g| g.as_str())
    }
    /// The node's own extra vars.
    #[getter]
    fn vars(&self) -> Json {
        Json(self.0.vars.clone())
    }
    /// Lifecycle status.
    #[getter]
    fn status(&self) -> NodeStatus {
        self.0.status.into()
    }
    /// `unknown`, `reachable`, `unreachable` or `left`.
    #[getter]
    fn reachability(&self) -> &'static str {
        self.0.reachability.as_str()
    }
    /// Whether discovery considers the node alive.
    #[getter]
    fn reachable(&self) -> bool {
        self.0.reachability.is_reachable()
    }
    /// Since when the node is unreachable or gone (None while reachable or unknown).
    #[getter]
    fn unreachable_since(&self) -> Option<DateTime<Utc>> {
        match self.0.reachability {
            core::Reachability::Unreachable { since } | core::Reachability::Left { since } => {
                Some(since)
            }
            _ => None,
        }
    }
    /// Why the node is Failed (kept until the next successful job).
    #[getter]
    fn error(&self) -> Option<&str> {
        self.0.error.as_deref()
    }
    /// The last job that touched the node.
    #[getter]
    fn last_job(&self) -> Option<u64> {
        self.0.last_job.map(|j| j.0)
    }
    /// Store revision of the last write.
    #[getter]
    fn revision(&self) -> u64 {
        self.0.revision
    }
    /// When the record last changed (UTC).
    #[getter]
    fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
    /// The node as the REST API's JSON object.
    fn to_dict(&self) -> Json {
        dict(&self.0)
    }
    fn __eq__(&self, other: &Self) -> bool {
        self.0 == other.0
    }
    fn __repr__(&self) -> String {
        format!(
            "Node(name={:?}, status={}, host_group={:?}, addr={:?})",
            self.0.name,
            self.0.status,
            self.0.host_group.as_ref().map(|g| g.as_str()),
            self.0.addr
        )
    }
}

/// One run of a lifecycle operation over a set of nodes.
#[pyclass(frozen, module = "clusterm")]
#[derive(Debug, Clone)]
pub struct Job(pub core::Job);

#[pymethods]
impl Job {
    /// Job id.
    #[getter]
    fn id(&self) -> u64 {
        self.0.id.0
    }
    /// The lifecycle operation.
    #[getter]
    fn kind(&self) -> JobKind {
        self.0.kind.into()
    }
    /// Nodes the job works on, in request order.
    #[getter]
    fn nodes(&self) -> Vec<String> {
        self.0.nodes.clone()
    }
    /// Where the job is in its life.
    #[getter]
    fn status(&self) -> JobStatus {
        self.0.status.into()
    }
    /// Whether the job has ended (complete, errored or cancelled).
    #[getter]
    fn finished(&self) -> bool {
        self.0.status.is_finished()
    }
    /// Host group given with the request.
    #[getter]
    fn host_group(&self) -> Option<&str> {
        self.0.host_group.as_ref().map(|g| g.as_str())
    }
    /// Rolling batch size, when the job rolls.
    #[getter]
    fn batch_size(&self) -> Option<usize> {
        self.0.rolling.map(|r| r.batch_size)
    }
    /// Failures tolerated before a roll stops, when the job rolls.
    #[getter]
    fn max_failures(&self) -> Option<usize> {
        self.0.rolling.map(|r| r.max_failures)
    }
    /// Nodes that failed, with the reason.
    #[getter]
    fn failed(&self) -> BTreeMap<String, String> {
        self.0.failed.clone()
    }
    /// Job-wide error (cancellation, timeout, restart, push failure).
    #[getter]
    fn error(&self) -> Option<&str> {
        self.0.error.as_deref()
    }
    /// When the job was accepted (UTC).
    #[getter]
    fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    /// When the job ended (UTC), None while running.
    #[getter]
    fn ended_at(&self) -> Option<DateTime<Utc>> {
        self.0.ended_at
    }
    /// The job as the REST API's JSON object.
    fn to_dict(&self) -> Json {
        dict(&self.0)
    }
    fn __eq__(&self, other: &Self) -> bool {
        self.0 == other.0
    }
    fn __repr__(&self) -> String {
        format!(
            "Job(id={}, kind={}, status={:?}, nodes={:?})",
            self.0.id, self.0.kind, self.0.status, self.0.nodes
        )
    }
}

/// The cluster record.
#[pyclass(frozen, module = "clusterm")]
#[derive(Debug, Clone)]
pub struct Cluster(pub core::Cluster);

#[pymethods]
impl Cluster {
    /// Backend kind (`swarm`, `k8s`, `mesos`); empty without a backend.
    #[getter]
    fn backend(&self) -> &str {
        &self.0.backend
    }
    /// Cluster state.
    #[getter]
    fn state(&self) -> ClusterState {
        self.0.state.into()
    }
    /// The node the cluster was bootstrapped on.
    #[getter]
    fn bootstrap_node(&self) -> Option<&str> {
        self.0.bootstrap_node.as_deref()
    }
    /// When the record last changed (UTC).
    #[getter]
    fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
    /// The cluster as the REST API's JSON object.
    fn to_dict(&self) -> Json {
        dict(&self.0)
    }
    fn __repr__(&self) -> String {
        format!(
            "Cluster(backend={:?}, state={:?})",
            self.0.backend, self.0.state
        )
    }
}

/// One audit record of a node's history.
#[pyclass(frozen, module = "clusterm")]
#[derive(Debug, Clone)]
pub struct NodeEvent(pub core::NodeEvent);

#[pymethods]
impl NodeEvent {
    /// Position in the global audit log.
    #[getter]
    fn seq(&self) -> u64 {
        self.0.seq
    }
    /// The node concerned.
    #[getter]
    fn node(&self) -> &str {
        &self.0.node
    }
    /// When it happened (UTC).
    #[getter]
    fn at(&self) -> DateTime<Utc> {
        self.0.at
    }
    /// `created`, `status`, `reachability`, `updated`, `verified` or `removed`.
    #[getter]
    fn kind(&self) -> String {
        serde_json::to_value(self.0.kind)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default()
    }
    /// Value before the change.
    #[getter]
    fn from_(&self) -> &str {
        &self.0.from
    }
    /// Value after the change.
    #[getter]
    fn to(&self) -> &str {
        &self.0.to
    }
    /// Why (request, discovery event, job outcome, restart).
    #[getter]
    fn cause(&self) -> &str {
        &self.0.cause
    }
    /// The job responsible, if any.
    #[getter]
    fn job(&self) -> Option<u64> {
        self.0.job.map(|j| j.0)
    }
    /// The event as the REST API's JSON object.
    fn to_dict(&self) -> Json {
        dict(&self.0)
    }
    fn __repr__(&self) -> String {
        format!(
            "NodeEvent(seq={}, node={:?}, kind={}, from_={:?}, to={:?})",
            self.0.seq,
            self.0.node,
            self.kind(),
            self.0.from,
            self.0.to
        )
    }
}

/// A host as a discovery source reports it.
#[pyclass(frozen, module = "clusterm", from_py_object)]
#[derive(Debug, Clone)]
pub struct Member(pub core::Member);

#[pymethods]
impl Member {
    #[new]
    #[pyo3(signature = (name, addr = String::new(), serial = String::new(), tags = None, status = MemberStatus::Alive))]
    fn new(
        name: String,
        addr: String,
        serial: String,
        tags: Option<BTreeMap<String, String>>,
        status: MemberStatus,
    ) -> Self {
        Member(core::Member {
            name,
            serial,
            addr,
            tags: tags.unwrap_or_default(),
            status: status.into(),
        })
    }
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
    /// Hardware serial.
    #[getter]
    fn serial(&self) -> &str {
        &self.0.serial
    }
    /// Tags.
    #[getter]
    fn tags(&self) -> BTreeMap<String, String> {
        self.0.tags.clone()
    }
    /// Liveness.
    #[getter]
    fn status(&self) -> MemberStatus {
        self.0.status.into()
    }
    fn __eq__(&self, other: &Self) -> bool {
        self.0 == other.0
    }
    fn __repr__(&self) -> String {
        format!(
            "Member(name={:?}, addr={:?}, status={:?})",
            self.0.name, self.0.addr, self.0.status
        )
    }
}

/// Parses a JSON value into a model type, as a transport error when the shape is off.
pub fn parse<T: serde::de::DeserializeOwned>(what: &str, v: serde_json::Value) -> PyResult<T> {
    serde_json::from_value(v)
        .map_err(|e| crate::errors::transport(format!("unexpected shape of the {what}: {e}")))
}

/// Adds the model classes to the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<NodeStatus>()?;
    m.add_class::<JobStatus>()?;
    m.add_class::<JobKind>()?;
    m.add_class::<ClusterState>()?;
    m.add_class::<MemberStatus>()?;
    m.add_class::<MembershipKind>()?;
    m.add_class::<Node>()?;
    m.add_class::<Job>()?;
    m.add_class::<Cluster>()?;
    m.add_class::<NodeEvent>()?;
    m.add_class::<Member>()?;
    Ok(())
}
