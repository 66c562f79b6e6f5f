//! [`SwarmBackend`]: the `ClusterBackend` that runs a Docker Swarm through the Engine API
//! of every node. Swarm-wide calls (tokens, node updates, listings) go to a manager
//! found among the engines the backend knows (configured seeds, the nodes in service the
//! manager restores on start, and every node it operated on since); per-node calls
//! (init, join, leave) go to the node's own engine. Every operation is idempotent: it first looks at what the
//! swarm already says and only changes what differs.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bollard::models::{Node, NodeSpecAvailabilityEnum};
use cluster_core::{BackendMember, BackendNode, ClusterBackend, Role};

mod ops;

use crate::config::SwarmConfig;
use crate::engine::{Engine, LocalSwarm, NAME_LABEL, host_of};
use crate::error::{Result, SwarmError};

/// How often the backend polls while waiting for the swarm to settle.
const POLL: Duration = Duration::from_millis(250);

/// Engines the backend has met, to find a manager without asking the inventory.
#[derive(Debug, Default)]
struct Known {
    /// Management addresses of engines last seen as managers (seeds first).
    managers: Vec<String>,
    /// Node name of each management address met.
    names: BTreeMap<String, String>,
}

/// A Docker Swarm driven through the Engine API of each node.
#[derive(Debug)]
pub struct SwarmBackend {
    config: SwarmConfig,
    known: Mutex<Known>,
    /// Held by calls that change the set of managers or remove nodes, so that two of
    /// them never race (a leave asking a manager that is itself leaving, two demotions
    /// breaking quorum); worker joins, drains and listings run freely.
    topology: tokio::sync::Mutex<()>,
}

/// The outcome of looking for a manager.
struct Search {
    manager: Option<Engine>,
    tried: Vec<String>,
    /// Some engine answered and said it is in a swarm, or some engine did not answer:
    /// either way a swarm may exist that we could not reach.
    swarm_may_exist: bool,
}

impl SwarmBackend {
    /// A backend with `config`, checked first.
    pub fn new(config: SwarmConfig) -> Result<Self> {
        config.validate()?;
        let known = Known {
            managers: config.managers.clone(),
            names: BTreeMap::new(),
        };
        Ok(SwarmBackend {
            config,
            known: Mutex::new(known),
            topology: tokio::sync::Mutex::new(()),
        })
    }

    /// The configuration in force.
    pub fn config(&self) -> &SwarmConfig {
        &self.config
    }

    fn known(&self) -> std::sync::MutexGuard<'_, Known> {
        self.known.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn remember(&self, node: &BackendNode, manager: Option<bool>) {
        let mut k = self.known();
        k.names.insert(node.addr.clone(), node.name.clone());
        match manager {
            Some(true) if !k.managers.contains(&node.addr) => {
                k.managers.insert(0, node.addr.clone())
            }
            Some(false) => k.managers.retain(|a| a != &node.addr),
            _ => {}
        }
    }

    /// Remembers the engines of the nodes in service without dialling any (an engine
    /// down at start-up is met later like any other): masters' engines as the first
    /// places to look for a manager, after the configured seeds; workers' engines as
    /// ones that name their managers.
    fn restore_known(&self, nodes: &[BackendNode]) {
        let mut k = self.known();
        for node in nodes {
            k.names.insert(node.addr.clone(), node.name.clone());
            if node.role == Role::Master && !k.managers.contains(&node.addr) {
                k.managers.push(node.addr.clone());
            }
        }
        tracing::info!(
            engines = k.names.len(),
            managers = k.managers.len(),
            "engines of the nodes in service restored"
        );
    }

    async fn engine(&self, node: &BackendNode) -> Result<Engine> {
        self.remember(node, None);
        Engine::connect(&self.config, Some(&node.name), &node.addr).await
    }

    /// Looks for a reachable manager other than `exclude`, asking every known engine
    /// (and the managers they name) in turn.
    async fn search(&self, exclude: Option<&str>) -> Search {
        let (mut queue, names): (VecDeque<String>, BTreeMap<String, String>) = {
            let k = self.known();
            let mut q: VecDeque<String> = k.managers.iter().cloned().collect();
            q.extend(k.names.keys().cloned());
            (q, k.names.clone())
        };
        let mut seen = BTreeSet::new();
        let mut out = Search {
            manager: None,
            tried: Vec::new(),
            swarm_may_exist: false,
        };
        while let Some(addr) = queue.pop_front() {
            if !seen.insert(addr.clone()) {
                continue;
            }
            let local =
                match Engine::connect(&self.config, names.get(&addr).map(String::as_str), &addr)
                    .await
                {
                    Ok(engine) => engine.local().await.map(|l| (engine, l)),
                    Err(e) => Err(e),
                };
            let (engine, local) = match local {
                Ok(v) => v,
                Err(e) => {
                    tracing::debug!(addr = %addr, error = %e, "engine skipped while looking for a manager");
                    out.tried.push(format!("{addr}: {e}"));
                    out.swarm_may_exist = true;
                    continue;
                }
            };
            queue.extend(local.managers.iter().map(|m| host_of(m).to_owned()));
            out.swarm_may_exist |= local.in_swarm();
            if exclude == Some(addr.as_str()) {
                continue;
            }
            if local.control {
                let mut k = self.known();
                if !k.managers.contains(&addr) {
                    k.managers.push(addr.clone());
                }
                out.manager = Some(engine);
                return out;
            }
            out.tried.push(format!("{addr}: not a manager"));
        }
        out
    }

    /// A reachable manager other than `exclude`.
    async fn manager(&self, exclude: Option<&str>) -> Result<Engine> {
        let s = self.search(exclude).await;
        s.manager.ok_or(SwarmError::NoManager { tried: s.tried })
    }

    /// The swarm node of `node`: by its name label, else by the id its own engine reports.
    async fn find_node(
        &self,
        mgr: &Engine,
        node: &BackendNode,
        local: Option<&LocalSwarm>,
    ) -> Result<Option<Node>> {
        if let Some(n) = mgr.node_named(&node.name).await? {
            return Ok(Some(n));
        }
        match local {
            Some(l) if !l.node_id.is_empty() => mgr.node(&l.node_id).await,
            _ => Ok(None),
        }
    }

    /// The swarm node of `node`, which must be a member.
    async fn member(&self, mgr: &Engine, node: &BackendNode) -> Result<Node> {
        if let Some(n) = mgr.node_named(&node.name).await? {
            return Ok(n);
        }
        // Not labelled yet (joined by other means): its own engine knows its id.
        let local = match self.engine(node).await {
            Ok(e) => e.local().await.ok(),
            Err(_) => None,
        };
        let found = self.find_node(mgr, node, local.as_ref()).await?;
        let n = found.ok_or_else(|| SwarmError::State {
            node: node.name.clone(),
            message: "not a member of the swarm".into(),
        })?;
        // Labelled now, so that members() reports it under its clusterm name.
        self.label(mgr, n.id.as_deref().unwrap_or_default(), node)
            .await?;
        Ok(n)
    }

    /// Labels swarm node `id` with the clusterm name of `node`.
    async fn label(&self, mgr: &Engine, id: &str, node: &BackendNode) -> Result<()> {
        mgr.update_node(id, |spec| {
            spec.labels
                .get_or_insert_with(Default::default)
                .insert(NAME_LABEL.to_owned(), node.name.clone());
        })
        .await
    }

    /// A deadline for waiting on the swarm to settle.
    fn deadline(&self, node: &str, what: &'static str) -> Deadline {
        Deadline {
            start: Instant::now(),
            timeout: self.config.settle_timeout(),
            node: node.to_owned(),
            what,
        }
    }
}

/// When waiting on the swarm gives up.
struct Deadline {
    start: Instant,
    timeout: Duration,
    node: String,
    what: &'static str,
}

impl Deadline {
    /// Sleeps one poll interval, or fails once the deadline has passed.
    async fn tick(&self) -> Result<()> {
        if self.start.elapsed() >= self.timeout {
            return Err(SwarmError::Timeout {
                node: self.node.clone(),
                what: self.what,
                secs: self.timeout.as_secs(),
            });
        }
        tokio::time::sleep(POLL).await;
        Ok(())
    }
}

#[async_trait]
impl ClusterBackend for SwarmBackend {
    fn kind(&self) -> &str {
        "swarm"
    }

    #[tracing::instrument(skip_all, fields(node = %master.name))]
    async fn bootstrap(&self, master: &BackendNode) -> cluster_core::Result<()> {
        let _turn = self.topology.lock().await;
        self.do_bootstrap(master)
            .await
            .map_err(|e| e.into_core("bootstrap", &master.name))
    }

    #[tracing::instrument(skip_all, fields(node = %node.name))]
    async fn join(&self, node: &BackendNode) -> cluster_core::Result<()> {
        let _turn = match node.role {
            Role::Master => Some(self.topology.lock().await),
            Role::Worker => None,
        };
        self.do_join(node)
            .await
            .map_err(|e| e.into_core("join", &node.name))
    }

    #[tracing::instrument(skip_all, fields(node = %node.name))]
    async fn drain(&self, node: &BackendNode) -> cluster_core::Result<()> {
        self.availability(node, NodeSpecAvailabilityEnum::DRAIN)
            .await
            .map_err(|e| e.into_core("drain", &node.name))
    }

    #[tracing::instrument(skip_all, fields(node = %node.name))]
    async fn activate(&self, node: &BackendNode) -> cluster_core::Result<()> {
        self.availability(node, NodeSpecAvailabilityEnum::ACTIVE)
            .await
            .map_err(|e| e.into_core("activate", &node.name))
    }

    #[tracing::instrument(skip_all, fields(node = %node.name))]
    async fn leave(&self, node: &BackendNode) -> cluster_core::Result<()> {
        let _turn = self.topology.lock().await;
        self.do_leave(node)
            .await
            .map_err(|e| e.into_core("leave", &node.name))
    }

    #[tracing::instrument(skip_all, fields(node = %node.name))]
    async fn set_role(&self, node: &BackendNode) -> cluster_core::Result<()> {
        let _turn = self.topology.lock().await;
        self.do_set_role(node)
            .await
            .map_err(|e| e.into_core("set_role", &node.name))
    }

    async fn restore(&self, nodes: &[BackendNode]) -> cluster_core::Result<()> {
        self.restore_known(nodes);
        Ok(())
    }

    async fn members(&self) -> cluster_core::Result<Vec<BackendMember>> {
        self.do_members()
            .await
            .map_err(|e| e.into_core("members", ""))
    }
}
