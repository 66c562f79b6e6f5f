//! Conformance checks every `InventoryStore` runs.
//!
//! An implementation's test file builds fresh stores and calls [`store_conformance`];
//! durable stores also call [`reopen_conformance`] and drive [`crash_writer`] /
//! [`check_after_crash`] around a `kill -9` of a child process. Every check panics with
//! a message naming what the store got wrong.

use std::io::Write;
use std::sync::Arc;

use serde_json::json;

use crate::cluster::{Cluster, ClusterState};
use crate::error::Error;
use crate::event::{EventKind, NodeEvent};
use crate::job::{Job, JobId, JobKind, JobStatus};
use crate::node::{Node, NodeStatus};
use crate::store::{Batch, EventQuery, Expect, InventoryStore};

fn now() -> crate::Timestamp {
    chrono::Utc::now()
}

fn node(name: &str, status: NodeStatus) -> Node {
    Node::new(name.to_owned(), status, now())
}

fn event(node: &str, to: &str) -> NodeEvent {
    NodeEvent {
        seq: 0,
        node: node.to_owned(),
        at: now(),
        kind: EventKind::Status,
        from: String::new(),
        to: to.to_owned(),
        cause: "conformance".into(),
        job: None,
    }
}

fn job(id: u64, nodes: &[&str]) -> Job {
    Job::running(
        JobId(id),
        JobKind::Commission,
        nodes.iter().map(|n| (*n).to_owned()).collect(),
        now(),
    )
}

/// Runs every check, each on a fresh empty store from `fresh`.
pub async fn store_conformance<F>(fresh: F)
where
    F: Fn() -> Arc<dyn InventoryStore>,
{
    empty_store(fresh().as_ref()).await;
    nodes_round_trip(fresh().as_ref()).await;
    compare_and_set(fresh().as_ref()).await;
    atomic_batches(fresh().as_ref()).await;
    event_log(fresh().as_ref()).await;
    globals_and_cluster(fresh().as_ref()).await;
    jobs(fresh().as_ref()).await;
}

/// A new store holds nothing and answers every read.
pub async fn empty_store(store: &dyn InventoryStore) {
    assert!(store.list_nodes().await.unwrap().is_empty(), "nodes");
    assert_eq!(store.get_node("n1").await.unwrap(), None, "get_node");
    assert!(
        store
            .events(EventQuery::all(0, 10))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.globals().await.unwrap(), json!({}), "globals default");
    assert_eq!(store.get_job(JobId(1)).await.unwrap(), None);
    assert!(store.list_jobs(None, 10).await.unwrap().is_empty());
    assert_eq!(store.cluster().await.unwrap(), None);
}

/// Written nodes come back whole, with the commit's revision, listed by name.
pub async fn nodes_round_trip(store: &dyn InventoryStore) {
    let mut b = node("b-node", NodeStatus::Discovered);
    b.serial = "SN-b".into();
    b.addr = "127.0.0.2".into();
    b.tags.insert("NodeLabel".into(), "b-node".into());
    b.vars = json!({"quote": "it's \"x\"", "nested": {"n": 1}});
    let a = node("a-node", NodeStatus::New);
    let mut batch = Batch::new();
    batch
        .put_node(b.clone(), Expect::Absent)
        .put_node(a.clone(), Expect::Absent);
    let applied = store.apply(batch).await.unwrap();
    assert!(applied.revision > 0, "revision starts above 0");

    let got = store
        .get_node("b-node")
        .await
        .unwrap()
        .expect("b-node stored");
    assert_eq!(
        got.revision, applied.revision,
        "node carries commit revision"
    );
    b.revision = applied.revision;
    assert_eq!(got, b, "node round-trips unchanged");

    let names: Vec<_> = store
        .list_nodes()
        .await
        .unwrap()
        .into_iter()
        .map(|n| n.name)
        .collect();
    assert_eq!(names, ["a-node", "b-node"], "list is ordered by name");

    // Revisions grow with every commit.
    let mut again = Batch::new();
    again.put_node(got.clone(), Expect::Revision(got.revision));
    let second = store.apply(again).await.unwrap();
    assert!(second.revision > applied.revision, "revision increases");

    // Removal.
    let mut rm = Batch::new();
    rm.remove_node("a-node", Expect::Any);
    store.apply(rm).await.unwrap();
    assert_eq!(store.get_node("a-node").await.unwrap(), None, "removed");
    let mut rm_absent = Batch::new();
    rm_absent.remove_node("never-there", Expect::Any);
    store
        .apply(rm_absent)
        .await
        .expect("removing an absent node under Any is a no-op");
}

fn assert_conflict(err: Error, node: &str) {
    match err {
        Error::Conflict { node: n, .. } => assert_eq!(n, node, "conflict names the node"),
        other => panic!("expected a revision conflict on {node}, got {other:?}"),
    }
}

/// Stale revisions, double creation and stale removals are refused as conflicts.
pub async fn compare_and_set(store: &dyn InventoryStore) {
    let mut b = Batch::new();
    b.put_node(node("n1", NodeStatus::Discovered), Expect::Absent);
    let r1 = store.apply(b).await.unwrap().revision;

    let mut dup = Batch::new();
    dup.put_node(node("n1", NodeStatus::Discovered), Expect::Absent);
    assert_conflict(store.apply(dup).await.unwrap_err(), "n1");

    let mut fresh = store.get_node("n1").await.unwrap().unwrap();
    fresh.status = NodeStatus::Commissioning;
    let mut ok = Batch::new();
    ok.put_node(fresh.clone(), Expect::Revision(r1));
    let r2 = store.apply(ok).await.unwrap().revision;

    // A writer that read at r1 lost the race.
    let mut stale = fresh.clone();
    stale.status = NodeStatus::Failed;
    let mut lost = Batch::new();
    lost.put_node(stale, Expect::Revision(r1));
    match store.apply(lost).await.unwrap_err() {
        Error::Conflict {
            node,
            expected,
            actual,
        } => {
            assert_eq!((node.as_str(), expected, actual), ("n1", r1, r2));
        }
        other => panic!("expected conflict, got {other:?}"),
    }
    let stored = store.get_node("n1").await.unwrap().unwrap();
    assert_eq!(
        stored.status,
        NodeStatus::Commissioning,
        "loser wrote nothing"
    );

    let mut rm = Batch::new();
    rm.remove_node("n1", Expect::Revision(r1));
    assert_conflict(store.apply(rm).await.unwrap_err(), "n1");
    assert!(store.get_node("n1").await.unwrap().is_some(), "not removed");

    let mut ghost = Batch::new();
    ghost.put_node(node("ghost", NodeStatus::Failed), Expect::Revision(7));
    assert_conflict(store.apply(ghost).await.unwrap_err(), "ghost");

    let mut any = Batch::new();
    any.put_node(node("n1", NodeStatus::Failed), Expect::Any);
    store.apply(any).await.expect("Expect::Any overwrites");
}

/// A batch with one failing condition applies nothing: no node, event, job or global.
pub async fn atomic_batches(store: &dyn InventoryStore) {
    let mut seed = Batch::new();
    seed.put_node(node("held", NodeStatus::Discovered), Expect::Absent)
        .event(event("held", "Discovered"));
    let seeded = store.apply(seed).await.unwrap();

    let mut mixed = Batch::new();
    mixed
        .put_node(node("new-1", NodeStatus::Discovered), Expect::Absent)
        .put_node(node("new-2", NodeStatus::Discovered), Expect::Absent)
        .put_node(node("held", NodeStatus::Failed), Expect::Absent)
        .event(event("new-1", "Discovered"))
        .job(job(5, &["new-1"]))
        .globals(json!({"should": "not land"}))
        .cluster(Cluster::empty("swarm", now()));
    assert_conflict(store.apply(mixed).await.unwrap_err(), "held");

    assert_eq!(store.get_node("new-1").await.unwrap(), None, "partial node");
    assert_eq!(store.get_node("new-2").await.unwrap(), None, "partial node");
    let held = store.get_node("held").await.unwrap().unwrap();
    assert_eq!(held.status, NodeStatus::Discovered);
    assert_eq!(held.revision, seeded.revision, "held untouched");
    let log = store.events(EventQuery::all(0, 100)).await.unwrap();
    assert_eq!(log.len(), 1, "no event of the failed batch: {log:?}");
    assert_eq!(store.get_job(JobId(5)).await.unwrap(), None, "partial job");
    assert_eq!(store.globals().await.unwrap(), json!({}), "partial globals");
    assert_eq!(store.cluster().await.unwrap(), None, "partial cluster");

    // A failed batch does not consume a revision that shows up as a gap in nodes.
    let mut next = Batch::new();
    next.put_node(node("new-1", NodeStatus::Discovered), Expect::Absent);
    let after = store.apply(next).await.unwrap();
    assert!(after.revision > seeded.revision);

    // Many nodes in one batch land together with one revision.
    let mut big = Batch::new();
    for i in 0..500 {
        let name = format!("bulk-{i:03}");
        big.put_node(node(&name, NodeStatus::Discovered), Expect::Absent)
            .event(event(&name, "Discovered"));
    }
    let applied = store.apply(big).await.unwrap();
    let bulk: Vec<_> = store
        .list_nodes()
        .await
        .unwrap()
        .into_iter()
        .filter(|n| n.name.starts_with("bulk-"))
        .collect();
    assert_eq!(bulk.len(), 500);
    assert!(bulk.iter().all(|n| n.revision == applied.revision));
    assert_eq!(applied.last_event, 501, "500 events after the seed event");
}

/// The log is append-only, numbered 1.. in commit order, and pages by cursor, globally
/// and per node.
pub async fn event_log(store: &dyn InventoryStore) {
    let mut expected = Vec::new();
    for round in 0..4 {
        let mut b = Batch::new();
        for n in ["x", "y", "z"] {
            let to = format!("{n}{round}");
            b.event(event(n, &to));
            expected.push((n.to_owned(), to));
        }
        let applied = store.apply(b).await.unwrap();
        assert_eq!(applied.last_event, expected.len() as u64, "last_event");
    }
    let all = store.events(EventQuery::all(0, 1000)).await.unwrap();
    let seqs: Vec<u64> = all.iter().map(|e| e.seq).collect();
    assert_eq!(
        seqs,
        (1..=12).collect::<Vec<_>>(),
        "seq is 1.. without gaps"
    );
    let got: Vec<_> = all.iter().map(|e| (e.node.clone(), e.to.clone())).collect();
    assert_eq!(got, expected, "commit order, batch order inside a commit");

    // Paging with a cursor sees every event exactly once.
    let mut cursor = 0;
    let mut paged = Vec::new();
    loop {
        let page = store.events(EventQuery::all(cursor, 5)).await.unwrap();
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 5, "limit respected");
        cursor = page.last().unwrap().seq;
        paged.extend(page);
    }
    assert_eq!(paged, all, "paged read equals full read");
    assert!(
        store
            .events(EventQuery::all(u64::MAX, 10))
            .await
            .unwrap()
            .is_empty(),
        "nothing after the last possible seq"
    );

    let y = store.events(EventQuery::node("y", 0, 100)).await.unwrap();
    let y_to: Vec<_> = y.iter().map(|e| e.to.as_str()).collect();
    assert_eq!(y_to, ["y0", "y1", "y2", "y3"]);
    assert!(y.iter().all(|e| e.node == "y"));
    let y_after = store
        .events(EventQuery::node("y", y[1].seq, 1))
        .await
        .unwrap();
    assert_eq!(y_after.len(), 1);
    assert_eq!(y_after[0].to, "y2", "per-node cursor and limit");
    assert!(
        store
            .events(EventQuery::node("nobody", 0, 10))
            .await
            .unwrap()
            .is_empty()
    );
    // Node names that prefix one another stay apart.
    let mut b = Batch::new();
    b.event(event("yy", "yy0"));
    store.apply(b).await.unwrap();
    assert_eq!(
        store
            .events(EventQuery::node("y", 0, 100))
            .await
            .unwrap()
            .len(),
        4
    );
}

/// Globals and the cluster record are replaced whole and read back exactly.
pub async fn globals_and_cluster(store: &dyn InventoryStore) {
    let g = json!({"env": {"proxy": "http://p:3128", "list": [1, 2]}, "k": "v"});
    let mut b = Batch::new();
    b.globals(g.clone());
    store.apply(b).await.unwrap();
    assert_eq!(store.globals().await.unwrap(), g);
    let mut b = Batch::new();
    b.globals(json!({"only": true}));
    store.apply(b).await.unwrap();
    assert_eq!(
        store.globals().await.unwrap(),
        json!({"only": true}),
        "replaced, not merged"
    );

    let mut cluster = Cluster::empty("swarm", now());
    cluster.state = ClusterState::Active;
    cluster.bootstrap_node = Some("m1".into());
    let mut b = Batch::new();
    b.cluster(cluster.clone());
    store.apply(b).await.unwrap();
    assert_eq!(store.cluster().await.unwrap(), Some(cluster));
}

/// Jobs are inserted, replaced by id, and listed in id order with a cursor.
pub async fn jobs(store: &dyn InventoryStore) {
    let mut b = Batch::new();
    for id in [3, 1, 2, 10] {
        b.job(job(id, &["n1", "n2"]));
    }
    store.apply(b).await.unwrap();
    let ids: Vec<u64> = store
        .list_jobs(None, 100)
        .await
        .unwrap()
        .iter()
        .map(|j| j.id.0)
        .collect();
    assert_eq!(ids, [1, 2, 3, 10], "id order");
    let after: Vec<u64> = store
        .list_jobs(Some(JobId(2)), 2)
        .await
        .unwrap()
        .iter()
        .map(|j| j.id.0)
        .collect();
    assert_eq!(after, [3, 10], "cursor and limit");
    assert!(
        store
            .list_jobs(Some(JobId(u64::MAX)), 10)
            .await
            .unwrap()
            .is_empty(),
        "nothing after the last possible id"
    );

    let mut done = job(2, &["n1", "n2"]);
    done.status = JobStatus::Errored;
    done.failed.insert("n2".into(), "playbook failed".into());
    done.error = Some("1 host failed".into());
    done.ended_at = Some(now());
    let mut b = Batch::new();
    b.job(done.clone());
    store.apply(b).await.unwrap();
    assert_eq!(store.get_job(JobId(2)).await.unwrap(), Some(done));
    assert_eq!(store.list_jobs(None, 100).await.unwrap().len(), 4);
}

/// Everything written before the store is dropped is there after `reopen`.
pub async fn reopen_conformance<F>(reopen: F)
where
    F: Fn() -> Arc<dyn InventoryStore>,
{
    let mut n = node("durable", NodeStatus::Commissioned);
    n.vars = json!({"a": 1});
    let applied = {
        let store = reopen();
        let mut b = Batch::new();
        b.put_node(n.clone(), Expect::Absent)
            .event(event("durable", "Commissioned"))
            .job(job(1, &["durable"]))
            .globals(json!({"g": 1}))
            .cluster(Cluster::empty("swarm", now()));
        store.apply(b).await.unwrap()
    };
    let store = reopen();
    let got = store.get_node("durable").await.unwrap().expect("node kept");
    n.revision = applied.revision;
    assert_eq!(got, n);
    assert_eq!(store.events(EventQuery::all(0, 10)).await.unwrap().len(), 1);
    assert!(store.get_job(JobId(1)).await.unwrap().is_some());
    assert_eq!(store.globals().await.unwrap(), json!({"g": 1}));
    assert!(store.cluster().await.unwrap().is_some());

    // Counters continue where they were: no revision or seq is handed out twice.
    let mut b = Batch::new();
    b.event(event("durable", "again"));
    let next = store.apply(b).await.unwrap();
    assert!(next.revision > applied.revision, "revision continues");
    assert_eq!(next.last_event, 2, "event seq continues");
}

/// Nodes written by batch `k` of [`crash_writer`].
pub const CRASH_BATCH_NODES: usize = 40;

/// The child side of the crash test: applies numbered batches forever, writing
/// `acked K` to `out` after batch `K` is acknowledged. Each batch writes
/// [`CRASH_BATCH_NODES`] nodes, one event per node, one job and the globals.
pub async fn crash_writer(store: &dyn InventoryStore, mut out: impl Write) {
    for k in 1u64.. {
        let mut b = Batch::new();
        for i in 0..CRASH_BATCH_NODES {
            let mut n = node(&format!("b{k:06}-n{i:02}"), NodeStatus::Discovered);
            n.vars = json!({"batch": k, "pad": "x".repeat(200)});
            b.put_node(n, Expect::Absent)
                .event(event(&format!("b{k:06}-n{i:02}"), &k.to_string()));
        }
        b.job(job(k, &[])).globals(json!({"batch": k}));
        store.apply(b).await.expect("crash writer batch");
        writeln!(out, "acked {k}").expect("report ack");
        out.flush().expect("flush ack");
    }
}

/// The parent side: after the writer was killed having reported `acked` batches, every
/// acknowledged batch is there and any batch present is whole.
pub async fn check_after_crash(store: &dyn InventoryStore, acked: u64) {
    let nodes = store.list_nodes().await.unwrap();
    let mut per_batch = std::collections::BTreeMap::<u64, usize>::new();
    for n in &nodes {
        let k = n.vars["batch"].as_u64().expect("batch var");
        *per_batch.entry(k).or_default() += 1;
    }
    for k in 1..=acked {
        assert_eq!(
            per_batch.get(&k).copied().unwrap_or(0),
            CRASH_BATCH_NODES,
            "acknowledged batch {k} incomplete after kill -9"
        );
    }
    // The batch in flight at the kill may have committed before its ack was written.
    let present = per_batch.keys().copied().max().unwrap_or(0);
    assert!(
        present <= acked + 1,
        "batch {present} present but only {acked} acked"
    );
    for (k, count) in &per_batch {
        assert_eq!(*count, CRASH_BATCH_NODES, "batch {k} is partial");
    }
    let events = store.events(EventQuery::all(0, usize::MAX)).await.unwrap();
    assert_eq!(events.len(), nodes.len(), "one event per stored node");
    assert_eq!(events.last().map_or(0, |e| e.seq), events.len() as u64);
    let jobs = store.list_jobs(None, usize::MAX).await.unwrap();
    assert_eq!(jobs.len() as u64, present, "one job per stored batch");
    assert_eq!(
        store.globals().await.unwrap(),
        if present == 0 {
            json!({})
        } else {
            json!({ "batch": present })
        },
        "globals of the last stored batch"
    );
}
