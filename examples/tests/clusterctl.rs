//! `clusterctl` against the real daemon: tables, `--json`, `--wait`, following logs,
//! completions, and one-line errors with a non-zero exit.

mod common;

use std::process::{Command, Output};

use common::{Daemon, DaemonSpec, bin, discover_nodes};
use serde_json::Value;

fn ctl(d: &Daemon, args: &[&str]) -> Output {
    Command::new(bin("clusterctl"))
        .env_remove("CLUSTERCTL_TOKEN")
        .env_remove("CLUSTERCTL_URL")
        .arg("--url")
        .arg(format!("127.0.0.1:{}", d.port))
        .args(args)
        .output()
        .expect("run clusterctl")
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "clusterctl failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn json_of(out: &Output) -> Value {
    serde_json::from_str(&ok(out)).expect("--json prints JSON")
}

fn failed(out: &Output) -> String {
    assert!(!out.status.success(), "expected a failure: {}", ok(out));
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(err.trim().lines().count(), 1, "one-line error: {err}");
    assert!(err.starts_with("clusterctl: "), "{err}");
    err
}

#[tokio::test]
async fn commission_update_and_decommission_through_the_cli() {
    let d = Daemon::start(DaemonSpec::default());
    discover_nodes(&d.http(), &["alpha", "beta", "gamma"]).await;

    let table = ok(&ctl(&d, &["nodes", "get"]));
    for word in [
        "NAME",
        "STATUS",
        "alpha",
        "beta",
        "gamma",
        "Discovered",
        "reachable",
    ] {
        assert!(table.contains(word), "{word} missing from\n{table}");
    }
    let listed = json_of(&ctl(&d, &["--json", "nodes", "get"]));
    assert_eq!(listed.as_array().unwrap().len(), 3);

    let out = ok(&ctl(
        &d,
        &[
            "node",
            "commission",
            "alpha",
            "--host-group",
            "service-master",
            "--extra-vars",
            r#"{"k": "v"}"#,
            "--wait",
        ],
    ));
    assert!(out.contains("Complete"), "{out}");
    let node = json_of(&ctl(&d, &["node", "get", "alpha", "--json"]));
    assert_eq!(node["status"], "Commissioned");
    assert!(ok(&ctl(&d, &["node", "get", "alpha"])).contains("service-master"));

    let job = json_of(&ctl(
        &d,
        &[
            "--json",
            "nodes",
            "commission",
            "beta",
            "gamma",
            "-g",
            "service-worker",
            "--wait",
        ],
    ));
    assert_eq!(job["status"], "Complete");
    assert_eq!(job["nodes"].as_array().unwrap().len(), 2);

    let started = json_of(&ctl(
        &d,
        &[
            "--json",
            "nodes",
            "update",
            "beta",
            "gamma",
            "--rolling",
            "--batch-size",
            "1",
        ],
    ));
    let id = started["job"].as_u64().unwrap();
    let done = common::wait_job(&d.http(), id).await;
    assert_eq!(done["rolling"]["batch_size"], 1);

    let followed = ok(&ctl(&d, &["job", "get", &id.to_string(), "--follow"]));
    assert!(
        followed.contains(&format!("job {id} Complete")),
        "{followed}"
    );
    let last = json_of(&ctl(&d, &["job", "get", "last", "--json"]));
    assert_eq!(last["id"].as_u64(), Some(id));
    let jobs = ok(&ctl(&d, &["job", "list"]));
    assert!(
        jobs.contains("commission") && jobs.contains("upgrade"),
        "{jobs}"
    );

    ok(&ctl(&d, &["node", "decommission", "alpha", "--wait"]));
    let events = ok(&ctl(&d, &["node", "events", "alpha"]));
    assert!(
        events.contains("Decommissioned") && events.contains("Commissioning"),
        "{events}"
    );

    ok(&ctl(&d, &["global", "set", "-e", r#"{"ntp": "pool"}"#]));
    let g = json_of(&ctl(&d, &["global", "get"]));
    assert_eq!(g["ntp"], "pool");
    let cluster = ok(&ctl(&d, &["cluster", "get"]));
    assert!(cluster.contains("state"), "{cluster}");

    let discovered = json_of(&ctl(&d, &["--json", "discover", "127.0.0.33", "--wait"]));
    assert_eq!(discovered["kind"], "discover");
}

#[tokio::test]
async fn errors_are_one_line_with_a_non_zero_exit() {
    let d = Daemon::start(DaemonSpec::default());
    discover_nodes(&d.http(), &["alpha"]).await;

    let err = failed(&ctl(&d, &["node", "get", "ghost"]));
    assert!(err.contains("ghost") && err.contains("404"), "{err}");
    let err = failed(&ctl(&d, &["node", "update", "alpha"]));
    assert!(
        err.contains("illegal transition") && err.contains("409"),
        "{err}"
    );
    let err = failed(&ctl(&d, &["node", "commission", "alpha", "-e", "{oops"]));
    assert!(err.contains("--extra-vars"), "{err}");
    let err = failed(&ctl(&d, &["node", "commission", "alpha", "-g", "nobody"]));
    assert!(err.contains("host group"), "{err}");
    let err = failed(&ctl(&d, &["job", "get", "active"]));
    assert!(err.contains("404"), "{err}");
    // Nothing listens on port 1.
    let out = Command::new(bin("clusterctl"))
        .args(["--url", "http://127.0.0.1:1", "nodes", "get"])
        .output()
        .unwrap();
    let err = failed(&out);
    assert!(err.contains("cannot reach clusterm"), "{err}");
}

#[test]
fn completions_are_generated_for_each_shell() {
    for shell in ["bash", "zsh", "fish"] {
        let out = Command::new(bin("clusterctl"))
            .args(["completions", shell])
            .output()
            .unwrap();
        let script = ok(&out);
        assert!(
            script.contains("clusterctl") && script.contains("commission"),
            "{shell}"
        );
    }
}
