//! Docker Swarm backend for clusterm: bootstraps a swarm on the first master (`swarm
//! init`), joins nodes as workers or managers with tokens fetched from a manager, drains
//! and reactivates them around upgrades, promotes and demotes them when their host group
//! changes, and removes them on decommission — all through each node's Docker Engine API
//! (unix socket or TCP, optionally TLS), addressed by an endpoint template such as
//! `tcp://{addr}:2376`.
//!
//! Join tokens live in [`JoinToken`], whose formatting is redacted; the two calls that
//! carry them bypass the Engine API client (which logs bodies at debug level), every
//! engine message is scrubbed of tokens before it becomes an error, and the backend
//! hands no vars to the provision playbook, so tokens never leave it.
//!
//! Registered as the backend `"swarm"`; its configuration is [`SwarmConfig`].

#![warn(missing_docs)]

mod backend;
mod config;
mod engine;
mod error;
mod secret;
mod wire;

use std::sync::Arc;

use cluster_core::ClusterBackend;
use cluster_core::registry::{BackendFactory, BuildFuture, parse_config};

pub use backend::SwarmBackend;
pub use config::{SwarmConfig, TlsConfig};
pub use engine::NAME_LABEL;
pub use error::{Result, SwarmError};
pub use secret::{JoinToken, redact};

fn build(config: serde_json::Value) -> BuildFuture<dyn ClusterBackend> {
    Box::pin(async move {
        let config: SwarmConfig = parse_config("swarm", config)?;
        let backend = SwarmBackend::new(config).map_err(|e| e.into_core("build", ""))?;
        Ok(Arc::new(backend) as Arc<dyn ClusterBackend>)
    })
}

cluster_core::inventory::submit! { BackendFactory::new("swarm", build) }
