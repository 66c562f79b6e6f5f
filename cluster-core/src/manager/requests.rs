//! Accepting requests: everything is validated against the committed view before
//! anything changes; an accepted request is committed (first transitions and the job
//! record in one batch) before its job id is returned.

use std::collections::HashSet;
use std::sync::Arc;

use serde_json::Value;

use super::commit::Changes;
use super::runners::Plan;
use super::{Inner, Manager, Request, read};
use crate::cluster::ClusterState;
use crate::error::{Error, Result};
use crate::event::EventKind;
use crate::fsm::{self, Action, ClusterAction};
use crate::job::{Job, JobId, JobKind, PushAction};
use crate::node::{HostGroup, Node, NodeStatus, Role};
use crate::vars;

impl Manager {
    /// Commissions nodes under a host group (provision, then bootstrap or join).
    pub async fn commission(&self, req: Request) -> Result<JobId> {
        self.inner.accept(JobKind::Commission, req).await
    }

    /// Decommissions nodes (leave the cluster, then clean up).
    pub async fn decommission(&self, req: Request) -> Result<JobId> {
        self.inner.accept(JobKind::Decommission, req).await
    }

    /// Upgrades nodes, all at once or rolling (drain, upgrade, reactivate).
    pub async fn upgrade(&self, req: Request) -> Result<JobId> {
        self.inner.accept(JobKind::Upgrade, req).await
    }

    /// Enrolls hosts by address: they enter the inventory as `New` and the discover
    /// playbook installs the discovery agent on them.
    pub async fn discover(&self, addrs: Vec<String>, extra_vars: Value) -> Result<JobId> {
        self.inner.accept_discover(addrs, extra_vars).await
    }

    /// Replaces the globals (a JSON object).
    pub async fn set_globals(&self, globals: Value) -> Result<()> {
        let globals = vars::require_object("globals", globals)?;
        let mut ws = self.inner.write.lock().await;
        let mut ch = Changes::new();
        ch.set_globals(globals);
        self.inner.commit(&mut ws, ch).await
    }

    /// Replaces a node's own extra vars (a JSON object).
    pub async fn set_node_vars(&self, name: &str, node_vars: Value) -> Result<Node> {
        let node_vars = vars::require_object("vars", node_vars)?;
        let mut ws = self.inner.write.lock().await;
        let mut node = self.node(name)?;
        node.vars = node_vars;
        let mut ch = Changes::new();
        ch.event(name, EventKind::Updated, "", "", "node vars replaced", None);
        ch.put(&self.inner, node);
        self.inner.commit(&mut ws, ch).await?;
        self.node(name)
    }
}

/// The push action a job of `kind` starts with (checked before a request is accepted).
fn push_action(kind: JobKind) -> PushAction {
    match kind {
        JobKind::Discover => PushAction::Discover,
        JobKind::Commission => PushAction::Provision,
        JobKind::Upgrade => PushAction::Upgrade,
        JobKind::Decommission => PushAction::Cleanup,
        JobKind::Verify => PushAction::Verify,
    }
}

/// Checks a list of node names: non-empty, no blanks, no duplicates.
fn check_names(field: &str, names: &[String]) -> Result<()> {
    if names.is_empty() {
        return Err(Error::invalid(field, "at least one is required"));
    }
    let mut seen = HashSet::with_capacity(names.len());
    for n in names {
        if n.trim().is_empty() {
            return Err(Error::invalid(field, "names must not be empty"));
        }
        if !seen.insert(n.as_str()) {
            return Err(Error::invalid(field, format!("{n:?} is listed twice")));
        }
    }
    Ok(())
}

/// An address the discover playbook can reach: an IP address or a DNS name.
fn check_addr(addr: &str) -> Result<()> {
    let dns_name = !addr.is_empty()
        && addr.len() <= 253
        && addr.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !l.starts_with('-')
        });
    if addr.parse::<std::net::IpAddr>().is_ok() || dns_name {
        Ok(())
    } else {
        Err(Error::invalid(
            "addrs",
            format!("{addr:?} is not an IP address or host name"),
        ))
    }
}

impl Inner {
    fn role_of(&self, field: &str, group: &HostGroup) -> Result<Role> {
        self.config.host_groups.role(group).ok_or_else(|| {
            Error::invalid(
                field,
                format!(
                    "unknown host group {group:?}; expected {:?} or {:?}",
                    self.config.host_groups.master, self.config.host_groups.worker
                ),
            )
        })
    }

    pub(super) async fn accept(self: &Arc<Self>, kind: JobKind, req: Request) -> Result<JobId> {
        let extra_vars = vars::require_object("extra_vars", req.extra_vars)?;
        check_names("nodes", &req.nodes)?;
        if let Some(r) = req.rolling {
            if kind != JobKind::Upgrade {
                return Err(Error::invalid(
                    "rolling",
                    "rolling applies to upgrades only",
                ));
            }
            if r.batch_size == 0 {
                return Err(Error::invalid("rolling.batch_size", "must be at least 1"));
            }
        }
        if let Some(g) = &req.host_group {
            if kind != JobKind::Decommission {
                self.role_of("host_group", g)?;
            }
        }
        let action = match kind {
            JobKind::Commission => Action::Commission,
            JobKind::Upgrade => Action::Upgrade,
            JobKind::Decommission => Action::Decommission,
            JobKind::Discover | JobKind::Verify => unreachable!("not a node request"),
        };
        self.push.preflight(push_action(kind)).await?;

        let mut ws = self.write.lock().await;
        let mut groups = Vec::with_capacity(req.nodes.len());
        {
            let nodes = read(&self.nodes);
            for name in &req.nodes {
                let node = nodes
                    .get(name)
                    .ok_or_else(|| Error::NodeNotFound { node: name.clone() })?;
                if let Some(job) = ws.busy.get(name) {
                    return Err(Error::NodeBusy {
                        node: name.clone(),
                        job: *job,
                    });
                }
                fsm::next(name, node.status, action)?;
                let group = match kind {
                    JobKind::Commission => Some(
                        req.host_group
                            .clone()
                            .or_else(|| node.host_group.clone())
                            .ok_or_else(|| {
                                Error::invalid(
                                    "host_group",
                                    format!("node {name:?} has no host group; give one"),
                                )
                            })?,
                    ),
                    _ => None,
                };
                groups.push(group);
            }
        }

        let mut bootstrap = None;
        if kind == JobKind::Commission && self.backend.is_some() {
            let masters: Vec<&String> = req
                .nodes
                .iter()
                .zip(&groups)
                .filter(|(_, g)| {
                    g.as_ref()
                        .is_some_and(|g| self.config.host_groups.role(g) == Some(Role::Master))
                })
                .map(|(n, _)| n)
                .collect();
            match read(&self.cluster).state {
                ClusterState::Empty => match masters.first() {
                    Some(m) => bootstrap = Some((*m).clone()),
                    None => {
                        return Err(Error::invalid(
                            "host_group",
                            format!(
                                "the cluster has no master yet: commission a {:?} node first",
                                self.config.host_groups.master
                            ),
                        ));
                    }
                },
                ClusterState::Bootstrapping => {
                    return Err(Error::invalid(
                        "nodes",
                        "the cluster is bootstrapping; retry when it is active",
                    ));
                }
                ClusterState::Active | ClusterState::Degraded => {}
            }
        }

        let id = ws.allocate_job();
        let first_batch = req.rolling.map_or(req.nodes.len(), |r| r.batch_size);
        let mut ch = Changes::new();
        let cause = format!("{kind} requested");
        for (i, name) in req.nodes.iter().enumerate().take(first_batch) {
            let mut node = ch.transition(self, name, action, &cause, Some(id))?;
            if let Some(g) = &groups[i] {
                if node.host_group.as_ref() != Some(g) {
                    node.host_group = Some(g.clone());
                    ch.put(self, node);
                }
            }
        }
        if let Some(master) = &bootstrap {
            ch.cluster_step(self, ClusterAction::Bootstrap);
            let mut c = ch.cluster(self);
            c.bootstrap_node = Some(master.clone());
            ch.set_cluster(c);
        }
        let mut job = Job::running(id, kind, req.nodes.clone(), ch.now);
        job.host_group.clone_from(&req.host_group);
        job.rolling = req.rolling;
        ch.job(job);
        self.commit(&mut ws, ch).await?;
        for n in &req.nodes {
            ws.busy.insert(n.clone(), id);
        }
        drop(ws);
        tracing::info!(job = %id, action = %kind, nodes = req.nodes.len(), "job accepted");
        self.spawn_job(Plan {
            id,
            kind,
            nodes: req.nodes,
            host_group: req.host_group,
            vars: extra_vars,
            rolling: req.rolling,
            bootstrap,
        });
        Ok(id)
    }

    async fn accept_discover(
        self: &Arc<Self>,
        addrs: Vec<String>,
        extra_vars: Value,
    ) -> Result<JobId> {
        let extra_vars = vars::require_object("extra_vars", extra_vars)?;
        check_names("addrs", &addrs)?;
        for a in &addrs {
            check_addr(a)?;
        }
        self.push.preflight(PushAction::Discover).await?;
        let mut ws = self.write.lock().await;
        // An address that discovery already reported under a node's own name is that
        // node: a placeholder for it would never be completed and would linger as `New`.
        if let Some((addr, owner)) = read(&self.nodes).values().find_map(|n| {
            (n.name != n.addr && addrs.contains(&n.addr)).then(|| (n.addr.clone(), n.name.clone()))
        }) {
            return Err(Error::invalid(
                "addrs",
                format!("{addr} is already node {owner:?}; enroll only unknown addresses"),
            ));
        }
        for a in &addrs {
            if let Some(job) = ws.busy.get(a) {
                return Err(Error::NodeBusy {
                    node: a.clone(),
                    job: *job,
                });
            }
        }
        let id = ws.allocate_job();
        let mut ch = Changes::new();
        for a in &addrs {
            if ch.node(self, a).is_none() {
                let mut node = Node::new(a.clone(), NodeStatus::New, ch.now);
                node.addr = a.clone();
                node.last_job = Some(id);
                ch.event(
                    a,
                    EventKind::Created,
                    "",
                    NodeStatus::New.as_str(),
                    "enrolled by address",
                    Some(id),
                );
                ch.put(self, node);
            }
        }
        ch.job(Job::running(id, JobKind::Discover, addrs.clone(), ch.now));
        self.commit(&mut ws, ch).await?;
        for a in &addrs {
            ws.busy.insert(a.clone(), id);
        }
        drop(ws);
        self.spawn_job(Plan {
            id,
            kind: JobKind::Discover,
            nodes: addrs,
            host_group: None,
            vars: extra_vars,
            rolling: None,
            bootstrap: None,
        });
        Ok(id)
    }

    /// Starts verifying a node that came back while in service (skipped when busy).
    pub(super) async fn start_verify(self: &Arc<Self>, name: &str) -> Result<Option<JobId>> {
        let mut ws = self.write.lock().await;
        if ws.busy.contains_key(name) {
            return Ok(None);
        }
        let Some(node) = read(&self.nodes).get(name).cloned() else {
            return Ok(None);
        };
        if !node.status.in_service() {
            return Ok(None);
        }
        let id = ws.allocate_job();
        let mut ch = Changes::new();
        let mut job = Job::running(id, JobKind::Verify, vec![name.to_owned()], ch.now);
        job.host_group.clone_from(&node.host_group);
        ch.job(job);
        self.commit(&mut ws, ch).await?;
        ws.busy.insert(name.to_owned(), id);
        drop(ws);
        self.spawn_job(Plan {
            id,
            kind: JobKind::Verify,
            nodes: vec![name.to_owned()],
            host_group: node.host_group,
            vars: crate::node::empty_object(),
            rolling: None,
            bootstrap: None,
        });
        Ok(Some(id))
    }
}
