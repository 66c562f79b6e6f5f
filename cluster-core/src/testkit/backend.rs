//! Conformance checks every `ClusterBackend` runs.
//!
//! An implementation's test wraps real orchestrator nodes in a [`BackendHarness`] and
//! calls [`backend_conformance`] (or the single checks, in the order listed there: each
//! starts from the state the previous one leaves). The checks call the backend the way
//! the manager does and assert what [`ClusterBackend::members`] reports: the first node
//! bootstraps a one-master cluster, others join under their role, joining a member or
//! leaving a non-member changes nothing, roles follow `set_role`, drained nodes stay
//! members, readiness follows a node going down and coming back, and left nodes are
//! gone. [`check_dissolve`] (optional) takes every node out, the master last, and
//! [`check_through_manager`] runs the whole lifecycle through a real [`Manager`],
//! starting and ending with no cluster.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::backend::{BackendMember, BackendNode, ClusterBackend};
use crate::cluster::ClusterState;
use crate::event::{MembershipEvent, MembershipKind};
use crate::job::{JobId, JobStatus, PushAction};
use crate::manager::{Manager, Request};
use crate::node::{Member, NodeStatus, Role};
use crate::store::{EventQuery, MemoryStore};
use crate::testkit::doubles::RecordingPush;

/// How long the orchestrator may take to reflect a change (a node seen down after its
/// agent stopped is the slowest, on a loaded machine).
pub const WAIT: Duration = Duration::from_secs(180);

/// A node the harness provides: its name and management address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestNode {
    /// Node name.
    pub name: String,
    /// Management address the backend reaches it by.
    pub addr: String,
}

/// Real orchestrator nodes under the test's control.
#[async_trait]
pub trait BackendHarness: Send {
    /// The backend under test, configured to reach every node of the harness.
    fn backend(&self) -> Arc<dyn ClusterBackend>;

    /// At least three nodes, none in a cluster yet; the first bootstraps it.
    fn nodes(&self) -> Vec<TestNode>;

    /// Takes the node's orchestrator agent down (stops its daemon).
    async fn stop_node(&mut self, name: &str);

    /// Brings a stopped node's agent back.
    async fn start_node(&mut self, name: &str);
}

/// Runs every check in order on one harness; the cluster keeps its master at the end.
pub async fn backend_conformance(h: &mut dyn BackendHarness) {
    check_bootstrap(h).await;
    check_join(h).await;
    check_set_role(h).await;
    check_drain_and_activate(h).await;
    check_readiness(h).await;
    check_leave(h).await;
}

fn node(h: &dyn BackendHarness, i: usize, role: Role) -> BackendNode {
    let nodes = h.nodes();
    assert!(
        nodes.len() >= 3,
        "the harness must offer at least three nodes"
    );
    BackendNode {
        name: nodes[i].name.clone(),
        addr: nodes[i].addr.clone(),
        role,
    }
}

async fn members(b: &dyn ClusterBackend) -> Vec<BackendMember> {
    let mut m = b
        .members()
        .await
        .unwrap_or_else(|e| panic!("{} members(): {e}", b.kind()));
    m.sort_by(|a, b| a.name.cmp(&b.name));
    m
}

/// Polls `members()` until `want` holds of the list, and returns it.
async fn wait_members(
    b: &dyn ClusterBackend,
    what: &str,
    want: impl Fn(&[BackendMember]) -> bool,
) -> Vec<BackendMember> {
    let deadline = Instant::now() + WAIT;
    loop {
        let list = members(b).await;
        if want(&list) {
            return list;
        }
        assert!(
            Instant::now() < deadline,
            "{} backend: {what} never held; members: {list:?}",
            b.kind()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn find<'a>(list: &'a [BackendMember], name: &str) -> Option<&'a BackendMember> {
    list.iter().find(|m| m.name == name)
}

fn has(list: &[BackendMember], name: &str, role: Role, ready: bool) -> bool {
    find(list, name).is_some_and(|m| m.role == role && m.ready == ready)
}

async fn ok(what: &str, call: impl std::future::Future<Output = crate::Result<()>>) {
    if let Err(e) = call.await {
        panic!("{what} failed: {e}");
    }
}

/// The first node bootstraps a cluster whose only member is that node, a ready master;
/// bootstrapping it again changes nothing.
pub async fn check_bootstrap(h: &mut dyn BackendHarness) {
    let b = h.backend();
    let master = node(h, 0, Role::Master);
    ok("bootstrap", b.bootstrap(&master)).await;
    let list = wait_members(&*b, "the bootstrapped master is ready", |l| {
        has(l, &master.name, Role::Master, true)
    })
    .await;
    assert_eq!(list.len(), 1, "a fresh cluster has one member: {list:?}");
    ok("bootstrap again", b.bootstrap(&master)).await;
    assert_eq!(
        members(&*b).await,
        list,
        "a second bootstrap changed the cluster"
    );
}

/// The other nodes join as ready workers; joining a member again changes nothing.
pub async fn check_join(h: &mut dyn BackendHarness) {
    let b = h.backend();
    let (w1, w2) = (node(h, 1, Role::Worker), node(h, 2, Role::Worker));
    ok("join of the first worker", b.join(&w1)).await;
    ok("join of the second worker", b.join(&w2)).await;
    let list = wait_members(&*b, "both workers are ready", |l| {
        l.len() == 3 && has(l, &w1.name, Role::Worker, true) && has(l, &w2.name, Role::Worker, true)
    })
    .await;
    ok("join of a member", b.join(&w1)).await;
    assert_eq!(
        members(&*b).await,
        list,
        "joining a member changed the cluster"
    );
}

/// `set_role` promotes a worker to master and demotes it back.
pub async fn check_set_role(h: &mut dyn BackendHarness) {
    let b = h.backend();
    let promoted = node(h, 1, Role::Master);
    ok("promotion", b.set_role(&promoted)).await;
    wait_members(&*b, "the promoted node is a ready master", |l| {
        has(l, &promoted.name, Role::Master, true)
    })
    .await;
    let demoted = node(h, 1, Role::Worker);
    ok("demotion", b.set_role(&demoted)).await;
    wait_members(&*b, "the demoted node is a ready worker", |l| {
        l.len() == 3 && has(l, &demoted.name, Role::Worker, true)
    })
    .await;
}

/// A drained node stays a member, and can be activated again (twice is harmless).
pub async fn check_drain_and_activate(h: &mut dyn BackendHarness) {
    let b = h.backend();
    let w = node(h, 1, Role::Worker);
    ok("drain", b.drain(&w)).await;
    ok("drain again", b.drain(&w)).await;
    let list = members(&*b).await;
    assert!(
        find(&list, &w.name).is_some_and(|m| m.role == Role::Worker),
        "a drained node must stay a worker member: {list:?}"
    );
    ok("activate", b.activate(&w)).await;
    ok("activate again", b.activate(&w)).await;
    wait_members(&*b, "the reactivated node is a ready worker", |l| {
        has(l, &w.name, Role::Worker, true)
    })
    .await;
}

/// A node whose agent stops is reported not ready, and ready again once it is back.
pub async fn check_readiness(h: &mut dyn BackendHarness) {
    let b = h.backend();
    let w = node(h, 2, Role::Worker);
    h.stop_node(&w.name).await;
    wait_members(&*b, "the stopped node is not ready", |l| {
        has(l, &w.name, Role::Worker, false)
    })
    .await;
    h.start_node(&w.name).await;
    wait_members(&*b, "the restarted node is ready again", |l| {
        has(l, &w.name, Role::Worker, true)
    })
    .await;
}

/// Left nodes are gone from the members; leaving again is a no-op, and a node that left
/// can join again.
pub async fn check_leave(h: &mut dyn BackendHarness) {
    let b = h.backend();
    let (w1, w2) = (node(h, 1, Role::Worker), node(h, 2, Role::Worker));
    ok("leave", b.leave(&w2)).await;
    let list = wait_members(&*b, "the node that left is gone", |l| {
        l.len() == 2 && find(l, &w2.name).is_none()
    })
    .await;
    ok("leave of a non-member", b.leave(&w2)).await;
    assert_eq!(
        members(&*b).await,
        list,
        "leaving a non-member changed the cluster"
    );

    ok("join after leaving", b.join(&w2)).await;
    wait_members(&*b, "the node that came back is a ready worker", |l| {
        l.len() == 3 && has(l, &w2.name, Role::Worker, true)
    })
    .await;
    ok("leave of the first worker", b.leave(&w1)).await;
    ok("leave of the second worker", b.leave(&w2)).await;
    let list = wait_members(&*b, "only the master is left", |l| l.len() == 1).await;
    assert_eq!(
        find(&list, &node(h, 0, Role::Master).name).map(|m| m.role),
        Some(Role::Master)
    );
}

/// Every node leaves, the master last; the cluster has no members afterwards and a
/// second round of leaves is a no-op.
pub async fn check_dissolve(h: &mut dyn BackendHarness) {
    let b = h.backend();
    let nodes: Vec<BackendNode> = (0..h.nodes().len())
        .rev()
        .map(|i| node(h, i, if i == 0 { Role::Master } else { Role::Worker }))
        .collect();
    for n in &nodes {
        ok(&format!("leave of {}", n.name), b.leave(n)).await;
    }
    wait_members(&*b, "no member is left", <[BackendMember]>::is_empty).await;
    for n in &nodes {
        ok(&format!("second leave of {}", n.name), b.leave(n)).await;
    }
}

/// Runs request `id` to its end and insists it completed.
async fn complete(m: &Manager, what: &str, id: crate::Result<JobId>) {
    let id = id.unwrap_or_else(|e| panic!("{what} refused: {e}"));
    let job = tokio::time::timeout(WAIT, m.wait_job(id))
        .await
        .unwrap_or_else(|_| panic!("{what}: job {id} still running after {WAIT:?}"))
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    assert_eq!(job.status, JobStatus::Complete, "{what}: {job:?}");
}

/// The lifecycle through a real [`Manager`] (memory store, recording push), starting
/// with no cluster: the first master bootstraps it, workers are commissioned, one is
/// promoted by an upgrade into the master group, another upgraded in place, and all are
/// decommissioned (the master last), after which the cluster has no members and the
/// manager's cluster is empty again. Join vars never reach the push in clear.
pub async fn check_through_manager(h: &mut dyn BackendHarness) {
    let b = h.backend();
    let push = Arc::new(RecordingPush::new());
    let m = Manager::builder(Arc::new(MemoryStore::new()))
        .push(push.clone())
        .backend(b.clone())
        .start()
        .await
        .expect("manager starts with the backend under test");
    let nodes = h.nodes();
    for n in &nodes {
        m.membership(MembershipEvent {
            kind: MembershipKind::Joined,
            member: Member::alive(n.name.clone(), n.addr.clone()),
        })
        .expect("membership event");
    }
    m.settle().await.expect("membership settles");
    let (n0, n1, n2) = (&nodes[0].name, &nodes[1].name, &nodes[2].name);
    let groups = m.config().host_groups.clone();

    let req = Request::nodes([n0]).host_group(&groups.master);
    complete(&m, "bootstrap", m.commission(req).await).await;
    assert_eq!(m.cluster().state, ClusterState::Active);
    wait_members(&*b, "the bootstrapped master is ready", |l| {
        l.len() == 1 && has(l, n0, Role::Master, true)
    })
    .await;

    let req = Request::nodes([n1, n2]).host_group(&groups.worker);
    complete(&m, "commission of workers", m.commission(req).await).await;
    wait_members(&*b, "the commissioned workers are ready", |l| {
        l.len() == 3 && has(l, n1, Role::Worker, true) && has(l, n2, Role::Worker, true)
    })
    .await;

    // Join vars may hold secrets: the push gets them, job records and events never do.
    let secrets: Vec<String> = b
        .join_vars(&node(h, 1, Role::Worker))
        .await
        .ok()
        .and_then(|v| v.as_object().cloned())
        .into_iter()
        .flat_map(|o| {
            o.into_iter()
                .filter_map(|(_, v)| v.as_str().map(str::to_owned))
        })
        .filter(|v| v.len() >= 8)
        .collect();

    let req = Request::nodes([n1]).host_group(&groups.master);
    complete(&m, "promotion by upgrade", m.upgrade(req).await).await;
    wait_members(&*b, "the promoted node is a ready master", |l| {
        has(l, n1, Role::Master, true)
    })
    .await;
    complete(
        &m,
        "upgrade in place",
        m.upgrade(Request::nodes([n2])).await,
    )
    .await;
    assert_eq!(
        m.node(n2).map(|n| n.status).ok(),
        Some(NodeStatus::Upgraded)
    );
    let upgrades = push.calls_of(PushAction::Upgrade);
    assert_eq!(
        upgrades.len(),
        2,
        "one upgrade push per upgrade: {upgrades:?}"
    );

    complete(
        &m,
        "decommission of the promoted master",
        m.decommission(Request::nodes([n1])).await,
    )
    .await;
    wait_members(&*b, "the decommissioned node is gone", |l| {
        l.len() == 2 && find(l, n1).is_none()
    })
    .await;
    complete(
        &m,
        "decommission of the rest",
        m.decommission(Request::nodes([n2, n0])).await,
    )
    .await;
    wait_members(&*b, "no member is left", <[BackendMember]>::is_empty).await;
    assert_eq!(m.cluster().state, ClusterState::Empty);
    let jobs = format!("{:?}", m.jobs().await.expect("jobs"));
    let events = format!(
        "{:?}",
        m.events(EventQuery::all(0, usize::MAX))
            .await
            .expect("events")
    );
    for secret in &secrets {
        assert!(
            !jobs.contains(secret.as_str()) && !events.contains(secret.as_str()),
            "a join var reached a job record or the audit log"
        );
    }
    m.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::doubles::RecordingBackend;

    /// The recording double keeps members like an orchestrator; it has no agents to stop,
    /// so the readiness check is not run on it.
    struct Recording(Arc<RecordingBackend>);

    #[async_trait]
    impl BackendHarness for Recording {
        fn backend(&self) -> Arc<dyn ClusterBackend> {
            self.0.clone()
        }
        fn nodes(&self) -> Vec<TestNode> {
            (1..=3)
                .map(|i| TestNode {
                    name: format!("n{i}"),
                    addr: format!("127.0.0.{i}"),
                })
                .collect()
        }
        async fn stop_node(&mut self, name: &str) {
            panic!("the recording backend has no agent to stop for {name}");
        }
        async fn start_node(&mut self, name: &str) {
            panic!("the recording backend has no agent to start for {name}");
        }
    }

    #[tokio::test]
    async fn the_recording_backend_conforms() {
        let mut h = Recording(Arc::new(RecordingBackend::new()));
        check_bootstrap(&mut h).await;
        check_join(&mut h).await;
        check_set_role(&mut h).await;
        check_drain_and_activate(&mut h).await;
        check_leave(&mut h).await;
        check_dissolve(&mut h).await;
        check_through_manager(&mut h).await;
        let ops = h.0.ops();
        assert!(
            ops.contains(&"drain n2".to_owned()) && ops.contains(&"leave n1".to_owned()),
            "{ops:?}"
        );
    }
}
