//! What a job adds around the program it runs: the time of an upgrade job through the
//! manager with `AnsiblePush` (1 and 30 hosts on the `local` connection, a one-task
//! playbook) against the same ansible-playbook run started by hand, and the same for a
//! `CommandPush` program that prints 10,000 log lines.
//!
//! The difference of two medians of multi-second runs is noisy on a shared machine, so
//! the push's own cost is also measured exactly with a stand-in program in place of
//! ansible-playbook that only writes the per-host summary (`ansible_stub_*`).
//!
//! Run: `cargo run --release -p cluster-core --example push_overhead [-- ROUNDS]`
//! Prints `name value unit` lines; each figure is the median of ROUNDS runs (default 5).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cluster_core::manager::{ManagerConfig, Request};
use cluster_core::push::ansible::{AnsibleConfig, AnsiblePush, Playbooks};
use cluster_core::push::command::{CommandConfig, CommandPush, Commands};
use cluster_core::{
    ConfigPush, JobStatus, Manager, Member, MembershipEvent, MembershipKind, MemoryStore,
};

const PLAYBOOK: &str = "- hosts: cluster-node\n  gather_facts: false\n  tasks:\n    - ansible.builtin.debug:\n        msg: \"{{ node_name }}\"\n";

fn median(mut v: Vec<Duration>) -> f64 {
    v.sort();
    v[v.len() / 2].as_secs_f64() * 1000.0
}

fn isolated_env(dir: &Path) -> Vec<(String, String)> {
    for sub in ["home", "tmp"] {
        std::fs::create_dir_all(dir.join(sub)).expect("bench directory");
    }
    std::fs::write(dir.join("ansible.cfg"), "[defaults]\n").expect("bench directory");
    vec![
        (
            "ANSIBLE_CONFIG".into(),
            dir.join("ansible.cfg").display().to_string(),
        ),
        ("HOME".into(), dir.join("home").display().to_string()),
        (
            "ANSIBLE_LOCAL_TEMP".into(),
            dir.join("tmp").display().to_string(),
        ),
        ("ANSIBLE_PYTHON_INTERPRETER".into(), "auto_silent".into()),
        ("ANSIBLE_NOCOLOR".into(), "1".into()),
        (
            "ANSIBLE_TRANSFORM_INVALID_GROUP_CHARS".into(),
            "ignore".into(),
        ),
        ("PATH".into(), std::env::var("PATH").unwrap_or_default()),
    ]
}

/// A manager with `push` and `hosts` nodes commissioned, ready for repeated upgrades.
async fn manager(push: Arc<dyn ConfigPush>, hosts: usize) -> (Manager, Vec<String>) {
    let m = Manager::builder(Arc::new(MemoryStore::new()))
        .push(push)
        .config(ManagerConfig::default())
        .start()
        .await
        .expect("manager");
    let names: Vec<String> = (1..=hosts).map(|i| format!("node{i:02}")).collect();
    for n in &names {
        let mut member = Member::alive(n.clone(), "127.0.0.1");
        member.tags.insert("NodeLabel".into(), n.clone());
        m.membership(MembershipEvent {
            kind: MembershipKind::Joined,
            member,
        })
        .expect("membership");
    }
    m.settle().await.expect("settle");
    let id = m
        .commission(Request::nodes(names.clone()).host_group("service-worker"))
        .await
        .expect("commission");
    let job = m.wait_job(id).await.expect("job");
    assert_eq!(job.status, JobStatus::Complete, "{job:?}");
    (m, names)
}

async fn timed_upgrade(m: &Manager, names: &[String]) -> Duration {
    let start = Instant::now();
    let id = m
        .upgrade(Request::nodes(names.to_vec()))
        .await
        .expect("upgrade");
    let job = m.wait_job(id).await.expect("job");
    let took = start.elapsed();
    assert_eq!(job.status, JobStatus::Complete, "{job:?}");
    took
}

fn timed_direct(program: &str, args: &[String], env: &[(String, String)]) -> Duration {
    let start = Instant::now();
    let out = std::process::Command::new(program)
        .args(args)
        .env_clear()
        .envs(env.iter().cloned())
        .stdin(std::process::Stdio::null())
        .output()
        .expect("program runs");
    let took = start.elapsed();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    took
}

/// Medians (ms) over `rounds` of `program` started by hand and of an upgrade job of
/// `names` that runs it.
async fn medians(
    rounds: usize,
    m: &Manager,
    names: &[String],
    program: &str,
    args: &[String],
    env: &[(String, String)],
) -> (f64, f64) {
    let mut direct = Vec::new();
    let mut job = Vec::new();
    for _ in 0..rounds {
        direct.push(timed_direct(program, args, env));
        job.push(timed_upgrade(m, names).await);
    }
    (median(direct), median(job))
}

async fn ansible(rounds: usize, hosts: usize) {
    let dir = tempfile::tempdir().expect("temp dir");
    let env = isolated_env(dir.path());
    std::fs::write(dir.path().join("play.yml"), PLAYBOOK).expect("playbook");
    let playbook = dir.path().join("play.yml");
    let config = AnsibleConfig {
        playbooks: Playbooks {
            provision: Some(playbook.clone()),
            upgrade: Some(playbook.clone()),
            ..Playbooks::default()
        },
        connection: Some("local".into()),
        env: env.iter().cloned().collect(),
        temp_dir: Some(dir.path().join("tmp")),
        ..AnsibleConfig::default()
    };
    let push = AnsiblePush::from_config(config).expect("config");
    let (m, names) = manager(Arc::new(push), hosts).await;

    let inventory = dir.path().join("hosts.ini");
    let mut ini = String::from("[cluster-node]\n");
    for n in &names {
        ini.push_str(&format!("{n} node_name={n} ansible_connection=local\n"));
    }
    std::fs::write(&inventory, ini).expect("inventory");
    let args: Vec<String> = vec![
        "-i".into(),
        inventory.display().to_string(),
        "--forks".into(),
        hosts.to_string(),
        playbook.display().to_string(),
    ];

    let (d, j) = medians(rounds, &m, &names, "ansible-playbook", &args, &env).await;
    println!("ansible_playbook_direct_{hosts}_hosts {d:.0} ms");
    println!("ansible_job_{hosts}_hosts {j:.0} ms");
    println!("ansible_job_overhead_{hosts}_hosts {:.0} ms", j - d);
    m.shutdown().await;
}

/// The job around a stand-in for ansible-playbook that reports every host ok at once.
async fn ansible_stub(rounds: usize, hosts: usize) {
    let dir = tempfile::tempdir().expect("temp dir");
    let names: Vec<String> = (1..=hosts).map(|i| format!("node{i:02}")).collect();
    let summary: serde_json::Map<String, serde_json::Value> = names
        .iter()
        .map(|n| {
            (
                n.clone(),
                serde_json::json!({"ok": 1, "failures": 0, "unreachable": 0}),
            )
        })
        .collect();
    let record = serde_json::json!({"event": "stats", "hosts": summary}).to_string();
    let stub = dir.path().join("ansible-playbook-stub");
    std::fs::write(
        &stub,
        format!("#!/bin/sh\ncat >> \"$CLUSTERM_RESULTS_FILE\" <<'EOF'\n{record}\nEOF\n"),
    )
    .expect("stub");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&stub, std::fs::Permissions::from_mode(0o755)).expect("stub");
    let playbook = dir.path().join("play.yml");
    std::fs::write(&playbook, PLAYBOOK).expect("playbook");
    let config = AnsibleConfig {
        program: stub.clone(),
        playbooks: Playbooks {
            provision: Some(playbook.clone()),
            upgrade: Some(playbook),
            ..Playbooks::default()
        },
        temp_dir: Some(dir.path().to_path_buf()),
        ..AnsibleConfig::default()
    };
    let push = AnsiblePush::from_config(config).expect("config");
    let (m, names) = manager(Arc::new(push), hosts).await;
    let env = vec![
        ("PATH".to_owned(), std::env::var("PATH").unwrap_or_default()),
        ("CLUSTERM_RESULTS_FILE".to_owned(), "/dev/null".to_owned()),
    ];
    let stub = stub.display().to_string();
    let (d, j) = medians(rounds.max(20), &m, &names, &stub, &[], &env).await;
    println!("ansible_stub_direct_{hosts}_hosts {d:.2} ms");
    println!("ansible_stub_job_{hosts}_hosts {j:.2} ms");
    println!("ansible_push_overhead_{hosts}_hosts {:.2} ms", j - d);
    m.shutdown().await;
}

async fn command_lines(rounds: usize, lines: usize) {
    let dir = tempfile::tempdir().expect("temp dir");
    let script = format!("seq 1 {lines} | sed 's/^/log line /'");
    let argv = vec!["/bin/sh".to_owned(), "-c".to_owned(), script];
    let config = CommandConfig {
        commands: Commands {
            provision: Some(argv.clone()),
            upgrade: Some(argv.clone()),
            ..Commands::default()
        },
        temp_dir: Some(dir.path().to_path_buf()),
        ..CommandConfig::default()
    };
    let push = CommandPush::from_config(config).expect("config");
    let (m, names) = manager(Arc::new(push), 1).await;
    let env = vec![("PATH".to_owned(), std::env::var("PATH").unwrap_or_default())];
    let (d, j) = medians(rounds, &m, &names, &argv[0], &argv[1..], &env).await;
    let log_lines = m
        .last_job()
        .await
        .ok()
        .flatten()
        .and_then(|j| m.job_log(j.id))
        .map_or(0, |l| l.total());
    assert!(log_lines as usize >= lines, "log has {log_lines} lines");
    println!("command_direct_{lines}_lines {d:.1} ms");
    println!("command_job_{lines}_lines {j:.1} ms");
    println!("command_job_overhead_{lines}_lines {:.1} ms", j - d);
    m.shutdown().await;
}

#[tokio::main]
async fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(5)
        .max(1);
    ansible(rounds, 1).await;
    ansible(rounds, 30).await;
    ansible_stub(rounds, 1).await;
    ansible_stub(rounds, 30).await;
    command_lines(rounds, 10_000).await;
}
