//! The daemon's configuration: a TOML file, then `CLUSTERM_*` environment overrides
//! (`CLUSTERM_API__LISTEN`, `CLUSTERM_STORE__NAME`, `CLUSTERM_DATA_DIR`, ...: sections
//! and keys joined by `__`). Unknown keys are errors, in the file and in the environment.
//! Components (store, discovery, push, backend) are chosen by registry name; each has
//! its own `config` table handed to its factory.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use cluster_core::ManagerConfig;
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Value, json};

/// Everything the daemon is configured with.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DaemonConfig {
    /// Directory for the durable store and job logs.
    pub data_dir: PathBuf,
    /// HTTP API.
    pub api: ApiSection,
    /// Logging.
    pub log: LogSection,
    /// Inventory store (`redb`, `memory`, ...).
    pub store: Component,
    /// Discovery (`serf`; an empty name runs without discovery).
    pub discovery: Component,
    /// Configuration push (`noop`, `ansible`, `command`, ...).
    pub push: Component,
    /// Clustering backend (`swarm`, ...; an empty name configures nodes only).
    pub backend: Component,
    /// Dynamic plugins (cdylibs) to load before components are built.
    pub plugins: Vec<PathBuf>,
    /// Manager policies (host groups, timeouts, auto-commission, logs).
    pub manager: ManagerConfig,
}

/// HTTP API settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiSection {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Bearer token required on every request but `/healthz`; empty: no auth.
    pub token: Secret,
    /// Largest request body, in bytes.
    pub body_limit: usize,
}

/// Log output.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSection {
    /// `text` or `json`.
    pub format: LogFormat,
    /// A tracing filter (`info`, `cluster_core=debug,info`, ...).
    pub level: String,
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// A component chosen by its registry name, with the table its factory receives.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Component {
    /// Registry name; empty means "none" where a component is optional.
    pub name: String,
    /// The factory's own settings.
    #[serde(default = "empty_table")]
    pub config: Value,
}

fn empty_table() -> Value {
    json!({})
}

impl Component {
    fn named(name: &str) -> Self {
        Component {
            name: name.to_owned(),
            config: empty_table(),
        }
    }

    /// Whether a component is configured at all.
    pub fn is_set(&self) -> bool {
        !self.name.trim().is_empty()
    }
}

/// A secret string: never printed, accepted as any scalar (environment values that
/// look like numbers stay tokens).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The secret itself, when set.
    pub fn expose(&self) -> Option<&str> {
        (!self.0.is_empty()).then_some(self.0.as_str())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() {
            "<unset>"
        } else {
            "<redacted>"
        })
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Secret;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a token string")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Secret, E> {
                Ok(Secret(v.to_owned()))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Secret, E> {
                Ok(Secret(v.to_string()))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Secret, E> {
                Ok(Secret(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

impl Default for DaemonConfig {
    fn default() -> Self {
        DaemonConfig {
            data_dir: PathBuf::from("./clusterm-data"),
            api: ApiSection::default(),
            log: LogSection::default(),
            store: Component::named("redb"),
            discovery: Component::named("serf"),
            push: Component::named("noop"),
            backend: Component::named(""),
            plugins: Vec::new(),
            manager: ManagerConfig::default(),
        }
    }
}

impl Default for ApiSection {
    fn default() -> Self {
        ApiSection {
            listen: SocketAddr::from(([127, 0, 0, 1], 9007)),
            token: Secret::default(),
            body_limit: 1024 * 1024,
        }
    }
}

impl Default for LogSection {
    fn default() -> Self {
        LogSection {
            format: LogFormat::Text,
            level: "info".into(),
        }
    }
}

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file is missing, unreadable or invalid, or an override is wrong.
    #[error("configuration: {0}")]
    Invalid(String),
}

impl DaemonConfig {
    /// Loads the defaults, then `file` (when given), then the `CLUSTERM_*` environment.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut fig = Figment::from(Serialized::defaults(DaemonConfig::default()));
        if let Some(path) = file {
            if !path.is_file() {
                return Err(ConfigError::Invalid(format!(
                    "config file {} not found",
                    path.display()
                )));
            }
            fig = fig.merge(Toml::file_exact(path));
        }
        // `CLUSTERM_CONFIG_FILE` names the file itself; it is not a setting.
        fig = fig.merge(
            Env::prefixed("CLUSTERM_")
                .ignore(&["config_file"])
                .split("__"),
        );
        let mut config: DaemonConfig = fig
            .extract()
            .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        config.fill_in();
        Ok(config)
    }

    /// Derives what follows from other settings: the redb store and job logs live in
    /// the data directory unless told otherwise.
    fn fill_in(&mut self) {
        if self.store.name == "redb" {
            if let Value::Object(map) = &mut self.store.config {
                if !map.contains_key("dir") && !map.contains_key("path") {
                    map.insert("dir".into(), json!(self.data_dir));
                }
            }
        }
        if self.manager.log_dir.is_none() {
            self.manager.log_dir = Some(self.data_dir.join("logs"));
        }
    }

    /// The settings in the shape Contiv's `GET /config` returned, secrets removed.
    pub fn contiv_shape(&self) -> Value {
        let store_file = self
            .store
            .config
            .get("dir")
            .or_else(|| self.store.config.get("path"))
            .cloned()
            .unwrap_or(Value::String(String::new()));
        let serf_addr = self
            .discovery
            .config
            .get("rpc_addr")
            .cloned()
            .unwrap_or_else(|| json!("127.0.0.1:7373"));
        // Contiv's Ansible settings, read from the `ansible` push when that is the one
        // configured (empty strings otherwise, as Contiv printed unset ones).
        let ansible = (self.push.name == "ansible").then_some(&self.push.config);
        let text = |path: &[&str]| {
            let mut v = ansible;
            for key in path {
                v = v.and_then(|v| v.get(*key));
            }
            v.cloned()
                .filter(|v| v.is_string())
                .unwrap_or_else(|| json!(""))
        };
        let configure = match text(&["playbooks", "provision"]) {
            Value::String(s) if s.is_empty() => text(&["site_playbook"]),
            other => other,
        };
        json!({
            "serf": {"Addr": serf_addr, "AuthKey": "", "Timeout": 0},
            "inventory": {"boltdb": {"dbfile": store_file}},
            "ansible": {
                "configure_playbook": configure,
                "cleanup_playbook": text(&["playbooks", "cleanup"]),
                "upgrade_playbook": text(&["playbooks", "upgrade"]),
                "playbook_location": text(&["playbook_dir"]),
                "extra_variables": "",
                "user": text(&["user"]),
                "priv_key_file": text(&["private_key"]),
            },
            "manager": {"addr": self.api.listen.to_string()},
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_accept_any_scalar_and_never_print() {
        let s: Secret = serde_json::from_value(json!(12345)).unwrap();
        assert_eq!(s.expose(), Some("12345"));
        let s: Secret = serde_json::from_value(json!("tok")).unwrap();
        assert_eq!(format!("{s:?}"), "<redacted>");
        assert_eq!(Secret::default().expose(), None);
        assert_eq!(format!("{:?}", Secret::default()), "<unset>");
        let c = DaemonConfig {
            api: ApiSection {
                token: s,
                ..ApiSection::default()
            },
            ..DaemonConfig::default()
        };
        assert!(!format!("{c:?}").contains("tok\""));
    }

    #[test]
    fn redb_lives_in_the_data_dir_unless_told_otherwise() {
        let mut c = DaemonConfig {
            data_dir: PathBuf::from("/d"),
            ..DaemonConfig::default()
        };
        c.fill_in();
        assert_eq!(c.store.config["dir"], json!("/d"));
        assert_eq!(c.manager.log_dir, Some(PathBuf::from("/d/logs")));

        let mut c = DaemonConfig::default();
        c.store.config = json!({"path": "/elsewhere"});
        c.fill_in();
        assert!(c.store.config.get("dir").is_none());
        assert_eq!(
            c.contiv_shape()["inventory"]["boltdb"]["dbfile"],
            "/elsewhere"
        );
    }

    #[test]
    fn the_contiv_shape_hides_secrets() {
        let mut c = DaemonConfig::default();
        c.discovery.config = json!({"rpc_addr": "127.0.0.1:7000", "auth_key": "k3y"});
        let shape = c.contiv_shape();
        assert_eq!(shape["serf"]["Addr"], "127.0.0.1:7000");
        assert_eq!(shape["serf"]["AuthKey"], "");
        assert!(!shape.to_string().contains("k3y"));
        assert_eq!(shape["manager"]["addr"], "127.0.0.1:9007");
        assert_eq!(shape["ansible"]["user"], "");

        c.push = Component {
            name: "ansible".into(),
            config: json!({"playbook_dir": "/pb", "site_playbook": "site.yml",
                "playbooks": {"cleanup": "cleanup.yml"}, "user": "ops"}),
        };
        let shape = c.contiv_shape();
        assert_eq!(shape["ansible"]["configure_playbook"], "site.yml");
        assert_eq!(shape["ansible"]["cleanup_playbook"], "cleanup.yml");
        assert_eq!(shape["ansible"]["upgrade_playbook"], "");
        assert_eq!(shape["ansible"]["playbook_location"], "/pb");
        assert_eq!(shape["ansible"]["user"], "ops");
    }
}
