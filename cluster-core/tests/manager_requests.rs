//! Manager behaviour without a clustering backend: discovery, validation, jobs, vars,
//! concurrency, cancellation, timeouts and restart reconciliation.

use std::sync::Arc;
use std::time::Duration;

use cluster_core::manager::{ManagerConfig, Request};
use cluster_core::testkit::doubles::RecordingPush;
use cluster_core::testkit::eventually;
use cluster_core::{
    Batch, Error, EventKind, EventQuery, Expect, InventoryStore, Job, JobId, JobKind, JobStatus,
    Manager, Member, MemberStatus, MembershipEvent, MembershipKind, MemoryStore, Node, NodeStatus,
    PushAction, Reachability,
};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(10);

fn member(name: &str) -> Member {
    let mut m = Member::alive(name, format!("10.0.0.{}", name.trim_start_matches('n')));
    m.serial = format!("SN-{name}");
    m.tags.insert("NodeLabel".into(), name.into());
    m
}

fn joined(name: &str) -> MembershipEvent {
    MembershipEvent {
        kind: MembershipKind::Joined,
        member: member(name),
    }
}

fn event(kind: MembershipKind, name: &str) -> MembershipEvent {
    let mut m = member(name);
    m.status = match kind {
        MembershipKind::Failed => MemberStatus::Failed,
        MembershipKind::Left => MemberStatus::Left,
        _ => MemberStatus::Alive,
    };
    MembershipEvent { kind, member: m }
}

async fn manager_with(
    push: Arc<RecordingPush>,
    config: ManagerConfig,
) -> (Manager, Arc<MemoryStore>) {
    let store = Arc::new(MemoryStore::new());
    let m = Manager::builder(store.clone())
        .push(push)
        .config(config)
        .start()
        .await
        .unwrap();
    (m, store)
}

async fn discovered(m: &Manager, names: &[&str]) {
    for n in names {
        m.membership(joined(n)).unwrap();
    }
    m.settle().await.unwrap();
}

/// Everything a refused request must leave untouched.
async fn snapshot(m: &Manager, store: &MemoryStore) -> (Vec<Node>, usize, usize) {
    let events = store
        .events(EventQuery::all(0, usize::MAX))
        .await
        .unwrap()
        .len();
    let jobs = store.list_jobs(None, usize::MAX).await.unwrap().len();
    (m.nodes(), events, jobs)
}

#[tokio::test]
async fn discovery_events_create_nodes_once() {
    let (m, store) = manager_with(Arc::new(RecordingPush::new()), ManagerConfig::default()).await;
    discovered(&m, &["n1", "n2", "n3"]).await;
    let nodes = m.nodes();
    assert_eq!(nodes.len(), 3);
    for n in &nodes {
        assert_eq!(n.status, NodeStatus::Discovered);
        assert_eq!(n.reachability, Reachability::Reachable);
        assert_eq!(n.serial, format!("SN-{}", n.name));
    }
    assert_eq!(m.node("n2").unwrap().addr, "10.0.0.2");
    let before = store.events(EventQuery::all(0, 100)).await.unwrap();
    assert_eq!(before.len(), 3);
    assert!(before.iter().all(|e| e.kind == EventKind::Created));
    // A replay of the same members (as after a discovery reconnect) records nothing.
    discovered(&m, &["n1", "n2", "n3"]).await;
    assert_eq!(store.events(EventQuery::all(0, 100)).await.unwrap(), before);
}

#[tokio::test]
async fn commission_pushes_merged_vars_and_completes() {
    let push = Arc::new(RecordingPush::new());
    let (m, _) = manager_with(push.clone(), ManagerConfig::default()).await;
    discovered(&m, &["n1", "n2"]).await;
    m.set_globals(json!({"env": {"proxy": "global", "dns": "global"}, "g": 1}))
        .await
        .unwrap();
    m.set_node_vars("n1", json!({"env": {"dns": "node"}, "n": 1}))
        .await
        .unwrap();

    let req = Request::nodes(["n1", "n2"])
        .host_group("service-worker")
        .vars(json!({"env": {"proxy": "request"}}));
    let id = m.commission(req).await.unwrap();
    let job = m.wait_job(id).await.unwrap();
    assert_eq!(job.status, JobStatus::Complete, "{job:?}");
    for n in ["n1", "n2"] {
        let node = m.node(n).unwrap();
        assert_eq!(node.status, NodeStatus::Commissioned);
        assert_eq!(node.host_group.as_ref().unwrap().as_str(), "service-worker");
        assert_eq!(node.last_job, Some(id));
    }
    let calls = push.calls_of(PushAction::Provision);
    assert_eq!(calls.len(), 1, "one push run for the whole batch");
    let n1 = calls[0].hosts.iter().find(|h| h.name == "n1").unwrap();
    assert_eq!(
        n1.vars,
        json!({"env": {"proxy": "request", "dns": "node"}, "g": 1, "n": 1})
    );
    let n2 = calls[0].hosts.iter().find(|h| h.name == "n2").unwrap();
    assert_eq!(
        n2.vars,
        json!({"env": {"proxy": "request", "dns": "global"}, "g": 1})
    );

    let log = m.job_log(id).expect("log kept");
    assert!(
        log.lines_after(0)
            .iter()
            .any(|l| l.text.contains("provision on 2 host(s)"))
    );
    let events = m.events(EventQuery::node("n1", 0, 100)).await.unwrap();
    let statuses: Vec<_> = events
        .iter()
        .filter(|e| e.kind == EventKind::Status)
        .map(|e| (e.from.as_str(), e.to.as_str(), e.job))
        .collect();
    assert_eq!(
        statuses,
        vec![
            ("Discovered", "Commissioning", Some(id)),
            ("Commissioning", "Commissioned", Some(id))
        ]
    );
}

#[tokio::test]
async fn bad_requests_are_refused_and_change_nothing() {
    let push = Arc::new(RecordingPush::new());
    let (m, store) = manager_with(push.clone(), ManagerConfig::default()).await;
    discovered(&m, &["n1", "n2"]).await;
    let before = snapshot(&m, &store).await;
    let worker =
        |names: &[&str]| Request::nodes(names.iter().copied()).host_group("service-worker");

    let e = m.commission(worker(&["n1", "ghost"])).await.unwrap_err();
    assert!(
        matches!(&e, Error::NodeNotFound { node } if node == "ghost"),
        "{e}"
    );
    let e = m.upgrade(Request::nodes(["n1"])).await.unwrap_err();
    match &e {
        Error::IllegalTransition(t) => {
            assert_eq!((t.node.as_str(), t.from), ("n1", NodeStatus::Discovered));
            assert_eq!(t.action, cluster_core::Action::Upgrade);
        }
        other => panic!("{other}"),
    }
    let e = m.decommission(Request::nodes(["n2"])).await.unwrap_err();
    assert_eq!(e.code(), "illegal_transition");
    for vars in [json!([1]), json!("x"), json!(3), json!(true)] {
        let e = m.commission(worker(&["n1"]).vars(vars)).await.unwrap_err();
        assert!(
            matches!(&e, Error::InvalidInput { field, .. } if field == "extra_vars"),
            "{e}"
        );
    }
    let e = m.commission(worker(&[])).await.unwrap_err();
    assert_eq!(e.code(), "invalid_input");
    let e = m.commission(worker(&["n1", "n1"])).await.unwrap_err();
    assert!(e.to_string().contains("twice"), "{e}");
    let e = m
        .commission(Request::nodes(["n1"]).host_group("service-db"))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("service-db"), "{e}");
    let e = m.commission(Request::nodes(["n1"])).await.unwrap_err();
    assert!(
        matches!(&e, Error::InvalidInput { field, .. } if field == "host_group"),
        "{e}"
    );
    let e = m
        .commission(worker(&["n1"]).rolling(1, 0))
        .await
        .unwrap_err();
    assert!(
        matches!(&e, Error::InvalidInput { field, .. } if field == "rolling"),
        "{e}"
    );
    let e = m
        .set_globals(json!(["not", "an", "object"]))
        .await
        .unwrap_err();
    assert_eq!(e.code(), "invalid_input");
    let e = m.set_node_vars("n1", json!(1)).await.unwrap_err();
    assert_eq!(e.code(), "invalid_input");
    let e = m
        .discover(vec!["10.0.0.9; rm -rf /".into()], json!({}))
        .await
        .unwrap_err();
    assert!(
        matches!(&e, Error::InvalidInput { field, .. } if field == "addrs"),
        "{e}"
    );
    let e = m.job(JobId(99)).await.unwrap_err();
    assert_eq!(e.code(), "not_found");
    let e = m
        .events(EventQuery::node("ghost", 0, 10))
        .await
        .unwrap_err();
    assert_eq!(e.code(), "not_found");

    assert_eq!(snapshot(&m, &store).await, before);
    assert!(push.calls().is_empty());
    assert_eq!(m.globals(), json!({}));
}

#[tokio::test]
async fn per_host_failure_fails_only_that_node() {
    let push = Arc::new(RecordingPush::new());
    let (m, _) = manager_with(push.clone(), ManagerConfig::default()).await;
    discovered(&m, &["n1", "n2", "n3"]).await;
    push.fail_host(PushAction::Provision, "n2");
    let id = m
        .commission(Request::nodes(["n1", "n2", "n3"]).host_group("service-worker"))
        .await
        .unwrap();
    let job = m.wait_job(id).await.unwrap();
    assert_eq!(job.status, JobStatus::Errored);
    assert_eq!(job.failed.keys().collect::<Vec<_>>(), vec!["n2"]);
    assert_eq!(m.node("n1").unwrap().status, NodeStatus::Commissioned);
    assert_eq!(m.node("n3").unwrap().status, NodeStatus::Commissioned);
    let n2 = m.node("n2").unwrap();
    assert_eq!(n2.status, NodeStatus::Failed);
    assert!(
        n2.error
            .as_deref()
            .unwrap()
            .contains("provision failed on n2")
    );

    // Failed nodes may be retried; success clears the error.
    push.heal();
    let id = m.commission(Request::nodes(["n2"])).await.unwrap();
    assert_eq!(m.wait_job(id).await.unwrap().status, JobStatus::Complete);
    let n2 = m.node("n2").unwrap();
    assert_eq!((n2.status, n2.error), (NodeStatus::Commissioned, None));
}

#[tokio::test]
async fn one_job_per_node_disjoint_jobs_run_concurrently_and_cancel() {
    let push = Arc::new(RecordingPush::new());
    let (m, _) = manager_with(push.clone(), ManagerConfig::default()).await;
    discovered(&m, &["n1", "n2", "n3"]).await;
    let worker = |n: &str| Request::nodes([n]).host_group("service-worker");
    let first = m.commission(worker("n1")).await.unwrap();
    assert_eq!(m.wait_job(first).await.unwrap().status, JobStatus::Complete);

    push.hang(PushAction::Upgrade);
    let up = m.upgrade(Request::nodes(["n1"])).await.unwrap();
    eventually("upgrade push to start", WAIT, || {
        (!push.calls_of(PushAction::Upgrade).is_empty()).then_some(())
    })
    .await;
    assert_eq!(m.node("n1").unwrap().status, NodeStatus::Upgrading);
    let e = m.decommission(Request::nodes(["n1"])).await.unwrap_err();
    assert!(
        matches!(e, Error::NodeBusy { job, .. } if job == up) || e.code() == "illegal_transition",
        "{e}"
    );
    // A disjoint set goes ahead while n1's job hangs.
    let other = m.commission(worker("n2")).await.unwrap();
    assert_eq!(m.wait_job(other).await.unwrap().status, JobStatus::Complete);
    assert_eq!(m.active_job().await.unwrap().map(|j| j.id), Some(up));

    m.cancel(up).await.unwrap();
    let job = m.wait_job(up).await.unwrap();
    assert_eq!(job.status, JobStatus::Cancelled);
    let n1 = m.node("n1").unwrap();
    assert_eq!(n1.status, NodeStatus::Failed);
    assert_eq!(n1.error.as_deref(), Some("cancelled by request"));
    assert!(m.busy_nodes().await.is_empty());
    let e = m.cancel(up).await.unwrap_err();
    assert_eq!(e.code(), "job_state");
    assert_eq!(m.last_job().await.unwrap().map(|j| j.id), Some(other));
}

#[tokio::test]
async fn a_job_past_its_timeout_is_stopped() {
    let push = Arc::new(RecordingPush::new());
    let config = ManagerConfig {
        job_timeout: Some(Duration::from_millis(200)),
        ..ManagerConfig::default()
    };
    let (m, _) = manager_with(push.clone(), config).await;
    discovered(&m, &["n1"]).await;
    push.hang(PushAction::Provision);
    let id = m
        .commission(Request::nodes(["n1"]).host_group("service-master"))
        .await
        .unwrap();
    let job = m.wait_job(id).await.unwrap();
    assert_eq!(job.status, JobStatus::Errored);
    assert!(
        job.error.as_deref().unwrap().contains("timed out"),
        "{job:?}"
    );
    let n1 = m.node("n1").unwrap();
    assert_eq!(n1.status, NodeStatus::Failed);
    assert!(n1.error.unwrap().contains("timed out"));
}

#[tokio::test]
async fn rolling_upgrade_stops_after_max_failures() {
    let push = Arc::new(RecordingPush::new());
    let (m, _) = manager_with(push.clone(), ManagerConfig::default()).await;
    let names = ["n1", "n2", "n3", "n4", "n5"];
    discovered(&m, &names).await;
    let id = m
        .commission(Request::nodes(names).host_group("service-worker"))
        .await
        .unwrap();
    m.wait_job(id).await.unwrap();

    push.fail_host(PushAction::Upgrade, "n3");
    let id = m
        .upgrade(Request::nodes(names).rolling(2, 0))
        .await
        .unwrap();
    let job = m.wait_job(id).await.unwrap();
    assert_eq!(job.status, JobStatus::Errored);
    assert!(
        job.error
            .as_deref()
            .unwrap()
            .contains("1 node(s) not upgraded"),
        "{job:?}"
    );
    let status = |n: &str| m.node(n).unwrap().status;
    assert_eq!(
        names.map(status),
        [
            NodeStatus::Upgraded,
            NodeStatus::Upgraded,
            NodeStatus::Failed,
            NodeStatus::Upgraded,
            NodeStatus::Commissioned
        ]
    );
    let batches: Vec<Vec<String>> = push
        .calls_of(PushAction::Upgrade)
        .into_iter()
        .map(|c| c.hosts.into_iter().map(|h| h.name).collect())
        .collect();
    assert_eq!(batches, vec![vec!["n1", "n2"], vec!["n3", "n4"]]);

    // Tolerating the failure, a plain batch upgrade of the rest completes in one run.
    push.heal();
    let id = m.upgrade(Request::nodes(["n1", "n2", "n5"])).await.unwrap();
    assert_eq!(m.wait_job(id).await.unwrap().status, JobStatus::Complete);
    assert_eq!(status("n5"), NodeStatus::Upgraded);
}

#[tokio::test]
async fn discover_enrolls_addresses_and_discovery_completes_them() {
    let push = Arc::new(RecordingPush::new());
    let (m, _) = manager_with(push.clone(), ManagerConfig::default()).await;
    let id = m
        .discover(
            vec!["192.0.2.10".into(), "node-b.example".into()],
            json!({"serf_version": "0.8"}),
        )
        .await
        .unwrap();
    assert_eq!(m.wait_job(id).await.unwrap().status, JobStatus::Complete);
    assert_eq!(m.node("192.0.2.10").unwrap().status, NodeStatus::New);
    let calls = push.calls_of(PushAction::Discover);
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].hosts[1].addr, "node-b.example");
    assert_eq!(calls[0].hosts[0].vars, json!({"serf_version": "0.8"}));
    // New nodes cannot be commissioned before discovery sees them.
    let e = m
        .commission(Request::nodes(["192.0.2.10"]).host_group("service-worker"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), "illegal_transition");

    let mut m1 = member("x");
    m1.name = "192.0.2.10".into();
    m.membership(MembershipEvent {
        kind: MembershipKind::Joined,
        member: m1,
    })
    .unwrap();
    m.settle().await.unwrap();
    let n = m.node("192.0.2.10").unwrap();
    assert_eq!(
        (n.status, n.reachability),
        (NodeStatus::Discovered, Reachability::Reachable)
    );
    // A host enrolled by address that joins under its own name replaces the record.
    m.membership(MembershipEvent {
        kind: MembershipKind::Joined,
        member: Member::alive("web-1", "node-b.example"),
    })
    .unwrap();
    m.settle().await.unwrap();
    assert!(m.node("node-b.example").is_err());
    let web = m.node("web-1").unwrap();
    assert_eq!(
        (web.status, web.addr.as_str()),
        (NodeStatus::Discovered, "node-b.example")
    );
    assert_eq!(web.last_job, Some(id));
    let created = m.events(EventQuery::node("web-1", 0, 10)).await.unwrap();
    assert!(
        created[0].cause.contains("enrolled as node-b.example"),
        "{created:?}"
    );
    let gone = m.events(EventQuery::all(0, 100)).await.unwrap();
    assert!(
        gone.iter()
            .any(|e| e.node == "node-b.example" && e.kind == EventKind::Removed)
    );

    // Enrolling the address again would only leave a placeholder behind: refused.
    let jobs_before = m.jobs().await.unwrap().len();
    let e = m
        .discover(vec!["node-b.example".into()], json!({}))
        .await
        .unwrap_err();
    assert_eq!(e.code(), "invalid_input");
    assert!(e.to_string().contains("\"web-1\""), "{e}");
    assert!(m.node("node-b.example").is_err(), "no placeholder");
    assert_eq!(m.jobs().await.unwrap().len(), jobs_before, "no job");
}

#[tokio::test]
async fn reachability_follows_discovery_and_returning_nodes_are_verified() {
    let push = Arc::new(RecordingPush::new());
    let (m, _) = manager_with(push.clone(), ManagerConfig::default()).await;
    discovered(&m, &["n1", "n2"]).await;
    let id = m
        .commission(Request::nodes(["n1"]).host_group("service-worker"))
        .await
        .unwrap();
    m.wait_job(id).await.unwrap();

    m.membership(event(MembershipKind::Failed, "n1")).unwrap();
    m.membership(event(MembershipKind::Left, "n2")).unwrap();
    m.settle().await.unwrap();
    assert!(matches!(
        m.node("n1").unwrap().reachability,
        Reachability::Unreachable { .. }
    ));
    assert!(matches!(
        m.node("n2").unwrap().reachability,
        Reachability::Left { .. }
    ));
    assert!(push.calls_of(PushAction::Verify).is_empty());

    // n1 comes back while commissioned: verified; it fails and is re-provisioned.
    push.fail_host(PushAction::Verify, "n1");
    m.membership(joined("n1")).unwrap();
    m.settle().await.unwrap();
    let verify = eventually("a verify job", WAIT, || {
        futures::executor::block_on(m.jobs())
            .unwrap()
            .into_iter()
            .find(|j: &Job| j.kind == JobKind::Verify)
    })
    .await;
    let verify = m.wait_job(verify.id).await.unwrap();
    assert_eq!(verify.status, JobStatus::Complete, "{verify:?}");
    assert_eq!(push.calls_of(PushAction::Verify).len(), 1);
    assert_eq!(
        push.calls_of(PushAction::Provision).len(),
        2,
        "re-provisioned"
    );
    let n1 = m.node("n1").unwrap();
    assert_eq!(
        (n1.status, n1.reachability),
        (NodeStatus::Commissioned, Reachability::Reachable)
    );
    let events = m.events(EventQuery::node("n1", 0, 100)).await.unwrap();
    assert!(
        events
            .iter()
            .any(|e| e.to == "Commissioning" && e.cause.contains("verification failed"))
    );

    // n2 was never commissioned: coming back only makes it reachable.
    m.membership(joined("n2")).unwrap();
    m.settle().await.unwrap();
    assert_eq!(m.node("n2").unwrap().reachability, Reachability::Reachable);
    assert_eq!(push.calls_of(PushAction::Verify).len(), 1);
}

#[tokio::test]
async fn restart_fails_nodes_left_mid_job_and_errors_their_job() {
    let store = Arc::new(MemoryStore::new());
    let now = chrono::Utc::now();
    let mut batch = Batch::new();
    for (name, status) in [
        ("busy", NodeStatus::Commissioning),
        ("up", NodeStatus::Upgrading),
        ("idle", NodeStatus::Commissioned),
    ] {
        let mut n = Node::new(name.into(), status, now);
        n.last_job = Some(JobId(7));
        batch.put_node(n, Expect::Absent);
    }
    batch.job(Job::running(
        JobId(7),
        JobKind::Commission,
        vec!["busy".into(), "up".into()],
        now,
    ));
    let mut done = Job::running(JobId(6), JobKind::Commission, vec!["idle".into()], now);
    done.status = JobStatus::Complete;
    batch.job(done);
    store.apply(batch).await.unwrap();

    let m = Manager::builder(store.clone()).start().await.unwrap();
    for n in ["busy", "up"] {
        let node = m.node(n).unwrap();
        assert_eq!(node.status, NodeStatus::Failed);
        assert_eq!(node.error.as_deref(), Some("interrupted by restart"));
    }
    assert_eq!(m.node("idle").unwrap().status, NodeStatus::Commissioned);
    let job = m.job(JobId(7)).await.unwrap();
    assert_eq!(
        (job.status, job.error.as_deref()),
        (JobStatus::Errored, Some("interrupted by restart"))
    );
    assert_eq!(m.job(JobId(6)).await.unwrap().status, JobStatus::Complete);
    // Ids continue after the highest recorded one.
    assert_eq!(m.last_job().await.unwrap().map(|j| j.id), Some(JobId(7)));
    let stored = store.get_node("busy").await.unwrap().unwrap();
    assert_eq!(stored.status, NodeStatus::Failed, "the repair is durable");
}
