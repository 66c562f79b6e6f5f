//! Helpers of the Swarm end-to-end tests: the swarm as the `docker` CLI reports it,
//! waiting for a job with the engines' logs on failure, a push that observes node
//! availability during upgrades, and a log capture.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use cluster_core::{
    ConfigPush, JobId, JobReport, JobSpec, JobStatus, LogSink, Manager, PushAction,
};
use clusterm_tests::dockerd::{Dockerd, DockerdSet};

/// Waiting bound for anything the swarm or the manager does on a loaded machine.
pub const WAIT: Duration = Duration::from_secs(180);

/// Runs a request's job to its end and insists it completed; on failure the panic
/// carries the tail of every engine's log.
pub async fn complete(
    m: &Manager,
    daemons: &DockerdSet,
    what: &str,
    id: cluster_core::Result<JobId>,
) {
    let id = id.unwrap_or_else(|e| panic!("{what} refused: {e}"));
    let job = tokio::time::timeout(WAIT, m.wait_job(id))
        .await
        .unwrap_or_else(|_| panic!("{what}: job {id} still running after {WAIT:?}"))
        .unwrap();
    if job.status != JobStatus::Complete {
        let tails: Vec<String> = daemons
            .daemons()
            .iter()
            .map(Dockerd::output)
            .map(|l| {
                let mut from = l.len().saturating_sub(3000);
                while !l.is_char_boundary(from) {
                    from += 1;
                }
                l[from..].to_owned()
            })
            .collect();
        panic!("{what}: job {id} ended {job:?}\nengine logs (tails): {tails:#?}");
    }
}

/// Addresses of the three engines.
pub const ADDRS: [&str; 3] = ["127.0.0.1", "127.0.0.2", "127.0.0.3"];

/// A swarm control port free on all three addresses.
pub fn swarm_port() -> u16 {
    loop {
        let p = clusterm_tests::free_port(ADDRS[0]);
        if ADDRS[1..]
            .iter()
            .all(|a| std::net::TcpListener::bind((*a, p)).is_ok())
        {
            return p;
        }
    }
}

/// One row of `docker node ls`, as the CLI sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub name: String,
    pub role: String,
    pub availability: String,
    pub state: String,
}

/// The swarm's nodes according to the `docker` CLI on `d` (a manager), by name.
pub fn node_ls(d: &Dockerd) -> Vec<Row> {
    let ids = d.docker(&["node", "ls", "-q"]);
    assert!(ids.status.success(), "docker node ls: {ids:?}");
    let ids = String::from_utf8_lossy(&ids.stdout).into_owned();
    let mut args = vec![
        "node",
        "inspect",
        "--format",
        "{{index .Spec.Labels \"clusterm.node\"}}|{{.Spec.Role}}|{{.Spec.Availability}}|{{.Status.State}}",
    ];
    args.extend(ids.split_whitespace());
    let out = d.docker(&args);
    assert!(out.status.success(), "docker node inspect: {out:?}");
    let mut rows: Vec<Row> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split('|').collect();
            Row {
                name: f[0].into(),
                role: f[1].into(),
                availability: f[2].into(),
                state: f[3].into(),
            }
        })
        .collect();
    rows.sort_by(|a, b| a.name.cmp(&b.name));
    rows
}

pub fn row(d: &Dockerd, name: &str) -> Option<Row> {
    node_ls(d).into_iter().find(|r| r.name == name)
}

/// The engine's own swarm state (`inactive`, `active`, ...).
pub fn local_state(d: &Dockerd) -> String {
    let out = d.docker(&["info", "--format", "{{.Swarm.LocalNodeState}}"]);
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A push that records, for every upgrade, each host's availability as `docker node ls`
/// shows it while the playbook would run.
#[derive(Debug)]
pub struct ObservingPush {
    /// Endpoint of a manager engine to ask.
    pub manager_endpoint: String,
    /// (host, availability) per upgraded host, in order.
    pub seen: Mutex<Vec<(String, String)>>,
    /// Every push's hosts with their vars, as JSON.
    pub specs: Mutex<Vec<String>>,
}

#[async_trait]
impl ConfigPush for ObservingPush {
    fn name(&self) -> &str {
        "observing"
    }

    async fn run(&self, spec: JobSpec, log: LogSink) -> cluster_core::Result<JobReport> {
        self.specs
            .lock()
            .unwrap()
            .push(serde_json::to_string(&spec.hosts).unwrap());
        if spec.action == PushAction::Upgrade {
            let endpoint = self.manager_endpoint.clone();
            let out = tokio::task::spawn_blocking(move || {
                std::process::Command::new("docker")
                    .args(["-H", &endpoint, "node", "ls", "--format", "{{.ID}}"])
                    .output()
            })
            .await
            .unwrap()
            .unwrap();
            let ids = String::from_utf8_lossy(&out.stdout).into_owned();
            for host in &spec.hosts {
                let endpoint = self.manager_endpoint.clone();
                let ids = ids.clone();
                let avail = tokio::task::spawn_blocking(move || {
                    let mut cmd = std::process::Command::new("docker");
                    cmd.args(["-H", &endpoint, "node", "inspect", "--format"])
                        .arg("{{index .Spec.Labels \"clusterm.node\"}} {{.Spec.Availability}}")
                        .args(ids.split_whitespace());
                    String::from_utf8_lossy(&cmd.output().unwrap().stdout).into_owned()
                })
                .await
                .unwrap();
                let a = avail
                    .lines()
                    .find_map(|l| l.strip_prefix(&format!("{} ", host.name)))
                    .unwrap_or("absent")
                    .to_owned();
                log.line(format!("{} is {a} during the upgrade", host.name));
                self.seen.lock().unwrap().push((host.name.clone(), a));
            }
        }
        Ok(JobReport::all_ok(&spec))
    }
}

/// Captures every log line of the process, to check tokens never reach it.
#[derive(Clone, Default)]
pub struct Captured(pub Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Captured {
        self.clone()
    }
}
