//! The daemon binary itself: configuration (file, environment, unknown keys), logs,
//! defaults that run with nothing else started, real Serf discovery, and SIGTERM.

mod common;

use std::process::Command;
use std::time::Duration;

use clusterm_tests::free_port;
use common::{Daemon, DaemonSpec, bin, daemon_command, eventually};
use serde_json::Value;

/// Runs the daemon expecting it to refuse to start; returns its stderr.
fn refused(spec: DaemonSpec) -> String {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = daemon_command(dir.path(), free_port("127.0.0.1"), &spec);
    let out = cmd.output().unwrap();
    assert!(
        !out.status.success(),
        "clusterm started despite a bad config"
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn unknown_or_wrong_settings_are_refused() {
    let err = refused(DaemonSpec::default().toml("[api]\nlisten_addr = \"127.0.0.1:1\""));
    assert!(err.contains("listen_addr"), "{err}");
    let err = refused(DaemonSpec::default().toml("colour = \"blue\""));
    assert!(err.contains("colour"), "{err}");
    let err = refused(DaemonSpec::default().env("CLUSTERM_API__LISTN", "127.0.0.1:1"));
    assert!(err.to_lowercase().contains("listn"), "{err}");
    let err = refused(DaemonSpec::default().env("CLUSTERM_API__BODY_LIMIT", "lots"));
    assert!(err.to_lowercase().contains("body_limit"), "{err}");
    let err = refused(DaemonSpec::default().toml("[manager]\njob_timeoutt = 5"));
    assert!(err.contains("job_timeoutt"), "{err}");
    let err = refused(DaemonSpec::default().env("CLUSTERM_STORE__NAME", "mongo"));
    assert!(err.contains("mongo") && err.contains("redb"), "{err}");
    let err = refused(DaemonSpec::default().env("CLUSTERM_STORE__CONFIG__DIRECTORY", "/tmp/x"));
    assert!(err.to_lowercase().contains("directory"), "{err}");
    let err = refused(DaemonSpec::default().env("CLUSTERM_PUSH__NAME", "puppet"));
    assert!(
        err.contains("puppet") && err.contains("noop") && err.contains("command"),
        "{err}"
    );
    // The component crates are linked in: their names are offered.
    let err = refused(DaemonSpec::default().env("CLUSTERM_DISCOVERY__NAME", "consul"));
    assert!(err.contains("consul"), "{err}");
    #[cfg(feature = "serf")]
    assert!(err.contains("serf"), "{err}");
    let err = refused(DaemonSpec::default().env("CLUSTERM_BACKEND__NAME", "nomad"));
    assert!(err.contains("nomad"), "{err}");
    #[cfg(feature = "swarm")]
    assert!(err.contains("swarm"), "{err}");

    let out = Command::new(bin("clusterm"))
        .args(["--config", "/nonexistent/clusterm.toml"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not found"));
}

#[test]
fn defaults_with_file_and_environment_overrides() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(bin("clusterm"))
        .current_dir(dir.path())
        .env_remove("CLUSTERM_API__TOKEN")
        .arg("--print-config")
        .output()
        .unwrap();
    let c: Value = serde_json::from_slice(&out.stdout).expect("config as JSON");
    assert_eq!(c["api"]["listen"], "127.0.0.1:9007");
    assert_eq!(c["store"]["name"], "redb");
    assert_eq!(c["store"]["config"]["dir"], "./clusterm-data");
    assert_eq!(c["discovery"]["name"], "serf");
    assert_eq!(c["log"]["format"], "text");

    let config = dir.path().join("c.toml");
    std::fs::write(
        &config,
        "[api]\ntoken = \"from-file\"\nbody_limit = 4096\n[push]\nname = \"noop\"\n[manager]\njob_timeout = 30\n",
    )
    .unwrap();
    let out = Command::new(bin("clusterm"))
        .current_dir(dir.path())
        .env("CLUSTERM_CONFIG_FILE", &config)
        .env("CLUSTERM_API__BODY_LIMIT", "8192")
        .env("CLUSTERM_DATA_DIR", "/srv/clusterm")
        .env("CLUSTERM_LOG__FORMAT", "json")
        .arg("--print-config")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains("from-file"), "the token is printed: {text}");
    let c: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(c["api"]["body_limit"], 8192, "environment beats the file");
    assert_eq!(c["manager"]["job_timeout"], 30.0);
    assert_eq!(c["store"]["config"]["dir"], "/srv/clusterm");
    assert_eq!(c["manager"]["log_dir"], "/srv/clusterm/logs");
    assert_eq!(c["log"]["format"], "json");
}

#[cfg(feature = "serf")]
#[tokio::test]
async fn serves_while_serf_is_absent_and_logs_json() {
    // Nothing listens on this port: discovery waits, the API serves.
    let rpc = format!("127.0.0.1:{}", free_port("127.0.0.1"));
    let d = Daemon::start(
        DaemonSpec {
            toml: String::new(),
            ..DaemonSpec::default()
        }
        .env("CLUSTERM_DISCOVERY__CONFIG__RPC_ADDR", &rpc)
        .env("CLUSTERM_LOG__FORMAT", "json"),
    );
    let raw = d.http();
    let (s, nodes) = raw.get("/v1/nodes").await;
    assert_eq!((s, nodes), (200, serde_json::json!([])));
    let line = eventually("discovery waiting in the log", || async {
        d.output()
            .lines()
            .find(|l| l.contains("discovery is waiting"))
            .map(str::to_owned)
    })
    .await;
    let v: Value = serde_json::from_str(&line).expect("log lines are JSON");
    assert_eq!(v["level"], "WARN");
    assert!(
        d.dir.join("data/inventory.redb").is_file(),
        "redb store in the data dir"
    );
    assert_eq!(raw.get("/healthz").await.0, 200);
}

#[cfg(feature = "serf")]
#[tokio::test]
async fn discovers_nodes_from_a_real_serf_agent() {
    use clusterm_tests::serf::{SerfAgent, SerfAgentSpec};
    let agent = SerfAgent::start(
        SerfAgentSpec::new("serf-node-1")
            .tag("NodeLabel", "rack1-node1")
            .tag("NodeSerial", "SER-1"),
    );
    let d = Daemon::start(DaemonSpec {
        toml: format!(
            "[discovery]\nname = \"serf\"\nconfig = {{ rpc_addr = \"{}\" }}\n",
            agent.rpc_addr()
        ),
        ..DaemonSpec::default()
    });
    let raw = d.http();
    let node = eventually("the agent's node in the inventory", || async {
        let (s, n) = raw.get("/v1/nodes/rack1-node1").await;
        (s == 200).then_some(n)
    })
    .await;
    assert_eq!(node["status"], "Discovered");
    assert_eq!(node["serial"], "SER-1");
    assert_eq!(node["reachability"]["state"], "reachable");
}

#[tokio::test]
async fn sigterm_stops_cleanly_with_followers_attached() {
    let dir = tempfile::tempdir().unwrap();
    let mut d = Daemon::start_in(dir.path(), DaemonSpec::default());
    let raw = d.http();
    common::discover_nodes(&raw, &["n1"]).await;
    // A follower of the audit log stays connected until shutdown.
    let mut follower = raw.req("GET", "/v1/events").send().await.unwrap();
    assert_eq!(follower.status().as_u16(), 200);
    let first = tokio::time::timeout(common::PATIENCE, follower.chunk())
        .await
        .unwrap()
        .unwrap();
    assert!(first.is_some());

    d.child.signal(libc::SIGTERM);
    let ended = tokio::time::timeout(common::PATIENCE, async {
        while let Ok(Some(_)) = follower.chunk().await {}
    })
    .await;
    assert!(ended.is_ok(), "the event stream was not closed on shutdown");
    let deadline = std::time::Instant::now() + common::PATIENCE;
    while d.child.is_running() {
        assert!(
            std::time::Instant::now() < deadline,
            "clusterm did not exit on SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let out = d.output();
    assert!(out.contains("clusterm stopped"), "{out}");

    // The inventory survives the restart.
    let d = Daemon::start_in(dir.path(), DaemonSpec::default());
    assert_eq!(d.http().get("/v1/nodes/n1").await.0, 200);
}
