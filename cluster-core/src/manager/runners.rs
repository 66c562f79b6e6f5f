//! Job bodies: commission (with cluster bootstrap), upgrade (batch or rolling),
//! decommission, verify (with remediation) and discover. Each outcome is committed as
//! soon as it is known, so a crash loses at most the step in flight.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;
use tracing::Instrument;

use super::commit::Changes;
use super::jobs::JobCtl;
use super::steps::{BackendOp, Outcomes, Tally, keep_succeeded};
use super::{Inner, Remediation, read};
use crate::cluster::ClusterState;
use crate::error::{Error, Result};
use crate::event::EventKind;
use crate::fsm::{Action, ClusterAction};
use crate::job::{JobId, JobKind, JobStatus, PushAction, Rolling};
use crate::node::HostGroup;

/// What an accepted request asks a job to do.
#[derive(Debug, Clone)]
pub(super) struct Plan {
    pub id: JobId,
    pub kind: JobKind,
    pub nodes: Vec<String>,
    pub host_group: Option<HostGroup>,
    pub vars: Value,
    pub rolling: Option<Rolling>,
    /// The master that bootstraps the cluster, when this job creates it.
    pub bootstrap: Option<String>,
}
impl Inner {
    pub(super) fn spawn_job(self: &Arc<Self>, plan: Plan) {
        let ctl = self.jobs.start(self, plan.id);
        let me = self.clone();
        let span = tracing::info_span!("job", job = %plan.id, action = %plan.kind);
        self.tasks.spawn(me.run_job(plan, ctl).instrument(span));
    }

    async fn run_job(self: Arc<Self>, plan: Plan, ctl: Arc<JobCtl>) {
        let mut tally = Tally::default();
        let body = match plan.kind {
            JobKind::Commission => self.run_commission(&plan, &ctl, &mut tally).await,
            JobKind::Upgrade => self.run_upgrade(&plan, &ctl, &mut tally).await,
            JobKind::Decommission => self.run_decommission(&plan, &ctl, &mut tally).await,
            JobKind::Verify => self.run_verify(&plan, &ctl, &mut tally).await,
            JobKind::Discover => self.run_discover(&plan, &ctl, &mut tally).await,
        };
        if let Err(e) = body {
            ctl.say(format!("job aborted: {e}"));
            tally.error.get_or_insert_with(|| e.to_string());
        }
        if let Err(e) = self.finish_job(&plan, &ctl, tally).await {
            tracing::error!(job = %plan.id, error = %e, "could not record the end of the job");
        }
        self.jobs.finish(&ctl, self.config.logs_kept);
    }

    /// Records the job's end: nodes it left in progress fail, the job gets its final
    /// status, and its nodes are released.
    async fn finish_job(&self, plan: &Plan, ctl: &JobCtl, mut tally: Tally) -> Result<()> {
        let stop = ctl.stop_reason();
        if tally.error.is_none() {
            tally.error.clone_from(&stop);
        }
        let mut ws = self.write.lock().await;
        let mut ch = Changes::new();
        for name in &plan.nodes {
            let Some(node) = ch.node(self, name) else {
                continue;
            };
            if node.status.in_progress() && node.last_job == Some(plan.id) {
                let reason = tally
                    .error
                    .clone()
                    .unwrap_or_else(|| "job ended early".into());
                ch.transition(self, name, Action::Fail, &reason, Some(plan.id))?;
                tally.failed.entry(name.clone()).or_insert(reason);
            }
        }
        if read(&self.cluster).state == ClusterState::Bootstrapping
            && read(&self.cluster)
                .bootstrap_node
                .as_deref()
                .is_some_and(|b| plan.bootstrap.as_deref() == Some(b))
        {
            ch.cluster_step(self, ClusterAction::BootstrapFailed);
        }
        let mut job = self
            .store
            .get_job(plan.id)
            .await?
            .ok_or_else(|| Error::JobNotFound {
                job: plan.id.to_string(),
            })?;
        job.status = if ctl.cancelled_by_request() {
            JobStatus::Cancelled
        } else if tally.error.is_some() || !tally.failed.is_empty() {
            JobStatus::Errored
        } else {
            JobStatus::Complete
        };
        job.failed = tally.failed;
        job.error = tally.error;
        job.ended_at = Some(ch.now);
        ctl.say(format!("job {} {:?}", plan.id, job.status));
        tracing::info!(job = %plan.id, status = ?job.status, failed = job.failed.len(), "job finished");
        ch.job(job);
        let committed = self.commit(&mut ws, ch).await;
        ws.release(plan.id, &plan.nodes);
        committed
    }

    async fn run_commission(&self, plan: &Plan, ctl: &JobCtl, tally: &mut Tally) -> Result<()> {
        let mut pending = plan.nodes.clone();
        if let Some(master) = &plan.bootstrap {
            pending.retain(|n| n != master);
            let host = self.host_spec(master, &plan.vars, &Value::Null)?;
            let mut failure = self
                .run_push(ctl, PushAction::Provision, vec![host])
                .await
                .failure(master);
            if failure.is_none() {
                ctl.say(format!("bootstrapping the cluster on {master}"));
                failure = self
                    .on_backend(
                        ctl,
                        std::slice::from_ref(master),
                        None,
                        BackendOp::Bootstrap,
                    )
                    .await
                    .remove(0)
                    .1;
            }
            let mut ws = self.write.lock().await;
            let mut ch = Changes::new();
            let outcome = vec![(master.clone(), failure.clone())];
            self.stage_outcomes(&mut ch, plan.id, &outcome, tally)?;
            ch.cluster_step(
                self,
                if failure.is_none() {
                    ClusterAction::Bootstrapped
                } else {
                    ClusterAction::BootstrapFailed
                },
            );
            if let Some(reason) = failure {
                let reason = format!("cluster bootstrap on {master} failed: {reason}");
                let rest: Outcomes = pending
                    .iter()
                    .map(|n| (n.clone(), Some(reason.clone())))
                    .collect();
                self.stage_outcomes(&mut ch, plan.id, &rest, tally)?;
                pending.clear();
            }
            self.commit(&mut ws, ch).await?;
        }
        if !pending.is_empty() {
            let outcomes = self.provision_and_join(ctl, &pending, &plan.vars).await?;
            self.settle(ctl, &outcomes, tally).await?;
        }
        Ok(())
    }

    async fn run_upgrade(&self, plan: &Plan, ctl: &JobCtl, tally: &mut Tally) -> Result<()> {
        let batch_size = plan
            .rolling
            .map_or(plan.nodes.len(), |r| r.batch_size)
            .max(1);
        let max_failures = plan.rolling.map(|r| r.max_failures);
        for (i, batch) in plan.nodes.chunks(batch_size).enumerate() {
            if i > 0 {
                if let Some(reason) = ctl.stop_reason() {
                    tally.error = Some(format!(
                        "{reason}; {} node(s) not upgraded",
                        plan.nodes.len() - i * batch_size
                    ));
                    return Ok(());
                }
                let mut ws = self.write.lock().await;
                let mut ch = Changes::new();
                for name in batch {
                    ch.transition(
                        self,
                        name,
                        Action::Upgrade,
                        "rolling upgrade batch",
                        Some(plan.id),
                    )?;
                }
                self.commit(&mut ws, ch).await?;
            }
            ctl.say(format!("upgrade batch {}: {}", i + 1, batch.join(", ")));
            let mut failures: BTreeMap<String, String> = BTreeMap::new();
            let drained = self.on_backend(ctl, batch, None, BackendOp::Drain).await;
            let mut hosts = Vec::new();
            for (name, failure) in drained {
                match failure {
                    Some(r) => {
                        failures.insert(name, r);
                    }
                    None => hosts.push(self.host_spec(&name, &plan.vars, &Value::Null)?),
                }
            }
            let pushed = self.run_push(ctl, PushAction::Upgrade, hosts).await;
            let upgraded = keep_succeeded(batch, &pushed, &mut failures);
            let regroup = plan.host_group.as_ref();
            let activate = BackendOp::Activate {
                set_role: regroup.is_some(),
            };
            let activated = self.on_backend(ctl, &upgraded, regroup, activate).await;
            for (name, failure) in activated {
                if let Some(r) = failure {
                    failures.insert(name, r);
                }
            }
            let outcomes: Outcomes = batch
                .iter()
                .map(|n| (n.clone(), failures.remove(n)))
                .collect();
            let failed_now = outcomes.iter().filter(|(_, f)| f.is_some()).count();
            let mut ws = self.write.lock().await;
            let mut ch = Changes::new();
            self.stage_outcomes(&mut ch, plan.id, &outcomes, tally)?;
            if let Some(group) = regroup {
                for (name, failure) in &outcomes {
                    if failure.is_none() {
                        if let Some(mut node) = ch.node(self, name) {
                            if node.host_group.as_ref() != Some(group) {
                                ch.event(
                                    name,
                                    EventKind::Updated,
                                    node.host_group.as_ref().map_or("", |g| g.as_str()),
                                    group.as_str(),
                                    "host group changed",
                                    Some(plan.id),
                                );
                                node.host_group = Some(group.clone());
                                ch.put(self, node);
                            }
                        }
                    }
                }
            }
            self.commit(&mut ws, ch).await?;
            drop(ws);
            let total_failed = tally.failed.len();
            if let Some(max) = max_failures {
                if total_failed > max && failed_now > 0 {
                    let left = plan.nodes.len().saturating_sub((i + 1) * batch_size);
                    if left > 0 {
                        let msg = format!(
                            "rolling upgrade stopped after {total_failed} failed node(s) (max_failures {max}); {left} node(s) not upgraded"
                        );
                        ctl.say(&msg);
                        tally.error = Some(msg);
                        return Ok(());
                    }
                }
            }
        }
        Ok(())
    }

    async fn run_decommission(&self, plan: &Plan, ctl: &JobCtl, tally: &mut Tally) -> Result<()> {
        // Leave first: the cleanup playbook may remove the engine the backend talks to.
        let left = self
            .on_backend(ctl, &plan.nodes, None, BackendOp::Leave)
            .await;
        let mut failures: BTreeMap<String, String> = BTreeMap::new();
        let mut hosts = Vec::new();
        for (name, failure) in left {
            match failure {
                Some(r) => {
                    failures.insert(name, r);
                }
                None => hosts.push(self.host_spec(&name, &plan.vars, &Value::Null)?),
            }
        }
        let pushed = self.run_push(ctl, PushAction::Cleanup, hosts).await;
        let outcomes: Outcomes = plan
            .nodes
            .iter()
            .map(|n| (n.clone(), failures.remove(n).or_else(|| pushed.failure(n))))
            .collect();
        let mut ws = self.write.lock().await;
        let mut ch = Changes::new();
        self.stage_outcomes(&mut ch, plan.id, &outcomes, tally)?;
        if !self.any_master_in_service(&ch) {
            ch.cluster_step(self, ClusterAction::MastersGone);
        }
        self.commit(&mut ws, ch).await
    }
    async fn run_verify(&self, plan: &Plan, ctl: &JobCtl, tally: &mut Tally) -> Result<()> {
        let name = &plan.nodes[0];
        let host = self.host_spec(name, &plan.vars, &Value::Null)?;
        let failure = self
            .run_push(ctl, PushAction::Verify, vec![host])
            .await
            .failure(name);
        let mut ws = self.write.lock().await;
        let mut ch = Changes::new();
        let Some(reason) = failure else {
            ch.event(
                name,
                EventKind::Verified,
                "",
                "ok",
                "reappeared; verification passed",
                Some(plan.id),
            );
            return self.commit(&mut ws, ch).await;
        };
        let cause = format!("reappeared; verification failed: {reason}");
        match self.config.remediation {
            Remediation::None => {
                ch.event(
                    name,
                    EventKind::Verified,
                    "",
                    "failed",
                    &cause,
                    Some(plan.id),
                );
                tally.failed.insert(name.clone(), reason);
                self.commit(&mut ws, ch).await
            }
            Remediation::MarkFailed => {
                ch.transition(self, name, Action::VerifyFailed, &cause, Some(plan.id))?;
                tally.failed.insert(name.clone(), reason);
                self.commit(&mut ws, ch).await
            }
            Remediation::Reprovision => {
                ch.transition(self, name, Action::Reprovision, &cause, Some(plan.id))?;
                self.commit(&mut ws, ch).await?;
                drop(ws);
                let outcomes = self
                    .provision_and_join(ctl, std::slice::from_ref(name), &plan.vars)
                    .await?;
                self.settle(ctl, &outcomes, tally).await
            }
        }
    }

    async fn run_discover(&self, plan: &Plan, ctl: &JobCtl, tally: &mut Tally) -> Result<()> {
        let enroll_vars = match &self.discovery {
            Some(d) => match self.guarded(ctl, d.enroll(&plan.nodes, &plan.vars)).await {
                Ok(r) => r?,
                Err(reason) => return Err(Error::Discovery(reason)),
            },
            None => Value::Null,
        };
        let hosts = plan
            .nodes
            .iter()
            .map(|n| self.host_spec(n, &plan.vars, &enroll_vars))
            .collect::<Result<Vec<_>>>()?;
        let pushed = self.run_push(ctl, PushAction::Discover, hosts).await;
        let mut ws = self.write.lock().await;
        let mut ch = Changes::new();
        for name in &plan.nodes {
            if let Some(reason) = pushed.failure(name) {
                if let Some(mut node) = ch.node(self, name) {
                    node.error = Some(reason.clone());
                    ch.event(
                        name,
                        EventKind::Updated,
                        "",
                        "",
                        format!("discover failed: {reason}"),
                        Some(plan.id),
                    );
                    ch.put(self, node);
                }
                tally.failed.insert(name.clone(), reason);
            }
        }
        self.commit(&mut ws, ch).await
    }
}
