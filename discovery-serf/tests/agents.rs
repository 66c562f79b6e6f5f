//! `SerfDiscovery` feeding a real `Manager` (memory store) from real serf agents on
//! loopback: discovery with the right facts, failure and return, graceful leave,
//! reconnect after the agent restarts, auth keys, the registry factory and enrollment.

mod common;

use std::sync::Arc;
use std::time::Duration;

use cluster_core::registry;
use cluster_core::testkit::doubles::RecordingPush;
use cluster_core::testkit::eventually;
use cluster_core::{
    Discovery, EventKind, EventQuery, JobStatus, Manager, MembershipKind, MemoryStore, Node,
    NodeStatus, PushAction,
};
use clusterm_tests::serf::{SerfAgent, SerfAgentSpec};
use common::{blocking, fast_config, member_spec};
use discovery_serf::{ClientOptions, SerfClient, SerfConfig, SerfDiscovery};
use futures::StreamExt;
use serde_json::json;

const WAIT: Duration = Duration::from_secs(120);

async fn manager(discovery: Arc<dyn Discovery>) -> Manager {
    Manager::builder(Arc::new(MemoryStore::new()))
        .discovery(discovery)
        .start()
        .await
        .unwrap()
}

async fn node_where(m: &Manager, name: &str, what: &str, pred: impl Fn(&Node) -> bool) -> Node {
    eventually(&format!("{name} {what}"), WAIT, || {
        m.node(name).ok().filter(|n| pred(n))
    })
    .await
}

async fn created_count(m: &Manager, name: &str) -> usize {
    m.events(EventQuery::node(name, 0, usize::MAX))
        .await
        .unwrap()
        .iter()
        .filter(|e| e.kind == EventKind::Created)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_agents_are_discovered_fail_return_and_leave() {
    let a0 = blocking(|| SerfAgent::start(member_spec("n0")));
    let gossip = a0.gossip_addr();
    // n1 has no NodeLabel and no NodeAddr: named and addressed by serf itself.
    let a1 = blocking(|| {
        SerfAgent::start(
            SerfAgentSpec::new("plain-n1")
                .tag("NodeSerial", "SN-n1")
                .join(&gossip),
        )
    });
    let ip2 = clusterm_tests::serf::next_ip();
    let mut a2 = blocking(|| {
        SerfAgent::start_on(&ip2, member_spec("n2").tag("NodeAddr", &ip2).join(&gossip))
    });
    let discovery = Arc::new(SerfDiscovery::new(fast_config(&a0.rpc_addr())).unwrap());
    let m = manager(discovery).await;

    for (name, serial, addr) in [
        ("n0", "SN-n0", a0.ip()),
        ("plain-n1", "SN-n1", a1.ip()),
        ("n2", "SN-n2", a2.ip()),
    ] {
        let node = node_where(&m, name, "discovered", |n| n.reachability.is_reachable()).await;
        assert_eq!(node.status, NodeStatus::Discovered, "{node:?}");
        assert_eq!((node.serial.as_str(), node.addr.as_str()), (serial, addr));
    }
    assert_eq!(m.node_count(), 3, "{:?}", m.nodes());

    blocking(|| a2.kill());
    node_where(&m, "n2", "unreachable", |n| {
        n.reachability.as_str() == "unreachable"
    })
    .await;
    blocking(|| a2.restart());
    let back = node_where(&m, "n2", "reachable again", |n| {
        n.reachability.is_reachable()
    })
    .await;
    assert_eq!(back.status, NodeStatus::Discovered);

    // A graceful leave through serf's own command line.
    let status = std::process::Command::new("serf")
        .arg("leave")
        .arg(format!("-rpc-addr={}", a1.rpc_addr()))
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "serf leave failed: {status}");
    node_where(&m, "plain-n1", "left", |n| {
        n.reachability.as_str() == "left"
    })
    .await;

    m.settle().await.unwrap();
    assert_eq!(m.node_count(), 3);
    for name in ["n0", "plain-n1", "n2"] {
        assert_eq!(created_count(&m, name).await, 1, "{name} created once");
    }
    m.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_rpc_agent_is_reconnected_and_the_inventory_catches_up() {
    let hub = blocking(|| SerfAgent::start(SerfAgentSpec::new("hub")));
    let mut source = blocking(|| SerfAgent::start(member_spec("src").join(&hub.gossip_addr())));
    let a1 = blocking(|| SerfAgent::start(member_spec("r1").join(&hub.gossip_addr())));
    let discovery = Arc::new(SerfDiscovery::new(fast_config(&source.rpc_addr())).unwrap());
    let m = manager(discovery).await;
    node_where(&m, "r1", "discovered", |n| n.serial == "SN-r1").await;

    blocking(|| source.kill());
    // While clusterm's agent is gone: r1 changes its serial tag and r2 joins.
    let r1 = SerfClient::connect(&ClientOptions::new(a1.rpc_addr()))
        .await
        .unwrap();
    let tags = [("NodeSerial".to_owned(), "SN-r1-new".to_owned())].into();
    r1.tags(&tags, &[]).await.unwrap();
    let _a2 = blocking(|| SerfAgent::start(member_spec("r2").join(&hub.gossip_addr())));
    blocking(|| source.restart());

    node_where(&m, "r2", "discovered after reconnect", |n| {
        n.reachability.is_reachable() && n.serial == "SN-r2"
    })
    .await;
    node_where(&m, "r1", "with its new serial", |n| n.serial == "SN-r1-new").await;
    m.settle().await.unwrap();
    for name in ["src", "r1", "r2"] {
        assert_eq!(created_count(&m, name).await, 1, "{name} created once");
    }
    m.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscription_outlives_an_agent_restart_and_replays_members() {
    let mut agent = blocking(|| SerfAgent::start(member_spec("solo")));
    let discovery = SerfDiscovery::new(fast_config(&agent.rpc_addr())).unwrap();
    let mut stream = discovery.subscribe().await.unwrap();
    // The kill cuts the stream's connection; the restart is a new agent process.
    blocking(|| agent.kill());
    blocking(|| agent.restart());
    let ev = tokio::time::timeout(WAIT, async {
        loop {
            let ev = stream.next().await.expect("stream must not end");
            if ev.member.name == "solo" {
                return ev;
            }
        }
    })
    .await
    .expect("replayed member after reconnect");
    assert_eq!(ev.kind, MembershipKind::Joined);
    assert_eq!(ev.member.serial, "SN-solo");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_auth_key_is_a_clear_error() {
    let agent = blocking(|| SerfAgent::start(member_spec("locked").rpc_auth("open-sesame")));
    let right =
        SerfDiscovery::new(SerfConfig::new(agent.rpc_addr()).auth_key("open-sesame")).unwrap();
    let members = right.members().await.unwrap();
    assert_eq!(members[0].name, "locked");

    let wrong =
        SerfDiscovery::new(SerfConfig::new(agent.rpc_addr()).auth_key("guess-123")).unwrap();
    let err = wrong.members().await.unwrap_err();
    assert_eq!(err.code(), "discovery");
    let msg = err.to_string();
    assert!(
        msg.contains("authentication failed") && msg.contains(&agent.rpc_addr()),
        "{msg}"
    );
    assert!(!msg.contains("guess-123") && !format!("{wrong:?}").contains("guess-123"));
    let err = wrong.subscribe().await.err().expect("subscribe refused");
    assert!(
        err.to_string().contains("Invalid authentication token"),
        "{err}"
    );

    let none = SerfDiscovery::new(SerfConfig::new(agent.rpc_addr())).unwrap();
    let err = none.members().await.unwrap_err();
    assert!(err.to_string().contains("Authentication required"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_registry_builds_serf_from_its_config_section() {
    let agent = blocking(|| SerfAgent::start(member_spec("reg")));
    let d = registry::build::<dyn Discovery>("serf", json!({"rpc_addr": agent.rpc_addr()}))
        .await
        .unwrap();
    assert_eq!(d.name(), "serf");
    assert_eq!(d.members().await.unwrap()[0].name, "reg");

    let err = registry::build::<dyn Discovery>("serf", json!({"rpc_adress": "x:1"}))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "config");
    assert!(err.to_string().contains("rpc_adress"), "{err}");
    let err = registry::build::<dyn Discovery>("serf", json!({"rpc_addr": "no-port"}))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "config");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enrolled_hosts_get_join_vars_and_are_renamed_once_discovered() {
    let source = blocking(|| SerfAgent::start(member_spec("seed")));
    let discovery = Arc::new(SerfDiscovery::new(fast_config(&source.rpc_addr())).unwrap());
    let push = Arc::new(RecordingPush::new());
    let m = Manager::builder(Arc::new(MemoryStore::new()))
        .discovery(discovery)
        .push(push.clone())
        .start()
        .await
        .unwrap();
    node_where(&m, "seed", "discovered", |n| n.reachability.is_reachable()).await;

    let ip = clusterm_tests::serf::next_ip();
    let job = m
        .discover(vec![ip.clone()], json!({"env": "test"}))
        .await
        .unwrap();
    assert_eq!(m.wait_job(job).await.unwrap().status, JobStatus::Complete);
    let calls = push.calls_of(PushAction::Discover);
    assert_eq!(calls.len(), 1);
    let host = &calls[0].hosts[0];
    assert_eq!(host.addr, ip);
    assert_eq!(host.vars["serf_join"], json!([source.gossip_addr()]));
    assert_eq!(host.vars["serf_tag_names"]["serial"], "NodeSerial");
    assert_eq!(host.vars["env"], "test");
    assert_eq!(m.node(&ip).unwrap().status, NodeStatus::New);

    // What the discover playbook does on the host: start an agent with the tags.
    let _agent = blocking(|| {
        SerfAgent::start_on(
            &ip,
            member_spec("enrolled-1")
                .tag("NodeAddr", &ip)
                .join(&source.gossip_addr()),
        )
    });
    let node = node_where(&m, "enrolled-1", "discovered", |n| {
        n.status == NodeStatus::Discovered
    })
    .await;
    assert_eq!(node.addr, ip);
    assert_eq!(node.vars, json!({}), "{node:?}");
    assert!(m.node(&ip).is_err(), "the address-named record is replaced");
    m.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_member_list_is_replayed_every_resync_period() {
    let agent = blocking(|| SerfAgent::start(member_spec("steady")));
    let config = SerfConfig {
        resync_ms: 200,
        ..fast_config(&agent.rpc_addr())
    };
    let discovery = SerfDiscovery::new(config).unwrap();
    let mut stream = discovery.subscribe().await.unwrap();
    // Nothing changes, yet the member keeps being reported: the periodic re-read.
    let mut seen = 0;
    tokio::time::timeout(WAIT, async {
        while seen < 3 {
            let ev = stream.next().await.expect("stream must not end");
            if ev.member.name == "steady" && ev.kind == MembershipKind::Joined {
                seen += 1;
            }
        }
    })
    .await
    .expect("three reports of the steady member");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_member_is_reaped_and_its_node_stays_unreachable() {
    let source =
        blocking(|| SerfAgent::start(member_spec("keeper").config("reconnect_timeout", "\"1s\"")));
    let mut gone = blocking(|| SerfAgent::start(member_spec("gone").join(&source.gossip_addr())));
    let discovery = Arc::new(SerfDiscovery::new(fast_config(&source.rpc_addr())).unwrap());
    let mut stream = discovery.subscribe().await.unwrap();
    let m = manager(discovery.clone()).await;
    node_where(&m, "gone", "discovered", |n| n.reachability.is_reachable()).await;

    blocking(|| gone.kill());
    tokio::time::timeout(WAIT, async {
        loop {
            let ev = stream.next().await.expect("stream must not end");
            if ev.member.name == "gone" && ev.kind == MembershipKind::Reaped {
                return;
            }
        }
    })
    .await
    .expect("member-reap for the killed member");
    let listed = discovery.members().await.unwrap();
    assert!(listed.iter().all(|x| x.name != "gone"), "{listed:?}");
    m.settle().await.unwrap();
    let node = node_where(&m, "gone", "unreachable", |n| {
        n.reachability.as_str() == "unreachable"
    })
    .await;
    assert_eq!(node.status, NodeStatus::Discovered);
    m.shutdown().await;
}
