//! Times the Swarm backend's operations against three real `dockerd` engines on
//! 127.0.0.1-3 and prints one `name value unit` line per figure.
//!
//! Run as root with docker.io installed:
//! `cargo run --release -p backend-swarm --example swarm_bench`

use std::time::{Duration, Instant};

use backend_swarm::{SwarmBackend, SwarmConfig};
use cluster_core::{BackendNode, ClusterBackend, Role};
use clusterm_tests::dockerd::DockerdSet;

const ADDRS: [&str; 3] = ["127.0.0.1", "127.0.0.2", "127.0.0.3"];

fn node(i: usize, role: Role) -> BackendNode {
    BackendNode {
        name: format!("bench{}", i + 1),
        addr: ADDRS[i].into(),
        role,
    }
}

fn report(name: &str, d: Duration) {
    println!("{name} {:.1} ms", d.as_secs_f64() * 1000.0);
}

async fn timed<T>(name: &str, f: impl std::future::Future<Output = cluster_core::Result<T>>) -> T {
    let start = Instant::now();
    let out = f.await.unwrap_or_else(|e| panic!("{name}: {e}"));
    report(name, start.elapsed());
    out
}

#[tokio::main]
async fn main() {
    let start = Instant::now();
    let daemons = DockerdSet::start(&ADDRS);
    report("swarm_dockerd_start_3", start.elapsed());
    let port = loop {
        let p = clusterm_tests::free_port(ADDRS[0]);
        if ADDRS[1..]
            .iter()
            .all(|a| std::net::TcpListener::bind((*a, p)).is_ok())
        {
            break p;
        }
    };
    let backend = SwarmBackend::new(SwarmConfig {
        engine: daemons.endpoint_template(),
        swarm_port: port,
        ..SwarmConfig::default()
    })
    .expect("config");

    timed("swarm_bootstrap", backend.bootstrap(&node(0, Role::Master))).await;
    timed("swarm_join_worker", backend.join(&node(1, Role::Worker))).await;
    timed("swarm_join_manager", backend.join(&node(2, Role::Master))).await;
    timed(
        "swarm_join_member_noop",
        backend.join(&node(1, Role::Worker)),
    )
    .await;
    timed("swarm_drain", backend.drain(&node(1, Role::Worker))).await;
    timed("swarm_activate", backend.activate(&node(1, Role::Worker))).await;
    timed("swarm_demote", backend.set_role(&node(2, Role::Worker))).await;
    timed("swarm_promote", backend.set_role(&node(2, Role::Master))).await;
    let members = timed("swarm_members", backend.members()).await;
    assert_eq!(members.len(), 3, "{members:?}");
    timed("swarm_leave_worker", backend.leave(&node(1, Role::Worker))).await;
    timed("swarm_leave_manager", backend.leave(&node(2, Role::Master))).await;
    timed("swarm_leave_noop", backend.leave(&node(1, Role::Worker))).await;
    timed(
        "swarm_leave_last_manager",
        backend.leave(&node(0, Role::Master)),
    )
    .await;
}
