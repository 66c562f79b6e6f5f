//! The one error type of `discovery-serf`: every variant names the agent address or
//! the command, so a message is useful on its own.

/// Result alias for this crate.
pub type Result<T, E = SerfError> = std::result::Result<T, E>;

/// What can go wrong talking to a Serf agent.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SerfError {
    /// The agent's RPC address could not be reached.
    #[error("serf agent at {addr}: cannot connect: {source}")]
    Connect {
        /// The RPC address.
        addr: String,
        /// The socket error.
        source: std::io::Error,
    },
    /// The agent refused the auth key (or needs one and none was given).
    #[error("serf agent at {addr}: authentication failed: {message}")]
    Auth {
        /// The RPC address.
        addr: String,
        /// The agent's own words.
        message: String,
    },
    /// The agent answered a command with an error.
    #[error("serf agent at {addr}: {command}: {message}")]
    Rpc {
        /// The RPC address.
        addr: String,
        /// The command that failed.
        command: String,
        /// The agent's error string.
        message: String,
    },
    /// The agent sent something that is not Serf RPC (malformed or unexpected frame).
    #[error("serf agent at {addr}: protocol violation: {message}")]
    Protocol {
        /// The RPC address.
        addr: String,
        /// What was wrong.
        message: String,
    },
    /// The connection closed or failed (the agent stopped, or a frame was cut short).
    #[error("serf agent at {addr}: connection lost: {message}")]
    Disconnected {
        /// The RPC address.
        addr: String,
        /// Why.
        message: String,
    },
    /// The agent did not answer in time.
    #[error("serf agent at {addr}: {command}: no answer within {after:?}")]
    Timeout {
        /// The RPC address.
        addr: String,
        /// The command that got no answer.
        command: String,
        /// How long we waited.
        after: std::time::Duration,
    },
    /// The discovery configuration is wrong.
    #[error("serf config: {0}")]
    Config(String),
}

impl SerfError {
    /// Whether the connection is gone (a new one may work), as opposed to a refused command.
    pub fn is_connection(&self) -> bool {
        matches!(
            self,
            SerfError::Connect { .. }
                | SerfError::Disconnected { .. }
                | SerfError::Protocol { .. }
                | SerfError::Timeout { .. }
        )
    }
}

impl From<SerfError> for cluster_core::Error {
    fn from(e: SerfError) -> Self {
        match e {
            SerfError::Config(message) => cluster_core::Error::Config {
                component: "serf".into(),
                message,
            },
            other => cluster_core::Error::Discovery(other.to_string()),
        }
    }
}
