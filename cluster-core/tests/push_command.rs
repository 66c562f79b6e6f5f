//! `CommandPush` driven through a real `Manager`: the fixture program
//! (tests/fixtures/command/push.py) saves the spec it reads on stdin and reports
//! per-host results, so the tests check what a program receives and how its outcome
//! maps onto nodes and jobs.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use cluster_core::manager::Request;
use cluster_core::push::command::{CommandConfig, CommandPush, Commands};
use cluster_core::testkit::eventually;
use cluster_core::{ConfigPush, Job, JobId, JobStatus, Manager, NodeStatus, PushAction, registry};
use common::{blocking_commission, discovered, quick_cancel, workers};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(120);

fn program() -> String {
    clusterm_tests::require_binary("python3", "python3");
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/command/push.py")
        .display()
        .to_string()
}

fn config(out: &Path) -> CommandConfig {
    CommandConfig {
        commands: Commands {
            provision: Some(vec![program()]),
            cleanup: Some(vec![program(), "--cleanup".into()]),
            ..Commands::default()
        },
        env: [("CLUSTERM_TEST_OUT".to_owned(), out.display().to_string())].into(),
        kill_grace_secs: 1.0,
        ..CommandConfig::default()
    }
}

async fn manager(push: CommandPush, names: &[&str]) -> Manager {
    let m = common::manager(push, quick_cancel()).await;
    discovered(&m, names).await;
    m
}

/// A manager pushing with the fixture program, its output going to `out`.
async fn started(out: &Path, names: &[&str]) -> Manager {
    manager(CommandPush::from_config(config(out)).unwrap(), names).await
}

async fn finished(m: &Manager, id: JobId) -> Job {
    common::finished(m, id, WAIT).await
}

fn received(out: &Path, id: JobId, action: &str) -> Value {
    let path: PathBuf = out.join(format!("job{id}-{action}.json"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

#[tokio::test]
async fn the_program_gets_the_spec_on_stdin_and_reports_per_host() {
    let out = tempfile::tempdir().unwrap();
    let m = started(out.path(), &["w1", "w2"]).await;
    m.set_globals(json!({"g": 1})).await.unwrap();
    m.set_node_vars("w2", json!({"fail": true})).await.unwrap();
    let evil = "it's \"$(id)\" `id` {{ x }}\nline two";
    let id = m
        .commission(workers(["w1", "w2"]).vars(json!({"evil": evil})))
        .await
        .unwrap();
    let job = finished(&m, id).await;
    assert_eq!(job.status, JobStatus::Errored);
    assert_eq!(job.failed.keys().collect::<Vec<_>>(), vec!["w2"]);
    assert!(job.failed["w2"].contains("refused on w2"), "{job:?}");
    assert_eq!(m.node("w1").unwrap().status, NodeStatus::Commissioned);
    assert_eq!(m.node("w2").unwrap().status, NodeStatus::Failed);

    let spec = received(out.path(), id, "provision");
    assert_eq!(spec["job"], json!(id.0));
    assert_eq!(spec["hosts"][0]["name"], "w1");
    assert_eq!(spec["hosts"][0]["addr"], "127.0.0.10");
    assert_eq!(spec["hosts"][0]["group"], "service-worker");
    assert_eq!(spec["hosts"][0]["vars"], json!({"g": 1, "evil": evil}));
    assert_eq!(
        spec["hosts"][1]["vars"],
        json!({"g": 1, "evil": evil, "fail": true})
    );

    let log = common::log_lines(&m, id);
    assert!(log.iter().any(|l| l == "provision on 2 host(s)"), "{log:?}");
    assert!(log.iter().any(|l| l == "w2 done"), "{log:?}");
    m.shutdown().await;
}

#[tokio::test]
async fn a_failing_exit_fails_the_hosts_it_did_not_report() {
    let out = tempfile::tempdir().unwrap();
    let m = started(out.path(), &["w1", "w2"]).await;
    let id = m
        .commission(workers(["w1", "w2"]).vars(json!({"exit_code": 3})))
        .await
        .unwrap();
    let job = finished(&m, id).await;
    assert_eq!(job.status, JobStatus::Errored);
    for n in ["w1", "w2"] {
        assert!(job.failed[n].contains("exit code 3"), "{job:?}");
        assert_eq!(m.node(n).unwrap().status, NodeStatus::Failed);
    }
    m.shutdown().await;
}

#[tokio::test]
async fn cancel_kills_the_whole_process_group() {
    let out = tempfile::tempdir().unwrap();
    let m = started(out.path(), &["w1"]).await;
    let id = m.commission(blocking_commission(["w1"])).await.unwrap();
    let pids_file = out.path().join("pids");
    let pids: Vec<i32> = eventually("program blocking", WAIT, || {
        std::fs::read_to_string(&pids_file)
            .ok()
            .map(|s| s.split_whitespace().map(|p| p.parse().unwrap()).collect())
    })
    .await;
    assert_eq!(pids.len(), 2);
    m.cancel(id).await.unwrap();
    let job = finished(&m, id).await;
    assert_eq!(job.status, JobStatus::Cancelled);
    let node = m.node("w1").unwrap();
    assert_eq!(node.status, NodeStatus::Failed);
    assert!(node.error.unwrap_or_default().contains("cancelled"));
    for pid in pids {
        common::killed(pid, WAIT).await;
    }
    m.shutdown().await;
}

#[tokio::test]
async fn the_timeout_stops_the_program() {
    let out = tempfile::tempdir().unwrap();
    let cfg = CommandConfig {
        timeout_secs: Some(5.0),
        ..config(out.path())
    };
    let m = manager(CommandPush::from_config(cfg).unwrap(), &["w1"]).await;
    let id = m.commission(blocking_commission(["w1"])).await.unwrap();
    let job = finished(&m, id).await;
    assert_eq!(job.status, JobStatus::Errored);
    assert!(job.failed["w1"].contains("timed out after 5s"), "{job:?}");
    assert_eq!(m.node("w1").unwrap().status, NodeStatus::Failed);
    m.shutdown().await;
}

#[tokio::test]
async fn unconfigured_actions_and_missing_programs_are_refused_up_front() {
    let out = tempfile::tempdir().unwrap();
    let m = started(out.path(), &["w1"]).await;
    let id = m.commission(workers(["w1"])).await.unwrap();
    assert_eq!(finished(&m, id).await.status, JobStatus::Complete);
    let err = m.upgrade(Request::nodes(["w1"])).await.unwrap_err();
    assert_eq!(err.code(), "push");
    assert!(
        err.to_string()
            .contains("no command configured for upgrade"),
        "{err}"
    );
    assert_eq!(m.node("w1").unwrap().status, NodeStatus::Commissioned);
    assert_eq!(m.jobs().await.unwrap().len(), 1);
    m.shutdown().await;

    let missing = CommandConfig {
        commands: Commands {
            provision: Some(vec!["/nonexistent/clusterm-push".into()]),
            ..Commands::default()
        },
        ..CommandConfig::default()
    };
    let m = manager(CommandPush::from_config(missing).unwrap(), &["w1"]).await;
    let err = m.commission(workers(["w1"])).await.unwrap_err();
    assert!(
        err.to_string().contains("/nonexistent/clusterm-push"),
        "{err}"
    );
    assert_eq!(m.node("w1").unwrap().status, NodeStatus::Discovered);
    assert!(m.jobs().await.unwrap().is_empty());
    m.shutdown().await;
}

#[tokio::test]
async fn the_registry_builds_it_and_rejects_typos() {
    let push =
        registry::build::<dyn ConfigPush>("command", json!({"commands": {"verify": [program()]}}))
            .await
            .unwrap();
    assert_eq!(push.name(), "command");
    push.preflight(PushAction::Verify).await.unwrap();
    assert!(push.preflight(PushAction::Provision).await.is_err());
    let err = registry::build::<dyn ConfigPush>("command", json!({"comands": {}}))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "config");
    let err = registry::build::<dyn ConfigPush>("command", json!({"commands": {"verify": []}}))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("commands.verify"), "{err}");
}
