//! The `"swarm"` factory and the errors a misconfigured or unreachable backend gives,
//! without any engine running: configuration mistakes fail the build, and operations
//! on an engine that is not there name the node and the endpoint tried.

// Linked for its `inventory::submit!` registration only.
use backend_swarm as _;
use cluster_core::registry::build;
use cluster_core::{BackendNode, ClusterBackend, Role};
use serde_json::json;

fn node(name: &str, addr: &str) -> BackendNode {
    BackendNode {
        name: name.into(),
        addr: addr.into(),
        role: Role::Master,
    }
}

#[tokio::test]
async fn the_swarm_factory_builds_from_config_and_rejects_typos() {
    let b = build::<dyn ClusterBackend>(
        "swarm",
        json!({ "engine": "tcp://{addr}:2376", "swarm_port": 2377, "managers": ["10.0.0.1"] }),
    )
    .await
    .unwrap();
    assert_eq!(b.kind(), "swarm");

    let err = build::<dyn ClusterBackend>("swarm", json!({ "engnie": "tcp://{addr}:2376" }))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "config");
    assert!(err.to_string().contains("engnie"), "{err}");

    let err = build::<dyn ClusterBackend>("swarm", json!({ "engine": "ssh://{addr}" }))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "config");
    assert!(err.to_string().contains("ssh://"), "{err}");
}

#[tokio::test]
async fn operations_on_an_absent_engine_name_the_node_and_endpoint() {
    let dir = tempfile::tempdir().unwrap();
    let template = format!("unix://{}/{{addr}}.sock", dir.path().display());
    let b = build::<dyn ClusterBackend>("swarm", json!({ "engine": template }))
        .await
        .unwrap();

    let err = b.bootstrap(&node("n1", "127.0.0.1")).await.unwrap_err();
    assert_eq!(err.code(), "backend");
    let msg = err.to_string();
    assert!(
        msg.contains("bootstrap") && msg.contains("\"n1\"") && msg.contains("127.0.0.1.sock"),
        "{msg}"
    );

    let err = b.join(&node("n2", "127.0.0.2")).await.unwrap_err();
    assert!(err.to_string().contains("\"n2\""), "{err}");

    // Nothing reachable and nothing known: no manager to ask, and the error says so.
    let err = b.members().await.unwrap_err();
    assert!(
        err.to_string().contains("no reachable swarm manager"),
        "{err}"
    );

    // Leaving needs the node's engine or another manager; neither is there.
    let err = b.leave(&node("n2", "127.0.0.2")).await.unwrap_err();
    assert!(err.to_string().contains("\"n2\""), "{err}");
}

#[tokio::test]
async fn a_manager_job_on_an_absent_engine_fails_the_node_with_the_reason() {
    use cluster_core::manager::Request;
    use cluster_core::{
        ClusterState, JobStatus, Manager, Member, MembershipEvent, MembershipKind, MemoryStore,
        NodeStatus,
    };
    use std::sync::Arc;

    let dir = tempfile::tempdir().unwrap();
    let template = format!("unix://{}/{{addr}}.sock", dir.path().display());
    let b = build::<dyn ClusterBackend>("swarm", json!({ "engine": template }))
        .await
        .unwrap();
    let m = Manager::builder(Arc::new(MemoryStore::new()))
        .backend(b)
        .start()
        .await
        .unwrap();
    m.membership(MembershipEvent {
        kind: MembershipKind::Joined,
        member: Member::alive("n1", "127.0.0.1"),
    })
    .unwrap();
    m.settle().await.unwrap();

    let id = m
        .commission(Request::nodes(["n1"]).host_group("service-master"))
        .await
        .unwrap();
    let job = m.wait_job(id).await.unwrap();
    assert_eq!(job.status, JobStatus::Errored);
    let reason = &job.failed["n1"];
    assert!(
        reason.contains("bootstrap") && reason.contains("127.0.0.1.sock"),
        "{reason}"
    );
    let node = m.node("n1").unwrap();
    assert_eq!(node.status, NodeStatus::Failed);
    assert!(node.error.unwrap_or_default().contains("127.0.0.1.sock"));
    assert_eq!(m.cluster().state, ClusterState::Empty);
    m.shutdown().await;
}
