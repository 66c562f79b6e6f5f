//! Shared job steps: per-node backend calls under the job's cancellation, the merged
//! push spec of a host, provision-and-join, and committing per-node outcomes.

use std::collections::BTreeMap;

use futures::StreamExt;
use serde_json::Value;

use super::commit::Changes;
use super::jobs::{JobCtl, PushOutcome};
use super::{Inner, read};
use crate::backend::BackendNode;
use crate::error::{Error, Result};
use crate::fsm::Action;
use crate::job::{HostSpec, JobId, PushAction};
use crate::node::{HostGroup, Node, Role};
use crate::vars;

/// Backend calls that run at once during one job step.
const BACKEND_CONCURRENCY: usize = 16;

/// A per-node backend operation.
#[derive(Debug, Clone, Copy)]
pub(super) enum BackendOp {
    Bootstrap,
    Join,
    Drain,
    /// Reactivate after an upgrade, first moving the node to its new role if asked.
    Activate {
        set_role: bool,
    },
    Leave,
}

impl BackendOp {
    async fn call(self, b: &dyn crate::ClusterBackend, node: &BackendNode) -> Result<()> {
        match self {
            BackendOp::Bootstrap => b.bootstrap(node).await,
            BackendOp::Join => b.join(node).await,
            BackendOp::Drain => b.drain(node).await,
            BackendOp::Activate { set_role } => {
                if set_role {
                    b.set_role(node).await?;
                }
                b.activate(node).await
            }
            BackendOp::Leave => b.leave(node).await,
        }
    }
}

/// The hosts of `names` that `pushed` reports as succeeded; the others are added to
/// `failures` with their reason. Hosts already in `failures` were never pushed.
pub(super) fn keep_succeeded(
    names: &[String],
    pushed: &PushOutcome,
    failures: &mut BTreeMap<String, String>,
) -> Vec<String> {
    let mut ok = Vec::with_capacity(names.len());
    for n in names {
        if failures.contains_key(n) {
            continue;
        }
        match pushed.failure(n) {
            None => ok.push(n.clone()),
            Some(reason) => {
                failures.insert(n.clone(), reason);
            }
        }
    }
    ok
}
/// Per-node outcomes of one step: `None` succeeded, `Some(reason)` failed.
pub(super) type Outcomes = Vec<(String, Option<String>)>;

/// Bookkeeping a job body fills in for its final record.
#[derive(Debug, Default)]
pub(super) struct Tally {
    pub failed: BTreeMap<String, String>,
    pub error: Option<String>,
}

impl Inner {
    /// Commits per-node outcomes of a step as `Succeed` / `Fail` transitions.
    pub(super) async fn settle(
        &self,
        ctl: &JobCtl,
        outcomes: &Outcomes,
        tally: &mut Tally,
    ) -> Result<()> {
        let mut ws = self.write.lock().await;
        let mut ch = Changes::new();
        self.stage_outcomes(&mut ch, ctl.id, outcomes, tally)?;
        self.commit(&mut ws, ch).await
    }
    pub(super) fn stage_outcomes(
        &self,
        ch: &mut Changes,
        job: JobId,
        outcomes: &Outcomes,
        tally: &mut Tally,
    ) -> Result<()> {
        for (name, failure) in outcomes {
            match failure {
                None => {
                    ch.transition(
                        self,
                        name,
                        Action::Succeed,
                        &format!("job {job} succeeded"),
                        Some(job),
                    )?;
                }
                Some(reason) => {
                    ch.transition(self, name, Action::Fail, reason, Some(job))?;
                    tally.failed.insert(name.clone(), reason.clone());
                }
            }
        }
        Ok(())
    }

    /// The push spec of one host: globals < node vars < request vars < `extra`.
    pub(super) fn host_spec(
        &self,
        name: &str,
        request_vars: &Value,
        extra: &Value,
    ) -> Result<HostSpec> {
        let node = read(&self.nodes)
            .get(name)
            .cloned()
            .ok_or_else(|| Error::NodeNotFound { node: name.into() })?;
        let globals = read(&self.globals).clone();
        Ok(HostSpec {
            vars: vars::merged([&globals, &node.vars, request_vars, extra]),
            name: node.name,
            addr: node.addr,
            group: node.host_group,
        })
    }

    fn backend_node(&self, name: &str, group: Option<&HostGroup>) -> Result<BackendNode> {
        read(&self.nodes)
            .get(name)
            .map(|node| self.backend_node_of(node, group))
            .ok_or_else(|| Error::NodeNotFound { node: name.into() })
    }

    /// `node` as the backend sees it, under `group` or else its own host group.
    pub(super) fn backend_node_of(&self, node: &Node, group: Option<&HostGroup>) -> BackendNode {
        let group = group.or(node.host_group.as_ref());
        let role = group
            .and_then(|g| self.config.host_groups.role(g))
            .unwrap_or(Role::Worker);
        BackendNode {
            name: node.name.clone(),
            addr: node.addr.clone(),
            role,
        }
    }

    /// Runs `op` on each node, a few at a time, under the job's cancellation; without
    /// a backend every node succeeds.
    pub(super) async fn on_backend(
        &self,
        ctl: &JobCtl,
        names: &[String],
        group: Option<&HostGroup>,
        op: BackendOp,
    ) -> Outcomes {
        let Some(backend) = self.backend.clone() else {
            return names.iter().map(|n| (n.clone(), None)).collect();
        };
        // Collected first: a lazy `map` closure here trips the `Send` check of the
        // spawned job future (higher-ranked lifetime inference).
        let calls: Vec<_> = names
            .iter()
            .map(|name| {
                let backend = backend.clone();
                let node = self.backend_node(name, group);
                async move {
                    let result = match node {
                        Ok(node) => match self.guarded(ctl, op.call(&*backend, &node)).await {
                            Ok(r) => r.map_err(|e| e.to_string()),
                            Err(reason) => Err(reason),
                        },
                        Err(e) => Err(e.to_string()),
                    };
                    if let Err(e) = &result {
                        ctl.say(format!("{op:?} {name}: {e}"));
                    }
                    (name.clone(), result.err())
                }
            })
            .collect();
        futures::stream::iter(calls)
            .buffered(BACKEND_CONCURRENCY)
            .collect()
            .await
    }

    /// Provision playbook then backend join for `names` (all in `Commissioning`).
    pub(super) async fn provision_and_join(
        &self,
        ctl: &JobCtl,
        names: &[String],
        request_vars: &Value,
    ) -> Result<Outcomes> {
        let mut failures: BTreeMap<String, String> = BTreeMap::new();
        let mut hosts = Vec::with_capacity(names.len());
        for name in names {
            let join_vars = match &self.backend {
                Some(b) => match self
                    .guarded(ctl, b.join_vars(&self.backend_node(name, None)?))
                    .await
                {
                    Ok(Ok(v)) => v,
                    Ok(Err(e)) => {
                        failures.insert(name.clone(), e.to_string());
                        continue;
                    }
                    Err(reason) => {
                        failures.insert(name.clone(), reason);
                        continue;
                    }
                },
                None => Value::Null,
            };
            hosts.push(self.host_spec(name, request_vars, &join_vars)?);
        }
        let pushed = self.run_push(ctl, PushAction::Provision, hosts).await;
        let provisioned = keep_succeeded(names, &pushed, &mut failures);
        let joined = self
            .on_backend(ctl, &provisioned, None, BackendOp::Join)
            .await;
        for (name, failure) in joined {
            if let Some(reason) = failure {
                failures.insert(name, reason);
            }
        }
        Ok(names
            .iter()
            .map(|n| (n.clone(), failures.remove(n)))
            .collect())
    }
    /// Whether a master is in service, counting staged changes.
    pub(super) fn any_master_in_service(&self, ch: &Changes) -> bool {
        self.masters(ch).iter().any(|(in_service, _)| *in_service)
    }

    /// Whether a master in service is reachable, counting staged changes.
    pub(super) fn any_master_reachable(&self, ch: &Changes) -> bool {
        self.masters(ch)
            .iter()
            .any(|(in_service, reachable)| *in_service && *reachable)
    }

    /// (in service, reachable) of every master, staged versions first.
    fn masters(&self, ch: &Changes) -> Vec<(bool, bool)> {
        let is_master = |n: &crate::node::Node| {
            n.host_group
                .as_ref()
                .and_then(|g| self.config.host_groups.role(g))
                == Some(Role::Master)
        };
        let staged: std::collections::HashSet<&str> =
            ch.staged().map(|n| n.name.as_str()).collect();
        let nodes = read(&self.nodes);
        ch.staged()
            .chain(nodes.values().filter(|n| !staged.contains(n.name.as_str())))
            .filter(|n| is_master(n))
            .map(|n| (n.status.in_service(), n.reachability.is_reachable()))
            .collect()
    }
}
