//! The backend's configuration: how to reach each node's Docker engine (an endpoint
//! template, per-node overrides, TLS) and the swarm's ports and timings. Parsed with
//! `deny_unknown_fields` so a typo is an error, and checked before any engine is dialled.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Result, SwarmError};

/// Settings of a [`crate::SwarmBackend`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SwarmConfig {
    /// Engine endpoint of a node, with `{addr}` (management address) and `{name}`
    /// placeholders: `unix:///var/run/docker.sock`, `tcp://{addr}:2376`, ...
    pub engine: String,
    /// Endpoints of particular nodes, keyed by node name or management address;
    /// they win over `engine`.
    pub endpoints: BTreeMap<String, String>,
    /// Client certificates for `tcp://` and `https://` endpoints.
    pub tls: Option<TlsConfig>,
    /// Port of the swarm control plane on every node (listen and advertise).
    pub swarm_port: u16,
    /// Management addresses of existing managers, tried first to find the swarm.
    pub managers: Vec<String>,
    /// Seconds one Engine API request may take.
    pub request_timeout_secs: u64,
    /// Seconds to wait for the swarm to settle (a role change to take effect; promoting
    /// a node demoted moments before takes the engine about half a minute).
    pub settle_timeout_secs: u64,
    /// Heartbeat period given to a new swarm, in seconds (how fast a dead node is
    /// seen down); the engine default when absent.
    pub dispatcher_heartbeat_secs: Option<u64>,
}

impl Default for SwarmConfig {
    fn default() -> Self {
        SwarmConfig {
            engine: "unix:///var/run/docker.sock".into(),
            endpoints: BTreeMap::new(),
            tls: None,
            swarm_port: 2377,
            managers: Vec::new(),
            request_timeout_secs: 30,
            settle_timeout_secs: 120,
            dispatcher_heartbeat_secs: None,
        }
    }
}

/// Client TLS material (PEM files), as for `docker --tlsverify`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// CA certificate the engines' certificates are checked against.
    pub ca: PathBuf,
    /// Client certificate.
    pub cert: PathBuf,
    /// Client private key.
    pub key: PathBuf,
}

/// The transport an endpoint names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scheme {
    Unix,
    Tcp,
}

impl SwarmConfig {
    /// Checks the configuration as a whole; every endpoint is validated here so a bad
    /// one fails the build of the backend, not a job later.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(SwarmError::Config(m));
        if self.swarm_port == 0 {
            return bad("swarm_port must not be 0".into());
        }
        if self.request_timeout_secs == 0 || self.settle_timeout_secs == 0 {
            return bad("timeouts must be at least 1 second".into());
        }
        if self.dispatcher_heartbeat_secs == Some(0) {
            return bad("dispatcher_heartbeat_secs must be at least 1".into());
        }
        for (what, endpoint) in std::iter::once(("engine", &self.engine))
            .chain(self.endpoints.iter().map(|(k, v)| (k.as_str(), v)))
        {
            scheme(endpoint).map_err(|m| SwarmError::Config(format!("{what}: {m}")))?;
        }
        if let Some(tls) = &self.tls {
            for (what, p) in [("ca", &tls.ca), ("cert", &tls.cert), ("key", &tls.key)] {
                if !p.is_file() {
                    return bad(format!(
                        "tls.{what}: {} is not a readable file",
                        p.display()
                    ));
                }
            }
        }
        Ok(())
    }

    /// The engine endpoint of the node `name` at `addr`.
    pub fn endpoint(&self, name: Option<&str>, addr: &str) -> Result<String, String> {
        if let Some(e) = name
            .and_then(|n| self.endpoints.get(n))
            .or(self.endpoints.get(addr))
        {
            return Ok(e.clone());
        }
        let host =
            if scheme(&self.engine)? == Scheme::Tcp && addr.parse::<std::net::Ipv6Addr>().is_ok() {
                format!("[{addr}]")
            } else {
                addr.to_owned()
            };
        let mut out = self.engine.replace("{addr}", &host);
        if out.contains("{name}") {
            let name =
                name.ok_or("the endpoint template needs {name} and the node name is unknown")?;
            out = out.replace("{name}", name);
        }
        Ok(out)
    }

    /// `addr:port` of the swarm control plane on a node.
    pub(crate) fn swarm_addr(&self, addr: &str) -> String {
        if addr.parse::<std::net::Ipv6Addr>().is_ok() {
            format!("[{addr}]:{}", self.swarm_port)
        } else {
            format!("{addr}:{}", self.swarm_port)
        }
    }

    /// How long to wait for the swarm to settle.
    pub(crate) fn settle_timeout(&self) -> Duration {
        Duration::from_secs(self.settle_timeout_secs)
    }
}

/// The scheme of an endpoint, or why it is not one the backend can dial.
pub(crate) fn scheme(endpoint: &str) -> Result<Scheme, String> {
    match endpoint.split_once("://") {
        Some(("unix", path)) if path.starts_with('/') => Ok(Scheme::Unix),
        Some(("unix", _)) => Err(format!(
            "{endpoint:?}: unix endpoints need an absolute path"
        )),
        Some(("tcp" | "http" | "https", rest)) if !rest.is_empty() => Ok(Scheme::Tcp),
        _ => Err(format!(
            "{endpoint:?}: expected unix:///path, tcp://host:port, http:// or https://"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(v: serde_json::Value) -> Result<SwarmConfig, String> {
        serde_json::from_value::<SwarmConfig>(v).map_err(|e| e.to_string())
    }

    #[test]
    fn endpoints_come_from_overrides_then_the_template() {
        let mut c = SwarmConfig {
            engine: "tcp://{addr}:2376".into(),
            ..SwarmConfig::default()
        };
        c.endpoints
            .insert("n2".into(), "unix:///run/n2.sock".into());
        c.endpoints
            .insert("10.0.0.3".into(), "tcp://10.0.0.3:2375".into());
        assert_eq!(
            c.endpoint(Some("n1"), "10.0.0.1").unwrap(),
            "tcp://10.0.0.1:2376"
        );
        assert_eq!(
            c.endpoint(Some("n2"), "10.0.0.2").unwrap(),
            "unix:///run/n2.sock"
        );
        assert_eq!(c.endpoint(None, "10.0.0.3").unwrap(), "tcp://10.0.0.3:2375");
        assert_eq!(c.endpoint(None, "fd00::1").unwrap(), "tcp://[fd00::1]:2376");
        assert_eq!(c.swarm_addr("fd00::1"), "[fd00::1]:2377");
        assert_eq!(c.swarm_addr("10.0.0.1"), "10.0.0.1:2377");

        c.engine = "unix:///run/docker-{name}.sock".into();
        assert_eq!(
            c.endpoint(Some("n1"), "10.0.0.1").unwrap(),
            "unix:///run/docker-n1.sock"
        );
        let err = c.endpoint(None, "10.0.0.9").unwrap_err();
        assert!(err.contains("{name}"), "{err}");
    }

    #[test]
    fn unknown_fields_and_bad_endpoints_are_errors() {
        let err = parse(serde_json::json!({ "engin": "tcp://{addr}:2376" })).unwrap_err();
        assert!(err.contains("engin"), "{err}");

        let c = parse(serde_json::json!({ "engine": "ftp://{addr}" })).unwrap();
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("ftp://"), "{err}");

        let c =
            parse(serde_json::json!({ "endpoints": { "n1": "unix://relative.sock" } })).unwrap();
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("n1") && err.contains("absolute"), "{err}");

        let c = parse(serde_json::json!({ "tls": { "ca": "/nonexistent/ca.pem", "cert": "/nonexistent/c.pem", "key": "/nonexistent/k.pem" } })).unwrap();
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("tls.ca"), "{err}");

        let c = parse(serde_json::json!({ "swarm_port": 0 })).unwrap();
        assert!(c.validate().is_err());
        assert!(SwarmConfig::default().validate().is_ok());
    }
}
