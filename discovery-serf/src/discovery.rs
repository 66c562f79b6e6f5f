//! `SerfDiscovery`: the [`Discovery`] implementation on top of [`SerfClient`]. Maps Serf
//! members to node facts, turns the agent's member events into membership events, and
//! keeps the stream alive across agent restarts: on reconnect it subscribes again first
//! and then replays the member list, so a change made while the agent was away is not
//! missed and the manager's no-change rule keeps replays from duplicating records.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use cluster_core::registry::{BuildFuture, DiscoveryFactory, parse_config};
use cluster_core::{
    Discovery, Member, MemberStatus, MembershipEvent, MembershipKind, MembershipStream,
};
use futures::StreamExt;
use serde_json::Value;
use tokio::sync::mpsc;

use crate::client::{EventStream, SerfClient};
use crate::config::SerfConfig;
use crate::error::SerfError;
use crate::member::{MemberEventKind, SerfMember, SerfStatus, StreamEvent};

/// Tag holding the node's name.
pub const TAG_LABEL: &str = "NodeLabel";
/// Tag holding the node's hardware serial.
pub const TAG_SERIAL: &str = "NodeSerial";
/// Tag holding the node's management address.
pub const TAG_ADDR: &str = "NodeAddr";

/// Discovery through the RPC interface of a local Serf agent.
#[derive(Debug)]
pub struct SerfDiscovery {
    config: SerfConfig,
    /// Shared connection for one-shot calls; replaced when it breaks.
    client: tokio::sync::Mutex<Option<SerfClient>>,
}

impl SerfDiscovery {
    /// A discovery for the agent `config` names; connects lazily.
    pub fn new(config: SerfConfig) -> Result<Self, SerfError> {
        config.validate()?;
        Ok(SerfDiscovery {
            config,
            client: tokio::sync::Mutex::new(None),
        })
    }

    /// The configuration in force.
    pub fn config(&self) -> &SerfConfig {
        &self.config
    }

    /// The shared connection, opened (again) when needed.
    pub async fn client(&self) -> Result<SerfClient, SerfError> {
        let mut cached = self.client.lock().await;
        if let Some(c) = cached.as_ref().filter(|c| c.is_open()) {
            return Ok(c.clone());
        }
        let c = SerfClient::connect(&self.config.client_options()).await?;
        *cached = Some(c.clone());
        Ok(c)
    }

    /// Every member, retried once on a fresh connection when the cached one broke.
    async fn serf_members(&self) -> Result<Vec<SerfMember>, SerfError> {
        match self.client().await?.members().await {
            Err(e) if e.is_connection() => {
                self.client.lock().await.take();
                self.client().await?.members().await
            }
            other => other,
        }
    }
}

/// Node facts of a Serf member: name from `NodeLabel`, serial from `NodeSerial`, address
/// from `NodeAddr`, falling back to the member's name and gossip address.
pub fn to_member(m: &SerfMember) -> Member {
    let tag = |k: &str| m.tags.get(k).filter(|v| !v.is_empty()).cloned();
    Member {
        name: tag(TAG_LABEL).unwrap_or_else(|| m.name.clone()),
        serial: tag(TAG_SERIAL).unwrap_or_default(),
        addr: tag(TAG_ADDR).unwrap_or_else(|| m.addr.to_string()),
        tags: m.tags.clone(),
        status: match m.status {
            SerfStatus::Alive | SerfStatus::Leaving => MemberStatus::Alive,
            SerfStatus::Left => MemberStatus::Left,
            SerfStatus::Failed | SerfStatus::Other(_) => MemberStatus::Failed,
        },
    }
}

/// The membership events of one stream record (none for user events and queries).
pub fn to_events(ev: StreamEvent) -> Vec<MembershipEvent> {
    let StreamEvent::Member { kind, members } = ev else {
        return Vec::new();
    };
    let kind = match kind {
        MemberEventKind::Join => MembershipKind::Joined,
        MemberEventKind::Leave => MembershipKind::Left,
        MemberEventKind::Failed => MembershipKind::Failed,
        MemberEventKind::Update => MembershipKind::Updated,
        MemberEventKind::Reap => MembershipKind::Reaped,
    };
    members
        .iter()
        .map(|m| MembershipEvent {
            kind,
            member: to_member(m),
        })
        .collect()
}

/// The event that brings the inventory to a member's current state.
fn replay(m: &SerfMember) -> MembershipEvent {
    let member = to_member(m);
    let kind = match member.status {
        MemberStatus::Alive => MembershipKind::Joined,
        MemberStatus::Failed => MembershipKind::Failed,
        MemberStatus::Left => MembershipKind::Left,
    };
    MembershipEvent { kind, member }
}

const MEMBER_EVENTS: &str = "member-join,member-leave,member-failed,member-update,member-reap";

/// A dedicated connection subscribed to member events.
async fn open_stream(config: &SerfConfig) -> Result<EventStream, SerfError> {
    let client = SerfClient::connect(&config.client_options()).await?;
    client.stream(MEMBER_EVENTS).await
}

/// Forwards the stream, reconnecting with capped exponential backoff until the
/// receiver goes away.
async fn follow(
    config: SerfConfig,
    mut stream: EventStream,
    tx: mpsc::UnboundedSender<MembershipEvent>,
) {
    let min = Duration::from_millis(config.min_backoff_ms);
    let max = Duration::from_millis(config.max_backoff_ms);
    loop {
        loop {
            let item = tokio::select! {
                _ = tx.closed() => return,
                item = stream.next() => item,
            };
            match item {
                Some(Ok(ev)) => {
                    for e in to_events(ev) {
                        if tx.send(e).is_err() {
                            return;
                        }
                    }
                }
                Some(Err(e)) if e.is_connection() => {
                    tracing::warn!(error = %e, "serf event stream lost");
                }
                Some(Err(e)) => tracing::warn!(error = %e, "serf event record skipped"),
                None => break,
            }
        }
        drop(stream);
        let mut delay = min;
        stream = loop {
            tokio::select! {
                _ = tx.closed() => return,
                _ = tokio::time::sleep(delay) => {}
            }
            // Subscribe before listing so a change between the two is not missed.
            let attempt = async {
                let stream = open_stream(&config).await?;
                let members = stream_client_members(&stream).await?;
                Ok::<_, SerfError>((stream, members))
            };
            match attempt.await {
                Ok((stream, members)) => {
                    tracing::info!(agent = %config.rpc_addr, members = members.len(), "serf agent reconnected");
                    for m in &members {
                        if tx.send(replay(m)).is_err() {
                            return;
                        }
                    }
                    break stream;
                }
                Err(e) => {
                    delay = (delay * 2).min(max);
                    tracing::warn!(agent = %config.rpc_addr, error = %e, retry_in = ?delay, "serf agent unreachable");
                }
            }
        };
    }
}

async fn stream_client_members(stream: &EventStream) -> Result<Vec<SerfMember>, SerfError> {
    stream.client().members().await
}

#[async_trait]
impl Discovery for SerfDiscovery {
    fn name(&self) -> &str {
        "serf"
    }

    async fn members(&self) -> cluster_core::Result<Vec<Member>> {
        Ok(self.serf_members().await?.iter().map(to_member).collect())
    }

    async fn subscribe(&self) -> cluster_core::Result<MembershipStream> {
        let stream = open_stream(&self.config).await?;
        let (tx, mut rx) = mpsc::unbounded_channel();
        tokio::spawn(follow(self.config.clone(), stream, tx));
        Ok(futures::stream::poll_fn(move |cx| rx.poll_recv(cx)).boxed())
    }

    async fn enroll(&self, addrs: &[String], vars: &Value) -> cluster_core::Result<Value> {
        if !vars.is_object() {
            return Err(cluster_core::Error::invalid(
                "extra_vars",
                "must be a JSON object",
            ));
        }
        let mut out = serde_json::Map::new();
        if vars.get("serf_join").is_none() {
            let join: Vec<String> = self
                .serf_members()
                .await?
                .iter()
                .filter(|m| m.status == SerfStatus::Alive)
                .map(|m| SocketAddr::new(m.addr, m.port).to_string())
                .collect();
            if join.is_empty() {
                return Err(cluster_core::Error::Discovery(format!(
                    "no alive serf member to join for {}",
                    addrs.join(", ")
                )));
            }
            out.insert("serf_join".into(), join.into());
        }
        if vars.get("serf_tag_names").is_none() {
            out.insert(
                "serf_tag_names".into(),
                serde_json::json!({"label": TAG_LABEL, "serial": TAG_SERIAL, "addr": TAG_ADDR}),
            );
        }
        Ok(Value::Object(out))
    }
}

fn build(config: Value) -> BuildFuture<dyn Discovery> {
    Box::pin(async move {
        let config: SerfConfig = parse_config("serf", config)?;
        Ok(Arc::new(SerfDiscovery::new(config)?) as Arc<dyn Discovery>)
    })
}

cluster_core::inventory::submit! { DiscoveryFactory::new("serf", build) }
