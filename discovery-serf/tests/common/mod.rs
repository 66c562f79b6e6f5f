//! Shared fixtures of the serf tests: a pool of real agents behind a `SerfDiscovery`.
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use cluster_core::testkit::discovery::DiscoveryHarness;
use cluster_core::{Discovery, Member, MemberStatus};
use clusterm_tests::serf::{SerfAgent, SerfAgentSpec};
use discovery_serf::{ClientOptions, SerfClient, SerfConfig, SerfDiscovery};

/// Runs blocking fixture work (starting or killing agents) off the async workers.
pub fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

/// A discovery config for `rpc_addr` that reconnects quickly.
pub fn fast_config(rpc_addr: &str) -> SerfConfig {
    SerfConfig {
        max_backoff_ms: 1_000,
        ..SerfConfig::new(rpc_addr)
    }
}

/// The spec of a member agent announcing `label`, serial `SN-<label>`, address = its IP
/// (filled in by [`SerfPool::join`]).
pub fn member_spec(label: &str) -> SerfAgentSpec {
    SerfAgentSpec::new(&format!("serf-{label}"))
        .tag("NodeLabel", label)
        .tag("NodeSerial", &format!("SN-{label}"))
}

/// A source agent clusterm talks to, a hub agent that stays up while the source is
/// restarted, and member agents by label.
pub struct SerfPool {
    pub source: SerfAgent,
    pub hub: SerfAgent,
    pub members: HashMap<String, SerfAgent>,
    pub discovery: Arc<SerfDiscovery>,
}

impl SerfPool {
    pub fn start() -> SerfPool {
        let hub = SerfAgent::start(SerfAgentSpec::new("hub").tag("NodeLabel", "hub"));
        let source = SerfAgent::start(
            SerfAgentSpec::new("source")
                .tag("NodeLabel", "source")
                .join(&hub.gossip_addr()),
        );
        let discovery = Arc::new(SerfDiscovery::new(fast_config(&source.rpc_addr())).unwrap());
        SerfPool {
            source,
            hub,
            members: HashMap::new(),
            discovery,
        }
    }

    /// Starts a member agent announcing `label` and returns the facts expected of it.
    pub fn join(&mut self, label: &str) -> Member {
        let ip = clusterm_tests::serf::next_ip();
        let spec = member_spec(label)
            .tag("NodeAddr", &ip)
            .join(&self.hub.gossip_addr())
            .join(&self.source.gossip_addr());
        let agent = SerfAgent::start_on(&ip, spec);
        let mut want = Member::alive(label, ip);
        want.serial = format!("SN-{label}");
        self.members.insert(label.to_owned(), agent);
        want
    }

    pub fn agent(&mut self, label: &str) -> &mut SerfAgent {
        self.members
            .get_mut(label)
            .unwrap_or_else(|| panic!("no agent for {label}"))
    }
}

/// The pool as a conformance harness.
pub struct SerfHarness(pub SerfPool);

#[async_trait]
impl DiscoveryHarness for SerfHarness {
    fn discovery(&self) -> Arc<dyn Discovery> {
        self.0.discovery.clone()
    }

    async fn join(&mut self, name: &str) -> Member {
        blocking(|| self.0.join(name))
    }

    async fn fail(&mut self, name: &str) {
        blocking(|| self.0.agent(name).kill());
    }

    async fn rejoin(&mut self, name: &str) {
        blocking(|| self.0.agent(name).restart());
    }

    async fn leave(&mut self, name: &str) {
        let agent = self.0.agent(name);
        let client = SerfClient::connect(&ClientOptions::new(agent.rpc_addr()))
            .await
            .unwrap_or_else(|e| panic!("connect to {name}'s agent: {e}"));
        client
            .leave()
            .await
            .unwrap_or_else(|e| panic!("leave {name}: {e}"));
        let exited = blocking(|| agent.wait_exit(std::time::Duration::from_secs(60)));
        assert!(exited, "{name}'s agent did not exit after leave");
    }

    async fn stop_source(&mut self) {
        blocking(|| self.0.source.kill());
    }

    async fn start_source(&mut self) {
        blocking(|| self.0.source.restart());
    }
}

/// Waits until the discovery lists `name` with `status`.
pub async fn member_status(d: &dyn Discovery, name: &str) -> Option<MemberStatus> {
    d.members()
        .await
        .ok()?
        .into_iter()
        .find(|m| m.name == name)
        .map(|m| m.status)
}
