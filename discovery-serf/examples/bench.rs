//! Discovery benchmark: 50 real serf agents on loopback join one agent that clusterm
//! watches through `SerfDiscovery`, in waves of 10 (so the agent reports several
//! separate batches); then 10 of them are killed, in two waves. For every member it
//! measures how long after the agent streamed the event (seen by an independent RPC
//! subscriber on the same agent) the node's reachability changed in the manager's
//! inventory, and whether every member made it. Prints `name value unit` lines.
//!
//! Run: `cargo run --release -p discovery-serf --example bench [-- AGENTS [KILLED]]`

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cluster_core::{EventKind, EventQuery, Manager, MemoryStore};
use clusterm_tests::serf::{SerfAgent, SerfAgentSpec};
use discovery_serf::{
    ClientOptions, MemberEventKind, SerfClient, SerfConfig, SerfDiscovery, StreamEvent,
};

/// Agents started (and waited for) together.
const WAVE: usize = 10;

type Seen = Arc<Mutex<HashMap<(String, &'static str), Instant>>>;

fn spec(label: &str) -> SerfAgentSpec {
    SerfAgentSpec::new(label)
        .tag("NodeLabel", label)
        .tag("NodeSerial", &format!("SN-{label}"))
}

/// Records when the agent streamed each member's join and failure.
async fn observe(client: SerfClient, seen: Seen) {
    let mut stream = client
        .stream("member-join,member-failed")
        .await
        .expect("stream");
    while let Some(Ok(ev)) = stream.next().await {
        let at = Instant::now();
        if let StreamEvent::Member { kind, members } = ev {
            let what = if kind == MemberEventKind::Join {
                "join"
            } else {
                "fail"
            };
            let mut seen = seen.lock().unwrap();
            for m in members {
                seen.entry((m.name, what)).or_insert(at);
            }
        }
    }
}

/// Records when each node first showed up reachable and first unreachable.
fn watch_inventory(m: Manager, seen: Seen, stop: Arc<std::sync::atomic::AtomicBool>) {
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        let now = Instant::now();
        let mut seen = seen.lock().unwrap();
        m.for_each_node(|n| {
            let what = match n.reachability.as_str() {
                "reachable" => "join",
                "unreachable" => "fail",
                _ => return,
            };
            seen.entry((n.name.clone(), what)).or_insert(now);
        });
        drop(seen);
        std::thread::sleep(Duration::from_micros(200));
    }
}

fn print(name: &str, value: impl std::fmt::Display, unit: &str) {
    println!("{name} {value} {unit}");
}

fn latencies(names: &[String], what: &'static str, agent: &Seen, inv: &Seen) -> (Vec<f64>, usize) {
    let agent = agent.lock().unwrap();
    let inv = inv.lock().unwrap();
    let mut lat = Vec::new();
    let mut missing = 0;
    for n in names {
        let key = (n.clone(), what);
        match (agent.get(&key), inv.get(&key)) {
            (Some(a), Some(i)) => {
                lat.push(i.saturating_duration_since(*a).as_secs_f64() * 1e3);
            }
            (_, None) => missing += 1,
            (None, Some(_)) => {}
        }
    }
    lat.sort_by(f64::total_cmp);
    (lat, missing)
}

fn report(prefix: &str, lat: &[f64], missing: usize, expected: usize) {
    print(&format!("{prefix}_events_measured"), lat.len(), "count");
    if !lat.is_empty() {
        print(
            &format!("{prefix}_added_latency_median"),
            format!("{:.2}", lat[lat.len() / 2]),
            "ms",
        );
        print(
            &format!("{prefix}_added_latency_max"),
            format!("{:.2}", lat[lat.len() - 1]),
            "ms",
        );
    }
    print(
        &format!("{prefix}_reached_inventory"),
        expected - missing,
        "count",
    );
    print(&format!("{prefix}_lost"), missing, "count");
}

async fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        if Instant::now() > deadline {
            eprintln!("timed out waiting for {what}");
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut args = std::env::args().skip(1);
    let agents: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(50);
    let killed: usize = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(10)
        .min(agents);

    let source = SerfAgent::start(spec("bench-source"));
    let join = source.gossip_addr();
    let discovery = Arc::new(SerfDiscovery::new(SerfConfig::new(source.rpc_addr())).unwrap());
    let m = Manager::builder(Arc::new(MemoryStore::new()))
        .discovery(discovery)
        .start()
        .await
        .unwrap();
    let agent_seen: Seen = Arc::default();
    let inv_seen: Seen = Arc::default();
    let observer = SerfClient::connect(&ClientOptions::new(source.rpc_addr()))
        .await
        .unwrap();
    tokio::spawn(observe(observer, agent_seen.clone()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = {
        let (m, s, stop) = (m.clone(), inv_seen.clone(), stop.clone());
        std::thread::spawn(move || watch_inventory(m, s, stop))
    };

    let names: Vec<String> = (0..agents).map(|i| format!("bench-{i:03}")).collect();
    let started = Instant::now();
    let mut pool: Vec<SerfAgent> = Vec::new();
    for wave in names.chunks(WAVE) {
        let joined: Vec<SerfAgent> = tokio::task::block_in_place(|| {
            std::thread::scope(|s| {
                let handles: Vec<_> = wave
                    .iter()
                    .map(|n| {
                        let join = join.clone();
                        s.spawn(move || SerfAgent::start(spec(n).join(&join)))
                    })
                    .collect();
                handles.into_iter().map(|h| h.join().unwrap()).collect()
            })
        });
        pool.extend(joined);
        wait_until(
            "the wave in the inventory",
            Duration::from_secs(180),
            || {
                wave.iter()
                    .all(|n| m.node(n).is_ok_and(|n| n.reachability.is_reachable()))
            },
        )
        .await;
    }
    print("serf_agents", agents, "count");
    print(
        "serf_join_converge_time",
        format!("{:.2}", started.elapsed().as_secs_f64()),
        "s",
    );
    let (lat, missing) = latencies(&names, "join", &agent_seen, &inv_seen);
    report("serf_join", &lat, missing, agents);

    let victims: Vec<String> = names.iter().take(killed).cloned().collect();
    let failed_at = Instant::now();
    for (i, wave) in victims.chunks(killed.div_ceil(2).max(1)).enumerate() {
        let first = i * killed.div_ceil(2).max(1);
        tokio::task::block_in_place(|| {
            pool[first..first + wave.len()]
                .iter_mut()
                .for_each(SerfAgent::kill)
        });
        wait_until(
            "killed members unreachable",
            Duration::from_secs(180),
            || {
                wave.iter().all(|n| {
                    m.node(n)
                        .is_ok_and(|n| n.reachability.as_str() == "unreachable")
                })
            },
        )
        .await;
    }
    print(
        "serf_fail_detect_time",
        format!("{:.2}", failed_at.elapsed().as_secs_f64()),
        "s",
    );
    let (lat, missing) = latencies(&victims, "fail", &agent_seen, &inv_seen);
    report("serf_fail", &lat, missing, killed);

    m.settle().await.unwrap();
    let mut duplicated = 0;
    for n in &names {
        let created = m
            .events(EventQuery::node(n.as_str(), 0, usize::MAX))
            .await
            .unwrap()
            .iter()
            .filter(|e| e.kind == EventKind::Created)
            .count();
        duplicated += created.saturating_sub(1);
    }
    print("serf_inventory_nodes", m.node_count(), "count");
    print("serf_duplicated_records", duplicated, "count");

    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    watcher.join().unwrap();
    m.shutdown().await;
    tokio::task::block_in_place(move || drop(pool));
}
