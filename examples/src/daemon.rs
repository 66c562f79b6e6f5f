//! Running the `clusterm` daemon: components are built by registry name from the
//! configuration, the manager starts on them, and the HTTP API serves until SIGTERM
//! or Ctrl-C, after which running jobs are stopped and their state recorded.

use std::sync::Arc;

use async_trait::async_trait;
use cluster_core::api::{Api, ApiConfig};
use cluster_core::registry;
use cluster_core::{ClusterBackend, ConfigPush, Discovery, InventoryStore, Manager, Member};
use serde_json::Value;
use tokio::sync::Mutex;

use crate::config::DaemonConfig;

/// Why the daemon stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// A component or the manager could not be built.
    #[error(transparent)]
    Core(#[from] cluster_core::Error),
    /// The API address could not be bound or served.
    #[error("API on {addr}: {source}")]
    Serve {
        /// The address.
        addr: std::net::SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// A discovery built on first use and rebuilt after a failure, so the daemon starts
/// (and keeps serving) while the discovery source is not up yet; the manager retries.
#[derive(Debug)]
struct Deferred {
    name: String,
    config: Value,
    built: Mutex<Option<Arc<dyn Discovery>>>,
}

impl Deferred {
    async fn get(&self) -> cluster_core::Result<Arc<dyn Discovery>> {
        let mut built = self.built.lock().await;
        if let Some(d) = built.as_ref() {
            return Ok(d.clone());
        }
        let d = registry::build::<dyn Discovery>(&self.name, self.config.clone()).await?;
        *built = Some(d.clone());
        Ok(d)
    }

    async fn reset_on_error<T>(&self, r: cluster_core::Result<T>) -> cluster_core::Result<T> {
        if r.is_err() {
            *self.built.lock().await = None;
        }
        r
    }
}

#[async_trait]
impl Discovery for Deferred {
    fn name(&self) -> &str {
        &self.name
    }

    async fn members(&self) -> cluster_core::Result<Vec<Member>> {
        let d = self.get().await?;
        let r = d.members().await;
        self.reset_on_error(r).await
    }

    async fn subscribe(&self) -> cluster_core::Result<cluster_core::MembershipStream> {
        let d = self.get().await?;
        let r = d.subscribe().await;
        self.reset_on_error(r).await
    }

    async fn enroll(&self, addrs: &[String], vars: &Value) -> cluster_core::Result<Value> {
        let d = self.get().await?;
        d.enroll(addrs, vars).await
    }
}

fn require_registered(
    kind: &str,
    name: &str,
    known: Vec<&'static str>,
) -> cluster_core::Result<()> {
    if known.contains(&name) {
        return Ok(());
    }
    Err(cluster_core::Error::Config {
        component: kind.to_owned(),
        message: format!(
            "no {kind} named {name:?} is registered; known: {}",
            known.join(", ")
        ),
    })
}

/// Builds the manager from the configuration (store, push, backend, discovery).
pub async fn build_manager(config: &DaemonConfig) -> Result<Manager, DaemonError> {
    for plugin in &config.plugins {
        let names = registry::plugin::load(plugin)?;
        tracing::info!(plugin = %plugin.display(), registered = ?names, "plugin loaded");
    }
    if let Some(dir) = &config.manager.log_dir {
        std::fs::create_dir_all(dir).map_err(|e| cluster_core::Error::Config {
            component: "manager".into(),
            message: format!("log dir {}: {e}", dir.display()),
        })?;
    }
    let store =
        registry::build::<dyn InventoryStore>(&config.store.name, config.store.config.clone())
            .await?;
    let push =
        registry::build::<dyn ConfigPush>(&config.push.name, config.push.config.clone()).await?;
    let mut builder = Manager::builder(store)
        .push(push)
        .config(config.manager.clone());
    if config.backend.is_set() {
        let backend = registry::build::<dyn ClusterBackend>(
            &config.backend.name,
            config.backend.config.clone(),
        )
        .await?;
        builder = builder.backend(backend);
    }
    if config.discovery.is_set() {
        require_registered(
            "discovery",
            &config.discovery.name,
            registry::names::<dyn Discovery>(),
        )?;
        builder = builder.discovery(Arc::new(Deferred {
            name: config.discovery.name.clone(),
            config: config.discovery.config.clone(),
            built: Mutex::new(None),
        }));
    }
    Ok(builder.start().await?)
}

/// How long open connections may take to finish once shutdown has begun.
const DRAIN_LIMIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Resolves on SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

/// Runs the daemon until a shutdown signal; returns once jobs are recorded as stopped.
pub async fn run(config: DaemonConfig) -> Result<(), DaemonError> {
    let manager = build_manager(&config).await?;
    let api = Api::new(
        manager.clone(),
        ApiConfig {
            token: config.api.token.expose().map(str::to_owned),
            body_limit: config.api.body_limit,
            compat_config: config.contiv_shape(),
        },
    );
    let listener = tokio::net::TcpListener::bind(config.api.listen)
        .await
        .map_err(|source| DaemonError::Serve {
            addr: config.api.listen,
            source,
        })?;
    let addr = listener.local_addr().unwrap_or(config.api.listen);
    tracing::info!(
        %addr,
        store = %config.store.name,
        push = %config.push.name,
        discovery = %config.discovery.name,
        backend = %config.backend.name,
        auth = config.api.token.expose().is_some(),
        nodes = manager.node_count(),
        "clusterm serving"
    );
    let closing = api.clone();
    let (stopping_tx, mut stopping) = tokio::sync::watch::channel(false);
    let server = axum::serve(listener, api.router()).with_graceful_shutdown(async move {
        shutdown_signal().await;
        tracing::info!("shutting down: stopping streams and running jobs");
        closing.close_streams();
        stopping_tx.send_replace(true);
    });
    // A client that never finishes reading must not hold the shutdown forever.
    let served = tokio::select! {
        r = server => r,
        _ = async {
            let _ = stopping.wait_for(|s| *s).await;
            tokio::time::sleep(DRAIN_LIMIT).await;
        } => {
            tracing::warn!(limit = ?DRAIN_LIMIT, "connections still open; closing them");
            Ok(())
        }
    };
    manager.shutdown().await;
    tracing::info!("clusterm stopped");
    served.map_err(|source| DaemonError::Serve { addr, source })
}
