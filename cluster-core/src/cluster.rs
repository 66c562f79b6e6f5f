//! The cluster record: which backend runs it, its state and its first master.

use serde::{Deserialize, Serialize};

use crate::node::Timestamp;

/// Cluster lifecycle (design.md section 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "http", derive(utoipa::ToSchema))]
pub enum ClusterState {
    /// No master commissioned yet.
    Empty,
    /// The first master is being bootstrapped.
    Bootstrapping,
    /// At least one reachable master.
    Active,
    /// Bootstrapped but no master is reachable.
    Degraded,
}

/// The one cluster a manager runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "http", derive(utoipa::ToSchema))]
pub struct Cluster {
    /// Backend kind (`swarm`, `k8s`, `mesos`), empty without a backend.
    pub backend: String,
    /// State.
    pub state: ClusterState,
    /// The node the cluster was bootstrapped on.
    #[serde(default)]
    pub bootstrap_node: Option<String>,
    /// Last change.
    #[cfg_attr(feature = "http", schema(value_type = String, format = DateTime))]
    pub updated_at: Timestamp,
}

impl Cluster {
    /// A cluster with nothing in it yet.
    pub fn empty(backend: impl Into<String>, now: Timestamp) -> Self {
        Cluster {
            backend: backend.into(),
            state: ClusterState::Empty,
            bootstrap_node: None,
            updated_at: now,
        }
    }
}
