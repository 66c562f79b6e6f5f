//! The `ClusterBackend` trait: the orchestrator a node joins (Docker Swarm, Kubernetes,
//! Mesos). The manager decides *when*; a backend only knows *how*.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::node::Role;

/// The node a backend operation applies to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackendNode {
    /// Node name.
    pub name: String,
    /// Management address.
    pub addr: String,
    /// The role it has (or is to get) in the cluster.
    pub role: Role,
}

/// A member as the orchestrator sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackendMember {
    /// Node name as clusterm knows it.
    pub name: String,
    /// Role in the orchestrator.
    pub role: Role,
    /// Whether the orchestrator considers it ready.
    pub ready: bool,
}

/// A clustering system clusterm joins nodes to.
#[async_trait]
pub trait ClusterBackend: Send + Sync + std::fmt::Debug {
    /// Backend kind (`swarm`, `k8s`, `mesos`).
    fn kind(&self) -> &str;

    /// Creates the cluster on its first master (after that master was provisioned).
    async fn bootstrap(&self, master: &BackendNode) -> Result<()>;

    /// Vars the provision playbook needs to join `node` (e.g. a join token). They may
    /// hold secrets: the manager hands them to the push only, never to logs or the API.
    async fn join_vars(&self, _node: &BackendNode) -> Result<serde_json::Value> {
        Ok(serde_json::Value::Object(Default::default()))
    }

    /// Joins a provisioned node under its role; joining a member is a no-op.
    async fn join(&self, node: &BackendNode) -> Result<()>;

    /// Stops scheduling work on the node (before an upgrade).
    async fn drain(&self, node: &BackendNode) -> Result<()>;

    /// Lets the node take work again (after an upgrade).
    async fn activate(&self, node: &BackendNode) -> Result<()>;

    /// Removes the node from the cluster; leaving a non-member is a no-op.
    async fn leave(&self, node: &BackendNode) -> Result<()>;

    /// Promotes or demotes a member to `node.role`.
    async fn set_role(&self, node: &BackendNode) -> Result<()>;

    /// The cluster's members with role and readiness.
    async fn members(&self) -> Result<Vec<BackendMember>>;

    /// Called by the manager on start with every in-service node (Commissioned or
    /// Upgraded, role from its host group) so a backend can rebuild what it keeps in
    /// memory, such as where to reach the cluster. It should not wait on the cluster:
    /// start-up waits for it. A failure is logged and the manager starts anyway.
    async fn restore(&self, _nodes: &[BackendNode]) -> Result<()> {
        Ok(())
    }
}
