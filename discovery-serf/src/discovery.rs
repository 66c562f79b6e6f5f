//! `SerfDiscovery`: the [`Discovery`] implementation on top of [`SerfClient`]. Maps Serf
//! members to node facts, turns the agent's member events into membership events, and
//! keeps the stream alive across agent restarts: on reconnect it subscribes again first
//! and then replays the member list, so a change made while the agent was away is not
//! missed and the manager's no-change rule keeps replays from duplicating records. The
//! same replay runs every resync period, which repairs events the agent dropped and
//! notices an agent that hangs without closing the connection.

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

/// Waits between reconnect attempts: doubling from `min`, never above `max`.
#[derive(Debug)]
struct Backoff {
    next: Duration,
    max: Duration,
}

impl Backoff {
    fn new(min: Duration, max: Duration) -> Self {
        Backoff { next: min, max }
    }

    /// The wait before the next attempt.
    fn peek(&self) -> Duration {
        self.next
    }

    /// Takes the current wait and doubles the following one.
    fn next_delay(&mut self) -> Duration {
        let d = self.next;
        self.next = (d * 2).min(self.max);
        d
    }
}

/// Forwards the stream, reconnecting with capped exponential backoff until the
/// receiver goes away.
async fn follow(
    config: SerfConfig,
    mut stream: EventStream,
    tx: mpsc::UnboundedSender<MembershipEvent>,
) {
    loop {
        if !forward(&config, &mut stream, &tx).await {
            return;
        }
        drop(stream);
        let mut backoff = Backoff::new(
            Duration::from_millis(config.min_backoff_ms),
            Duration::from_millis(config.max_backoff_ms),
        );
        stream = loop {
            tokio::select! {
                _ = tx.closed() => return,
                _ = tokio::time::sleep(backoff.next_delay()) => {}
            }
            // Subscribe before listing so a change between the two is not missed.
            let attempt = async {
                let stream = open_stream(&config).await?;
                let members = stream.client().members().await?;
                Ok::<_, SerfError>((stream, members))
            };
            match attempt.await {
                Ok((stream, members)) => {
                    tracing::info!(agent = %config.rpc_addr, members = members.len(), "serf agent reconnected");
                    if !send_all(&tx, members.iter().map(replay)) {
                        return;
                    }
                    break stream;
                }
                Err(e) => {
                    tracing::warn!(agent = %config.rpc_addr, error = %e, retry_in = ?backoff.peek(), "serf agent unreachable");
                }
            }
        };
    }
}

/// Forwards one connection's records, re-reading the member list every resync period;
/// returns `false` when the receiver is gone, `true` when the connection is lost.
async fn forward(
    config: &SerfConfig,
    stream: &mut EventStream,
    tx: &mpsc::UnboundedSender<MembershipEvent>,
) -> bool {
    let mut resync = config
        .resync()
        .map(|d| tokio::time::interval_at(tokio::time::Instant::now() + d, d));
    loop {
        let tick = async {
            match resync.as_mut() {
                Some(i) => i.tick().await,
                None => std::future::pending().await,
            }
        };
        let item = tokio::select! {
            _ = tx.closed() => return false,
            _ = tick => {
                match stream.client().members().await {
                    Ok(members) => {
                        if !send_all(tx, members.iter().map(replay)) {
                            return false;
                        }
                        continue;
                    }
                    Err(e) => {
                        tracing::warn!(agent = %config.rpc_addr, error = %e, "serf resync failed; reconnecting");
                        return true;
                    }
                }
            }
            item = stream.next() => item,
        };
        match item {
            Some(Ok(ev)) => {
                if !send_all(tx, to_events(ev)) {
                    return false;
                }
            }
            Some(Err(e)) if e.is_connection() => {
                tracing::warn!(agent = %config.rpc_addr, error = %e, "serf event stream lost");
            }
            Some(Err(e)) => {
                tracing::warn!(agent = %config.rpc_addr, error = %e, "serf event record skipped")
            }
            None => return true,
        }
    }
}

fn send_all(
    tx: &mpsc::UnboundedSender<MembershipEvent>,
    events: impl IntoIterator<Item = MembershipEvent>,
) -> bool {
    events.into_iter().all(|e| tx.send(e).is_ok())
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn serf_member(name: &str, tags: &[(&str, &str)], status: SerfStatus) -> SerfMember {
        SerfMember {
            name: name.into(),
            addr: "127.0.0.9".parse().unwrap(),
            port: 7946,
            tags: tags
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
            status,
            protocol: 5,
        }
    }

    #[test]
    fn tags_name_the_node_and_member_facts_fill_the_gaps() {
        let tagged = serf_member(
            "host-17",
            &[
                (TAG_LABEL, "web-1"),
                (TAG_SERIAL, "SN1"),
                (TAG_ADDR, "192.0.2.1"),
            ],
            SerfStatus::Alive,
        );
        let m = to_member(&tagged);
        assert_eq!(
            (m.name.as_str(), m.serial.as_str(), m.addr.as_str()),
            ("web-1", "SN1", "192.0.2.1")
        );
        assert_eq!(m.tags.len(), 3);
        assert_eq!(m.status, MemberStatus::Alive);

        // Empty tags count as absent.
        let bare = serf_member("host-18", &[(TAG_LABEL, "")], SerfStatus::Leaving);
        let m = to_member(&bare);
        assert_eq!(
            (m.name.as_str(), m.serial.as_str(), m.addr.as_str()),
            ("host-18", "", "127.0.0.9")
        );
        assert_eq!(m.status, MemberStatus::Alive);

        assert_eq!(
            to_member(&serf_member("x", &[], SerfStatus::Left)).status,
            MemberStatus::Left
        );
        assert_eq!(
            to_member(&serf_member("x", &[], SerfStatus::Failed)).status,
            MemberStatus::Failed
        );
        assert_eq!(
            to_member(&serf_member("x", &[], SerfStatus::Other("none".into()))).status,
            MemberStatus::Failed
        );
    }

    #[test]
    fn member_events_map_one_to_one_and_user_events_are_ignored() {
        let pairs = [
            (MemberEventKind::Join, MembershipKind::Joined),
            (MemberEventKind::Leave, MembershipKind::Left),
            (MemberEventKind::Failed, MembershipKind::Failed),
            (MemberEventKind::Update, MembershipKind::Updated),
            (MemberEventKind::Reap, MembershipKind::Reaped),
        ];
        for (serf, ours) in pairs {
            let ev = StreamEvent::Member {
                kind: serf,
                members: vec![
                    serf_member("a", &[], SerfStatus::Alive),
                    serf_member("b", &[], SerfStatus::Alive),
                ],
            };
            let out = to_events(ev);
            assert_eq!(out.len(), 2);
            assert!(out.iter().all(|e| e.kind == ours), "{serf:?}");
        }
        let user = StreamEvent::User {
            ltime: 1,
            name: "deploy".into(),
            payload: vec![],
            coalesce: false,
        };
        assert!(to_events(user).is_empty());
    }

    #[test]
    fn replays_bring_the_inventory_to_the_current_status() {
        for (status, kind) in [
            (SerfStatus::Alive, MembershipKind::Joined),
            (SerfStatus::Failed, MembershipKind::Failed),
            (SerfStatus::Left, MembershipKind::Left),
        ] {
            assert_eq!(replay(&serf_member("a", &[], status)).kind, kind);
        }
    }

    #[test]
    fn reconnect_waits_double_up_to_the_cap() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(1_000));
        let waits: Vec<u128> = (0..7).map(|_| b.next_delay().as_millis()).collect();
        assert_eq!(waits, [100, 200, 400, 800, 1_000, 1_000, 1_000]);
    }

    #[tokio::test]
    async fn enroll_refuses_vars_that_are_not_an_object() {
        let d = SerfDiscovery::new(SerfConfig::new("127.0.0.1:1")).unwrap();
        let err = d
            .enroll(&["127.0.0.2".into()], &Value::from(3))
            .await
            .unwrap_err();
        assert_eq!(err.code(), "invalid_input");
        assert!(SerfDiscovery::new(SerfConfig::new("")).is_err());
    }
}
