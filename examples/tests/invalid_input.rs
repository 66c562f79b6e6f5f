//! Refused input through the real daemon: malformed JSON, unknown fields, wrong types,
//! huge bodies, unknown nodes and jobs, illegal transitions: each gets its 4xx and a
//! JSON error body, and nothing changes in the store (checked again after a restart).

mod common;

use common::{Daemon, DaemonSpec, accepted, complete, discover_nodes, snapshot};
use serde_json::json;

/// Requests that must be refused, with the status they must get.
fn bad_requests() -> Vec<(&'static str, &'static str, String, u16)> {
    let huge = format!(
        r#"{{"extra_vars": {{"blob": "{}"}}}}"#,
        "x".repeat(2 * 1024 * 1024)
    );
    let s = |v: &str| v.to_owned();
    vec![
        ("POST", "/v1/nodes/n1/commission", s("{"), 400),
        ("POST", "/v1/nodes/n1/commission", s("not json"), 400),
        (
            "POST",
            "/v1/nodes:commission",
            s(r#"{"nodes": ["n2"], "hostgroup": "x"}"#),
            400,
        ),
        ("POST", "/v1/nodes:commission", s(r#"{"nodes": "n2"}"#), 400),
        (
            "POST",
            "/v1/nodes:commission",
            s(r#"{"nodes": [1, 2]}"#),
            400,
        ),
        (
            "POST",
            "/v1/nodes:commission",
            s(r#"{"nodes": ["n2"], "host_group": "service-master", "extra_vars": [1]}"#),
            400,
        ),
        ("POST", "/v1/nodes:commission", s(r#"{"nodes": []}"#), 400),
        (
            "POST",
            "/v1/nodes:commission",
            s(r#"{"nodes": ["n2", "n2"], "host_group": "service-master"}"#),
            400,
        ),
        (
            "POST",
            "/v1/nodes:commission",
            s(r#"{"nodes": ["n2"], "host_group": "nope"}"#),
            400,
        ),
        (
            "POST",
            "/v1/nodes:commission",
            s(r#"{"nodes": ["n2"], "host_group": "service-master", "rolling": {"batch_size": 1}}"#),
            400,
        ),
        (
            "POST",
            "/v1/nodes:upgrade",
            s(r#"{"nodes": ["n1"], "rolling": {"batch_size": 0}}"#),
            400,
        ),
        (
            "POST",
            "/v1/nodes:upgrade",
            s(r#"{"nodes": ["n1"], "rolling": {"batch_size": -1}}"#),
            400,
        ),
        (
            "POST",
            "/v1/nodes:commission",
            s(r#"{"nodes": ["n2", "ghost"], "host_group": "service-master"}"#),
            404,
        ),
        (
            "POST",
            "/v1/nodes/ghost/commission",
            s(r#"{"host_group": "service-master"}"#),
            404,
        ),
        (
            "POST",
            "/v1/nodes/n1/commission",
            s(r#"{"host_group": "service-master"}"#),
            409,
        ),
        ("POST", "/v1/nodes/n2/upgrade", s("{}"), 409),
        ("POST", "/v1/nodes/n2/decommission", s("{}"), 409),
        (
            "POST",
            "/v1/nodes:decommission",
            s(r#"{"nodes": ["n1", "n2"]}"#),
            409,
        ),
        ("POST", "/v1/nodes/n2/commission", huge.clone(), 413),
        ("PUT", "/v1/globals", s("[1, 2]"), 400),
        ("PUT", "/v1/globals", s(r#""text""#), 400),
        ("PUT", "/v1/globals", s("{"), 400),
        (
            "POST",
            "/v1/discover",
            s(r#"{"addrs": ["not an address!"]}"#),
            400,
        ),
        ("POST", "/v1/discover", s(r#"{"addrs": []}"#), 400),
        (
            "POST",
            "/v1/discover",
            s(r#"{"addrs": ["127.0.0.9"], "extra_vars": "x"}"#),
            400,
        ),
        ("GET", "/v1/nodes/ghost", s(""), 404),
        ("GET", "/v1/nodes/ghost/events", s(""), 404),
        ("GET", "/v1/nodes?color=red", s(""), 400),
        ("GET", "/v1/nodes?status=Sleeping", s(""), 400),
        ("GET", "/v1/nodes/n1/events?after=-1", s(""), 400),
        ("GET", "/v1/jobs/abc", s(""), 400),
        ("GET", "/v1/jobs/999", s(""), 404),
        ("GET", "/v1/jobs/999/logs", s(""), 404),
        ("POST", "/v1/jobs/999/cancel", s(""), 404),
        ("POST", "/v1/jobs/1/cancel", s(""), 409),
        ("GET", "/v1/events?after=x", s(""), 400),
        ("GET", "/v1/events?node=ghost", s(""), 404),
        ("GET", "/v1/no-such-thing", s(""), 404),
        ("DELETE", "/v1/nodes", s(""), 405),
        (
            "POST",
            "/commission/nodes",
            s(r#"{"nodes": ["n2"], "extra_vars": "{bad"}"#),
            400,
        ),
        (
            "POST",
            "/commission/nodes",
            s(r#"{"nodes": ["n2"], "extra_vars": "[1]"}"#),
            400,
        ),
        (
            "POST",
            "/commission/nodes",
            s(r#"{"nodes": ["ghost"], "host_group": "service-master"}"#),
            404,
        ),
        (
            "POST",
            "/commission/nodes",
            s(r#"{"nodes": ["n1"], "host_group": "service-master"}"#),
            409,
        ),
        (
            "POST",
            "/commission/nodes",
            s(r#"{"nodes": ["n2"], "bogus": 1}"#),
            400,
        ),
        ("POST", "/globals", s(r#"{"extra_vars": "{\"a\": "}"#), 400),
        (
            "POST",
            "/monitor/event",
            s(r#"{"monitor_event": {"name": "exploded", "nodes": []}}"#),
            400,
        ),
        (
            "POST",
            "/monitor/event",
            s(r#"{"monitor_event": {"name": "discovered", "nodes": [{"label": ""}]}}"#),
            400,
        ),
        ("GET", "/info/job/bogus", s(""), 400),
        ("GET", "/info/node/ghost", s(""), 404),
        ("POST", "/config", s("{}"), 400),
        (
            "POST",
            "/config",
            s(r#"{"config": {"manager": {"addr": "1.2.3.4:1"}}}"#),
            409,
        ),
    ]
}

#[tokio::test]
async fn bad_input_is_refused_with_a_4xx_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut d = Daemon::start_in(dir.path(), DaemonSpec::default());
    let raw = d.http();
    discover_nodes(&raw, &["n1", "n2"]).await;
    let id = accepted(
        &raw,
        "/v1/nodes/n1/commission",
        json!({"host_group": "service-master"}),
    )
    .await;
    complete(&raw, id).await;
    raw.call("PUT", "/v1/globals", Some(r#"{"keep": true}"#))
        .await;
    let before = snapshot(&raw).await;

    for (method, path, body, want) in bad_requests() {
        let body = (!body.is_empty()).then_some(body.as_str());
        let (status, answer) = raw.call(method, path, body).await;
        assert_eq!(status, want, "{method} {path}: {answer}");
        let code = answer["error"]["code"].as_str();
        let message = answer["error"]["message"].as_str();
        assert!(
            code.is_some_and(|c| !c.is_empty()) && message.is_some_and(|m| !m.is_empty()),
            "{method} {path}: error body {answer}"
        );
    }
    assert_eq!(
        snapshot(&raw).await,
        before,
        "a refused request changed the inventory"
    );

    // And nothing reached the durable store either.
    d.stop();
    let d = Daemon::start_in(dir.path(), DaemonSpec::default());
    let after = snapshot(&d.http()).await;
    for key in ["nodes", "jobs", "globals", "events"] {
        assert_eq!(after[key], before[key], "{key} changed across a restart");
    }
}
