//! Starts the real `clusterm` binary on a free loopback port with its own data
//! directory, and talks to it over HTTP.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use clusterm_examples::client::Client;
use clusterm_tests::{ChildGuard, free_port};
use serde_json::{Value, json};

/// Generous bound for anything a loaded CI machine has to do.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// A running daemon owned by the test.
pub struct Daemon {
    pub child: ChildGuard,
    pub port: u16,
    pub dir: PathBuf,
    pub token: Option<String>,
    _tmp: Option<tempfile::TempDir>,
}

/// Builder of a daemon's TOML configuration.
pub struct DaemonSpec {
    pub toml: String,
    pub env: Vec<(String, String)>,
    pub token: Option<String>,
}

impl Default for DaemonSpec {
    fn default() -> Self {
        DaemonSpec {
            toml: String::from("[discovery]\nname = \"\"\n"),
            env: Vec::new(),
            token: None,
        }
    }
}

impl DaemonSpec {
    /// Appends TOML text.
    pub fn toml(mut self, text: &str) -> Self {
        self.toml.push_str(text);
        self.toml.push('\n');
        self
    }

    /// Sets an environment variable for the daemon.
    pub fn env(mut self, k: &str, v: &str) -> Self {
        self.env.push((k.into(), v.into()));
        self
    }

    /// Turns auth on with `token`.
    pub fn token(mut self, token: &str) -> Self {
        self.token = Some(token.into());
        self.env("CLUSTERM_API__TOKEN", token)
    }
}

pub fn bin(name: &str) -> PathBuf {
    match name {
        "clusterm" => PathBuf::from(env!("CARGO_BIN_EXE_clusterm")),
        _ => PathBuf::from(env!("CARGO_BIN_EXE_clusterctl")),
    }
}

/// The command that runs the daemon with `config` in `dir`, no inherited overrides.
pub fn daemon_command(dir: &Path, port: u16, spec: &DaemonSpec) -> Command {
    let config = dir.join("clusterm.toml");
    std::fs::write(&config, &spec.toml).expect("write config");
    let mut cmd = Command::new(bin("clusterm"));
    for (k, _) in std::env::vars() {
        if k.starts_with("CLUSTERM_") {
            cmd.env_remove(k);
        }
    }
    cmd.current_dir(dir)
        .arg("--config")
        .arg(&config)
        .env("CLUSTERM_API__LISTEN", format!("127.0.0.1:{port}"))
        .env("CLUSTERM_DATA_DIR", dir.join("data"))
        .env("CLUSTERM_LOG__LEVEL", "info");
    for (k, v) in &spec.env {
        cmd.env(k, v);
    }
    cmd
}

impl Daemon {
    /// Starts a daemon in a fresh temporary directory.
    pub fn start(spec: DaemonSpec) -> Daemon {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().to_owned();
        let mut d = Daemon::start_in(&dir, spec);
        d._tmp = Some(tmp);
        d
    }

    /// Starts a daemon whose data lives in `dir` (kept across restarts).
    pub fn start_in(dir: &Path, spec: DaemonSpec) -> Daemon {
        let port = free_port("127.0.0.1");
        let cmd = daemon_command(dir, port, &spec);
        let child = ChildGuard::spawn("clusterm", cmd, &dir.join(format!("clusterm-{port}.log")))
            .expect("spawn clusterm");
        let mut d = Daemon {
            child,
            port,
            dir: dir.to_owned(),
            token: spec.token,
            _tmp: None,
        };
        d.wait_healthy();
        d
    }

    fn wait_healthy(&mut self) {
        let url = format!("http://127.0.0.1:{}/healthz", self.port);
        let deadline = Instant::now() + PATIENCE;
        loop {
            if http_ok(&url).unwrap_or(false) {
                return;
            }
            assert!(
                self.child.is_running(),
                "clusterm exited early:\n{}",
                self.child.output()
            );
            assert!(
                Instant::now() < deadline,
                "clusterm never became healthy:\n{}",
                self.child.output()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// An API client with the daemon's token.
    pub fn client(&self) -> Client {
        Client::new(&self.url(), self.token.clone())
    }

    /// A raw HTTP client with the token preset.
    pub fn http(&self) -> Raw {
        Raw {
            base: self.url(),
            token: self.token.clone(),
            http: reqwest::Client::new(),
        }
    }

    /// SIGTERM, and wait for the exit.
    pub fn stop(&mut self) {
        self.child.stop(PATIENCE);
    }

    pub fn output(&self) -> String {
        self.child.output()
    }
}

/// A thin raw HTTP helper returning (status, body as JSON or text).
pub struct Raw {
    pub base: String,
    pub token: Option<String>,
    pub http: reqwest::Client,
}

impl Raw {
    pub fn req(&self, method: &str, path: &str) -> reqwest::RequestBuilder {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut r = self.http.request(m, format!("{}{path}", self.base));
        if let Some(t) = &self.token {
            r = r.bearer_auth(t);
        }
        r
    }

    pub async fn call(&self, method: &str, path: &str, body: Option<&str>) -> (u16, Value) {
        let mut r = self.req(method, path);
        if let Some(b) = body {
            if b.len() > 64 * 1024 {
                // The server answers before reading all of an oversized body and drops
                // the connection; it must not go back to the pool.
                r = r.header("connection", "close");
            }
            r = r
                .header("content-type", "application/json")
                .body(b.to_owned());
        }
        let resp = r.send().await.expect("request");
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        let v = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, v)
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.call("GET", path, None).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.call("POST", path, Some(&body.to_string())).await
    }

    /// POSTs `body` as JSON to `path`; the response, for checks on headers or raw text.
    pub async fn post_json(&self, path: &str, body: &Value) -> reqwest::Response {
        self.req("POST", path)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap()
    }
}

/// The texts of the `line` events of a streamed job log.
pub fn line_texts(events: &[(String, String)]) -> Vec<String> {
    events
        .iter()
        .filter(|(e, _)| e == "line")
        .map(|(_, d)| {
            serde_json::from_str::<Value>(d).unwrap()["text"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect()
}

/// Whether `url` answers 200 (plain blocking HTTP, for start-up polling).
fn http_ok(url: &str) -> std::io::Result<bool> {
    use std::io::{Read, Write};
    let rest = url.trim_start_matches("http://");
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    let mut s = std::net::TcpStream::connect(host)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        s,
        "GET /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )?;
    let mut buf = String::new();
    s.read_to_string(&mut buf)?;
    Ok(buf.starts_with("HTTP/1.1 200"))
}

/// Polls `f` until it returns `Some`, failing after [`PATIENCE`].
pub async fn eventually<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Makes nodes known through the Contiv monitor-event endpoint and waits for them.
pub async fn discover_nodes(raw: &Raw, names: &[&str]) {
    let nodes: Vec<Value> = names
        .iter()
        .enumerate()
        .map(|(i, n)| json!({"label": n, "serial": format!("SN{i}"), "addr": format!("127.0.0.{}", i + 2)}))
        .collect();
    let (status, body) = raw
        .post(
            "/monitor/event",
            &json!({"monitor_event": {"name": "discovered", "nodes": nodes}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    for n in names {
        eventually(&format!("node {n} discovered"), || async {
            let (s, _) = raw.get(&format!("/v1/nodes/{n}")).await;
            (s == 200).then_some(())
        })
        .await;
    }
}

/// Waits until job `id` has finished and returns its record.
pub async fn wait_job(raw: &Raw, id: u64) -> Value {
    eventually(&format!("job {id} to finish"), || async {
        let (s, j) = raw.get(&format!("/v1/jobs/{id}")).await;
        assert_eq!(s, 200, "{j}");
        matches!(
            j["status"].as_str(),
            Some("Complete" | "Errored" | "Cancelled")
        )
        .then_some(j)
    })
    .await
}

/// Everything observable about the inventory, for "nothing changed" checks.
pub async fn snapshot(raw: &Raw) -> Value {
    let (_, nodes) = raw.get("/v1/nodes").await;
    let (_, jobs) = raw.get("/v1/jobs").await;
    let (_, globals) = raw.get("/v1/globals").await;
    let (_, cluster) = raw.get("/v1/cluster").await;
    let mut events = Vec::new();
    for n in nodes.as_array().into_iter().flatten() {
        let name = n["name"].as_str().unwrap();
        events.push(raw.get(&format!("/v1/nodes/{name}/events")).await.1);
    }
    json!({"nodes": nodes, "jobs": jobs, "globals": globals, "cluster": cluster, "events": events})
}

/// Posts `body` to `path`, expects 202 with a Location header; returns the job id.
pub async fn accepted(raw: &Raw, path: &str, body: Value) -> u64 {
    let resp = raw.post_json(path, &body).await;
    assert_eq!(resp.status().as_u16(), 202, "{path}");
    let location = resp.headers()["location"].to_str().unwrap().to_owned();
    let v: Value = resp.json().await.unwrap();
    let id = v["job"].as_u64().unwrap();
    assert_eq!(location, format!("/v1/jobs/{id}"));
    id
}

/// Waits for job `id` and expects it to be `Complete`.
pub async fn complete(raw: &Raw, id: u64) -> Value {
    let job = wait_job(raw, id).await;
    assert_eq!(job["status"], "Complete", "{job}");
    job
}
