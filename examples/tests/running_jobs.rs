//! Jobs while they run, with the `command` push gated by a file: following logs over
//! SSE and the Contiv text stream, cancelling, and SIGTERM with a job in flight.

mod common;

use std::path::{Path, PathBuf};

use common::{Daemon, DaemonSpec, discover_nodes, eventually, wait_job};
use serde_json::json;

fn gated(gate: &Path) -> DaemonSpec {
    let script = format!(
        "{}/tests/fixtures/gated_push.sh",
        env!("CARGO_MANIFEST_DIR")
    );
    DaemonSpec::default().toml(&format!(
        "[push]\nname = \"command\"\n[push.config]\nenv = {{ GATE = \"{}\" }}\nkill_grace_secs = 1.0\n\
         [push.config.commands]\nprovision = [\"{script}\", \"provision\"]\n\
         upgrade = [\"{script}\", \"upgrade\"]\ncleanup = [\"{script}\", \"cleanup\"]\n",
        gate.display()
    ))
}

fn gate_path(dir: &Path) -> PathBuf {
    dir.join("gate")
}

async fn start_commission(raw: &common::Raw, node: &str) -> u64 {
    let (s, v) = raw
        .post(
            &format!("/v1/nodes/{node}/commission"),
            &json!({"host_group": "service-master"}),
        )
        .await;
    assert_eq!(s, 202, "{v}");
    v["job"].as_u64().unwrap()
}

async fn log_contains(raw: &common::Raw, id: u64, text: &str) {
    eventually(&format!("job {id} log to show {text:?}"), || async {
        let (_, logs) = raw.get(&format!("/v1/jobs/{id}/logs")).await;
        logs["lines"]
            .as_array()
            .is_some_and(|l| {
                l.iter()
                    .any(|l| l["text"].as_str().is_some_and(|t| t.contains(text)))
            })
            .then_some(())
    })
    .await;
}

#[tokio::test]
async fn logs_are_followed_while_the_job_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let gate = gate_path(tmp.path());
    let d = Daemon::start(gated(&gate));
    let raw = d.http();
    discover_nodes(&raw, &["n1"]).await;
    let id = start_commission(&raw, "n1").await;

    let (s, active) = raw.get("/v1/jobs/active").await;
    assert_eq!((s, active["id"].as_u64()), (200, Some(id)));
    assert_eq!(active["status"], "Running");
    let (_, info) = raw.get("/info/job/active").await;
    assert_eq!(info["status"], "Running");
    log_contains(&raw, id, "started provision").await;

    // Both followers attach while the job is blocked on the gate.
    let mut sse = raw
        .req("GET", &format!("/v1/jobs/{id}/logs?follow=true"))
        .send()
        .await
        .unwrap();
    let contiv = raw.req("GET", "/info/logs/active").send().await.unwrap();
    assert_eq!(contiv.status().as_u16(), 200);
    let mut parser = clusterm_examples::client::SseParser::default();
    let mut events = Vec::new();
    while !events
        .iter()
        .any(|(_, d): &(String, String)| d.contains("started provision"))
    {
        let chunk = tokio::time::timeout(common::PATIENCE, sse.chunk())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        events.extend(parser.feed(&chunk).into_iter().map(|e| (e.event, e.data)));
    }
    assert!(
        !events.iter().any(|(e, _)| e == "end"),
        "the stream ended while the job runs"
    );

    std::fs::write(&gate, "").unwrap();
    let read_rest = async {
        while let Some(chunk) = sse.chunk().await.unwrap() {
            events.extend(parser.feed(&chunk).into_iter().map(|e| (e.event, e.data)));
        }
    };
    tokio::time::timeout(common::PATIENCE, read_rest)
        .await
        .expect("stream ends with the job");
    assert_eq!(events.last().map(|(e, _)| e.as_str()), Some("end"));
    let texts = common::line_texts(&events);
    assert!(
        texts
            .iter()
            .any(|t| t.contains("passed the gate provision")),
        "{texts:?}"
    );
    assert!(texts.last().unwrap().contains("Complete"), "{texts:?}");

    let text = tokio::time::timeout(common::PATIENCE, contiv.text())
        .await
        .unwrap()
        .unwrap();
    assert!(
        text.contains("started provision") && text.contains("passed the gate"),
        "{text}"
    );
    assert_eq!(wait_job(&raw, id).await["status"], "Complete");
}

#[tokio::test]
async fn a_running_job_is_cancelled_on_request() {
    let tmp = tempfile::tempdir().unwrap();
    let d = Daemon::start(gated(&gate_path(tmp.path())));
    let raw = d.http();
    discover_nodes(&raw, &["n1", "n2"]).await;
    let id = start_commission(&raw, "n1").await;
    log_contains(&raw, id, "started provision").await;

    // The node is held by the job: a second request for it is refused.
    let (s, e) = raw.post("/v1/nodes/n1/decommission", &json!({})).await;
    assert_eq!((s, e["error"]["code"].as_str()), (409, Some("node_busy")));

    let (s, v) = raw.post("/v1/jobs/active/cancel", &json!({})).await;
    assert_eq!((s, v["job"].as_u64()), (202, Some(id)));
    let job = wait_job(&raw, id).await;
    assert_eq!(job["status"], "Cancelled", "{job}");
    let (_, n1) = raw.get("/v1/nodes/n1").await;
    assert_eq!(n1["status"], "Failed");
    let (s, _) = raw.post(&format!("/v1/jobs/{id}/cancel"), &json!({})).await;
    assert_eq!(s, 409);
}

#[tokio::test]
async fn sigterm_records_the_job_in_flight() {
    let tmp = tempfile::tempdir().unwrap();
    let gate = gate_path(tmp.path());
    let data = tmp.path().join("daemon");
    std::fs::create_dir_all(&data).unwrap();
    let mut d = Daemon::start_in(&data, gated(&gate));
    let raw = d.http();
    discover_nodes(&raw, &["n1"]).await;
    let id = start_commission(&raw, "n1").await;
    log_contains(&raw, id, "started provision").await;

    d.stop();
    assert!(d.output().contains("clusterm stopped"), "{}", d.output());

    let d = Daemon::start_in(&data, gated(&gate));
    let raw = d.http();
    let (s, job) = raw.get(&format!("/v1/jobs/{id}")).await;
    assert_eq!(s, 200);
    assert!(
        matches!(job["status"].as_str(), Some("Cancelled" | "Errored")),
        "the job in flight was recorded as stopped: {job}"
    );
    assert!(job["ended_at"].is_string(), "{job}");
    let (_, n1) = raw.get("/v1/nodes/n1").await;
    assert_eq!(n1["status"], "Failed", "{n1}");
    assert!(n1["error"].is_string(), "{n1}");
    // Retrying is allowed after the interruption.
    std::fs::write(&gate, "").unwrap();
    let retry = start_commission(&raw, "n1").await;
    assert_eq!(wait_job(&raw, retry).await["status"], "Complete");
}

fn clusterctl(d: &Daemon, args: &[&str]) -> std::process::Command {
    let mut c = std::process::Command::new(common::bin("clusterctl"));
    c.env_remove("CLUSTERCTL_TOKEN")
        .arg("--url")
        .arg(d.url())
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    c
}

#[tokio::test]
async fn clusterctl_follows_the_active_job_and_fails_when_its_wait_fails() {
    let tmp = tempfile::tempdir().unwrap();
    let gate = gate_path(tmp.path());
    let d = Daemon::start(gated(&gate));
    let raw = d.http();
    discover_nodes(&raw, &["n1", "n2"]).await;

    let id = start_commission(&raw, "n1").await;
    log_contains(&raw, id, "started provision").await;
    let follower = clusterctl(&d, &["job", "get", "active", "--follow"])
        .spawn()
        .unwrap();
    std::fs::write(&gate, "").unwrap();
    let out = tokio::task::spawn_blocking(move || follower.wait_with_output().unwrap())
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("started provision") && text.contains("passed the gate"),
        "{text}"
    );
    assert!(text.contains(&format!("job {id} Complete")), "{text}");

    std::fs::remove_file(&gate).unwrap();
    let waiter = clusterctl(
        &d,
        &["node", "commission", "n2", "-g", "service-worker", "--wait"],
    )
    .spawn()
    .unwrap();
    let id = eventually("the second job", || async {
        let (_, j) = raw.get("/v1/jobs/active").await;
        j["id"].as_u64()
    })
    .await;
    log_contains(&raw, id, "started provision").await;
    let (s, _) = raw.post(&format!("/v1/jobs/{id}/cancel"), &json!({})).await;
    assert_eq!(s, 202);
    let out = tokio::task::spawn_blocking(move || waiter.wait_with_output().unwrap())
        .await
        .unwrap();
    assert!(!out.status.success(), "a cancelled job must fail --wait");
    let err = String::from_utf8_lossy(&out.stderr);
    let last = err.trim().lines().last().unwrap_or_default().to_owned();
    assert!(
        last.starts_with("clusterctl: ") && last.contains("Cancelled"),
        "{err}"
    );
}
