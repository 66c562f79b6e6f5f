//! Configuration of the `serf` discovery: where the agent's RPC listens and how to
//! authenticate. The auth key is a secret: it never appears in `Debug` output or logs.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::SerfError;

/// The agent's `rpc_auth` key; `Debug` prints it redacted.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AuthKey(String);

impl AuthKey {
    /// Wraps a key.
    pub fn new(key: impl Into<String>) -> Self {
        AuthKey(key.into())
    }

    /// The key itself, for the `auth` command only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<&str> for AuthKey {
    fn from(key: &str) -> Self {
        AuthKey::new(key)
    }
}

impl std::fmt::Debug for AuthKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuthKey(<redacted>)")
    }
}

/// The `serf` discovery section of the daemon's configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SerfConfig {
    /// The local agent's RPC address.
    pub rpc_addr: String,
    /// The agent's `rpc_auth` key, when it has one.
    pub auth_key: Option<AuthKey>,
    /// Longest wait for a connection or an answer, in milliseconds.
    pub timeout_ms: u64,
    /// First wait before reconnecting to a lost agent, in milliseconds; doubles per failure.
    pub min_backoff_ms: u64,
    /// Cap of the reconnect wait, in milliseconds.
    pub max_backoff_ms: u64,
    /// How often the member list is re-read while the stream runs, in milliseconds (0:
    /// never). Repairs events the agent dropped under load and notices an agent that
    /// stopped answering without closing the connection.
    pub resync_ms: u64,
}

impl Default for SerfConfig {
    fn default() -> Self {
        SerfConfig {
            rpc_addr: "127.0.0.1:7373".into(),
            auth_key: None,
            timeout_ms: 10_000,
            min_backoff_ms: 100,
            max_backoff_ms: 10_000,
            resync_ms: 60_000,
        }
    }
}

impl SerfConfig {
    /// The default configuration for an agent at `rpc_addr`.
    pub fn new(rpc_addr: impl Into<String>) -> Self {
        SerfConfig {
            rpc_addr: rpc_addr.into(),
            ..SerfConfig::default()
        }
    }

    /// Sets the auth key.
    pub fn auth_key(mut self, key: impl Into<String>) -> Self {
        self.auth_key = Some(AuthKey::new(key));
        self
    }

    /// Checks the values make sense.
    pub fn validate(&self) -> Result<(), SerfError> {
        if self.rpc_addr.trim().is_empty() || !self.rpc_addr.contains(':') {
            return Err(SerfError::Config(format!(
                "rpc_addr {:?} must be host:port",
                self.rpc_addr
            )));
        }
        if self.timeout_ms == 0 {
            return Err(SerfError::Config("timeout_ms must be positive".into()));
        }
        if self.min_backoff_ms == 0 || self.min_backoff_ms > self.max_backoff_ms {
            return Err(SerfError::Config(format!(
                "min_backoff_ms ({}) must be positive and at most max_backoff_ms ({})",
                self.min_backoff_ms, self.max_backoff_ms
            )));
        }
        Ok(())
    }

    /// The request timeout.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    /// The resync period, if any.
    pub fn resync(&self) -> Option<Duration> {
        (self.resync_ms > 0).then(|| Duration::from_millis(self.resync_ms))
    }

    pub(crate) fn client_options(&self) -> crate::ClientOptions {
        crate::ClientOptions::new(self.rpc_addr.clone())
            .auth_key(self.auth_key.clone())
            .timeout(self.timeout())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_key_never_shows_in_debug() {
        let c = SerfConfig::new("127.0.0.1:7373").auth_key("hunter2-secret");
        let shown = format!("{c:?} {:?}", c.client_options());
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("redacted"), "{shown}");
    }

    #[test]
    fn unknown_fields_and_bad_values_are_refused() {
        let typo = serde_json::json!({"rpc_adr": "127.0.0.1:7373"});
        let err = serde_json::from_value::<SerfConfig>(typo).unwrap_err();
        assert!(err.to_string().contains("rpc_adr"), "{err}");
        let c: SerfConfig =
            serde_json::from_value(serde_json::json!({"rpc_addr": "nowhere"})).unwrap();
        assert!(c.validate().unwrap_err().to_string().contains("nowhere"));
        assert!(SerfConfig::default().validate().is_ok());
    }
}
