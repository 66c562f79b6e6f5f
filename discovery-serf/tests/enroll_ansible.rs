//! Enrollment by address end to end: a `Manager` with `SerfDiscovery` (connected to a
//! real serf agent) and `AnsiblePush` running the shipped discover playbook
//! (`examples/ansible/discover.yml`) with real ansible-playbook on the `local`
//! connection. The playbook starts a second serf agent in background mode on the
//! enrolled loopback address; the tests check that the node then appears under its
//! label, replacing the address-named placeholder, and that a gossip encryption key
//! never reaches the job log. Every agent the playbook starts is killed by the pidfile
//! it wrote, also when a test fails.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use cluster_core::push::ansible::{AnsibleConfig, AnsiblePush, Playbooks};
use cluster_core::testkit::eventually;
use cluster_core::{
    ConfigPush, Discovery, EventKind, EventQuery, HostSpec, Job, JobId, JobLog, JobSpec, JobStatus,
    LogSink, Manager, MemoryStore, Node, NodeStatus, PushAction,
};
use clusterm_tests::serf::{SerfAgent, next_ip};
use clusterm_tests::{free_port, require_binary};
use common::{blocking, fast_config, member_spec};
use discovery_serf::SerfDiscovery;
use serde_json::{Value, json};

/// Generous: ansible-playbook takes seconds on a loaded machine.
const WAIT: Duration = Duration::from_secs(180);

static NEXT_DIR: AtomicU32 = AtomicU32::new(0);

fn playbooks() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/ansible")
}

/// A host to enroll: a private directory for Ansible's state and the agent's config,
/// pidfile and log. Dropping it kills the agent the playbook started, then removes
/// the directory.
struct EnrolledHost {
    dir: PathBuf,
    ip: String,
}

impl EnrolledHost {
    fn new() -> Self {
        require_binary("ansible-playbook", "ansible-core");
        require_binary("serf", "serf");
        let n = NEXT_DIR.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!(
            "clusterm-enroll-{}-{n}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos())
        ));
        let host = EnrolledHost { dir, ip: next_ip() };
        for sub in ["home", "tmp", "remote", "serf", "run"] {
            std::fs::create_dir_all(host.path(sub)).unwrap();
        }
        std::fs::write(host.path("ansible.cfg"), "[defaults]\n").unwrap();
        host
    }

    fn path(&self, sub: &str) -> PathBuf {
        self.dir.join(sub)
    }

    /// An Ansible push running the shipped discover playbook, isolated in the
    /// directory; `extra_args` are added to every ansible-playbook command line.
    fn push(&self, extra_args: &[&str]) -> AnsiblePush {
        let env = [
            ("ANSIBLE_CONFIG", self.path("ansible.cfg")),
            ("HOME", self.path("home")),
            ("ANSIBLE_LOCAL_TEMP", self.path("tmp")),
            ("ANSIBLE_REMOTE_TEMP", self.path("remote")),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.display().to_string()))
        .chain([("ANSIBLE_PYTHON_INTERPRETER".into(), "auto_silent".into())])
        .collect();
        AnsiblePush::from_config(AnsibleConfig {
            playbook_dir: Some(playbooks()),
            playbooks: Playbooks {
                discover: Some("discover.yml".into()),
                ..Playbooks::default()
            },
            connection: Some("local".into()),
            env,
            extra_args: extra_args.iter().map(|a| (*a).to_owned()).collect(),
            temp_dir: Some(self.path("tmp")),
            kill_grace_secs: 1.0,
            ..AnsibleConfig::default()
        })
        .unwrap()
    }

    /// Request vars that make the playbook run the agent in the background, bound to
    /// the host's address on free ports, with no install and no privilege escalation.
    fn vars(&self, label: &str, serial: &str) -> Value {
        json!({
            "serf_install": false,
            "serf_become": false,
            "serf_run_mode": "background",
            "serf_config_dir": self.path("serf").display().to_string(),
            "serf_run_dir": self.path("run").display().to_string(),
            "serf_bind_addr": self.ip,
            "serf_bind_port": free_port(&self.ip),
            "serf_rpc_addr": self.ip,
            "serf_rpc_port": free_port(&self.ip),
            "serf_profile": "local",
            "serf_retry_interval": "1s",
            "serf_node_label": label,
            "serf_node_serial": serial,
        })
    }

    /// The pid in the playbook's pidfile, when it names a running serf.
    fn agent_pid(&self) -> Option<u32> {
        let text = std::fs::read_to_string(self.path("run/serf.pid")).ok()?;
        let pid: u32 = text.trim().parse().ok()?;
        is_live_serf(pid).then_some(pid)
    }

    /// The agent's log, for assertion messages.
    fn agent_log(&self) -> String {
        std::fs::read_to_string(self.path("run/serf.log")).unwrap_or_default()
    }

    /// Kills the agent the playbook started (by its pidfile, and any serf still
    /// reading this host's configuration) and waits for it to be gone; returns how
    /// many were killed.
    fn kill_agents(&self) -> usize {
        let config = self.path("serf").display().to_string();
        let mut pids: Vec<u32> = self.agent_pid().into_iter().collect();
        // An agent started after the pidfile was read, or whose pidfile was lost.
        if let Ok(entries) = std::fs::read_dir("/proc") {
            for e in entries.flatten() {
                let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                    continue;
                };
                let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                if is_live_serf(pid)
                    && String::from_utf8_lossy(&cmdline).contains(&config)
                    && !pids.contains(&pid)
                {
                    pids.push(pid);
                }
            }
        }
        for pid in &pids {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while pids.iter().any(|p| is_live_serf(*p)) && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        pids.len()
    }
}

impl Drop for EnrolledHost {
    fn drop(&mut self) {
        self.kill_agents();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Whether `pid` is a serf process that has not exited (zombies count as gone).
fn is_live_serf(pid: u32) -> bool {
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let zombie = status
        .lines()
        .any(|l| l.starts_with("State:") && l.contains('Z'));
    comm.trim() == "serf" && !zombie
}

async fn manager(discovery: Arc<SerfDiscovery>, push: AnsiblePush) -> Manager {
    Manager::builder(Arc::new(MemoryStore::new()))
        .discovery(discovery)
        .push(Arc::new(push))
        .start()
        .await
        .unwrap()
}

async fn node_where(m: &Manager, name: &str, what: &str, pred: impl Fn(&Node) -> bool) -> Node {
    eventually(&format!("{name} {what}"), WAIT, || {
        m.node(name).ok().filter(|n| pred(n))
    })
    .await
}

async fn finished(m: &Manager, id: JobId) -> Job {
    tokio::time::timeout(WAIT, m.wait_job(id))
        .await
        .expect("the discover job did not finish")
        .unwrap()
}

fn log_text(m: &Manager, id: JobId) -> String {
    m.job_log(id)
        .map(|l| {
            l.lines_after(0)
                .into_iter()
                .map(|l| l.text)
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default()
}

/// A fresh gossip key: 16 random bytes in base64, as `serf keygen` makes them.
fn gossip_key() -> String {
    use std::io::Read;
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .unwrap();
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    while out.len() % 4 != 0 {
        out.push('=');
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_enrolled_address_becomes_a_discovered_node_under_its_label() {
    let host = EnrolledHost::new();
    let seed = blocking(|| SerfAgent::start(member_spec("seed")));
    let discovery = Arc::new(SerfDiscovery::new(fast_config(&seed.rpc_addr())).unwrap());
    let m = manager(discovery, host.push(&[])).await;
    node_where(&m, "seed", "discovered", |n| n.reachability.is_reachable()).await;

    let ip = host.ip.clone();
    let job = m
        .discover(vec![ip.clone()], host.vars("enrolled-web-1", "SN-E1"))
        .await
        .unwrap();
    assert_eq!(m.node(&ip).unwrap().status, NodeStatus::New);
    let done = finished(&m, job).await;
    assert_eq!(
        done.status,
        JobStatus::Complete,
        "{done:?}\n{}\nagent log:\n{}",
        log_text(&m, job),
        host.agent_log()
    );
    let pid = host
        .agent_pid()
        .unwrap_or_else(|| panic!("no running agent in the pidfile\n{}", log_text(&m, job)));

    let node = node_where(&m, "enrolled-web-1", "discovered and reachable", |n| {
        n.status == NodeStatus::Discovered && n.reachability.is_reachable()
    })
    .await;
    assert_eq!(node.addr, ip, "{node:?}");
    assert_eq!(node.serial, "SN-E1", "{node:?}");
    assert_eq!(node.last_job, Some(job), "{node:?}");
    assert_eq!(
        node.tags.get("NodeLabel").map(String::as_str),
        Some("enrolled-web-1")
    );
    assert!(m.node(&ip).is_err(), "the address-named record is replaced");
    let removed = m
        .events(EventQuery::all(0, usize::MAX))
        .await
        .unwrap()
        .into_iter()
        .find(|e| e.node == ip && e.kind == EventKind::Removed)
        .expect("the placeholder's removal is in its audit log");
    assert_eq!(removed.cause, "discovered as enrolled-web-1");
    assert_eq!(m.node_count(), 2, "{:?}", m.nodes());

    // The agent the manager sees is the one in the pidfile: killing it fails the node.
    assert_eq!(host.kill_agents(), 1);
    assert!(!is_live_serf(pid));
    node_where(&m, "enrolled-web-1", "unreachable", |n| {
        n.reachability.as_str() == "unreachable"
    })
    .await;
    m.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gossip_key_reaches_the_agent_but_never_the_job_log() {
    let host = EnrolledHost::new();
    let key = gossip_key();
    // The seed only accepts encrypted gossip: the node can join only with the key.
    let seed = blocking(|| {
        SerfAgent::start(member_spec("secure-seed").config("encrypt_key", &format!("\"{key}\"")))
    });
    let discovery = Arc::new(SerfDiscovery::new(fast_config(&seed.rpc_addr())).unwrap());
    // Diffs and verbose results are where a written secret would show.
    let m = manager(discovery, host.push(&["--diff", "-v"])).await;
    node_where(&m, "secure-seed", "discovered", |n| {
        n.reachability.is_reachable()
    })
    .await;

    let mut vars = host.vars("enrolled-secure-1", "SN-S1");
    vars["serf_encrypt_key"] = json!(key);
    let job = m.discover(vec![host.ip.clone()], vars).await.unwrap();
    let done = finished(&m, job).await;
    let log = log_text(&m, job);
    assert_eq!(done.status, JobStatus::Complete, "{done:?}\n{log}");
    assert!(
        log.contains("Write the agent configuration"),
        "the job log holds the run:\n{log}"
    );
    assert!(
        !log.contains(&key),
        "the gossip key is in the job log:\n{log}"
    );
    assert!(!format!("{done:?}").contains(&key));

    let node = node_where(&m, "enrolled-secure-1", "discovered and reachable", |n| {
        n.status == NodeStatus::Discovered && n.reachability.is_reachable()
    })
    .await;
    assert_eq!(
        (node.addr.as_str(), node.serial.as_str()),
        (host.ip.as_str(), "SN-S1")
    );
    let config = std::fs::read_to_string(host.path("serf/serf.json")).unwrap();
    let config: Value = serde_json::from_str(&config).unwrap();
    assert_eq!(config["encrypt_key"], json!(key));
    assert_eq!(host.kill_agents(), 1);
    m.shutdown().await;
}

/// Runs the discover playbook for the host directly (as the manager would, with the
/// discovery's enrollment vars) and returns the job log; panics when the host failed.
async fn run_discover(host: &EnrolledHost, discovery: &SerfDiscovery, vars: Value) -> String {
    let enroll = discovery
        .enroll(std::slice::from_ref(&host.ip), &vars)
        .await
        .unwrap();
    let mut merged = vars;
    cluster_core::vars::deep_merge(&mut merged, &enroll);
    let log = JobLog::new(10_000, None);
    let spec = JobSpec {
        job: JobId(900),
        action: PushAction::Discover,
        hosts: vec![HostSpec {
            name: host.ip.clone(),
            addr: host.ip.clone(),
            group: None,
            vars: merged,
        }],
        cancel: tokio_util::sync::CancellationToken::new(),
        timeout: Some(WAIT),
    };
    let report = host
        .push(&[])
        .run(spec, LogSink::new(log.clone()))
        .await
        .unwrap();
    let text = log
        .lines_after(0)
        .into_iter()
        .map(|l| l.text)
        .collect::<Vec<_>>()
        .join("\n");
    let result = report.hosts.get(&host.ip);
    assert!(
        result.is_some_and(|r| r.ok),
        "{result:?}\n{text}\nagent log:\n{}",
        host.agent_log()
    );
    text
}

/// How the first task whose name starts with `task` ended for the host (`ok`,
/// `changed`, `skipping`, `fatal`), from the default stdout callback's lines.
fn outcome<'a>(log: &'a str, task: &str) -> &'a str {
    let header = format!("TASK [{task}");
    let mut lines = log.lines().skip_while(|l| !l.starts_with(&header)).skip(1);
    lines
        .find(|l| !l.trim().is_empty())
        .and_then(|l| l.split(':').next())
        .unwrap_or("")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rerun_keeps_the_agent_and_a_changed_config_restarts_it_with_new_tags() {
    let host = EnrolledHost::new();
    let seed = blocking(|| SerfAgent::start(member_spec("rerun-seed")));
    let discovery = Arc::new(SerfDiscovery::new(fast_config(&seed.rpc_addr())).unwrap());
    let m = manager(discovery.clone(), host.push(&[])).await;
    let vars = host.vars("rerun-1", "SN-R1");

    run_discover(&host, &discovery, vars.clone()).await;
    let first = host.agent_pid().expect("an agent in the pidfile");
    node_where(&m, "rerun-1", "discovered and reachable", |n| {
        n.reachability.is_reachable()
    })
    .await;

    // Same vars: nothing to do, the agent keeps running.
    let log = run_discover(&host, &discovery, vars.clone()).await;
    assert_eq!(host.agent_pid(), Some(first), "{log}");
    assert_eq!(
        outcome(&log, "Write the agent configuration"),
        "ok",
        "{log}"
    );
    assert_eq!(outcome(&log, "Start the agent"), "ok", "{log}");

    // A new tag: the configuration changes and the agent restarts with it.
    let mut tagged = vars;
    tagged["serf_tags"] = json!({"rack": "r7"});
    let log = run_discover(&host, &discovery, tagged).await;
    let second = host.agent_pid().expect("an agent in the pidfile");
    assert_ne!(second, first, "{log}");
    assert_eq!(outcome(&log, "Start the agent"), "changed", "{log}");
    assert!(!is_live_serf(first), "the old agent is stopped");
    let node = node_where(&m, "rerun-1", "tagged rack=r7", |n| {
        n.reachability.is_reachable() && n.tags.get("rack").is_some_and(|r| r == "r7")
    })
    .await;
    assert_eq!(
        (node.addr.as_str(), node.serial.as_str()),
        (host.ip.as_str(), "SN-R1")
    );
    assert_eq!(host.kill_agents(), 1);
    m.shutdown().await;
}

#[test]
fn shipped_playbooks_pass_the_syntax_check() {
    let host = EnrolledHost::new();
    for name in ["discover", "provision", "verify", "upgrade", "cleanup"] {
        let path = playbooks().join(format!("{name}.yml"));
        let out = std::process::Command::new("ansible-playbook")
            .env("ANSIBLE_CONFIG", host.path("ansible.cfg"))
            .env("HOME", host.path("home"))
            .env("ANSIBLE_LOCAL_TEMP", host.path("tmp"))
            .args(["-i", "localhost,", "--syntax-check"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}: {}{}",
            path.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
