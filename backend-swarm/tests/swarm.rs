//! The Swarm backend against three real `dockerd` engines on 127.0.0.1-3, sharing one
//! fixture (starting engines is slow): first a real `Manager` bootstraps, commissions,
//! promotes, upgrades and decommissions nodes while `docker node ls` is checked for the
//! truth; a rebuilt worker and a worker joined by hand are taken back under their
//! names; then the swarm is dissolved and a fresh backend runs the conformance kit,
//! ending with the kit's own pass through a manager. Join tokens are checked never to
//! reach logs (the Engine API client's debug logs included), job records, events or
//! push vars.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use backend_swarm::{SwarmBackend, SwarmConfig};
use cluster_core::testkit::backend::{
    BackendHarness, TestNode, backend_conformance, check_dissolve, check_through_manager,
};
use cluster_core::{
    BackendNode, ClusterBackend, ClusterState, EventQuery, Manager, Member, MembershipEvent,
    MembershipKind, MemoryStore, NodeStatus, Role, manager::Request,
};
use clusterm_tests::dockerd::{Dockerd, DockerdSet};

mod support;
use support::{
    ADDRS, Captured, ObservingPush, Row, WAIT, complete, local_state, node_ls, row, swarm_port,
};

const NAMES: [&str; 3] = ["n1", "n2", "n3"];

struct Harness {
    daemons: DockerdSet,
    config: SwarmConfig,
    backend: Arc<SwarmBackend>,
}

impl Harness {
    fn index(name: &str) -> usize {
        NAMES.iter().position(|n| *n == name).expect("known node")
    }
}

#[async_trait]
impl BackendHarness for Harness {
    fn backend(&self) -> Arc<dyn ClusterBackend> {
        self.backend.clone()
    }

    fn nodes(&self) -> Vec<TestNode> {
        NAMES
            .iter()
            .zip(ADDRS)
            .map(|(n, a)| TestNode {
                name: (*n).into(),
                addr: a.into(),
            })
            .collect()
    }

    async fn stop_node(&mut self, name: &str) {
        let d = self.daemons.daemon_mut(Self::index(name));
        tokio::task::block_in_place(|| d.stop(Duration::from_secs(60)));
    }

    async fn start_node(&mut self, name: &str) {
        let d = self.daemons.daemon_mut(Self::index(name));
        tokio::task::block_in_place(|| d.start());
    }
}

/// Polls the CLI until `want` holds of node `name`'s row.
async fn wait_row(d: &Dockerd, name: &str, what: &str, want: impl Fn(Option<&Row>) -> bool) {
    let start = Instant::now();
    loop {
        let r = tokio::task::block_in_place(|| row(d, name));
        if want(r.as_ref()) {
            return;
        }
        assert!(start.elapsed() < WAIT, "{what} never held: {r:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Polls the backend until node `name` has readiness `ready`.
async fn wait_ready(b: &SwarmBackend, name: &str, ready: bool) {
    let start = Instant::now();
    loop {
        let members = b.members().await;
        if let Ok(list) = &members {
            if list.iter().any(|m| m.name == name && m.ready == ready) {
                return;
            }
        }
        assert!(
            start.elapsed() < WAIT,
            "{name} never became ready={ready}: {members:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn through_the_manager(h: &mut Harness) {
    let d1_endpoint = h.daemons.daemons()[0].endpoint();
    let push = Arc::new(ObservingPush {
        manager_endpoint: d1_endpoint,
        seen: Mutex::new(Vec::new()),
        specs: Mutex::new(Vec::new()),
    });
    let m = Manager::builder(Arc::new(MemoryStore::new()))
        .push(push.clone())
        .backend(h.backend.clone())
        .start()
        .await
        .unwrap();
    for (name, addr) in NAMES.iter().zip(ADDRS) {
        m.membership(MembershipEvent {
            kind: MembershipKind::Joined,
            member: Member::alive(*name, addr),
        })
        .unwrap();
    }
    m.settle().await.unwrap();
    let d1 = &h.daemons.daemons()[0];

    let req = Request::nodes(["n1"]).host_group("service-master");
    complete(&m, &h.daemons, "bootstrap on n1", m.commission(req).await).await;
    assert_eq!(m.cluster().state, ClusterState::Active);
    let rows = tokio::task::block_in_place(|| node_ls(d1));
    assert_eq!(rows.len(), 1, "a fresh swarm of one: {rows:?}");
    assert_eq!(
        (rows[0].name.as_str(), rows[0].role.as_str()),
        ("n1", "manager")
    );

    let req = Request::nodes(["n2", "n3"]).host_group("service-worker");
    complete(
        &m,
        &h.daemons,
        "commission of n2 and n3",
        m.commission(req).await,
    )
    .await;
    let rows = tokio::task::block_in_place(|| node_ls(d1));
    assert_eq!(rows.len(), 3, "{rows:?}");
    for r in &rows[1..] {
        assert_eq!(
            (r.role.as_str(), r.availability.as_str()),
            ("worker", "active"),
            "{r:?}"
        );
    }

    let req = Request::nodes(["n2"]).host_group("service-master");
    complete(&m, &h.daemons, "promotion of n2", m.upgrade(req).await).await;
    let n2 = tokio::task::block_in_place(|| row(d1, "n2")).expect("n2 in the swarm");
    assert_eq!(
        (n2.role.as_str(), n2.availability.as_str()),
        ("manager", "active")
    );
    assert_eq!(
        m.node("n2").unwrap().host_group.unwrap().as_str(),
        "service-master"
    );

    complete(
        &m,
        &h.daemons,
        "upgrade of n3",
        m.upgrade(Request::nodes(["n3"])).await,
    )
    .await;
    let seen = push.seen.lock().unwrap().clone();
    assert_eq!(
        seen,
        vec![("n2".into(), "drain".into()), ("n3".into(), "drain".into())],
        "nodes must be drained while their upgrade runs"
    );
    let n3 = tokio::task::block_in_place(|| row(d1, "n3")).expect("n3 in the swarm");
    assert_eq!(
        (n3.role.as_str(), n3.availability.as_str()),
        ("worker", "active")
    );
    assert_eq!(m.node("n3").unwrap().status, NodeStatus::Upgraded);

    complete(
        &m,
        &h.daemons,
        "decommission of n2",
        m.decommission(Request::nodes(["n2"])).await,
    )
    .await;
    let rows = tokio::task::block_in_place(|| node_ls(d1));
    assert!(
        rows.iter().all(|r| r.name != "n2"),
        "n2 still listed: {rows:?}"
    );
    assert_eq!(rows.len(), 2, "{rows:?}");
    let d2 = &h.daemons.daemons()[1];
    assert_eq!(tokio::task::block_in_place(|| local_state(d2)), "inactive");
    assert_eq!(m.node("n2").unwrap().status, NodeStatus::Decommissioned);

    h.stop_node("n3").await;
    let d1 = &h.daemons.daemons()[0];
    wait_row(d1, "n3", "n3 down after its engine stopped", |r| {
        r.is_some_and(|r| r.state == "down")
    })
    .await;
    wait_ready(&h.backend, "n3", false).await;
    h.start_node("n3").await;
    let d1 = &h.daemons.daemons()[0];
    wait_row(d1, "n3", "n3 ready after its engine restarted", |r| {
        r.is_some_and(|r| r.state == "ready")
    })
    .await;
    wait_ready(&h.backend, "n3", true).await;

    assert_no_token(&m, &push).await;
    m.shutdown().await;
}

/// A worker whose host was rebuilt (engine state gone, old swarm entry left behind)
/// joins again under its name; the stale entry is dropped.
async fn a_rebuilt_node_rejoins_under_its_name(h: &mut Harness) {
    let d3 = h.daemons.daemon_mut(2);
    tokio::task::block_in_place(|| {
        d3.wipe();
        d3.start();
    });
    let d3 = &h.daemons.daemons()[2];
    assert_eq!(tokio::task::block_in_place(|| local_state(d3)), "inactive");
    let d1 = &h.daemons.daemons()[0];
    let stale = tokio::task::block_in_place(|| node_ls(d1));
    assert_eq!(
        stale.iter().filter(|r| r.name == "n3").count(),
        1,
        "{stale:?}"
    );

    let n3 = BackendNode {
        name: "n3".into(),
        addr: ADDRS[2].into(),
        role: Role::Worker,
    };
    h.backend.join(&n3).await.unwrap();
    let rows = tokio::task::block_in_place(|| node_ls(d1));
    assert_eq!(
        rows.iter().filter(|r| r.name == "n3").count(),
        1,
        "{rows:?}"
    );
    assert_eq!(rows.len(), 2, "{rows:?}");
    wait_row(d1, "n3", "the rebuilt n3 is ready", |r| {
        r.is_some_and(|r| r.state == "ready" && r.role == "worker")
    })
    .await;
    wait_ready(&h.backend, "n3", true).await;
}

/// A worker that joined by hand (the `docker` CLI, no name label) is found through its
/// own engine, adopted under its clusterm name, and drained like any other.
async fn a_node_joined_by_hand_is_adopted(h: &mut Harness) {
    let (d1, d3) = (&h.daemons.daemons()[0], &h.daemons.daemons()[2]);
    let port = h.config.swarm_port;
    tokio::task::block_in_place(|| {
        let id =
            String::from_utf8_lossy(&d3.docker(&["info", "--format", "{{.Swarm.NodeID}}"]).stdout)
                .trim()
                .to_owned();
        assert!(d3.docker(&["swarm", "leave"]).status.success());
        assert!(d1.docker(&["node", "rm", "--force", &id]).status.success());
        let token = d1.docker(&["swarm", "join-token", "-q", "worker"]);
        let token = String::from_utf8_lossy(&token.stdout).trim().to_owned();
        let listen = format!("{}:{port}", ADDRS[2]);
        let out = d3.docker(&[
            "swarm",
            "join",
            "--token",
            &token,
            "--listen-addr",
            &listen,
            "--advertise-addr",
            &listen,
            &format!("{}:{port}", ADDRS[0]),
        ]);
        assert!(
            out.status.success(),
            "manual join failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    });
    assert!(
        tokio::task::block_in_place(|| row(d1, "n3")).is_none(),
        "a hand-joined node has no name label"
    );
    let n3 = BackendNode {
        name: "n3".into(),
        addr: ADDRS[2].into(),
        role: Role::Worker,
    };
    h.backend.drain(&n3).await.unwrap();
    let r = tokio::task::block_in_place(|| row(d1, "n3")).expect("n3 adopted under its name");
    assert_eq!(r.availability, "drain");
    h.backend.activate(&n3).await.unwrap();
    wait_ready(&h.backend, "n3", true).await;
}

/// No job record, job log, audit event or push spec carries a swarm join token.
async fn assert_no_token(m: &Manager, push: &ObservingPush) {
    let jobs = m.jobs().await.unwrap();
    assert!(jobs.len() >= 5, "{jobs:?}");
    for job in &jobs {
        let text = serde_json::to_string(job).unwrap();
        assert!(!text.contains("SWMTKN"), "token in job record: {text}");
        let log = m.job_log(job.id).expect("job log kept");
        for line in log.lines_after(0) {
            assert!(
                !line.text.contains("SWMTKN"),
                "token in job log: {}",
                line.text
            );
        }
    }
    let events = m.events(EventQuery::all(0, usize::MAX)).await.unwrap();
    assert!(!events.is_empty());
    for e in &events {
        let text = serde_json::to_string(e).unwrap();
        assert!(!text.contains("SWMTKN"), "token in event: {text}");
    }
    for spec in push.specs.lock().unwrap().iter() {
        assert!(!spec.contains("SWMTKN"), "token handed to the push: {spec}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swarm_of_three_engines_through_the_manager_and_the_conformance_kit() {
    let logs = Captured::default();
    tracing_subscriber::fmt()
        .with_env_filter("trace")
        .with_writer(logs.clone())
        .with_ansi(false)
        .init();

    let daemons = DockerdSet::start(&ADDRS);
    let config = SwarmConfig {
        engine: daemons.endpoint_template(),
        swarm_port: swarm_port(),
        dispatcher_heartbeat_secs: Some(1),
        settle_timeout_secs: 120,
        ..SwarmConfig::default()
    };
    let backend = Arc::new(SwarmBackend::new(config.clone()).unwrap());
    let mut h = Harness {
        daemons,
        config,
        backend,
    };

    through_the_manager(&mut h).await;
    a_rebuilt_node_rejoins_under_its_name(&mut h).await;
    a_node_joined_by_hand_is_adopted(&mut h).await;
    check_dissolve(&mut h).await;
    for d in h.daemons.daemons() {
        assert_eq!(tokio::task::block_in_place(|| local_state(d)), "inactive");
    }

    // A backend that knows nothing yet: it finds its way from the nodes it is handed.
    h.backend = Arc::new(SwarmBackend::new(h.config.clone()).unwrap());
    backend_conformance(&mut h).await;
    check_dissolve(&mut h).await;
    check_through_manager(&mut h).await;
    for d in h.daemons.daemons() {
        assert_eq!(tokio::task::block_in_place(|| local_state(d)), "inactive");
    }

    let text = String::from_utf8_lossy(&logs.0.lock().unwrap()).into_owned();
    assert!(text.contains("joined the swarm"), "logs were not captured");
    assert!(
        text.contains("bollard"),
        "the Engine API client's debug logs were not captured"
    );
    assert!(!text.contains("SWMTKN"), "a join token reached the logs");
    assert!(!format!("{:?}", h.backend).contains("SWMTKN"));
}
