//! API benchmark: serves the REST API from a manager on the durable redb store holding
//! 10,000 discovered nodes, then measures `GET /v1/nodes` latency (and the Contiv
//! `GET /info/nodes` for comparison) and the request rate of `GET /v1/nodes/{name}`
//! with 8 connections (wrk with one thread when installed, so the server keeps both
//! cores busy, else a built-in load generator).
//! Prints one `name value unit` line per figure.
//!
//! ```sh
//! cargo run --release -p clusterm-examples --example api_bench
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use cluster_core::api::{Api, ApiConfig};
use cluster_core::{
    InventoryStore, Manager, Member, MemberStatus, MembershipEvent, MembershipKind, registry,
};
use serde_json::json;

const NODES: usize = 10_000;
const CONNECTIONS: usize = 8;
const LOAD_SECS: u64 = 5;

fn figure(name: &str, value: f64, unit: &str) {
    println!("{name} {value:.3} {unit}");
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

async fn latency(client: &reqwest::Client, url: &str, runs: usize) -> (Vec<Duration>, usize) {
    let mut bytes = 0;
    for _ in 0..3 {
        bytes = client
            .get(url)
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap()
            .len();
    }
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let start = Instant::now();
        let body = client.get(url).send().await.unwrap().bytes().await.unwrap();
        times.push(start.elapsed());
        assert_eq!(body.len(), bytes);
    }
    times.sort();
    (times, bytes)
}

/// Requests per second from `wrk`, when it is installed.
fn wrk_rps(url: &str) -> Option<f64> {
    let out = std::process::Command::new("wrk")
        .args([
            "-t1",
            &format!("-c{CONNECTIONS}"),
            &format!("-d{LOAD_SECS}s"),
            url,
        ])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().find(|l| l.starts_with("Requests/sec:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Requests per second from keep-alive connections driven by this process.
async fn builtin_rps(url: &str) -> f64 {
    let done = Arc::new(AtomicU64::new(0));
    let stop = Instant::now() + Duration::from_secs(LOAD_SECS);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..CONNECTIONS {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(1)
            .build()
            .unwrap();
        let url = url.to_owned();
        let done = done.clone();
        tasks.push(tokio::spawn(async move {
            while Instant::now() < stop {
                let r = client.get(&url).send().await.unwrap();
                r.bytes().await.unwrap();
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    done.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let store = registry::build::<dyn InventoryStore>("redb", json!({"dir": dir.path()}))
        .await
        .unwrap();
    let manager = Manager::builder(store).start().await.unwrap();
    for i in 0..NODES {
        let mut tags = BTreeMap::new();
        tags.insert("NodeLabel".to_owned(), format!("node-{i:05}"));
        tags.insert("rack".to_owned(), format!("r{}", i % 40));
        let member = Member {
            name: format!("node-{i:05}"),
            serial: format!("SN{i:08}"),
            addr: format!("10.{}.{}.{}", i / 65536, (i / 256) % 256, i % 256),
            tags,
            status: MemberStatus::Alive,
        };
        manager
            .membership(MembershipEvent {
                kind: MembershipKind::Joined,
                member,
            })
            .unwrap();
    }
    manager.settle().await.unwrap();
    assert_eq!(manager.node_count(), NODES);

    let api = Api::new(manager.clone(), ApiConfig::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, api.router()).await });
    let base = format!("http://{addr}");
    let client = reqwest::Client::new();

    let (times, bytes) = latency(&client, &format!("{base}/v1/nodes"), 50).await;
    figure("api_list_10000_nodes_p50", percentile(&times, 0.5), "ms");
    figure("api_list_10000_nodes_p99", percentile(&times, 0.99), "ms");
    figure("api_list_10000_nodes_body", bytes as f64 / 1e6, "MB");
    let (times, bytes) = latency(&client, &format!("{base}/info/nodes"), 10).await;
    figure("compat_info_nodes_10000_p50", percentile(&times, 0.5), "ms");
    figure("compat_info_nodes_10000_body", bytes as f64 / 1e6, "MB");

    let one = format!("{base}/v1/nodes/node-04242");
    let (times, _) = latency(&client, &one, 200).await;
    figure("api_get_node_p50", percentile(&times, 0.5), "ms");
    match wrk_rps(&one) {
        Some(rps) => figure("api_get_node_rps_wrk_8conn", rps, "req/s"),
        None => figure(
            "api_get_node_rps_builtin_8conn",
            builtin_rps(&one).await,
            "req/s",
        ),
    }
    manager.shutdown().await;
}
