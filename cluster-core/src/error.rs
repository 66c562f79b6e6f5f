//! The one error type of `cluster-core`: every variant names its subject (node, job,
//! component) so a message is useful on its own, and maps to a stable `code()` that the
//! API layers turn into HTTP statuses and Python exceptions.

use crate::fsm::IllegalTransition;
use crate::job::JobId;

/// Result alias for `cluster-core`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the core and in its pluggable implementations.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No node with this name is in the inventory.
    #[error("node {node:?} not found")]
    NodeNotFound {
        /// The name that was asked for.
        node: String,
    },
    /// No job with this id is recorded.
    #[error("job {job} not found")]
    JobNotFound {
        /// The id that was asked for.
        job: String,
    },
    /// A lifecycle action that the node's current status does not allow.
    #[error(transparent)]
    IllegalTransition(#[from] IllegalTransition),
    /// The node already belongs to a running job; one job per node at a time.
    #[error("node {node:?} is busy with job {job}")]
    NodeBusy {
        /// The busy node.
        node: String,
        /// The job that holds it.
        job: JobId,
    },
    /// The request is malformed; `field` names the offending part.
    #[error("invalid {field}: {message}")]
    InvalidInput {
        /// Which part of the request is wrong (`extra_vars`, `nodes`, ...).
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// A compare-and-set write lost: somebody else changed the node first.
    #[error("revision conflict on node {node:?}: expected {expected}, found {actual}")]
    Conflict {
        /// The node whose revision moved.
        node: String,
        /// The revision the writer expected (0: absent).
        expected: u64,
        /// The revision the store holds (0: absent).
        actual: u64,
    },
    /// The job is not in a state that allows the request (e.g. cancel a finished job).
    #[error("job {job}: {message}")]
    JobState {
        /// The job concerned.
        job: JobId,
        /// Why the request cannot be honoured.
        message: String,
    },
    /// A registry lookup for a name nobody registered.
    #[error("unknown {kind} {name:?}; known: {}", known.join(", "))]
    UnknownComponent {
        /// Which registry (`store`, `push`, `backend`, `discovery`).
        kind: &'static str,
        /// The name asked for.
        name: String,
        /// Every registered name of that kind.
        known: Vec<&'static str>,
    },
    /// A component's configuration is wrong.
    #[error("{component} config: {message}")]
    Config {
        /// Which component was being built.
        component: String,
        /// What is wrong.
        message: String,
    },
    /// The inventory store failed (I/O, corruption, lost connection).
    #[error("inventory store: {0}")]
    Store(String),
    /// Configuration push failed as a whole (not one host: those are in the report).
    #[error("config push ({action}): {message}")]
    Push {
        /// The push action that failed.
        action: String,
        /// Why.
        message: String,
    },
    /// The clustering backend refused or failed an operation.
    #[error("{backend} backend: {operation} on {node:?}: {message}")]
    Backend {
        /// The backend kind (`swarm`, ...).
        backend: String,
        /// The operation (`join`, `drain`, ...).
        operation: String,
        /// The node it was applied to (empty for cluster-wide calls).
        node: String,
        /// Why.
        message: String,
    },
    /// The discovery layer failed (agent unreachable, protocol error).
    #[error("discovery: {0}")]
    Discovery(String),
    /// The operation is not offered by this implementation.
    #[error("not supported: {0}")]
    NotSupported(String),
    /// The manager has stopped and takes no more requests.
    #[error("manager is shut down")]
    Shutdown,
}

impl Error {
    /// A stable machine-readable code for API bodies and language bindings.
    pub fn code(&self) -> &'static str {
        match self {
            Error::NodeNotFound { .. } | Error::JobNotFound { .. } => "not_found",
            Error::IllegalTransition(_) => "illegal_transition",
            Error::NodeBusy { .. } => "node_busy",
            Error::InvalidInput { .. } => "invalid_input",
            Error::Conflict { .. } => "conflict",
            Error::JobState { .. } => "job_state",
            Error::UnknownComponent { .. } => "unknown_component",
            Error::Config { .. } => "config",
            Error::Store(_) => "store",
            Error::Push { .. } => "push",
            Error::Backend { .. } => "backend",
            Error::Discovery(_) => "discovery",
            Error::NotSupported(_) => "not_supported",
            Error::Shutdown => "shutdown",
        }
    }

    /// Shorthand for an [`Error::InvalidInput`].
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::InvalidInput {
            field: field.into(),
            message: message.into(),
        }
    }

    /// Shorthand for an [`Error::Store`] from any displayable cause.
    pub fn store(cause: impl std::fmt::Display) -> Self {
        Error::Store(cause.to_string())
    }
}
