//! Inventory and manager benchmark: prints one `name value unit` line per figure.
//!
//! Run: `cargo run --release -p cluster-core --example bench [nodes] [rss_nodes]`
//! (defaults 10000 and 100000; `CLUSTERM_BENCH_STORE=memory` swaps the store). Figures (design.md section 8 targets):
//! - discover + commission N nodes through the manager, redb store, no-op push;
//! - lifecycle transitions committed per second;
//! - manager start (load + reconcile) on the N-node inventory;
//! - resident memory per node with `rss_nodes` nodes in the manager.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cluster_core::manager::Request;
use cluster_core::{
    InventoryStore, JobStatus, Manager, Member, MembershipEvent, MembershipKind, NodeStatus,
    registry,
};
use serde_json::json;

fn member(i: usize) -> MembershipEvent {
    let mut m = Member::alive(
        format!("node-{i:06}"),
        format!("10.{}.{}.{}", i >> 16, (i >> 8) & 255, i & 255),
    );
    m.serial = format!("SN{i:08}");
    m.tags.insert("NodeLabel".into(), m.name.clone());
    m.tags.insert("NodeSerial".into(), m.serial.clone());
    m.tags.insert("NodeAddr".into(), m.addr.clone());
    MembershipEvent {
        kind: MembershipKind::Joined,
        member: m,
    }
}

/// The store under test: `redb` unless `CLUSTERM_BENCH_STORE` names another.
async fn redb(dir: &std::path::Path) -> Arc<dyn InventoryStore> {
    let name = std::env::var("CLUSTERM_BENCH_STORE").unwrap_or_else(|_| "redb".into());
    let config = if name == "redb" {
        json!({ "dir": dir })
    } else {
        json!({})
    };
    registry::build::<dyn InventoryStore>(&name, config)
        .await
        .expect("store")
}

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|kb| kb.parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

fn figure(name: &str, value: f64, unit: &str) {
    println!("{name} {value:.3} {unit}");
}

async fn discover(m: &Manager, n: usize) {
    for i in 0..n {
        m.membership(member(i)).expect("manager running");
    }
    m.settle().await.expect("settled");
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut args = std::env::args().skip(1);
    let nodes: usize = args.next().map_or(10_000, |a| a.parse().expect("nodes"));
    let rss_nodes: usize = args
        .next()
        .map_or(100_000, |a| a.parse().expect("rss_nodes"));
    let dir = tempfile::tempdir().expect("temp dir");

    // Discover + commission through the manager, durable store, no-op push.
    let store = redb(dir.path()).await;
    let m = Manager::builder(store.clone())
        .start()
        .await
        .expect("start");
    let t0 = Instant::now();
    discover(&m, nodes).await;
    let discovered = t0.elapsed();
    let names: Vec<String> = m.nodes().into_iter().map(|n| n.name).collect();
    let t1 = Instant::now();
    let id = m
        .commission(Request::nodes(names.clone()).host_group("service-worker"))
        .await
        .expect("commission");
    let job = m.wait_job(id).await.expect("job");
    let commissioned = t1.elapsed();
    assert_eq!(job.status, JobStatus::Complete, "{job:?}");
    assert!(
        m.nodes()
            .iter()
            .all(|n| n.status == NodeStatus::Commissioned)
    );
    figure("discover_nodes_time", discovered.as_secs_f64() * 1e3, "ms");
    figure(
        "commission_nodes_time",
        commissioned.as_secs_f64() * 1e3,
        "ms",
    );
    figure(
        "discover_and_commission_total",
        (discovered + commissioned).as_secs_f64() * 1e3,
        "ms",
    );
    figure("nodes", nodes as f64, "nodes");

    // Transitions per second: upgrades commit two transitions per node.
    let t2 = Instant::now();
    let id = m
        .upgrade(Request::nodes(names.clone()))
        .await
        .expect("upgrade");
    m.wait_job(id).await.expect("job");
    let upgraded = t2.elapsed();
    figure(
        "transitions_per_second",
        (2 * nodes) as f64 / upgraded.as_secs_f64(),
        "transitions/s",
    );

    // Single-node requests: one durable commit each (accept) plus one (outcome).
    let sample = nodes.min(200);
    let t3 = Instant::now();
    for name in names.iter().take(sample) {
        let id = m
            .upgrade(Request::nodes([name.clone()]))
            .await
            .expect("upgrade");
        m.wait_job(id).await.expect("job");
    }
    figure(
        "single_node_job_latency",
        t3.elapsed().as_secs_f64() * 1e3 / sample as f64,
        "ms",
    );
    m.shutdown().await;
    drop(m);

    // Restart on the same inventory (the file reopened): load and reconcile.
    let store = if store.name() == "memory" {
        store
    } else {
        drop(store);
        redb(dir.path()).await
    };
    let t4 = Instant::now();
    let m = Manager::builder(store).start().await.expect("restart");
    figure(
        "restart_reconcile_time",
        t4.elapsed().as_secs_f64() * 1e3,
        "ms",
    );
    assert_eq!(m.node_count(), nodes);
    m.shutdown().await;
    drop(m);

    // Memory: resident set growth per node in a fresh manager.
    let dir2 = tempfile::tempdir().expect("temp dir");
    let store = redb(dir2.path()).await;
    let m = Manager::builder(store).start().await.expect("start");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let before = rss_bytes();
    discover(&m, rss_nodes).await;
    let after = rss_bytes();
    assert_eq!(m.node_count(), rss_nodes);
    figure("rss_nodes", rss_nodes as f64, "nodes");
    figure("rss_total", after as f64 / (1024.0 * 1024.0), "MiB");
    figure(
        "rss_per_node",
        after.saturating_sub(before) as f64 / rss_nodes as f64,
        "bytes",
    );
    m.shutdown().await;
}
