//! What the client hands out: members and streamed events, decoded from the wire
//! records into plain Rust types.

use std::collections::BTreeMap;
use std::net::IpAddr;

use crate::wire::{EventRecord, WireMember, ip_from_bytes};

/// A member's liveness as the agent reports it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SerfStatus {
    /// Alive.
    Alive,
    /// Leaving (a graceful leave is in progress).
    Leaving,
    /// Left gracefully.
    Left,
    /// Failed its health probes.
    Failed,
    /// A status this client does not know (`none` or a newer agent's).
    Other(String),
}

impl SerfStatus {
    fn parse(s: &str) -> Self {
        match s {
            "alive" => SerfStatus::Alive,
            "leaving" => SerfStatus::Leaving,
            "left" => SerfStatus::Left,
            "failed" => SerfStatus::Failed,
            other => SerfStatus::Other(other.to_owned()),
        }
    }

    /// The agent's word for it.
    pub fn as_str(&self) -> &str {
        match self {
            SerfStatus::Alive => "alive",
            SerfStatus::Leaving => "leaving",
            SerfStatus::Left => "left",
            SerfStatus::Failed => "failed",
            SerfStatus::Other(s) => s,
        }
    }
}

/// One member of the gossip pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SerfMember {
    /// The agent's node name.
    pub name: String,
    /// Gossip address.
    pub addr: IpAddr,
    /// Gossip port.
    pub port: u16,
    /// Tags.
    pub tags: BTreeMap<String, String>,
    /// Liveness.
    pub status: SerfStatus,
    /// Serf protocol version in use.
    pub protocol: u8,
}

impl SerfMember {
    pub(crate) fn from_wire(w: WireMember) -> Result<Self, String> {
        let addr = ip_from_bytes(&w.addr).ok_or_else(|| {
            format!(
                "member {:?} has a {}-byte address; expected 4 or 16",
                w.name,
                w.addr.len()
            )
        })?;
        Ok(SerfMember {
            addr,
            port: w.port,
            tags: w.tags,
            status: SerfStatus::parse(&w.status),
            protocol: w.protocol_cur,
            name: w.name,
        })
    }

    pub(crate) fn from_wire_list(list: Vec<WireMember>) -> Result<Vec<Self>, String> {
        list.into_iter().map(SerfMember::from_wire).collect()
    }
}

/// Which membership change a member event reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MemberEventKind {
    /// `member-join`.
    Join,
    /// `member-leave`.
    Leave,
    /// `member-failed`.
    Failed,
    /// `member-update`.
    Update,
    /// `member-reap`.
    Reap,
}

impl MemberEventKind {
    /// Every kind, for stream filters.
    pub const ALL: [MemberEventKind; 5] = [
        MemberEventKind::Join,
        MemberEventKind::Leave,
        MemberEventKind::Failed,
        MemberEventKind::Update,
        MemberEventKind::Reap,
    ];

    /// The agent's event name (also its stream filter).
    pub fn as_str(self) -> &'static str {
        match self {
            MemberEventKind::Join => "member-join",
            MemberEventKind::Leave => "member-leave",
            MemberEventKind::Failed => "member-failed",
            MemberEventKind::Update => "member-update",
            MemberEventKind::Reap => "member-reap",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        MemberEventKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// One record of an event stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamEvent {
    /// Members joined, left, failed, changed or were reaped.
    Member {
        /// What happened.
        kind: MemberEventKind,
        /// To whom.
        members: Vec<SerfMember>,
    },
    /// A user event (`serf event`).
    User {
        /// Lamport time of the event.
        ltime: u64,
        /// Event name.
        name: String,
        /// Opaque payload.
        payload: Vec<u8>,
        /// Whether the sender allowed coalescing.
        coalesce: bool,
    },
    /// A query addressed to this agent.
    Query {
        /// Id to answer with.
        id: u64,
        /// Lamport time.
        ltime: u64,
        /// Query name.
        name: String,
        /// Opaque payload.
        payload: Vec<u8>,
    },
}

impl StreamEvent {
    pub(crate) fn from_record(rec: EventRecord) -> Result<Self, String> {
        match rec.event.as_str() {
            "user" => Ok(StreamEvent::User {
                ltime: rec.ltime,
                name: rec.name,
                payload: rec.payload,
                coalesce: rec.coalesce,
            }),
            "query" => Ok(StreamEvent::Query {
                id: rec.id,
                ltime: rec.ltime,
                name: rec.name,
                payload: rec.payload,
            }),
            other => {
                let kind = MemberEventKind::parse(other)
                    .ok_or_else(|| format!("unknown stream event {other:?}"))?;
                Ok(StreamEvent::Member {
                    kind,
                    members: SerfMember::from_wire_list(rec.members)?,
                })
            }
        }
    }
}
