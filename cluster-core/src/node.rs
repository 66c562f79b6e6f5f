//! The node model: what the inventory keeps about one server. Pure data; lifecycle
//! rules live in [`crate::fsm`], persistence in [`crate::store`].

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::job::JobId;

/// Point in time used throughout the model (UTC, serialised as RFC 3339).
pub type Timestamp = DateTime<Utc>;

/// Lifecycle status: what clusterm has done to the node (design.md section 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "http", derive(utoipa::ToSchema))]
pub enum NodeStatus {
    /// Known (e.g. enrolled by address) but not yet seen by discovery.
    New,
    /// Alive in discovery, waiting to be commissioned.
    Discovered,
    /// Provision playbook and backend join running.
    Commissioning,
    /// Configured and part of the cluster.
    Commissioned,
    /// Upgrade playbook running.
    Upgrading,
    /// Upgrade succeeded; participates like `Commissioned`.
    Upgraded,
    /// Cleanup playbook and backend leave running.
    Decommissioning,
    /// Cleaned up; may be commissioned again.
    Decommissioned,
    /// The last provisioning, upgrade or cleanup failed; may be retried.
    Failed,
}

impl NodeStatus {
    /// Every status, in lifecycle order.
    pub const ALL: [NodeStatus; 9] = [
        NodeStatus::New,
        NodeStatus::Discovered,
        NodeStatus::Commissioning,
        NodeStatus::Commissioned,
        NodeStatus::Upgrading,
        NodeStatus::Upgraded,
        NodeStatus::Decommissioning,
        NodeStatus::Decommissioned,
        NodeStatus::Failed,
    ];

    /// Whether a job is working on the node in this status.
    pub fn in_progress(self) -> bool {
        matches!(
            self,
            NodeStatus::Commissioning | NodeStatus::Upgrading | NodeStatus::Decommissioning
        )
    }

    /// Whether the node is a configured member of the cluster.
    pub fn in_service(self) -> bool {
        matches!(self, NodeStatus::Commissioned | NodeStatus::Upgraded)
    }

    /// The Collins vocabulary the Contiv compat API reports.
    pub fn collins(self) -> &'static str {
        match self {
            NodeStatus::New => "New",
            NodeStatus::Discovered | NodeStatus::Failed => "Unallocated",
            NodeStatus::Commissioning => "Provisioning",
            NodeStatus::Commissioned | NodeStatus::Upgraded => "Allocated",
            NodeStatus::Upgrading => "Maintenance",
            NodeStatus::Decommissioning => "Cancelled",
            NodeStatus::Decommissioned => "Decommissioned",
        }
    }

    /// The status's name as it appears in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            NodeStatus::New => "New",
            NodeStatus::Discovered => "Discovered",
            NodeStatus::Commissioning => "Commissioning",
            NodeStatus::Commissioned => "Commissioned",
            NodeStatus::Upgrading => "Upgrading",
            NodeStatus::Upgraded => "Upgraded",
            NodeStatus::Decommissioning => "Decommissioning",
            NodeStatus::Decommissioned => "Decommissioned",
            NodeStatus::Failed => "Failed",
        }
    }
}

impl fmt::Display for NodeStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the discovery layer last said about the node, orthogonal to its status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "http", derive(utoipa::ToSchema))]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Reachability {
    /// Never reported by discovery (enrolled by address only).
    Unknown,
    /// Alive in discovery.
    Reachable,
    /// Discovery reports it failed (no graceful leave).
    Unreachable {
        /// When it was first reported unreachable.
        #[cfg_attr(feature = "http", schema(value_type = String, format = DateTime))]
        since: Timestamp,
    },
    /// It left the gossip pool gracefully.
    Left {
        /// When it left.
        #[cfg_attr(feature = "http", schema(value_type = String, format = DateTime))]
        since: Timestamp,
    },
}

impl Reachability {
    /// Whether discovery considers the node alive.
    pub fn is_reachable(&self) -> bool {
        matches!(self, Reachability::Reachable)
    }

    /// Short name for logs and event records.
    pub fn as_str(&self) -> &'static str {
        match self {
            Reachability::Unknown => "unknown",
            Reachability::Reachable => "reachable",
            Reachability::Unreachable { .. } => "unreachable",
            Reachability::Left { .. } => "left",
        }
    }
}

/// A role name such as `service-master`; the names are configurable, see [`HostGroups`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "http", derive(utoipa::ToSchema))]
#[serde(transparent)]
pub struct HostGroup(pub String);

impl HostGroup {
    /// The group's name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for HostGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for HostGroup {
    fn from(s: &str) -> Self {
        HostGroup(s.to_owned())
    }
}

/// The role a node plays in the orchestrator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Control plane (swarm manager, k8s control plane, mesos master).
    Master,
    /// Runs workloads.
    Worker,
}

/// The configured names of the two host groups.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HostGroups {
    /// Group whose members are masters.
    pub master: String,
    /// Group whose members are workers.
    pub worker: String,
}

impl Default for HostGroups {
    fn default() -> Self {
        HostGroups {
            master: "service-master".into(),
            worker: "service-worker".into(),
        }
    }
}

impl HostGroups {
    /// The role of a group, or `None` when the name is neither configured group.
    pub fn role(&self, group: &HostGroup) -> Option<Role> {
        if group.0 == self.master {
            Some(Role::Master)
        } else if group.0 == self.worker {
            Some(Role::Worker)
        } else {
            None
        }
    }
}

/// One server in the inventory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "http", derive(utoipa::ToSchema))]
pub struct Node {
    /// Unique name (Serf tag `NodeLabel`, else the Serf member name).
    pub name: String,
    /// Hardware serial (Serf tag `NodeSerial`), empty when unknown.
    #[serde(default)]
    pub serial: String,
    /// Management address (Serf tag `NodeAddr`, else the member address).
    #[serde(default)]
    pub addr: String,
    /// Every tag discovery reported.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// The role the node was commissioned under.
    #[serde(default)]
    pub host_group: Option<HostGroup>,
    /// Node-level extra vars (a JSON object), merged over the globals.
    #[serde(default = "empty_object")]
    #[cfg_attr(feature = "http", schema(value_type = Object))]
    pub vars: serde_json::Value,
    /// Lifecycle status.
    pub status: NodeStatus,
    /// Discovery's view of the node.
    pub reachability: Reachability,
    /// Why the node is `Failed` (kept until the next successful job).
    #[serde(default)]
    pub error: Option<String>,
    /// The last job that touched the node.
    #[serde(default)]
    pub last_job: Option<JobId>,
    /// Store revision of the last write (0: never stored); used for compare-and-set.
    #[serde(default)]
    pub revision: u64,
    /// When the node record last changed.
    #[cfg_attr(feature = "http", schema(value_type = String, format = DateTime))]
    pub updated_at: Timestamp,
}

pub(crate) fn empty_object() -> serde_json::Value {
    serde_json::Value::Object(serde_json::Map::new())
}

impl Node {
    /// A node first seen by discovery.
    pub fn discovered(member: &Member, now: Timestamp) -> Self {
        let mut node = Node::new(member.name.clone(), NodeStatus::Discovered, now);
        node.apply_facts(member);
        node.reachability = Reachability::Reachable;
        node
    }

    /// A bare node with a name and a status, nothing else known.
    pub fn new(name: String, status: NodeStatus, now: Timestamp) -> Self {
        Node {
            name,
            serial: String::new(),
            addr: String::new(),
            tags: BTreeMap::new(),
            host_group: None,
            vars: empty_object(),
            status,
            reachability: Reachability::Unknown,
            error: None,
            last_job: None,
            revision: 0,
            updated_at: now,
        }
    }

    /// Copies discovery facts onto the node; returns whether anything changed.
    pub fn apply_facts(&mut self, member: &Member) -> bool {
        let mut changed = false;
        if !member.serial.is_empty() && self.serial != member.serial {
            self.serial.clone_from(&member.serial);
            changed = true;
        }
        if !member.addr.is_empty() && self.addr != member.addr {
            self.addr.clone_from(&member.addr);
            changed = true;
        }
        if self.tags != member.tags {
            self.tags.clone_from(&member.tags);
            changed = true;
        }
        changed
    }
}

/// Liveness of a discovery member.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MemberStatus {
    /// Alive.
    Alive,
    /// Failed (missed its probes).
    Failed,
    /// Left gracefully.
    Left,
}

/// A host as the discovery layer reports it, already mapped to node facts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// Node name (tag `NodeLabel`, else member name).
    pub name: String,
    /// Serial (tag `NodeSerial`), empty when absent.
    pub serial: String,
    /// Management address (tag `NodeAddr`, else the member address).
    pub addr: String,
    /// Raw tags.
    pub tags: BTreeMap<String, String>,
    /// Liveness.
    pub status: MemberStatus,
}

impl Member {
    /// A live member with a name and an address and nothing else.
    pub fn alive(name: impl Into<String>, addr: impl Into<String>) -> Self {
        Member {
            name: name.into(),
            serial: String::new(),
            addr: addr.into(),
            tags: BTreeMap::new(),
            status: MemberStatus::Alive,
        }
    }
}
