//! Jobs: one run of configuration push for one action over a set of nodes, plus the
//! spec a [`crate::ConfigPush`] receives and the report it returns.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::node::{HostGroup, Timestamp};

/// Job identifier, allocated in increasing order by the manager.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "http", derive(utoipa::ToSchema))]
#[serde(transparent)]
pub struct JobId(pub u64);

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "http", derive(utoipa::ToSchema))]
pub enum JobStatus {
    /// Accepted, not started.
    Queued,
    /// Running.
    Running,
    /// Finished; every host succeeded.
    Complete,
    /// Finished with at least one failed host or a job-wide error.
    Errored,
    /// Stopped on request.
    Cancelled,
}

impl JobStatus {
    /// Whether the job has ended.
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            JobStatus::Complete | JobStatus::Errored | JobStatus::Cancelled
        )
    }
}

/// What a job does to its nodes (the lifecycle operation requested).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "http", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum JobKind {
    /// Make hosts discoverable (discover playbook).
    Discover,
    /// Provision and join.
    Commission,
    /// Drain, upgrade playbook, reactivate.
    Upgrade,
    /// Cleanup playbook and leave.
    Decommission,
    /// Check a reappearing node (and repair it if the policy says so).
    Verify,
}

impl fmt::Display for JobKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            JobKind::Discover => "discover",
            JobKind::Commission => "commission",
            JobKind::Upgrade => "upgrade",
            JobKind::Decommission => "decommission",
            JobKind::Verify => "verify",
        })
    }
}

/// Rolling-upgrade options: nodes go in batches and the roll stops after too many failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "http", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Rolling {
    /// Nodes per batch (>= 1).
    pub batch_size: usize,
    /// Failed nodes tolerated before the remaining batches are skipped.
    #[serde(default)]
    pub max_failures: usize,
}

/// A recorded job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "http", derive(utoipa::ToSchema))]
pub struct Job {
    /// Identifier.
    pub id: JobId,
    /// The lifecycle operation.
    pub kind: JobKind,
    /// Nodes the job works on, in request order.
    pub nodes: Vec<String>,
    /// Status.
    pub status: JobStatus,
    /// Host group given with the request, if any.
    #[serde(default)]
    pub host_group: Option<HostGroup>,
    /// Rolling options, when the job rolls.
    #[serde(default)]
    pub rolling: Option<Rolling>,
    /// Nodes that failed, with the reason.
    #[serde(default)]
    pub failed: BTreeMap<String, String>,
    /// Job-wide error (cancellation, timeout, restart, push failure).
    #[serde(default)]
    pub error: Option<String>,
    /// When the job was accepted.
    #[cfg_attr(feature = "http", schema(value_type = String, format = DateTime))]
    pub created_at: Timestamp,
    /// When it ended.
    #[serde(default)]
    #[cfg_attr(feature = "http", schema(value_type = Option<String>, format = DateTime))]
    pub ended_at: Option<Timestamp>,
}

impl Job {
    /// A job that starts running at `now`, with no host group or rolling options.
    pub fn running(id: JobId, kind: JobKind, nodes: Vec<String>, now: Timestamp) -> Self {
        Job {
            id,
            kind,
            nodes,
            status: JobStatus::Running,
            host_group: None,
            rolling: None,
            failed: BTreeMap::new(),
            error: None,
            created_at: now,
            ended_at: None,
        }
    }
}

/// The configuration-push action a playbook implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PushAction {
    /// Install and start the discovery agent.
    Discover,
    /// Configure a node for its role.
    Provision,
    /// Undo provisioning.
    Cleanup,
    /// Upgrade the installed software.
    Upgrade,
    /// Check that a node still matches its configuration.
    Verify,
}

impl PushAction {
    /// Every action.
    pub const ALL: [PushAction; 5] = [
        PushAction::Discover,
        PushAction::Provision,
        PushAction::Cleanup,
        PushAction::Upgrade,
        PushAction::Verify,
    ];

    /// Lower-case name (`provision`, ...), used for playbook lookup and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            PushAction::Discover => "discover",
            PushAction::Provision => "provision",
            PushAction::Cleanup => "cleanup",
            PushAction::Upgrade => "upgrade",
            PushAction::Verify => "verify",
        }
    }
}

impl fmt::Display for PushAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One host of a push, with its fully merged vars.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostSpec {
    /// Node name.
    pub name: String,
    /// Management address.
    pub addr: String,
    /// Host group, when the node has one.
    pub group: Option<HostGroup>,
    /// Merged extra vars (globals < node < request < backend).
    pub vars: serde_json::Value,
}

/// What a [`crate::ConfigPush`] is asked to do.
#[derive(Debug, Clone)]
pub struct JobSpec {
    /// The job this push belongs to.
    pub job: JobId,
    /// The action.
    pub action: PushAction,
    /// The hosts, all handled by one push run.
    pub hosts: Vec<HostSpec>,
    /// Fires when the job is cancelled or times out; the push must stop promptly.
    pub cancel: CancellationToken,
    /// Upper bound the push may enforce itself (the manager enforces it too).
    pub timeout: Option<Duration>,
}

/// Outcome for one host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostResult {
    /// Whether the host succeeded.
    pub ok: bool,
    /// Failure reason or a short summary.
    #[serde(default)]
    pub message: Option<String>,
}

/// What a push returns: one result per host of the spec.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobReport {
    /// Per-host results keyed by node name.
    pub hosts: BTreeMap<String, HostResult>,
}

impl JobReport {
    /// A report where every host of `spec` succeeded.
    pub fn all_ok(spec: &JobSpec) -> Self {
        JobReport {
            hosts: spec
                .hosts
                .iter()
                .map(|h| {
                    (
                        h.name.clone(),
                        HostResult {
                            ok: true,
                            message: None,
                        },
                    )
                })
                .collect(),
        }
    }

    /// The failure reason for `host`, or `None` when it succeeded. A host the report
    /// does not mention counts as failed: a push must account for every host.
    pub fn failure(&self, host: &str) -> Option<String> {
        match self.hosts.get(host) {
            Some(HostResult { ok: true, .. }) => None,
            Some(HostResult { message, .. }) => {
                Some(message.clone().unwrap_or_else(|| "failed".into()))
            }
            None => Some("no result reported for host".into()),
        }
    }
}
