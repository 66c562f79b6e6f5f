//! Discovery in, inventory out: the membership loop folds every event waiting in its
//! channel into one group commit (so 10,000 joins cost a handful of fsyncs, not 10,000),
//! keeps the cluster's Degraded state current, and starts verification of nodes that
//! come back. Also the start-up reconciliation of what a crash left behind, and the
//! hand-over of the nodes in service to the backend.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::{mpsc, oneshot};

use super::commit::Changes;
use super::{Inner, Request, read, write};
use crate::cluster::{Cluster, ClusterState};
use crate::error::Result;
use crate::event::{EventKind, MembershipEvent, MembershipKind};
use crate::fsm::{self, Action, ClusterAction};
use crate::job::{JobKind, JobStatus};
use crate::node::{MemberStatus, Node, NodeStatus, Reachability};

/// Events folded into one commit at most.
const MAX_GROUP: usize = 16_384;
/// Longest wait between attempts to reach the discovery source.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// What the membership loop receives.
#[derive(Debug)]
pub(super) enum Msg {
    Event(MembershipEvent),
    /// Answered once everything queued before it is committed.
    Settle(oneshot::Sender<()>),
}

pub(super) fn spawn(inner: &Arc<Inner>, rx: mpsc::UnboundedReceiver<Msg>) {
    let me = inner.clone();
    inner
        .tasks
        .spawn(async move { me.membership_loop(rx).await });
    if inner.discovery.is_some() {
        let me = inner.clone();
        inner
            .tasks
            .spawn(async move { me.follow_discovery().await });
    }
}

impl Inner {
    async fn membership_loop(self: Arc<Self>, mut rx: mpsc::UnboundedReceiver<Msg>) {
        loop {
            let first = tokio::select! {
                m = rx.recv() => m,
                _ = self.shutdown.cancelled() => None,
            };
            let Some(first) = first else { return };
            let mut events = Vec::new();
            let mut settled = Vec::new();
            let mut next = Some(first);
            while let Some(msg) = next {
                match msg {
                    Msg::Event(e) => events.push(e),
                    Msg::Settle(tx) => settled.push(tx),
                }
                next = if events.len() < MAX_GROUP {
                    rx.try_recv().ok()
                } else {
                    None
                };
            }
            if !events.is_empty() {
                self.apply_with_retry(events).await;
            }
            for tx in settled {
                let _ = tx.send(());
            }
        }
    }

    async fn apply_with_retry(self: &Arc<Self>, events: Vec<MembershipEvent>) {
        let mut delay = Duration::from_millis(50);
        for attempt in 1..=5 {
            match self.apply_membership(&events).await {
                Ok(()) => return,
                Err(e) => {
                    tracing::warn!(attempt, error = %e, events = events.len(), "membership commit failed");
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
            }
        }
        // The next resync from discovery (reconnect or restart) brings them back.
        tracing::error!(
            events = events.len(),
            "membership events dropped after repeated store failures"
        );
    }

    /// Applies a group of membership events in one commit.
    pub(super) async fn apply_membership(
        self: &Arc<Self>,
        events: &[MembershipEvent],
    ) -> Result<()> {
        let mut ws = self.write.lock().await;
        let mut ch = Changes::new();
        let mut verify = Vec::new();
        let mut fresh = Vec::new();
        for ev in events {
            let m = &ev.member;
            let cause = format!("member {}", kind_name(ev.kind));
            let Some(current) = ch.node(self, &m.name) else {
                let mut node = Node::discovered(m, ch.now);
                node.reachability = fsm::on_membership(
                    NodeStatus::Discovered,
                    Reachability::Unknown,
                    ev.kind,
                    ch.now,
                )
                .reachability;
                let mut cause = cause;
                if let Some(enrolled) = self.enrolled_as(&ch, m) {
                    // The host was enrolled by address; it now has its real name.
                    node.vars = enrolled.vars;
                    node.last_job = enrolled.last_job;
                    ch.remove(self, &enrolled.name);
                    ch.event(
                        &enrolled.name,
                        EventKind::Removed,
                        NodeStatus::New.as_str(),
                        "",
                        format!("discovered as {}", m.name),
                        None,
                    );
                    cause = format!("{cause} (enrolled as {})", enrolled.name);
                }
                ch.event(
                    &m.name,
                    EventKind::Created,
                    "",
                    NodeStatus::Discovered.as_str(),
                    &cause,
                    None,
                );
                if node.reachability.is_reachable() {
                    fresh.push(m.name.clone());
                }
                ch.put(self, node);
                continue;
            };
            let outcome = fsm::on_membership(current.status, current.reachability, ev.kind, ch.now);
            let mut node = current.clone();
            let mut changed = false;
            if ev.kind != MembershipKind::Reaped && node.apply_facts(m) {
                ch.event(
                    &m.name,
                    EventKind::Updated,
                    "",
                    "",
                    "discovery facts changed",
                    None,
                );
                changed = true;
            }
            if outcome.status != current.status {
                // Only New -> Discovered moves here; the table has the final word.
                node.status = fsm::next(&m.name, current.status, Action::Discover)?;
                ch.event(
                    &m.name,
                    EventKind::Status,
                    current.status.as_str(),
                    node.status.as_str(),
                    &cause,
                    None,
                );
                changed = true;
            }
            if outcome.reachability.as_str() != current.reachability.as_str() {
                node.reachability = outcome.reachability;
                ch.event(
                    &m.name,
                    EventKind::Reachability,
                    current.reachability.as_str(),
                    outcome.reachability.as_str(),
                    &cause,
                    None,
                );
                changed = true;
            }
            if changed {
                if current.status == NodeStatus::New && node.status == NodeStatus::Discovered {
                    fresh.push(m.name.clone());
                }
                ch.put(self, node);
            }
            if outcome.verify {
                verify.push(m.name.clone());
            }
        }
        let auto = self.stage_auto_commission(&mut ch, &fresh);
        match ch.cluster(self).state {
            ClusterState::Active if !self.any_master_reachable(&ch) => {
                ch.cluster_step(self, ClusterAction::MastersLost);
            }
            ClusterState::Degraded if self.any_master_reachable(&ch) => {
                ch.cluster_step(self, ClusterAction::MasterBack);
            }
            _ => {}
        }
        self.commit(&mut ws, ch).await?;
        drop(ws);
        self.auto_commission(auto).await;
        if self.config.verify_on_reappear {
            for name in verify {
                if let Err(e) = self.start_verify(&name).await {
                    tracing::warn!(node = %name, error = %e, "could not start verification");
                }
            }
        }
        Ok(())
    }

    /// Gives fresh nodes that match an auto-commission rule the rule's host group
    /// (staged with the membership commit) and returns their names.
    fn stage_auto_commission(&self, ch: &mut Changes, fresh: &[String]) -> Vec<String> {
        let rules = &self.config.auto_commission;
        let mut matched = Vec::new();
        for name in fresh {
            let Some(mut node) = ch.node(self, name) else {
                continue;
            };
            let Some(rule) = rules.iter().find(|r| r.matches(&node.tags)) else {
                continue;
            };
            node.host_group = Some(rule.host_group.clone());
            ch.put(self, node);
            matched.push(name.clone());
        }
        matched
    }

    /// One commission job for the auto-commissioned nodes: each goes under its own host
    /// group, and a master among them bootstraps an empty cluster before the rest join.
    async fn auto_commission(self: &Arc<Self>, names: Vec<String>) {
        if names.is_empty() {
            return;
        }
        let count = names.len();
        match self
            .accept(JobKind::Commission, Request::nodes(names))
            .await
        {
            Ok(job) => tracing::info!(%job, nodes = count, "auto-commission started"),
            Err(e) => tracing::warn!(nodes = count, error = %e, "auto-commission refused"),
        }
    }

    /// The `New` node enrolled under the member's address, when the member has a
    /// different name.
    fn enrolled_as(&self, ch: &Changes, m: &crate::node::Member) -> Option<Node> {
        if m.addr.is_empty() || m.addr == m.name {
            return None;
        }
        ch.node(self, &m.addr)
            .filter(|n| n.status == NodeStatus::New && n.addr == m.addr)
    }

    /// Feeds the discovery source into the loop: the current members first (so a
    /// restart catches up), then the stream; retries with capped backoff.
    async fn follow_discovery(self: Arc<Self>) {
        let Some(discovery) = self.discovery.clone() else {
            return;
        };
        let mut delay = Duration::from_millis(200);
        loop {
            let attempt = async {
                // Subscribe before listing so nothing between the two is missed.
                let stream = discovery.subscribe().await?;
                let members = discovery.members().await?;
                Result::<_, crate::Error>::Ok((stream, members))
            };
            let started = tokio::select! {
                r = attempt => r,
                _ = self.shutdown.cancelled() => return,
            };
            match started {
                Ok((mut stream, members)) => {
                    delay = Duration::from_millis(200);
                    tracing::info!(
                        source = discovery.name(),
                        members = members.len(),
                        "discovery connected"
                    );
                    for m in members {
                        let kind = match m.status {
                            MemberStatus::Alive => MembershipKind::Joined,
                            MemberStatus::Failed => MembershipKind::Failed,
                            MemberStatus::Left => MembershipKind::Left,
                        };
                        let _ = self
                            .membership_tx
                            .send(Msg::Event(MembershipEvent { kind, member: m }));
                    }
                    loop {
                        let next = tokio::select! {
                            e = stream.next() => e,
                            _ = self.shutdown.cancelled() => return,
                        };
                        match next {
                            Some(e) => {
                                let _ = self.membership_tx.send(Msg::Event(e));
                            }
                            None => break,
                        }
                    }
                    tracing::warn!(
                        source = discovery.name(),
                        "discovery stream ended; reconnecting"
                    );
                }
                Err(e) => {
                    tracing::warn!(source = discovery.name(), error = %e, retry_in = ?delay, "discovery is waiting for its source");
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = self.shutdown.cancelled() => return,
            }
            delay = (delay * 2).min(MAX_BACKOFF);
        }
    }

    /// Loads the inventory and repairs what a crash left: nodes stuck in a job fail,
    /// unfinished jobs are marked errored, an interrupted bootstrap is undone.
    pub(super) async fn reconcile(&self) -> Result<()> {
        const REASON: &str = "interrupted by restart";
        let nodes = self.store.list_nodes().await?;
        let jobs = self.store.list_jobs(None, usize::MAX).await?;
        let backend_kind = self.backend.as_ref().map_or("", |b| b.kind()).to_owned();
        let stored_cluster = self.store.cluster().await?;
        *write(&self.globals) = self.store.globals().await?;
        *write(&self.cluster) = stored_cluster
            .clone()
            .unwrap_or_else(|| Cluster::empty(backend_kind.clone(), chrono::Utc::now()));
        *write(&self.nodes) = nodes.into_iter().map(|n| (n.name.clone(), n)).collect();

        let mut ws = self.write.lock().await;
        ws.next_job = jobs.last().map_or(1, |j| j.id.0 + 1);
        ws.last_job = jobs.last().map(|j| j.id);
        let mut ch = Changes::new();
        for mut job in jobs.into_iter().filter(|j| !j.status.is_finished()) {
            job.status = JobStatus::Errored;
            job.error = Some(REASON.into());
            job.ended_at = Some(ch.now);
            ch.job(job);
        }
        let stuck: Vec<(String, Option<crate::job::JobId>)> = read(&self.nodes)
            .values()
            .filter(|n| n.status.in_progress())
            .map(|n| (n.name.clone(), n.last_job))
            .collect();
        for (name, job) in &stuck {
            ch.transition(self, name, Action::Fail, REASON, *job)?;
        }
        if ch.cluster(self).state == ClusterState::Bootstrapping {
            ch.cluster_step(self, ClusterAction::BootstrapFailed);
        }
        let mut cluster = ch.cluster(self);
        if stored_cluster.is_none()
            || (cluster.state == ClusterState::Empty && cluster.backend != backend_kind)
        {
            cluster.backend = backend_kind;
            ch.set_cluster(cluster);
        }
        if !stuck.is_empty() {
            tracing::warn!(
                nodes = stuck.len(),
                "nodes left mid-job by a restart marked Failed"
            );
        }
        self.commit(&mut ws, ch).await
    }

    /// Hands the backend every in-service node so it can rebuild what it keeps in
    /// memory; a failure is only logged, since the inventory is intact without it.
    pub(super) async fn restore_backend(&self) {
        let Some(backend) = &self.backend else {
            return;
        };
        let nodes: Vec<_> = read(&self.nodes)
            .values()
            .filter(|n| n.status.in_service())
            .map(|n| self.backend_node_of(n, None))
            .collect();
        match backend.restore(&nodes).await {
            Ok(()) => tracing::debug!(
                backend = backend.kind(),
                nodes = nodes.len(),
                "backend restored"
            ),
            Err(e) => tracing::warn!(
                backend = backend.kind(),
                nodes = nodes.len(),
                error = %e,
                "backend could not restore its state; it learns the cluster again from its next operations"
            ),
        }
    }
}

fn kind_name(kind: MembershipKind) -> &'static str {
    match kind {
        MembershipKind::Joined => "joined",
        MembershipKind::Failed => "failed",
        MembershipKind::Left => "left",
        MembershipKind::Updated => "updated",
        MembershipKind::Reaped => "reaped",
    }
}
