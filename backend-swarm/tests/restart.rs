//! The Swarm backend across a restart of the manager, against two real `dockerd`
//! engines: a manager on a durable store bootstraps a swarm on n1 and joins n2, then
//! it and its backend are dropped. A fresh backend with no manager seeds knows no
//! engine until a fresh manager on the reopened store starts and restores it; from
//! then on it lists the swarm and decommissions n2 out of `docker node ls`.

use std::sync::Arc;

use backend_swarm::{SwarmBackend, SwarmConfig};
use cluster_core::store::RedbStore;
use cluster_core::{
    BackendNode, ClusterBackend, ClusterState, Manager, Member, MembershipEvent, MembershipKind,
    NodeStatus, Role, manager::Request,
};
use clusterm_tests::dockerd::DockerdSet;

#[allow(dead_code)]
mod support;
use support::{ADDRS, complete, local_state, node_ls, swarm_port};

const NAMES: [&str; 2] = ["n1", "n2"];

/// The swarm's members as (name, role), by name.
async fn members(b: &SwarmBackend) -> Vec<(String, Role)> {
    let list = b.members().await.expect("members of the swarm");
    list.into_iter().map(|m| (m.name, m.role)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_manager_keeps_driving_the_swarm_it_built() {
    let addrs = &ADDRS[..NAMES.len()];
    let daemons = DockerdSet::start(addrs);
    let config = SwarmConfig {
        engine: daemons.endpoint_template(),
        swarm_port: swarm_port(),
        dispatcher_heartbeat_secs: Some(1),
        settle_timeout_secs: 120,
        ..SwarmConfig::default()
    };
    assert!(
        config.managers.is_empty(),
        "no seeds: only restore can help"
    );
    let data = tempfile::tempdir().unwrap();
    let d1 = &daemons.daemons()[0];

    {
        let backend = Arc::new(SwarmBackend::new(config.clone()).unwrap());
        let store = Arc::new(RedbStore::open(data.path()).unwrap());
        let m = Manager::builder(store)
            .backend(backend)
            .start()
            .await
            .unwrap();
        for (name, addr) in NAMES.iter().zip(addrs) {
            m.membership(MembershipEvent {
                kind: MembershipKind::Joined,
                member: Member::alive(*name, *addr),
            })
            .unwrap();
        }
        m.settle().await.unwrap();
        let req = Request::nodes(["n1"]).host_group("service-master");
        complete(&m, &daemons, "bootstrap on n1", m.commission(req).await).await;
        let req = Request::nodes(["n2"]).host_group("service-worker");
        complete(&m, &daemons, "commission of n2", m.commission(req).await).await;
        let rows = tokio::task::block_in_place(|| node_ls(d1));
        let rows: Vec<(&str, &str)> = rows
            .iter()
            .map(|r| (r.name.as_str(), r.role.as_str()))
            .collect();
        assert_eq!(rows, [("n1", "manager"), ("n2", "worker")]);
        m.shutdown().await;
    }

    // What the daemon restarting with a seedless configuration would face unaided.
    let unaided = SwarmBackend::new(config.clone()).unwrap();
    let e = unaided.members().await.unwrap_err();
    assert!(e.to_string().contains("no reachable swarm manager"), "{e}");

    let backend = Arc::new(SwarmBackend::new(config.clone()).unwrap());
    let store = Arc::new(RedbStore::open(data.path()).unwrap());
    let m = Manager::builder(store)
        .backend(backend.clone())
        .start()
        .await
        .unwrap();
    assert_eq!(m.cluster().state, ClusterState::Active);
    let both = vec![
        ("n1".to_owned(), Role::Master),
        ("n2".to_owned(), Role::Worker),
    ];
    assert_eq!(members(&backend).await, both);

    // A worker's engine alone is enough: it names the managers of its swarm.
    let from_worker = SwarmBackend::new(config.clone()).unwrap();
    let n2 = BackendNode {
        name: "n2".into(),
        addr: addrs[1].into(),
        role: Role::Worker,
    };
    from_worker.restore(&[n2]).await.unwrap();
    assert_eq!(members(&from_worker).await, both);

    let req = Request::nodes(["n2"]);
    complete(
        &m,
        &daemons,
        "decommission of n2",
        m.decommission(req).await,
    )
    .await;
    assert_eq!(m.node("n2").unwrap().status, NodeStatus::Decommissioned);
    let rows = tokio::task::block_in_place(|| node_ls(d1));
    assert!(
        rows.iter().all(|r| r.name != "n2"),
        "n2 still listed: {rows:?}"
    );
    assert_eq!(rows.len(), 1, "{rows:?}");
    let d2 = &daemons.daemons()[1];
    assert_eq!(tokio::task::block_in_place(|| local_state(d2)), "inactive");
    assert_eq!(
        members(&backend).await,
        vec![("n1".to_owned(), Role::Master)]
    );
    m.shutdown().await;
}
