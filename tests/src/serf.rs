//! Real serf agents for tests: each on its own loopback address (127.x.y.z, distinct
//! per process and per agent) with free gossip and RPC ports, tuned with the `local`
//! timing profile so failures are detected in seconds. Agents are killed with their
//! process group when dropped.

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::{ChildGuard, free_port, require_binary};

static NEXT_IP: AtomicU32 = AtomicU32::new(0);

/// A loopback address no other agent of this test process uses.
pub fn next_ip() -> String {
    let n = NEXT_IP.fetch_add(1, Ordering::Relaxed);
    // The second octet spreads concurrent test processes apart.
    let b = 16 + std::process::id() % 200;
    format!("127.{b}.{}.{}", n / 250, n % 250 + 2)
}

/// How to start one agent.
#[derive(Debug, Clone)]
pub struct SerfAgentSpec {
    /// Serf node name.
    pub node: String,
    /// Tags (`-tag k=v`).
    pub tags: Vec<(String, String)>,
    /// Gossip addresses to join (retried every second until one answers).
    pub join: Vec<String>,
    /// The RPC auth key, when the agent should require one.
    pub rpc_auth: Option<String>,
    /// Extra agent configuration: keys with raw JSON values (`"reconnect_timeout"`,
    /// `"\"1s\""`).
    pub config: Vec<(String, String)>,
}

impl SerfAgentSpec {
    /// An agent called `node` with no tags, joining nobody.
    pub fn new(node: &str) -> Self {
        SerfAgentSpec {
            node: node.to_owned(),
            tags: Vec::new(),
            join: Vec::new(),
            rpc_auth: None,
            config: Vec::new(),
        }
    }

    /// Adds a tag.
    pub fn tag(mut self, key: &str, value: &str) -> Self {
        self.tags.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Joins the agent at `gossip_addr` on start.
    pub fn join(mut self, gossip_addr: &str) -> Self {
        self.join.push(gossip_addr.to_owned());
        self
    }

    /// Sets an agent configuration key to a raw JSON value.
    pub fn config(mut self, key: &str, json_value: &str) -> Self {
        self.config.push((key.to_owned(), json_value.to_owned()));
        self
    }

    /// Requires `key` on the RPC interface.
    pub fn rpc_auth(mut self, key: &str) -> Self {
        self.rpc_auth = Some(key.to_owned());
        self
    }
}

/// A running serf agent owned by a test.
#[derive(Debug)]
pub struct SerfAgent {
    // Dropped first, so the agent is gone before its directory.
    guard: Option<ChildGuard>,
    spec: SerfAgentSpec,
    ip: String,
    bind_port: u16,
    rpc_port: u16,
    dir: tempfile::TempDir,
}

impl SerfAgent {
    /// Starts an agent on a fresh loopback address and waits until its RPC answers.
    pub fn start(spec: SerfAgentSpec) -> SerfAgent {
        SerfAgent::start_on(&next_ip(), spec)
    }

    /// Starts an agent on `ip` (from [`next_ip`]) and waits until its RPC answers.
    pub fn start_on(ip: &str, spec: SerfAgentSpec) -> SerfAgent {
        require_binary("serf", "serf");
        let ip = ip.to_owned();
        let mut agent = SerfAgent {
            bind_port: free_port(&ip),
            rpc_port: free_port(&ip),
            ip,
            spec,
            dir: tempfile::tempdir().expect("temp dir for a serf agent"),
            guard: None,
        };
        agent.launch();
        agent
    }

    /// The node name.
    pub fn node(&self) -> &str {
        &self.spec.node
    }

    /// The loopback address it runs on.
    pub fn ip(&self) -> &str {
        &self.ip
    }

    /// Gossip address, `ip:port`, for others to join.
    pub fn gossip_addr(&self) -> String {
        format!("{}:{}", self.ip, self.bind_port)
    }

    /// RPC address, `ip:port`.
    pub fn rpc_addr(&self) -> String {
        format!("{}:{}", self.ip, self.rpc_port)
    }

    /// Whether the process runs.
    pub fn is_running(&mut self) -> bool {
        self.guard.as_mut().is_some_and(|g| g.is_running())
    }

    /// `kill -9`: the agent vanishes without leaving.
    pub fn kill(&mut self) {
        if let Some(mut g) = self.guard.take() {
            g.kill();
        }
    }

    /// Waits up to `timeout` for the process to exit on its own (after `serf leave`).
    pub fn wait_exit(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if !self.is_running() {
                self.guard.take();
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    /// Starts it again after a kill, same name, address, ports and tags.
    pub fn restart(&mut self) {
        self.kill();
        self.launch();
    }

    /// The agent's log so far.
    pub fn output(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("serf.log")
    }

    fn launch(&mut self) {
        let mut cmd = Command::new("serf");
        cmd.arg("agent")
            .arg(format!("-node={}", self.spec.node))
            .arg(format!("-bind={}", self.gossip_addr()))
            .arg(format!("-rpc-addr={}", self.rpc_addr()))
            .arg("-profile=local")
            .arg("-log-level=debug");
        for (k, v) in &self.spec.tags {
            cmd.arg("-tag").arg(format!("{k}={v}"));
        }
        for j in &self.spec.join {
            cmd.arg(format!("-retry-join={j}"))
                .arg("-retry-interval=1s");
        }
        // Settings go in a file; the auth key so it never shows in the process list.
        let mut fields: Vec<String> = self
            .spec
            .config
            .iter()
            .map(|(k, v)| format!("{}: {v}", json_string(k)))
            .collect();
        if let Some(key) = &self.spec.rpc_auth {
            fields.push(format!("\"rpc_auth\": {}", json_string(key)));
        }
        if !fields.is_empty() {
            let conf = self.dir.path().join("agent.json");
            std::fs::write(&conf, format!("{{{}}}", fields.join(", "))).expect("write serf config");
            cmd.arg(format!("-config-file={}", conf.display()));
        }
        let guard = ChildGuard::spawn(&format!("serf {}", self.spec.node), cmd, &self.log_path())
            .unwrap_or_else(|e| panic!("cannot start serf agent {}: {e}", self.spec.node));
        self.guard = Some(guard);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if std::net::TcpStream::connect(self.rpc_addr()).is_ok() {
                return;
            }
            if !self.is_running() {
                panic!(
                    "serf agent {} exited on start:\n{}",
                    self.spec.node,
                    self.output()
                );
            }
            if Instant::now() > deadline {
                panic!(
                    "serf agent {} RPC {} not up after 30 s:\n{}",
                    self.spec.node,
                    self.rpc_addr(),
                    self.output()
                );
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }
}

fn json_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
