//! `AnsiblePush` against real ansible-playbook, driven through a real `Manager`: hosts
//! are inventory entries reached with the `local` connection under distinct node names,
//! and the fixture playbooks (tests/fixtures/ansible) write what each host sees to
//! files that the tests read back.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use cluster_core::manager::{ManagerConfig, Request};
use cluster_core::push::ansible::{AnsibleConfig, AnsiblePush, Playbooks};
use cluster_core::testkit::eventually;
use cluster_core::{ConfigPush, Job, JobId, JobStatus, Manager, MemoryStore, NodeStatus, registry};
use common::{blocking_commission, discovered, gone, killed, manager, quick_cancel, workers};
use serde_json::{Value, json};

/// Generous: ansible-playbook takes seconds on a loaded machine.
const WAIT: Duration = Duration::from_secs(180);

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ansible")
}

/// A test's private directory and an Ansible configuration isolated in it.
struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Self {
        clusterm_tests::require_binary("ansible-playbook", "ansible-core");
        let dir = tempfile::tempdir().unwrap();
        for sub in ["out", "home", "tmp", "remote"] {
            std::fs::create_dir(dir.path().join(sub)).unwrap();
        }
        std::fs::write(dir.path().join("ansible.cfg"), "[defaults]\n").unwrap();
        Env { dir }
    }

    fn path(&self, sub: &str) -> PathBuf {
        self.dir.path().join(sub)
    }

    fn config(&self) -> AnsibleConfig {
        let env = [
            ("ANSIBLE_CONFIG", self.path("ansible.cfg")),
            ("HOME", self.path("home")),
            ("ANSIBLE_LOCAL_TEMP", self.path("tmp")),
            ("ANSIBLE_REMOTE_TEMP", self.path("remote")),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.display().to_string()))
        .chain([
            ("ANSIBLE_PYTHON_INTERPRETER".into(), "auto_silent".into()),
            (
                "CLUSTERM_TEST_RUNS".into(),
                self.path("runs").display().to_string(),
            ),
        ])
        .collect();
        AnsibleConfig {
            playbook_dir: Some(fixtures()),
            playbooks: Playbooks {
                provision: Some("provision.yml".into()),
                cleanup: Some("cleanup.yml".into()),
                ..Playbooks::default()
            },
            connection: Some("local".into()),
            env,
            temp_dir: Some(self.path("tmp")),
            kill_grace_secs: 1.0,
            ..AnsibleConfig::default()
        }
    }

    /// What the playbook recorded for `node` at `stage`.
    fn seen(&self, node: &str, stage: &str) -> Value {
        let path = self.path("out").join(format!("{node}.{stage}.json"));
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{} not written: {e}", path.display()));
        serde_json::from_str(&text).unwrap()
    }

    fn globals(&self, extra: Value) -> Value {
        let mut g = json!({
            "out_dir": self.path("out").display().to_string(),
            "watch": ["a", "b", "c", "nested", "evil"],
        });
        cluster_core::vars::deep_merge(&mut g, &extra);
        g
    }

    /// A manager pushing with `config`, `nodes` discovered and the fixtures' globals
    /// merged with `extra`.
    async fn start(
        &self,
        config: AnsibleConfig,
        manager_config: ManagerConfig,
        nodes: &[&str],
        extra: Value,
    ) -> Manager {
        let m = manager(AnsiblePush::from_config(config).unwrap(), manager_config).await;
        discovered(&m, nodes).await;
        m.set_globals(self.globals(extra)).await.unwrap();
        m
    }
}

async fn finished(m: &Manager, id: JobId) -> Job {
    common::finished(m, id, WAIT).await
}

/// The job's log, for assertion messages and checks.
fn log_text(m: &Manager, id: JobId) -> String {
    common::log_lines(m, id).join("\n")
}

fn status(m: &Manager, node: &str) -> NodeStatus {
    m.node(node).unwrap().status
}

#[tokio::test]
async fn vars_precedence_and_groups_reach_the_playbook() {
    let env = Env::new();
    let globals = json!({"a": "g", "b": "g", "c": "g", "nested": {"x": "g", "y": "g"}});
    let m = env
        .start(env.config(), quick_cancel(), &["m1", "w1", "w2"], globals)
        .await;
    m.set_node_vars("w1", json!({"b": "n", "c": "n", "nested": {"y": "n"}}))
        .await
        .unwrap();

    let id = m
        .commission(Request::nodes(["m1"]).host_group("service-master"))
        .await
        .unwrap();
    let job = finished(&m, id).await;
    assert_eq!(
        job.status,
        JobStatus::Complete,
        "{job:?}\n{}",
        log_text(&m, id)
    );
    let id = m
        .commission(workers(["w1", "w2"]).vars(json!({"c": "r"})))
        .await
        .unwrap();
    let job = finished(&m, id).await;
    assert_eq!(job.status, JobStatus::Complete, "{job:?}");
    for n in ["m1", "w1", "w2"] {
        assert_eq!(status(&m, n), NodeStatus::Commissioned, "{n}");
    }

    let w1 = env.seen("w1", "provision");
    assert_eq!(
        w1["vars"],
        json!({"a": "g", "b": "n", "c": "r", "nested": {"x": "g", "y": "n"}})
    );
    let w2 = env.seen("w2", "provision");
    assert_eq!(
        w2["vars"],
        json!({"a": "g", "b": "g", "c": "r", "nested": {"x": "g", "y": "g"}})
    );
    assert_eq!(w2["node_name"], "w2");
    assert_eq!(w2["node_addr"], "127.0.0.12");
    assert_eq!(w2["ansible_host"], "127.0.0.12");
    let groups =
        |v: &Value| -> Vec<String> { serde_json::from_value(v["groups"].clone()).unwrap() };
    assert_eq!(groups(&w2), vec!["cluster-node", "service-worker"]);
    let m1 = env.seen("m1", "provision");
    assert_eq!(groups(&m1), vec!["cluster-node", "service-master"]);
    assert_eq!(m1["vars"]["c"], "g");
    m.shutdown().await;
}

#[tokio::test]
async fn a_failing_host_fails_only_its_node_and_the_log_is_streamed() {
    let env = Env::new();
    let m = env
        .start(env.config(), quick_cancel(), &["w1", "w2", "w3"], json!({}))
        .await;
    let id = m
        .commission(workers(["w1", "w2", "w3"]).vars(json!({"fail_on": ["w2"]})))
        .await
        .unwrap();
    let job = finished(&m, id).await;
    assert_eq!(job.status, JobStatus::Errored);
    assert_eq!(job.failed.keys().collect::<Vec<_>>(), vec!["w2"]);
    let reason = &job.failed["w2"];
    assert!(
        reason.contains("simulated failure") && reason.contains("provisioning refused on w2"),
        "{reason}"
    );
    assert_eq!(status(&m, "w1"), NodeStatus::Commissioned);
    assert_eq!(status(&m, "w3"), NodeStatus::Commissioned);
    let w2 = m.node("w2").unwrap();
    assert_eq!(w2.status, NodeStatus::Failed);
    assert!(
        w2.error
            .as_deref()
            .unwrap_or("")
            .contains("provisioning refused on w2"),
        "{w2:?}"
    );

    let lines = common::log_lines(&m, id);
    let text = lines.join("\n");
    assert!(text.contains("TASK [simulated failure]"), "{text}");
    assert!(text.contains("PLAY RECAP"), "{text}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("w2") && l.contains("failed=1")),
        "{text}"
    );
    m.shutdown().await;
}

/// Waits until the playbook has started blocking on every host; their pids.
async fn blocking_pids(env: &Env, nodes: &[&str]) -> Vec<i32> {
    let mut pids = Vec::new();
    for n in nodes {
        let path = env.path("out").join(format!("{n}.pid"));
        let pid = eventually(&format!("{n} blocking"), WAIT, || {
            std::fs::read_to_string(&path)
                .ok()
                .and_then(|s| s.trim().parse::<i32>().ok())
        })
        .await;
        pids.push(pid);
    }
    pids
}

/// When the playbook got as far as its blocking task before the limit, that task is
/// gone (the limit may hit earlier on a very slow machine; the cancellation test
/// always waits for the task first).
async fn assert_blocking_task_killed(env: &Env, node: &str) {
    let path = env.path("out").join(format!("{node}.pid"));
    if let Some(pid) = std::fs::read_to_string(path)
        .ok()
        .and_then(|s| s.trim().parse::<i32>().ok())
    {
        killed(pid, WAIT).await;
    }
}

#[tokio::test]
async fn cancel_kills_the_playbook_and_fails_the_nodes() {
    let env = Env::new();
    let m = env
        .start(env.config(), quick_cancel(), &["w1", "w2"], json!({}))
        .await;
    let id = m
        .commission(blocking_commission(["w1", "w2"]))
        .await
        .unwrap();
    let pids = blocking_pids(&env, &["w1", "w2"]).await;
    assert!(pids.iter().all(|p| !gone(*p)));
    // The human log is followable while the playbook still runs.
    eventually("the running task in the job log", WAIT, || {
        log_text(&m, id)
            .contains("TASK [block until stopped]")
            .then_some(())
    })
    .await;
    assert!(!m.job_log(id).unwrap().is_finished());
    m.cancel(id).await.unwrap();
    let job = finished(&m, id).await;
    assert_eq!(job.status, JobStatus::Cancelled);
    for n in ["w1", "w2"] {
        let node = m.node(n).unwrap();
        assert_eq!(node.status, NodeStatus::Failed, "{n}");
        assert!(
            node.error.as_deref().unwrap_or("").contains("cancelled"),
            "{node:?}"
        );
    }
    for pid in pids {
        killed(pid, WAIT).await;
    }
    m.shutdown().await;
}

/// Runs a blocking playbook on `w1` until a limit stops it; the errored job, once the
/// node has failed and the blocking task is gone.
async fn stopped_by_a_limit(
    env: &Env,
    config: AnsibleConfig,
    manager_config: ManagerConfig,
) -> Job {
    let m = env.start(config, manager_config, &["w1"], json!({})).await;
    let id = m.commission(blocking_commission(["w1"])).await.unwrap();
    let job = finished(&m, id).await;
    assert_eq!(job.status, JobStatus::Errored);
    assert_eq!(status(&m, "w1"), NodeStatus::Failed);
    assert_blocking_task_killed(env, "w1").await;
    m.shutdown().await;
    job
}

#[tokio::test]
async fn the_push_timeout_stops_the_playbook() {
    let env = Env::new();
    let config = AnsibleConfig {
        timeout_secs: Some(30.0),
        ..env.config()
    };
    let job = stopped_by_a_limit(&env, config, quick_cancel()).await;
    let reason = &job.failed["w1"];
    assert!(reason.contains("timed out after 30s"), "{reason}");
}

#[tokio::test]
async fn the_job_timeout_stops_the_playbook() {
    let env = Env::new();
    let config = ManagerConfig {
        job_timeout: Some(Duration::from_secs(30)),
        ..quick_cancel()
    };
    let job = stopped_by_a_limit(&env, env.config(), config).await;
    assert!(
        job.error.as_deref().unwrap_or("").contains("timed out"),
        "{job:?}"
    );
}

#[tokio::test]
async fn thirty_nodes_are_one_ansible_playbook_run() {
    let env = Env::new();
    let config = AnsibleConfig {
        program: fixtures().join("count-runs.sh"),
        ..env.config()
    };
    let names: Vec<String> = (1..=30).map(|i| format!("node{i:02}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let m = env
        .start(config, quick_cancel(), &refs, json!({"a": "batch"}))
        .await;
    let id = m.commission(workers(names.clone())).await.unwrap();
    let job = finished(&m, id).await;
    assert_eq!(job.status, JobStatus::Complete, "{job:?}");
    let runs = std::fs::read_to_string(env.path("runs")).unwrap();
    assert_eq!(runs.lines().count(), 1, "ansible-playbook runs: {runs:?}");
    for n in &names {
        assert_eq!(status(&m, n), NodeStatus::Commissioned, "{n}");
        let seen = env.seen(n, "provision");
        assert_eq!(seen["node_name"], n.as_str());
        assert_eq!(seen["vars"]["a"], "batch");
    }
    m.shutdown().await;
}

#[tokio::test]
async fn hostile_values_reach_the_playbook_verbatim() {
    let env = Env::new();
    let m = env
        .start(env.config(), quick_cancel(), &["w1", "bad[1:3]"], json!({}))
        .await;
    let canary = env.path("out").join("canary");
    let evil = format!(
        "it's \"quoted\" $(touch {c}) `touch {c}` ; touch {c} {{{{ lookup('pipe', 'touch {c}') }}}}\nsecond line\ttab \\ back\u{7f} é 😀",
        c = canary.display()
    );
    let nested = json!({"{{ 7 * 7 }}": ["$(id)", 1.5, -2, true, null, "{% raw %}x"]});
    let id = m
        .commission(
            Request::nodes(["w1", "bad[1:3]"])
                .host_group("service-worker")
                .vars(json!({"evil": evil, "nested": nested})),
        )
        .await
        .unwrap();
    let job = finished(&m, id).await;
    assert_eq!(job.status, JobStatus::Errored);
    assert_eq!(job.failed.keys().collect::<Vec<_>>(), vec!["bad[1:3]"]);
    assert!(job.failed["bad[1:3]"].contains("cannot be an Ansible host name"));
    assert_eq!(status(&m, "w1"), NodeStatus::Commissioned);
    let seen = env.seen("w1", "provision");
    assert_eq!(seen["vars"]["evil"], Value::String(evil));
    assert_eq!(seen["vars"]["nested"], nested);
    assert!(!canary.exists(), "a var value was executed");
    m.shutdown().await;
}

#[tokio::test]
async fn the_site_playbook_runs_each_action_by_tag() {
    let env = Env::new();
    let config = AnsibleConfig {
        playbooks: Playbooks::default(),
        site_playbook: Some("site.yml".into()),
        ..env.config()
    };
    let m = env
        .start(config, quick_cancel(), &["w1"], json!({"a": "site"}))
        .await;
    let id = m.commission(workers(["w1"])).await.unwrap();
    assert_eq!(finished(&m, id).await.status, JobStatus::Complete);
    assert_eq!(env.seen("w1", "site-provision")["vars"]["a"], "site");
    assert!(!env.path("out").join("w1.site-cleanup.json").exists());
    let id = m.decommission(Request::nodes(["w1"])).await.unwrap();
    assert_eq!(finished(&m, id).await.status, JobStatus::Complete);
    assert_eq!(status(&m, "w1"), NodeStatus::Decommissioned);
    assert_eq!(env.seen("w1", "site-cleanup")["node_name"], "w1");
    m.shutdown().await;
}

#[tokio::test]
async fn a_missing_program_or_playbook_is_refused_before_anything_changes() {
    let env = Env::new();
    let no_program = AnsibleConfig {
        program: env.path("no-such-ansible-playbook"),
        ..env.config()
    };
    let m = manager(
        AnsiblePush::from_config(no_program).unwrap(),
        quick_cancel(),
    )
    .await;
    discovered(&m, &["w1"]).await;
    let err = m.commission(workers(["w1"])).await.unwrap_err();
    assert_eq!(err.code(), "push");
    assert!(
        err.to_string().contains("no-such-ansible-playbook"),
        "{err}"
    );
    assert_eq!(status(&m, "w1"), NodeStatus::Discovered);
    assert!(m.jobs().await.unwrap().is_empty());
    m.shutdown().await;

    let no_playbook = AnsibleConfig {
        playbooks: Playbooks {
            provision: Some("provision.yml".into()),
            cleanup: Some("missing-cleanup.yml".into()),
            ..Playbooks::default()
        },
        ..env.config()
    };
    let m = env
        .start(no_playbook, quick_cancel(), &["w1"], json!({}))
        .await;
    let id = m.commission(workers(["w1"])).await.unwrap();
    assert_eq!(finished(&m, id).await.status, JobStatus::Complete);
    let err = m.decommission(Request::nodes(["w1"])).await.unwrap_err();
    assert!(err.to_string().contains("missing-cleanup.yml"), "{err}");
    let err = m.upgrade(Request::nodes(["w1"])).await.unwrap_err();
    assert!(err.to_string().contains("no playbook for upgrade"), "{err}");
    assert_eq!(status(&m, "w1"), NodeStatus::Commissioned);
    assert_eq!(m.jobs().await.unwrap().len(), 1);
    m.shutdown().await;
}

#[tokio::test]
async fn the_registry_builds_it_from_config_and_rejects_typos() {
    let env = Env::new();
    let push = registry::build::<dyn ConfigPush>(
        "ansible",
        json!({
            "playbook_dir": fixtures(),
            "playbooks": {"provision": "provision.yml"},
            "connection": "local",
        }),
    )
    .await
    .unwrap();
    assert_eq!(push.name(), "ansible");
    push.preflight(cluster_core::PushAction::Provision)
        .await
        .unwrap();
    assert!(
        push.preflight(cluster_core::PushAction::Verify)
            .await
            .is_err()
    );
    let err = registry::build::<dyn ConfigPush>("ansible", json!({"playbok_dir": "x"}))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "config");
    assert!(err.to_string().contains("playbok_dir"), "{err}");
    let err = registry::build::<dyn ConfigPush>("ansible", json!({}))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no playbook configured"), "{err}");
    drop(env);
}

#[tokio::test]
async fn join_secrets_reach_the_playbook_but_not_the_log_and_run_files_are_removed() {
    use cluster_core::testkit::doubles::{RecordingBackend, SECRET_JOIN_TOKEN};
    let env = Env::new();
    let m = Manager::builder(Arc::new(MemoryStore::new()))
        .push(Arc::new(AnsiblePush::from_config(env.config()).unwrap()))
        .backend(Arc::new(RecordingBackend::new()))
        .config(quick_cancel())
        .start()
        .await
        .unwrap();
    discovered(&m, &["m1", "w1"]).await;
    m.set_globals(env.globals(json!({"watch": ["join_token"]})))
        .await
        .unwrap();
    let mut logs = String::new();
    for (node, group) in [("m1", "service-master"), ("w1", "service-worker")] {
        let id = m
            .commission(Request::nodes([node]).host_group(group))
            .await
            .unwrap();
        let job = finished(&m, id).await;
        assert_eq!(job.status, JobStatus::Complete, "{job:?}");
        logs.push_str(&log_text(&m, id));
    }
    assert_eq!(
        env.seen("w1", "provision")["vars"]["join_token"],
        SECRET_JOIN_TOKEN
    );
    assert!(logs.contains("PLAY RECAP"), "{logs}");
    assert!(!logs.contains(SECRET_JOIN_TOKEN), "{logs}");
    let leftovers: Vec<_> = std::fs::read_dir(env.path("tmp"))
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("clusterm-ansible-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    m.shutdown().await;
}
