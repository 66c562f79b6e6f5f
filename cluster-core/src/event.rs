//! Events: the audit records the inventory keeps for every change, and the membership
//! events discovery feeds into the manager.

use serde::{Deserialize, Serialize};

use crate::job::JobId;
use crate::node::{Member, Timestamp};

/// What part of a node an audit record is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "http", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// The node entered the inventory.
    Created,
    /// Lifecycle status changed.
    Status,
    /// Reachability changed.
    Reachability,
    /// Discovery facts, host group or vars changed.
    Updated,
    /// A verification of a reappearing node ran.
    Verified,
    /// The record was replaced (an address-enrolled node discovered under its name).
    Removed,
}

/// One append-only audit record (design.md section 2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "http", derive(utoipa::ToSchema))]
pub struct NodeEvent {
    /// Position in the global log, assigned by the store (1, 2, ...); 0 before appending.
    pub seq: u64,
    /// The node concerned.
    pub node: String,
    /// When it happened.
    #[cfg_attr(feature = "http", schema(value_type = String, format = DateTime))]
    pub at: Timestamp,
    /// What changed.
    pub kind: EventKind,
    /// Value before (status or reachability name; empty for `Created`).
    pub from: String,
    /// Value after.
    pub to: String,
    /// Why (request, discovery event, job outcome, restart).
    pub cause: String,
    /// The job responsible, if any.
    #[serde(default)]
    pub job: Option<JobId>,
}

/// What happened to a discovery member.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MembershipKind {
    /// Joined (or is alive again).
    Joined,
    /// Failed: missed its health probes.
    Failed,
    /// Left gracefully.
    Left,
    /// Tags or address changed.
    Updated,
    /// Removed from the member list for good after failing or leaving.
    Reaped,
}

/// One event from a [`crate::Discovery`] stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MembershipEvent {
    /// What happened.
    pub kind: MembershipKind,
    /// The member, mapped to node facts.
    pub member: Member,
}
