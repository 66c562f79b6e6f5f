//! The backend's operations, each idempotent: look at what the swarm says first, then
//! change only what differs.

use bollard::models::{
    LocalNodeState, Node, NodeSpecAvailabilityEnum, NodeSpecRoleEnum, NodeState,
};
use cluster_core::{BackendMember, BackendNode, Role};

use super::SwarmBackend;
use crate::engine::{LocalSwarm, NAME_LABEL};
use crate::error::{Result, SwarmError};

impl SwarmBackend {
    /// `swarm init` on the master unless it already manages a swarm.
    pub(super) async fn do_bootstrap(&self, master: &BackendNode) -> Result<()> {
        let engine = self.engine(master).await?;
        let mut local = engine.local().await?;
        match local.state {
            LocalNodeState::ACTIVE if local.control => {
                tracing::info!(node = %master.name, "already a swarm manager; nothing to bootstrap");
            }
            LocalNodeState::ACTIVE => {
                return Err(SwarmError::State {
                    node: master.name.clone(),
                    message: "is a worker of an existing swarm; cannot bootstrap a new one".into(),
                });
            }
            LocalNodeState::INACTIVE | LocalNodeState::EMPTY => {
                let addr = self.config.swarm_addr(&master.addr);
                engine
                    .init(&addr, self.config.dispatcher_heartbeat_secs)
                    .await?;
                tracing::info!(node = %master.name, addr = %addr, "swarm initialised");
                local = engine.local().await?;
            }
            state => return Err(unusable(&master.name, state, &local)),
        }
        self.remember(master, Some(true));
        self.label(&engine, &local.node_id, master).await
    }

    /// `swarm join` under the node's role unless it is already a member of this swarm.
    pub(super) async fn do_join(&self, node: &BackendNode) -> Result<()> {
        let engine = self.engine(node).await?;
        let local = engine.local().await?;
        match local.state {
            LocalNodeState::INACTIVE | LocalNodeState::EMPTY => {}
            LocalNodeState::ACTIVE => {
                let mgr = self.manager(None).await?;
                if mgr.node(&local.node_id).await?.is_none() {
                    return Err(SwarmError::State {
                        node: node.name.clone(),
                        message: "belongs to another swarm; make it leave first".into(),
                    });
                }
                tracing::info!(node = %node.name, "already a swarm member; nothing to join");
                self.remember(node, Some(local.control));
                return self.label(&mgr, &local.node_id, node).await;
            }
            state => return Err(unusable(&node.name, state, &local)),
        }
        let mgr = self.manager(Some(&node.addr)).await?;
        let as_manager = node.role == Role::Master;
        let token = mgr.join_token(as_manager).await?;
        let mut remotes = mgr.local().await?.managers;
        if remotes.is_empty() {
            remotes.push(self.config.swarm_addr(&mgr.addr));
        }
        let addr = self.config.swarm_addr(&node.addr);
        engine.join(&addr, &remotes, &token).await?;
        tracing::info!(node = %node.name, addr = %addr, manager = as_manager, "joined the swarm");
        let local = engine.local().await?;
        self.remember(node, Some(as_manager));
        self.label(&mgr, &local.node_id, node).await?;
        // A node rebuilt without leaving left an entry under its name; drop it so that
        // lookups by name find the live one.
        for stale in mgr.nodes().await? {
            let id = stale.id.clone().unwrap_or_default();
            let named = stale
                .spec
                .as_ref()
                .and_then(|s| s.labels.as_ref())
                .and_then(|l| l.get(NAME_LABEL))
                .is_some_and(|n| *n == node.name);
            if named && id != local.node_id {
                tracing::info!(node = %node.name, stale = %id, "removing a stale swarm entry");
                mgr.remove_node(&id).await?;
            }
        }
        Ok(())
    }

    /// Sets the node's availability (`drain` before an upgrade, `active` after).
    pub(super) async fn availability(
        &self,
        node: &BackendNode,
        to: NodeSpecAvailabilityEnum,
    ) -> Result<()> {
        let mgr = self.manager(None).await?;
        let id = self.member(&mgr, node).await?.id.unwrap_or_default();
        mgr.update_node(&id, |spec| spec.availability = Some(to))
            .await?;
        tracing::info!(node = %node.name, availability = %to, "availability set");
        Ok(())
    }

    /// Promotes or demotes the node to its role and waits until the swarm shows it.
    pub(super) async fn do_set_role(&self, node: &BackendNode) -> Result<()> {
        let promote = node.role == Role::Master;
        // A demotion is best asked of another manager: the node's own raft member goes away.
        let mgr = match self.manager(Some(&node.addr)).await {
            Ok(m) => m,
            Err(_) => self.manager(None).await?,
        };
        let id = self.member(&mgr, node).await?.id.unwrap_or_default();
        let role = if promote {
            NodeSpecRoleEnum::MANAGER
        } else {
            NodeSpecRoleEnum::WORKER
        };
        mgr.update_node(&id, |spec| spec.role = Some(role)).await?;
        let deadline = self.deadline(&node.name, "the role change to take effect");
        loop {
            let n = mgr.node(&id).await?;
            if n.is_some_and(|n| n.manager_status.is_some() == promote) {
                break;
            }
            deadline.tick().await?;
        }
        self.remember(node, Some(promote));
        tracing::info!(node = %node.name, role = %role, "role changed");
        Ok(())
    }

    /// Demotes a manager, leaves on the node, and removes it from the node list.
    pub(super) async fn do_leave(&self, node: &BackendNode) -> Result<()> {
        let mgr = self.manager(Some(&node.addr)).await.ok();
        let engine = self.engine(node).await;
        let local = match &engine {
            Ok(e) => Some(e.local().await),
            Err(_) => None,
        };
        let local = match local {
            Some(Ok(l)) => Some(l),
            Some(Err(e)) => {
                tracing::warn!(node = %node.name, error = %e, "engine did not answer; removing it from the swarm only");
                None
            }
            None => None,
        };
        let swarm_node = match &mgr {
            Some(m) => self.find_node(m, node, local.as_ref()).await?,
            None => None,
        };
        if let (Some(m), Some(n)) = (&mgr, &swarm_node) {
            let id = n.id.clone().unwrap_or_default();
            if n.manager_status.is_some() {
                m.update_node(&id, |spec| spec.role = Some(NodeSpecRoleEnum::WORKER))
                    .await?;
                let deadline = self.deadline(&node.name, "the demotion before leaving");
                loop {
                    let demoted = m
                        .node(&id)
                        .await?
                        .is_none_or(|n| n.manager_status.is_none());
                    let released = match (&engine, &local) {
                        (Ok(e), Some(_)) => !e.local().await.is_ok_and(|l| l.control),
                        _ => true,
                    };
                    if demoted && released {
                        break;
                    }
                    deadline.tick().await?;
                }
            }
        }
        match (&engine, &local) {
            (Ok(e), Some(l)) if l.in_swarm() => {
                // Only the last manager is still a manager here; forcing dissolves its swarm.
                let force = mgr.is_none() || l.state != LocalNodeState::ACTIVE;
                e.leave(force).await?;
                tracing::info!(node = %node.name, force, "left the swarm");
            }
            (Ok(_), Some(_)) => {}
            (Err(e), _) if mgr.is_none() => {
                return Err(SwarmError::State {
                    node: node.name.clone(),
                    message: format!(
                        "cannot leave: its engine is unreachable and no other manager is ({e})"
                    ),
                });
            }
            (Ok(_), None) if mgr.is_none() => {
                return Err(SwarmError::State {
                    node: node.name.clone(),
                    message: "cannot leave: its engine does not answer and no other manager is"
                        .into(),
                });
            }
            _ => {}
        }
        if let (Some(m), Some(n)) = (&mgr, &swarm_node) {
            m.remove_node(n.id.as_deref().unwrap_or_default()).await?;
            tracing::info!(node = %node.name, "removed from the swarm's node list");
        }
        self.remember(node, Some(false));
        Ok(())
    }

    /// The swarm's nodes as members, by name.
    pub(super) async fn do_members(&self) -> Result<Vec<BackendMember>> {
        let search = self.search(None).await;
        let Some(mgr) = search.manager else {
            if search.swarm_may_exist || search.tried.is_empty() {
                return Err(SwarmError::NoManager {
                    tried: search.tried,
                });
            }
            return Ok(Vec::new());
        };
        let mut members: Vec<BackendMember> =
            mgr.nodes().await?.into_iter().map(member_of).collect();
        members.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(members)
    }
}

/// The error for an engine whose swarm state forbids joining or bootstrapping.
fn unusable(node: &str, state: LocalNodeState, local: &LocalSwarm) -> SwarmError {
    let detail = if local.error.is_empty() {
        String::new()
    } else {
        format!(": {}", local.error)
    };
    SwarmError::State {
        node: node.to_owned(),
        message: format!("swarm state is {state}{detail}"),
    }
}

/// A swarm node as a backend member: named by its label, else its hostname.
fn member_of(n: Node) -> BackendMember {
    let spec = n.spec.unwrap_or_default();
    let name = spec
        .labels
        .as_ref()
        .and_then(|l| l.get(NAME_LABEL).cloned())
        .or_else(|| n.description.and_then(|d| d.hostname))
        .or(n.id)
        .unwrap_or_default();
    let ready = n.status.and_then(|s| s.state) == Some(NodeState::READY)
        && n.manager_status
            .as_ref()
            .and_then(|m| m.reachability)
            .is_none_or(|r| r != bollard::models::Reachability::UNREACHABLE);
    BackendMember {
        name,
        role: if spec.role == Some(NodeSpecRoleEnum::MANAGER) {
            Role::Master
        } else {
            Role::Worker
        },
        ready,
    }
}
