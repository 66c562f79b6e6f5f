//! The lifecycle table (design.md section 2): pure functions, no I/O. The manager asks
//! this module what a status becomes and applies the answer; anything not in the table
//! is an [`IllegalTransition`].

use serde::{Deserialize, Serialize};

use crate::cluster::ClusterState;
use crate::event::MembershipKind;
use crate::node::{NodeStatus, Reachability, Timestamp};

/// A lifecycle action applied to a node's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Discovery saw a node that was only enrolled.
    Discover,
    /// Start commissioning.
    Commission,
    /// Start an upgrade.
    Upgrade,
    /// Start decommissioning.
    Decommission,
    /// The running job succeeded for this node.
    Succeed,
    /// The running job failed, was cancelled or was interrupted for this node.
    Fail,
    /// A reappearing node failed verification and is provisioned again.
    Reprovision,
    /// A reappearing node failed verification and is left failed.
    VerifyFailed,
}

impl Action {
    /// Every action.
    pub const ALL: [Action; 8] = [
        Action::Discover,
        Action::Commission,
        Action::Upgrade,
        Action::Decommission,
        Action::Succeed,
        Action::Fail,
        Action::Reprovision,
        Action::VerifyFailed,
    ];

    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Discover => "discover",
            Action::Commission => "commission",
            Action::Upgrade => "upgrade",
            Action::Decommission => "decommission",
            Action::Succeed => "succeed",
            Action::Fail => "fail",
            Action::Reprovision => "reprovision",
            Action::VerifyFailed => "verify_failed",
        }
    }
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A move the lifecycle table does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[error("illegal transition for node {node:?}: cannot {action} from {from}")]
pub struct IllegalTransition {
    /// The node.
    pub node: String,
    /// Its current status.
    pub from: NodeStatus,
    /// The refused action.
    pub action: Action,
}

/// The status `action` leads to from `from`, or `None` when the table has no such move.
pub fn step(from: NodeStatus, action: Action) -> Option<NodeStatus> {
    use Action as A;
    use NodeStatus as S;
    Some(match (from, action) {
        (S::New, A::Discover) => S::Discovered,
        (S::Discovered | S::Decommissioned | S::Failed, A::Commission) => S::Commissioning,
        (S::Commissioned | S::Upgraded, A::Upgrade) => S::Upgrading,
        (S::Commissioned | S::Upgraded | S::Failed, A::Decommission) => S::Decommissioning,
        (S::Commissioning, A::Succeed) => S::Commissioned,
        (S::Upgrading, A::Succeed) => S::Upgraded,
        (S::Decommissioning, A::Succeed) => S::Decommissioned,
        (S::Commissioning | S::Upgrading | S::Decommissioning, A::Fail) => S::Failed,
        (S::Commissioned | S::Upgraded, A::Reprovision) => S::Commissioning,
        (S::Commissioned | S::Upgraded, A::VerifyFailed) => S::Failed,
        _ => return None,
    })
}

/// [`step`] with a typed error naming the node.
pub fn next(node: &str, from: NodeStatus, action: Action) -> Result<NodeStatus, IllegalTransition> {
    step(from, action).ok_or_else(|| IllegalTransition {
        node: node.to_owned(),
        from,
        action,
    })
}

/// What a membership event does to a known node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MembershipOutcome {
    /// The status afterwards (only `New` moves: to `Discovered`).
    pub status: NodeStatus,
    /// Reachability afterwards.
    pub reachability: Reachability,
    /// The node came back while in service and must be verified.
    pub verify: bool,
}

/// Applies a membership event to a node's status and reachability.
pub fn on_membership(
    status: NodeStatus,
    reach: Reachability,
    kind: MembershipKind,
    now: Timestamp,
) -> MembershipOutcome {
    let alive = matches!(kind, MembershipKind::Joined | MembershipKind::Updated);
    let status = match (status, alive) {
        (NodeStatus::New, true) => NodeStatus::Discovered,
        (s, _) => s,
    };
    let reachability = match (kind, reach) {
        (MembershipKind::Joined | MembershipKind::Updated, _) => Reachability::Reachable,
        // Keep the first time it went away, so `since` measures the whole outage.
        (MembershipKind::Failed, r @ Reachability::Unreachable { .. }) => r,
        (MembershipKind::Failed, _) => Reachability::Unreachable { since: now },
        (MembershipKind::Left, r @ Reachability::Left { .. }) => r,
        (MembershipKind::Left, _) => Reachability::Left { since: now },
        // Reaping removes a member that already failed or left: keep that record.
        (
            MembershipKind::Reaped,
            r @ (Reachability::Unreachable { .. } | Reachability::Left { .. }),
        ) => r,
        (MembershipKind::Reaped, _) => Reachability::Left { since: now },
    };
    let came_back = !reach.is_reachable()
        && !matches!(reach, Reachability::Unknown)
        && reachability.is_reachable();
    MembershipOutcome {
        status,
        reachability,
        verify: came_back && status.in_service(),
    }
}

/// An action on the cluster record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClusterAction {
    /// The first master starts bootstrapping.
    Bootstrap,
    /// Bootstrap succeeded.
    Bootstrapped,
    /// Bootstrap failed (or was interrupted); back to empty.
    BootstrapFailed,
    /// No master is reachable any more.
    MastersLost,
    /// A master is reachable again.
    MasterBack,
    /// The last master in service was decommissioned or failed; a new one bootstraps.
    MastersGone,
}

/// The cluster state `action` leads to, or `None` when not allowed.
pub fn cluster_step(from: ClusterState, action: ClusterAction) -> Option<ClusterState> {
    use ClusterAction as A;
    use ClusterState as S;
    Some(match (from, action) {
        (S::Empty, A::Bootstrap) => S::Bootstrapping,
        (S::Bootstrapping, A::Bootstrapped) => S::Active,
        (S::Bootstrapping, A::BootstrapFailed) => S::Empty,
        (S::Active, A::MastersLost) => S::Degraded,
        (S::Degraded, A::MasterBack) => S::Active,
        (S::Active | S::Degraded, A::MastersGone) => S::Empty,
        _ => return None,
    })
}

#[cfg(test)]
mod tests;
