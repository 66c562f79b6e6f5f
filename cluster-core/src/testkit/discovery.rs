//! Conformance checks every `Discovery` runs.
//!
//! An implementation's test wraps its real source (agents, a registry, ...) in a
//! [`DiscoveryHarness`] and calls [`discovery_conformance`] (or the single checks).
//! Each check drives a real [`Manager`] on a [`MemoryStore`] with the discovery under
//! test and asserts what the inventory ends up with: nodes appear with the right facts,
//! become unreachable when they fail, reachable when they return, `Left` when they
//! leave, are restored when the manager starts after the fact, and survive the source
//! going away and coming back without losing or duplicating anything. Every check
//! uses its own member names, so one harness can run them all in sequence.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures::StreamExt;

use crate::discovery::Discovery;
use crate::event::{EventKind, MembershipKind, NodeEvent};
use crate::manager::Manager;
use crate::node::{Member, MemberStatus, NodeStatus, Reachability};
use crate::store::{EventQuery, MemoryStore};
use crate::testkit::eventually;

/// How long any single change may take to reach the inventory (gossip failure
/// detection on a loaded machine is slow).
pub const WAIT: Duration = Duration::from_secs(120);

/// The world a discovery implementation watches, under the test's control.
#[async_trait]
pub trait DiscoveryHarness: Send {
    /// The discovery under test, talking to this harness's source.
    fn discovery(&self) -> Arc<dyn Discovery>;

    /// Brings up a member announcing itself as `name`; returns the facts (name, serial,
    /// address) discovery must report for it.
    async fn join(&mut self, name: &str) -> Member;

    /// Makes the member vanish without leaving (a crash, `kill -9`).
    async fn fail(&mut self, name: &str);

    /// Brings a failed member back under the same name.
    async fn rejoin(&mut self, name: &str);

    /// Makes the member leave gracefully.
    async fn leave(&mut self, name: &str);

    /// Takes away the source the discovery talks to (its agent or server).
    async fn stop_source(&mut self);

    /// Brings the source back; it must come to know members that joined meanwhile.
    async fn start_source(&mut self);
}

/// Runs every check in sequence on one harness.
pub async fn discovery_conformance(h: &mut dyn DiscoveryHarness) {
    check_join(h).await;
    check_fail_and_return(h).await;
    check_leave(h).await;
    check_restore_on_start(h).await;
    check_reconnect(h).await;
}

async fn manager(h: &dyn DiscoveryHarness) -> Manager {
    Manager::builder(Arc::new(MemoryStore::new()))
        .discovery(h.discovery())
        .start()
        .await
        .expect("manager starts with the discovery under test")
}

/// Waits until `name` is in the inventory with `reach` (compared by kind) and returns
/// the node.
async fn wait_reach(m: &Manager, name: &str, reach: &str) -> crate::node::Node {
    eventually(&format!("node {name} {reach}"), WAIT, || {
        m.node(name)
            .ok()
            .filter(|n| n.reachability.as_str() == reach)
    })
    .await
}

fn assert_facts(node: &crate::node::Node, want: &Member) {
    assert_eq!(node.name, want.name, "node name");
    assert_eq!(node.serial, want.serial, "serial of {}", want.name);
    assert_eq!(node.addr, want.addr, "address of {}", want.name);
}

async fn events_of(m: &Manager, name: &str) -> Vec<NodeEvent> {
    m.events(EventQuery::node(name, 0, usize::MAX))
        .await
        .unwrap_or_else(|e| panic!("events of {name}: {e}"))
}

async fn assert_created_once(m: &Manager, name: &str) {
    let created = events_of(m, name)
        .await
        .into_iter()
        .filter(|e| e.kind == EventKind::Created)
        .count();
    assert_eq!(created, 1, "node {name} must be created exactly once");
}

/// Polls the discovery's member list until `name` has `status` (or, with `None`, is
/// absent or `Left`).
async fn wait_member(d: &dyn Discovery, name: &str, status: Option<MemberStatus>) -> Vec<Member> {
    let deadline = Instant::now() + WAIT;
    loop {
        let members = d.members().await;
        if let Ok(list) = &members {
            let found = list.iter().find(|m| m.name == name).map(|m| m.status);
            let ok = match status {
                Some(s) => found == Some(s),
                None => matches!(found, None | Some(MemberStatus::Left)),
            };
            if ok {
                return members.unwrap_or_default();
            }
        }
        assert!(
            Instant::now() < deadline,
            "member {name} never reached {status:?} in members(): {members:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Members that join become `Discovered` and `Reachable` nodes with their facts, once.
pub async fn check_join(h: &mut dyn DiscoveryHarness) {
    let m = manager(h).await;
    let a = h.join("join-a").await;
    let b = h.join("join-b").await;
    for want in [&a, &b] {
        let node = wait_reach(&m, &want.name, "reachable").await;
        assert_eq!(
            node.status,
            NodeStatus::Discovered,
            "status of {}",
            want.name
        );
        assert_facts(&node, want);
    }
    let members = h.discovery().members().await.expect("members()");
    for want in [&a, &b] {
        let got = members
            .iter()
            .find(|x| x.name == want.name)
            .unwrap_or_else(|| panic!("{} missing from members(): {members:?}", want.name));
        assert_eq!(got.status, MemberStatus::Alive);
        assert_eq!((&got.serial, &got.addr), (&want.serial, &want.addr));
    }
    m.settle().await.expect("settle");
    for want in [&a, &b] {
        assert_created_once(&m, &want.name).await;
    }
    m.shutdown().await;
}

/// A member that fails becomes `Unreachable`; when it returns, `Reachable` again, and
/// its lifecycle status is untouched.
pub async fn check_fail_and_return(h: &mut dyn DiscoveryHarness) {
    let m = manager(h).await;
    let a = h.join("fail-a").await;
    wait_reach(&m, &a.name, "reachable").await;
    h.fail(&a.name).await;
    let node = wait_reach(&m, &a.name, "unreachable").await;
    assert_eq!(node.status, NodeStatus::Discovered);
    wait_member(h.discovery().as_ref(), &a.name, Some(MemberStatus::Failed)).await;
    h.rejoin(&a.name).await;
    let node = wait_reach(&m, &a.name, "reachable").await;
    assert_eq!(node.status, NodeStatus::Discovered);
    assert_facts(&node, &a);
    m.settle().await.expect("settle");
    let reach: Vec<String> = events_of(&m, &a.name)
        .await
        .into_iter()
        .filter(|e| e.kind == EventKind::Reachability)
        .map(|e| e.to)
        .collect();
    let down = reach.iter().position(|r| r == "unreachable");
    assert!(
        down.is_some_and(|i| reach[i..].iter().any(|r| r == "reachable")),
        "fail-a's reachability log must show it going and coming back: {reach:?}"
    );
    assert!(
        reach.windows(2).all(|w| w[0] != w[1]),
        "repeated reachability records for fail-a: {reach:?}"
    );
    assert_created_once(&m, &a.name).await;
    m.shutdown().await;
}

/// A member that leaves gracefully is recorded as `Left`, not as a failure.
pub async fn check_leave(h: &mut dyn DiscoveryHarness) {
    let m = manager(h).await;
    let a = h.join("leave-a").await;
    wait_reach(&m, &a.name, "reachable").await;
    h.leave(&a.name).await;
    let node = wait_reach(&m, &a.name, "left").await;
    assert!(matches!(node.reachability, Reachability::Left { .. }));
    assert_eq!(node.status, NodeStatus::Discovered);
    wait_member(h.discovery().as_ref(), &a.name, None).await;
    m.shutdown().await;
}

/// A manager started after members joined and failed learns them from `members()`:
/// their events happened before it subscribed.
pub async fn check_restore_on_start(h: &mut dyn DiscoveryHarness) {
    let d = h.discovery();
    let mut witness = d.subscribe().await.expect("subscribe");
    let a = h.join("restore-a").await;
    let b = h.join("restore-b").await;
    // The source has announced both joins: they are history for the next manager.
    let mut seen = (false, false);
    let deadline = tokio::time::Instant::now() + WAIT;
    while !(seen.0 && seen.1) {
        let ev = tokio::time::timeout_at(deadline, witness.next())
            .await
            .expect("join events of restore-a and restore-b")
            .expect("stream stays open");
        if ev.kind == MembershipKind::Joined {
            seen.0 |= ev.member.name == a.name;
            seen.1 |= ev.member.name == b.name;
        }
    }
    drop(witness);
    h.fail(&b.name).await;
    wait_member(d.as_ref(), &b.name, Some(MemberStatus::Failed)).await;

    let m = manager(h).await;
    let node = wait_reach(&m, &a.name, "reachable").await;
    assert_eq!(node.status, NodeStatus::Discovered);
    assert_facts(&node, &a);
    let node = wait_reach(&m, &b.name, "unreachable").await;
    assert_facts(&node, &b);
    m.shutdown().await;
}

/// The source goes away and comes back: the discovery reconnects by itself, the
/// member that joined meanwhile appears, nobody is created twice, and later changes
/// still arrive.
pub async fn check_reconnect(h: &mut dyn DiscoveryHarness) {
    let m = manager(h).await;
    let a = h.join("reconnect-a").await;
    wait_reach(&m, &a.name, "reachable").await;
    h.stop_source().await;
    let b = h.join("reconnect-b").await;
    h.start_source().await;
    let node = wait_reach(&m, &b.name, "reachable").await;
    assert_eq!(node.status, NodeStatus::Discovered);
    assert_facts(&node, &b);
    let c = h.join("reconnect-c").await;
    wait_reach(&m, &c.name, "reachable").await;
    let node = m.node(&a.name).expect("reconnect-a still in the inventory");
    assert!(node.reachability.is_reachable(), "{node:?}");
    m.settle().await.expect("settle");
    for name in [&a.name, &b.name, &c.name] {
        assert_created_once(&m, name).await;
    }
    m.shutdown().await;
}

#[cfg(test)]
mod tests {
    //! The kit run against a discovery kept in memory, whose streams simply end when
    //! the source stops (so reconnecting is left to the manager).

    use std::collections::BTreeMap;
    use std::sync::Mutex;

    use tokio::sync::mpsc;

    use super::*;
    use crate::discovery::MembershipStream;
    use crate::error::{Error, Result};
    use crate::event::MembershipEvent;

    #[derive(Debug, Default)]
    struct World {
        up: bool,
        members: BTreeMap<String, Member>,
        subscribers: Vec<mpsc::UnboundedSender<MembershipEvent>>,
    }

    #[derive(Debug, Default)]
    struct MemoryDiscovery(Mutex<World>);

    impl MemoryDiscovery {
        fn world(&self) -> std::sync::MutexGuard<'_, World> {
            self.0.lock().unwrap_or_else(|p| p.into_inner())
        }

        fn set(&self, name: &str, status: MemberStatus, kind: MembershipKind) -> Member {
            let mut w = self.world();
            let member = w.members.entry(name.to_owned()).or_insert_with(|| {
                let mut m = Member::alive(name, format!("addr-of-{name}"));
                m.serial = format!("SN-{name}");
                m
            });
            member.status = status;
            let member = member.clone();
            let event = MembershipEvent {
                kind,
                member: member.clone(),
            };
            w.subscribers.retain(|s| s.send(event.clone()).is_ok());
            member
        }
    }

    #[async_trait]
    impl Discovery for MemoryDiscovery {
        fn name(&self) -> &str {
            "memory"
        }

        async fn members(&self) -> Result<Vec<Member>> {
            let w = self.world();
            if !w.up {
                return Err(Error::Discovery("source is down".into()));
            }
            Ok(w.members.values().cloned().collect())
        }

        async fn subscribe(&self) -> Result<MembershipStream> {
            let mut w = self.world();
            if !w.up {
                return Err(Error::Discovery("source is down".into()));
            }
            let (tx, mut rx) = mpsc::unbounded_channel();
            w.subscribers.push(tx);
            Ok(futures::stream::poll_fn(move |cx| rx.poll_recv(cx)).boxed())
        }

        async fn enroll(
            &self,
            _addrs: &[String],
            _vars: &serde_json::Value,
        ) -> Result<serde_json::Value> {
            Ok(serde_json::json!({}))
        }
    }

    struct MemoryHarness(Arc<MemoryDiscovery>);

    #[async_trait]
    impl DiscoveryHarness for MemoryHarness {
        fn discovery(&self) -> Arc<dyn Discovery> {
            self.0.clone()
        }

        async fn join(&mut self, name: &str) -> Member {
            self.0
                .set(name, MemberStatus::Alive, MembershipKind::Joined)
        }

        async fn fail(&mut self, name: &str) {
            self.0
                .set(name, MemberStatus::Failed, MembershipKind::Failed);
        }

        async fn rejoin(&mut self, name: &str) {
            self.0
                .set(name, MemberStatus::Alive, MembershipKind::Joined);
        }

        async fn leave(&mut self, name: &str) {
            self.0.set(name, MemberStatus::Left, MembershipKind::Left);
        }

        async fn stop_source(&mut self) {
            let mut w = self.0.world();
            w.up = false;
            w.subscribers.clear();
        }

        async fn start_source(&mut self) {
            self.0.world().up = true;
        }
    }

    #[tokio::test]
    async fn the_kit_passes_a_discovery_that_behaves() {
        let d = Arc::new(MemoryDiscovery::default());
        d.world().up = true;
        discovery_conformance(&mut MemoryHarness(d)).await;
    }
}
