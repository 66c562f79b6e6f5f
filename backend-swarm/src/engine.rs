//! One node's Docker engine: dialling it from the configuration and the Engine API calls
//! the backend makes, each mapped to a [`SwarmError`] that names the node. No policy
//! lives here; deciding which engine to ask is the backend's job.

use bollard::Docker;
use bollard::models::{
    LocalNodeState, Node, NodeSpec, SwarmInitRequest, SwarmSpec, SwarmSpecDispatcher,
};
use bollard::query_parameters::{DeleteNodeOptions, LeaveSwarmOptions, UpdateNodeOptions};

use crate::config::{Scheme, SwarmConfig, scheme};
use crate::error::{Result, SwarmError, is_not_found, is_out_of_sequence};
use crate::secret::{JoinToken, redact};
use crate::wire::Wire;

/// The label that carries a swarm node's clusterm name (engines of one host may share a
/// hostname, so the hostname alone cannot identify a node).
pub const NAME_LABEL: &str = "clusterm.node";

/// Attempts at a node update that keeps losing optimistic-concurrency races.
const UPDATE_ATTEMPTS: usize = 8;

/// What an engine says about its own swarm membership.
#[derive(Debug, Clone)]
pub(crate) struct LocalSwarm {
    pub state: LocalNodeState,
    pub node_id: String,
    /// Whether this engine is a manager (can answer swarm-wide calls).
    pub control: bool,
    /// Swarm addresses (`host:port`) of the managers it knows.
    pub managers: Vec<String>,
    pub error: String,
}

impl LocalSwarm {
    /// Whether the engine belongs to a swarm in any form.
    pub fn in_swarm(&self) -> bool {
        !matches!(self.state, LocalNodeState::INACTIVE | LocalNodeState::EMPTY)
    }
}

/// A connected engine of one node.
#[derive(Debug, Clone)]
pub(crate) struct Engine {
    docker: Docker,
    /// Raw access for the calls that carry join tokens.
    wire: Wire,
    /// The node's name (or its address when the name is unknown), for messages.
    pub node: String,
    /// The node's management address.
    pub addr: String,
}

impl Engine {
    /// Dials the engine of node `name` at `addr` and agrees on an API version.
    pub async fn connect(config: &SwarmConfig, name: Option<&str>, addr: &str) -> Result<Engine> {
        let node = name.unwrap_or(addr).to_owned();
        let endpoint = config
            .endpoint(name, addr)
            .map_err(|message| SwarmError::Endpoint {
                node: node.clone(),
                message,
            })?;
        let unreachable = |e: bollard::errors::Error| SwarmError::Unreachable {
            node: node.clone(),
            endpoint: endpoint.clone(),
            message: redact(&e.to_string()),
        };
        let timeout = config.request_timeout_secs;
        let version = bollard::API_DEFAULT_VERSION;
        let kind = scheme(&endpoint).map_err(|message| SwarmError::Endpoint {
            node: node.clone(),
            message,
        })?;
        let docker = match (kind, &config.tls) {
            (Scheme::Unix, _) => Docker::connect_with_unix(&endpoint, timeout, version),
            (Scheme::Tcp, Some(tls)) => {
                Docker::connect_with_ssl(&endpoint, &tls.key, &tls.cert, &tls.ca, timeout, version)
            }
            (Scheme::Tcp, None) => Docker::connect_with_http(&endpoint, timeout, version),
        }
        .map_err(unreachable)?;
        let docker = docker.negotiate_version().await.map_err(unreachable)?;
        let v = docker.client_version();
        let wire = Wire {
            node: node.clone(),
            endpoint: endpoint.clone(),
            tls: config.tls.clone().filter(|_| kind == Scheme::Tcp),
            version: format!("/v{}.{}", v.major_version, v.minor_version),
            timeout: std::time::Duration::from_secs(timeout),
        };
        Ok(Engine {
            docker,
            wire,
            node,
            addr: addr.to_owned(),
        })
    }

    fn err(
        &self,
        operation: &'static str,
    ) -> impl FnOnce(bollard::errors::Error) -> SwarmError + '_ {
        move |e| SwarmError::engine(&self.node, operation, e)
    }

    /// The engine's view of its swarm membership.
    pub async fn local(&self) -> Result<LocalSwarm> {
        let info = self.docker.info().await.map_err(self.err("info"))?;
        let swarm = info.swarm.unwrap_or_default();
        Ok(LocalSwarm {
            state: swarm.local_node_state.unwrap_or(LocalNodeState::INACTIVE),
            node_id: swarm.node_id.unwrap_or_default(),
            control: swarm.control_available.unwrap_or(false),
            managers: swarm
                .remote_managers
                .unwrap_or_default()
                .into_iter()
                .filter_map(|p| p.addr)
                .collect(),
            error: redact(&swarm.error.unwrap_or_default()),
        })
    }

    /// `swarm init` listening and advertising on `swarm_addr`.
    pub async fn init(&self, swarm_addr: &str, heartbeat_secs: Option<u64>) -> Result<String> {
        let spec = heartbeat_secs.map(|s| SwarmSpec {
            dispatcher: Some(SwarmSpecDispatcher {
                // The API wants nanoseconds.
                heartbeat_period: Some(
                    i64::try_from(s)
                        .unwrap_or(i64::MAX)
                        .saturating_mul(1_000_000_000),
                ),
            }),
            ..SwarmSpec::default()
        });
        let req = SwarmInitRequest {
            listen_addr: Some(swarm_addr.to_owned()),
            advertise_addr: Some(swarm_addr.to_owned()),
            spec,
            ..SwarmInitRequest::default()
        };
        self.docker
            .init_swarm(req)
            .await
            .map_err(self.err("swarm init"))
    }

    /// The join token for `manager` or worker nodes (this engine must be a manager).
    pub async fn join_token(&self, manager: bool) -> Result<JoinToken> {
        let tokens = self.wire.join_tokens().await?;
        Ok(if manager {
            tokens.manager
        } else {
            tokens.worker
        })
    }

    /// `swarm join` of this engine through `remotes`, on `swarm_addr`.
    pub async fn join(
        &self,
        swarm_addr: &str,
        remotes: &[String],
        token: &JoinToken,
    ) -> Result<()> {
        self.wire.join(swarm_addr, remotes, token).await
    }

    /// `swarm leave`; leaving when not in a swarm is not an error.
    pub async fn leave(&self, force: bool) -> Result<()> {
        match self
            .docker
            .leave_swarm(Some(LeaveSwarmOptions { force }))
            .await
        {
            Ok(()) => Ok(()),
            Err(bollard::errors::Error::DockerResponseServerError { message, .. })
                if message.contains("not part of a swarm") =>
            {
                Ok(())
            }
            Err(e) => Err(SwarmError::engine(&self.node, "swarm leave", e)),
        }
    }

    /// Every node of the swarm (this engine must be a manager).
    pub async fn nodes(&self) -> Result<Vec<Node>> {
        self.docker
            .list_nodes(None)
            .await
            .map_err(self.err("node ls"))
    }

    /// The swarm node labelled with clusterm name `name`, if any. Filtered here: the
    /// API's `label` filter matches engine labels, not node labels, on older engines.
    pub async fn node_named(&self, name: &str) -> Result<Option<Node>> {
        Ok(self.nodes().await?.into_iter().find(|n| {
            n.spec
                .as_ref()
                .and_then(|s| s.labels.as_ref())
                .and_then(|l| l.get(NAME_LABEL))
                .is_some_and(|v| v == name)
        }))
    }

    /// The swarm node with this id, if it exists.
    pub async fn node(&self, id: &str) -> Result<Option<Node>> {
        match self.docker.inspect_node(id).await {
            Ok(n) => Ok(Some(n)),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(SwarmError::engine(&self.node, "node inspect", e)),
        }
    }

    /// Applies `change` to node `id`'s spec, retrying lost races; an unchanged spec is
    /// not written.
    pub async fn update_node(&self, id: &str, change: impl Fn(&mut NodeSpec)) -> Result<()> {
        for _ in 0..UPDATE_ATTEMPTS {
            let node = self
                .docker
                .inspect_node(id)
                .await
                .map_err(self.err("node inspect"))?;
            let version = node.version.and_then(|v| v.index).unwrap_or_default();
            let before = node.spec.unwrap_or_default();
            let mut spec = before.clone();
            change(&mut spec);
            if spec == before {
                return Ok(());
            }
            let opts = UpdateNodeOptions {
                version: i64::try_from(version).unwrap_or(i64::MAX),
            };
            match self.docker.update_node(id, spec, opts).await {
                Ok(()) => return Ok(()),
                Err(e) if is_out_of_sequence(&e) => continue,
                Err(e) => return Err(SwarmError::engine(&self.node, "node update", e)),
            }
        }
        Err(SwarmError::State {
            node: self.node.clone(),
            message: format!("node {id} kept changing during {UPDATE_ATTEMPTS} update attempts"),
        })
    }

    /// Removes node `id` from the swarm (forced: it may still look alive); a node that is
    /// already gone is not an error.
    pub async fn remove_node(&self, id: &str) -> Result<()> {
        match self
            .docker
            .delete_node(id, Some(DeleteNodeOptions { force: true }))
            .await
        {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(SwarmError::engine(&self.node, "node rm", e)),
        }
    }
}

/// The host part of a `host:port` swarm address (`[v6]:port` too).
pub(crate) fn host_of(swarm_addr: &str) -> &str {
    let host = swarm_addr.rsplit_once(':').map_or(swarm_addr, |(h, _)| h);
    host.trim_start_matches('[').trim_end_matches(']')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_of_strips_port_and_brackets() {
        assert_eq!(host_of("127.0.0.3:2377"), "127.0.0.3");
        assert_eq!(host_of("[fd00::1]:2377"), "fd00::1");
        assert_eq!(host_of("node1"), "node1");
    }
}
