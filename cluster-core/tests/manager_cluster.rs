//! Manager behaviour with a clustering backend: bootstrap on the first master, joins,
//! upgrades with drain and role changes, decommission, degraded clusters, secrets, and
//! the nodes in service handed to the backend when the manager starts again.

use std::sync::Arc;

use cluster_core::manager::Request;
use cluster_core::testkit::doubles::{RecordingBackend, RecordingPush, SECRET_JOIN_TOKEN};
use cluster_core::{
    BackendNode, ClusterState, EventQuery, JobStatus, Manager, Member, MemberStatus,
    MembershipEvent, MembershipKind, MemoryStore, NodeStatus, PushAction, Role,
};

async fn setup(names: &[&str]) -> (Manager, Arc<RecordingPush>, Arc<RecordingBackend>) {
    setup_with(names, cluster_core::ManagerConfig::default()).await
}

async fn setup_with(
    names: &[&str],
    config: cluster_core::ManagerConfig,
) -> (Manager, Arc<RecordingPush>, Arc<RecordingBackend>) {
    let push = Arc::new(RecordingPush::new());
    let backend = Arc::new(RecordingBackend::new());
    let m = Manager::builder(Arc::new(MemoryStore::new()))
        .push(push.clone())
        .backend(backend.clone())
        .config(config)
        .start()
        .await
        .unwrap();
    for n in names {
        m.membership(MembershipEvent {
            kind: MembershipKind::Joined,
            member: Member::alive(*n, format!("127.0.0.{}", &n[1..])),
        })
        .unwrap();
    }
    m.settle().await.unwrap();
    (m, push, backend)
}

#[tokio::test]
async fn first_master_bootstraps_then_workers_join() {
    let (m, push, backend) = setup(&["m1", "w2", "w3"]).await;
    assert_eq!(m.cluster().state, ClusterState::Empty);
    assert_eq!(m.cluster().backend, "recording");

    let e = m
        .commission(Request::nodes(["w2"]).host_group("service-worker"))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("no master yet"), "{e}");
    assert_eq!(m.node("w2").unwrap().status, NodeStatus::Discovered);

    let id = m
        .commission(Request::nodes(["m1"]).host_group("service-master"))
        .await
        .unwrap();
    assert_eq!(m.cluster().state, ClusterState::Bootstrapping);
    assert_eq!(m.wait_job(id).await.unwrap().status, JobStatus::Complete);
    let cluster = m.cluster();
    assert_eq!(
        (cluster.state, cluster.bootstrap_node.as_deref()),
        (ClusterState::Active, Some("m1"))
    );

    let id = m
        .commission(Request::nodes(["w2", "w3"]).host_group("service-worker"))
        .await
        .unwrap();
    assert_eq!(m.wait_job(id).await.unwrap().status, JobStatus::Complete);
    assert_eq!(
        backend.ops(),
        vec![
            "bootstrap m1",
            "join_vars w2",
            "join_vars w3",
            "join w2",
            "join w3"
        ]
    );
    let members = cluster_core::ClusterBackend::members(&*backend)
        .await
        .unwrap();
    assert_eq!(members.len(), 3);
    assert_eq!(
        members.iter().find(|b| b.name == "w2").unwrap().role,
        Role::Worker
    );

    // The join token reached the playbook vars, and nothing a person can read.
    let provision = push.calls_of(PushAction::Provision);
    let w2 = provision[1].hosts.iter().find(|h| h.name == "w2").unwrap();
    assert_eq!(w2.vars["join_token"], SECRET_JOIN_TOKEN);
    let log: String = m
        .job_log(id)
        .unwrap()
        .lines_after(0)
        .into_iter()
        .map(|l| l.text)
        .collect();
    assert!(!log.contains(SECRET_JOIN_TOKEN));
    let job = serde_json::to_string(&m.job(id).await.unwrap()).unwrap();
    assert!(!job.contains(SECRET_JOIN_TOKEN));
    let events = serde_json::to_string(&m.events(EventQuery::all(0, 1000)).await.unwrap()).unwrap();
    assert!(!events.contains(SECRET_JOIN_TOKEN));
    let nodes = serde_json::to_string(&m.nodes()).unwrap();
    assert!(!nodes.contains(SECRET_JOIN_TOKEN));
}

#[tokio::test]
async fn failed_bootstrap_fails_the_batch_and_empties_the_cluster() {
    let (m, _, backend) = setup(&["m1", "w2"]).await;
    backend.fail("bootstrap", "m1");
    let id = m
        .commission(Request::nodes(["m1", "w2"]).host_group("service-master"))
        .await
        .unwrap();
    let job = m.wait_job(id).await.unwrap();
    assert_eq!(job.status, JobStatus::Errored);
    assert_eq!(m.node("m1").unwrap().status, NodeStatus::Failed);
    let w2 = m.node("w2").unwrap();
    assert_eq!(w2.status, NodeStatus::Failed);
    assert!(w2.error.unwrap().contains("cluster bootstrap on m1 failed"));
    assert_eq!(m.cluster().state, ClusterState::Empty);
    assert_eq!(backend.ops(), vec!["bootstrap m1"]);
}

#[tokio::test]
async fn upgrade_drains_pushes_reactivates_and_moves_roles() {
    let (m, push, backend) = setup(&["m1", "w2"]).await;
    let id = m
        .commission(Request::nodes(["m1"]).host_group("service-master"))
        .await
        .unwrap();
    m.wait_job(id).await.unwrap();
    let id = m
        .commission(Request::nodes(["w2"]).host_group("service-worker"))
        .await
        .unwrap();
    m.wait_job(id).await.unwrap();

    let id = m
        .upgrade(Request::nodes(["w2"]).host_group("service-master"))
        .await
        .unwrap();
    assert_eq!(m.wait_job(id).await.unwrap().status, JobStatus::Complete);
    let w2 = m.node("w2").unwrap();
    assert_eq!(w2.status, NodeStatus::Upgraded);
    assert_eq!(w2.host_group.unwrap().as_str(), "service-master");
    let tail: Vec<_> = backend.ops().into_iter().skip(3).collect();
    assert_eq!(tail, vec!["drain w2", "set_role w2", "activate w2"]);
    assert_eq!(push.calls_of(PushAction::Upgrade).len(), 1);
    let members = cluster_core::ClusterBackend::members(&*backend)
        .await
        .unwrap();
    assert_eq!(
        members.iter().find(|b| b.name == "w2").unwrap().role,
        Role::Master
    );

    // A node whose drain fails is not pushed and ends Failed.
    backend.fail("drain", "m1");
    let id = m.upgrade(Request::nodes(["m1"])).await.unwrap();
    let job = m.wait_job(id).await.unwrap();
    assert_eq!(job.status, JobStatus::Errored);
    assert_eq!(m.node("m1").unwrap().status, NodeStatus::Failed);
    assert_eq!(push.calls_of(PushAction::Upgrade).len(), 1);
}

#[tokio::test]
async fn decommission_leaves_then_cleans_up_and_masters_gone_empties_the_cluster() {
    let (m, push, backend) = setup(&["m1", "w2"]).await;
    let id = m
        .commission(Request::nodes(["m1", "w2"]).host_group("service-master"))
        .await
        .unwrap();
    assert_eq!(m.wait_job(id).await.unwrap().status, JobStatus::Complete);

    // Master unreachable -> Degraded; back -> Active.
    let down = |kind, status| MembershipEvent {
        kind,
        member: Member {
            status,
            ..Member::alive("m1", "127.0.0.1")
        },
    };
    m.membership(down(MembershipKind::Failed, MemberStatus::Failed))
        .unwrap();
    m.settle().await.unwrap();
    assert_eq!(
        m.cluster().state,
        ClusterState::Active,
        "w2 is a reachable master"
    );

    let id = m.decommission(Request::nodes(["w2"])).await.unwrap();
    assert_eq!(m.wait_job(id).await.unwrap().status, JobStatus::Complete);
    assert_eq!(m.node("w2").unwrap().status, NodeStatus::Decommissioned);
    assert!(backend.ops().contains(&"leave w2".to_string()));
    assert_eq!(push.calls_of(PushAction::Cleanup).len(), 1);
    m.membership(down(MembershipKind::Failed, MemberStatus::Failed))
        .unwrap();
    m.settle().await.unwrap();
    assert_eq!(m.cluster().state, ClusterState::Degraded);
    m.membership(down(MembershipKind::Joined, MemberStatus::Alive))
        .unwrap();
    m.settle().await.unwrap();
    assert_eq!(m.cluster().state, ClusterState::Active);

    let id = m.decommission(Request::nodes(["m1"])).await.unwrap();
    assert_eq!(m.wait_job(id).await.unwrap().status, JobStatus::Complete);
    assert_eq!(m.cluster().state, ClusterState::Empty);
    // A decommissioned node may be commissioned again and bootstraps anew.
    let id = m.commission(Request::nodes(["w2"])).await.unwrap();
    assert_eq!(m.wait_job(id).await.unwrap().status, JobStatus::Complete);
    assert_eq!(m.cluster().bootstrap_node.as_deref(), Some("w2"));
    assert_eq!(m.node("w2").unwrap().status, NodeStatus::Commissioned);
}

#[tokio::test]
async fn auto_commission_rules_commission_fresh_nodes_by_tag() {
    use cluster_core::manager::{AutoCommission, ManagerConfig};
    use cluster_core::testkit::eventually;
    let backend = Arc::new(RecordingBackend::new());
    let rule = |value: &str, group: &str| AutoCommission {
        tag: "role".into(),
        value: Some(value.into()),
        host_group: group.into(),
    };
    let config = ManagerConfig {
        auto_commission: vec![
            rule("master", "service-master"),
            rule("worker", "service-worker"),
        ],
        ..ManagerConfig::default()
    };
    let m = Manager::builder(Arc::new(MemoryStore::new()))
        .backend(backend.clone())
        .config(config)
        .start()
        .await
        .unwrap();
    let tagged = |name: &str, role: Option<&str>| {
        let mut member = Member::alive(name, "127.0.0.9");
        if let Some(r) = role {
            member.tags.insert("role".into(), r.into());
        }
        MembershipEvent {
            kind: MembershipKind::Joined,
            member,
        }
    };
    // Workers listed first: the master still bootstraps before they join.
    for (n, r) in [("w1", Some("worker")), ("m1", Some("master")), ("x1", None)] {
        m.membership(tagged(n, r)).unwrap();
    }
    m.settle().await.unwrap();
    let wait = std::time::Duration::from_secs(10);
    eventually("auto-commissioned nodes", wait, || {
        let done = ["w1", "m1"]
            .iter()
            .all(|n| m.node(n).unwrap().status == NodeStatus::Commissioned);
        done.then_some(())
    })
    .await;
    assert_eq!(m.node("x1").unwrap().status, NodeStatus::Discovered);
    assert_eq!(m.cluster().state, ClusterState::Active);
    assert_eq!(
        m.node("m1").unwrap().host_group.unwrap().as_str(),
        "service-master"
    );
    assert_eq!(backend.ops()[0], "bootstrap m1");

    m.membership(tagged("w2", Some("worker"))).unwrap();
    m.settle().await.unwrap();
    eventually("late worker commissioned", wait, || {
        (m.node("w2").unwrap().status == NodeStatus::Commissioned).then_some(())
    })
    .await;
    assert!(backend.ops().contains(&"join w2".to_string()));
}

#[tokio::test]
async fn a_hanging_backend_call_is_cancelled_and_the_node_fails() {
    let config = cluster_core::ManagerConfig {
        cancel_grace: std::time::Duration::from_millis(100),
        ..Default::default()
    };
    let (m, _, backend) = setup_with(&["m1", "w2"], config).await;
    let id = m
        .commission(Request::nodes(["m1"]).host_group("service-master"))
        .await
        .unwrap();
    m.wait_job(id).await.unwrap();
    backend.hang("join", "w2");
    let id = m
        .commission(Request::nodes(["w2"]).host_group("service-worker"))
        .await
        .unwrap();
    cluster_core::testkit::eventually("join to start", std::time::Duration::from_secs(10), || {
        backend.ops().contains(&"join w2".to_string()).then_some(())
    })
    .await;
    assert_eq!(m.node("w2").unwrap().status, NodeStatus::Commissioning);
    m.cancel(id).await.unwrap();
    let job = m.wait_job(id).await.unwrap();
    assert_eq!(job.status, JobStatus::Cancelled);
    let w2 = m.node("w2").unwrap();
    assert_eq!(
        (w2.status, w2.error.as_deref()),
        (NodeStatus::Failed, Some("cancelled by request"))
    );
}

/// A manager started again on the same store hands a fresh backend exactly the nodes in
/// service, each under the role of its host group; a backend that cannot restore does
/// not keep the manager from starting.
#[tokio::test]
async fn a_restarted_manager_restores_the_backend_with_the_nodes_in_service() {
    let store = Arc::new(MemoryStore::new());
    let backend = Arc::new(RecordingBackend::new());
    let m = Manager::builder(store.clone())
        .backend(backend.clone())
        .start()
        .await
        .unwrap();
    for n in ["m1", "w2", "w3", "w4", "w5", "w6"] {
        m.membership(MembershipEvent {
            kind: MembershipKind::Joined,
            member: Member::alive(n, format!("127.0.0.{}", &n[1..])),
        })
        .unwrap();
    }
    m.settle().await.unwrap();
    assert_eq!(backend.restores(), vec![Vec::<BackendNode>::new()]);

    let run = |id: cluster_core::Result<cluster_core::JobId>| {
        let m = m.clone();
        async move { m.wait_job(id.unwrap()).await.unwrap().status }
    };
    let req = Request::nodes(["m1"]).host_group("service-master");
    assert_eq!(run(m.commission(req).await).await, JobStatus::Complete);
    backend.fail("join", "w5");
    let req = Request::nodes(["w2", "w3", "w4", "w5"]).host_group("service-worker");
    assert_eq!(run(m.commission(req).await).await, JobStatus::Errored);
    let req = Request::nodes(["w3"]).host_group("service-master");
    assert_eq!(run(m.upgrade(req).await).await, JobStatus::Complete);
    let req = Request::nodes(["w4"]);
    assert_eq!(run(m.decommission(req).await).await, JobStatus::Complete);
    let status = |n: &str| m.node(n).unwrap().status;
    assert_eq!(
        ["m1", "w2", "w3", "w4", "w5", "w6"].map(status),
        [
            NodeStatus::Commissioned,
            NodeStatus::Commissioned,
            NodeStatus::Upgraded,
            NodeStatus::Decommissioned,
            NodeStatus::Failed,
            NodeStatus::Discovered,
        ]
    );
    m.shutdown().await;
    drop(m);

    let node = |name: &str, addr: &str, role| BackendNode {
        name: name.into(),
        addr: addr.into(),
        role,
    };
    let in_service = vec![
        node("m1", "127.0.0.1", Role::Master),
        node("w2", "127.0.0.2", Role::Worker),
        node("w3", "127.0.0.3", Role::Master),
    ];
    let fresh = Arc::new(RecordingBackend::new());
    let m = Manager::builder(store.clone())
        .backend(fresh.clone())
        .start()
        .await
        .unwrap();
    assert_eq!(fresh.restores(), vec![in_service.clone()]);
    assert!(fresh.ops().is_empty(), "{:?}", fresh.ops());
    m.shutdown().await;

    let refusing = Arc::new(RecordingBackend::new());
    refusing.fail("restore", "w2");
    let m = Manager::builder(store)
        .backend(refusing.clone())
        .start()
        .await
        .unwrap();
    assert_eq!(refusing.restores(), vec![in_service]);
    assert_eq!(m.node("w3").unwrap().status, NodeStatus::Upgraded);
    assert_eq!(m.cluster().state, ClusterState::Active);
    let id = m.decommission(Request::nodes(["w2"])).await.unwrap();
    assert_eq!(m.wait_job(id).await.unwrap().status, JobStatus::Complete);
    assert_eq!(refusing.ops(), vec!["leave w2"]);
}
