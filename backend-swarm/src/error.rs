//! The one error type of the Swarm backend. Every variant names the node (or the
//! endpoints tried) so a message is useful on its own; engine messages are passed
//! through [`crate::secret::redact`] first, so a join token can never surface here.

use cluster_core::Error as CoreError;

/// Result alias for the Swarm backend.
pub type Result<T, E = SwarmError> = std::result::Result<T, E>;

/// What can go wrong talking to Docker engines about their swarm.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SwarmError {
    /// The backend configuration is invalid.
    #[error("swarm config: {0}")]
    Config(String),
    /// The node's engine endpoint could not be derived from the configuration.
    #[error("node {node:?}: no engine endpoint: {message}")]
    Endpoint {
        /// The node concerned.
        node: String,
        /// Why.
        message: String,
    },
    /// The node's engine did not answer.
    #[error("node {node:?}: engine at {endpoint} unreachable: {message}")]
    Unreachable {
        /// The node concerned.
        node: String,
        /// The endpoint that was dialled.
        endpoint: String,
        /// The transport error.
        message: String,
    },
    /// An engine answered with an error.
    #[error("node {node:?}: {operation} failed: {message}")]
    Engine {
        /// The node concerned.
        node: String,
        /// The Engine API call (`swarm init`, `node update`, ...).
        operation: &'static str,
        /// The engine's message.
        message: String,
    },
    /// No reachable engine is a manager of the swarm.
    #[error("no reachable swarm manager (tried: {})", if tried.is_empty() { "none known".to_owned() } else { tried.join(", ") })]
    NoManager {
        /// The addresses tried, with the reason each was skipped.
        tried: Vec<String>,
    },
    /// The node is in a state that forbids the operation.
    #[error("node {node:?}: {message}")]
    State {
        /// The node concerned.
        node: String,
        /// What is wrong.
        message: String,
    },
    /// The swarm did not reach the expected state in time.
    #[error("node {node:?}: timed out after {secs}s waiting for {what}")]
    Timeout {
        /// The node concerned.
        node: String,
        /// What was awaited.
        what: &'static str,
        /// How long was waited.
        secs: u64,
    },
}

impl SwarmError {
    /// An [`SwarmError::Engine`] from a bollard error, with tokens redacted.
    pub(crate) fn engine(node: &str, operation: &'static str, e: bollard::errors::Error) -> Self {
        SwarmError::Engine {
            node: node.to_owned(),
            operation,
            message: crate::secret::redact(&e.to_string()),
        }
    }

    /// The core error for `operation` on `node`, the form the manager records.
    pub fn into_core(self, operation: &str, node: &str) -> CoreError {
        match self {
            SwarmError::Config(message) => CoreError::Config {
                component: "swarm".into(),
                message,
            },
            other => CoreError::Backend {
                backend: "swarm".into(),
                operation: operation.into(),
                node: node.into(),
                message: other.to_string(),
            },
        }
    }
}

/// Whether a bollard error is the engine's "not found" answer.
pub(crate) fn is_not_found(e: &bollard::errors::Error) -> bool {
    matches!(
        e,
        bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

/// Whether a bollard error is a lost optimistic-concurrency race on a swarm object.
pub(crate) fn is_out_of_sequence(e: &bollard::errors::Error) -> bool {
    matches!(e, bollard::errors::Error::DockerResponseServerError { message, .. }
        if message.contains("out of sequence"))
}
