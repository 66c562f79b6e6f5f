//! REST API v1 end to end: the real `clusterm` binary over HTTP, on the durable store.

mod common;

use common::{Daemon, DaemonSpec, accepted, complete, discover_nodes};
use serde_json::{Value, json};

async fn status_of(raw: &common::Raw, node: &str) -> String {
    let (s, n) = raw.get(&format!("/v1/nodes/{node}")).await;
    assert_eq!(s, 200, "{n}");
    n["status"].as_str().unwrap().to_owned()
}

/// Reads an event stream until `done` says it has enough; returns (event, data) pairs.
async fn read_sse(
    raw: &common::Raw,
    path: &str,
    done: impl Fn(&[(String, String)]) -> bool,
) -> Vec<(String, String)> {
    let mut resp = raw
        .req("GET", path)
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let mut parser = clusterm_examples::client::SseParser::default();
    let mut seen = Vec::new();
    let read = async {
        while let Some(chunk) = resp.chunk().await.unwrap() {
            for ev in parser.feed(&chunk) {
                seen.push((ev.event, ev.data));
            }
            if done(&seen) {
                break;
            }
        }
    };
    tokio::time::timeout(common::PATIENCE, read)
        .await
        .expect("event stream stalled");
    seen
}

#[tokio::test]
async fn every_v1_route_over_http() {
    let d = Daemon::start(DaemonSpec::default());
    let raw = d.http();

    let (s, h) = raw.get("/healthz").await;
    assert_eq!((s, h), (200, json!({"status": "ok"})));

    discover_nodes(&raw, &["n1", "n2", "n3"]).await;
    let (s, nodes) = raw.get("/v1/nodes").await;
    assert_eq!(s, 200);
    let names: Vec<&str> = nodes
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["n1", "n2", "n3"]);
    assert_eq!(nodes[0]["status"], "Discovered");
    assert_eq!(nodes[0]["serial"], "SN0");
    let (s, filtered) = raw.get("/v1/nodes?status=Discovered").await;
    assert_eq!((s, filtered.as_array().unwrap().len()), (200, 3));
    let (s, none) = raw.get("/v1/nodes?status=Commissioned").await;
    assert_eq!((s, none), (200, json!([])));

    let (s, n1) = raw.get("/v1/nodes/n1").await;
    assert_eq!((s, n1["name"].as_str()), (200, Some("n1")));
    assert_eq!(n1["reachability"]["state"], "reachable");

    let (s, g) = raw
        .call("PUT", "/v1/globals", Some(r#"{"env": {"proxy": "none"}}"#))
        .await;
    assert_eq!((s, &g), (200, &json!({"env": {"proxy": "none"}})));
    assert_eq!(raw.get("/v1/globals").await.1, g);

    let j1 = accepted(
        &raw,
        "/v1/nodes/n1/commission",
        json!({"host_group": "service-master", "extra_vars": {"x": 1}}),
    )
    .await;
    let job = complete(&raw, j1).await;
    assert_eq!(job["kind"], "commission");
    assert_eq!(job["nodes"], json!(["n1"]));
    assert_eq!(status_of(&raw, "n1").await, "Commissioned");
    assert_eq!(
        raw.get("/v1/nodes/n1").await.1["host_group"],
        "service-master"
    );

    let j2 = accepted(
        &raw,
        "/v1/nodes:commission",
        json!({"nodes": ["n2", "n3"], "host_group": "service-worker"}),
    )
    .await;
    complete(&raw, j2).await;
    assert_eq!(status_of(&raw, "n3").await, "Commissioned");

    let j3 = accepted(&raw, "/v1/nodes/n1/upgrade", json!({})).await;
    complete(&raw, j3).await;
    assert_eq!(status_of(&raw, "n1").await, "Upgraded");
    let j4 = accepted(
        &raw,
        "/v1/nodes:upgrade",
        json!({"nodes": ["n2", "n3"], "rolling": {"batch_size": 1, "max_failures": 0}}),
    )
    .await;
    let job = complete(&raw, j4).await;
    assert_eq!(job["rolling"]["batch_size"], 1);
    assert_eq!(status_of(&raw, "n2").await, "Upgraded");

    let (s, jobs) = raw.get("/v1/jobs").await;
    assert_eq!(s, 200);
    let ids: Vec<u64> = jobs
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, [j1, j2, j3, j4]);
    assert_eq!(raw.get("/v1/jobs/last").await.1["id"].as_u64(), Some(j4));
    assert_eq!(
        raw.get(&format!("/v1/jobs/{j1}")).await.1["kind"],
        "commission"
    );
    let (s, e) = raw.get("/v1/jobs/active").await;
    assert_eq!((s, e["error"]["code"].as_str()), (404, Some("not_found")));

    let (s, logs) = raw.get(&format!("/v1/jobs/{j1}/logs")).await;
    assert_eq!(s, 200);
    assert_eq!(logs["finished"], true);
    let lines = logs["lines"].as_array().unwrap();
    assert!(!lines.is_empty(), "{logs}");
    assert_eq!(lines[0]["n"], 1);
    let (_, tail) = raw.get(&format!("/v1/jobs/{j1}/logs?after=1")).await;
    assert_eq!(tail["lines"].as_array().unwrap().len(), lines.len() - 1);

    let streamed = read_sse(&raw, &format!("/v1/jobs/{j1}/logs?follow=true"), |evs| {
        evs.iter().any(|(e, _)| e == "end")
    })
    .await;
    let texts = common::line_texts(&streamed);
    let expected: Vec<String> = lines
        .iter()
        .map(|l| l["text"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(texts, expected);

    let (s, e) = raw.post(&format!("/v1/jobs/{j1}/cancel"), &json!({})).await;
    assert_eq!((s, e["error"]["code"].as_str()), (409, Some("job_state")));

    let j5 = accepted(&raw, "/v1/nodes/n1/decommission", json!({})).await;
    complete(&raw, j5).await;
    let j6 = accepted(
        &raw,
        "/v1/nodes:decommission",
        json!({"nodes": ["n2", "n3"]}),
    )
    .await;
    complete(&raw, j6).await;
    for n in ["n1", "n2", "n3"] {
        assert_eq!(status_of(&raw, n).await, "Decommissioned");
    }

    let (s, events) = raw.get("/v1/nodes/n1/events").await;
    assert_eq!(s, 200);
    let moves: Vec<(String, String)> = events
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "status")
        .map(|e| {
            (
                e["from"].as_str().unwrap().into(),
                e["to"].as_str().unwrap().into(),
            )
        })
        .collect();
    let want = [
        ("Discovered", "Commissioning"),
        ("Commissioning", "Commissioned"),
        ("Commissioned", "Upgrading"),
        ("Upgrading", "Upgraded"),
        ("Upgraded", "Decommissioning"),
        ("Decommissioning", "Decommissioned"),
    ];
    assert_eq!(
        moves,
        want.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect::<Vec<_>>()
    );
    let (_, page) = raw.get("/v1/nodes/n1/events?limit=2").await;
    assert_eq!(page.as_array().unwrap().len(), 2);

    let (s, cluster) = raw.get("/v1/cluster").await;
    assert_eq!(s, 200);
    assert!(cluster["state"].is_string(), "{cluster}");

    let j7 = accepted(
        &raw,
        "/v1/discover",
        json!({"addrs": ["127.0.0.9"], "extra_vars": {}}),
    )
    .await;
    let job = complete(&raw, j7).await;
    assert_eq!(job["kind"], "discover");
    assert_eq!(status_of(&raw, "127.0.0.9").await, "New");

    let all = read_sse(&raw, "/v1/events", |evs| evs.len() >= 5).await;
    let first: Value = serde_json::from_str(&all[0].1).unwrap();
    assert_eq!(all[0].0, "node_event");
    assert_eq!(first["seq"], 1);
    assert!(first["node"].is_string());
    let n2_only = read_sse(&raw, "/v1/events?node=n2&after=0", |evs| evs.len() >= 3).await;
    for (_, data) in &n2_only {
        assert_eq!(serde_json::from_str::<Value>(data).unwrap()["node"], "n2");
    }

    let (s, doc) = raw.get("/v1/openapi.json").await;
    assert_eq!(s, 200);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for path in [
        "/v1/nodes",
        "/v1/nodes/{name}",
        "/v1/nodes/{name}/events",
        "/v1/nodes/{name}/commission",
        "/v1/nodes/{name}/decommission",
        "/v1/nodes/{name}/upgrade",
        "/v1/nodes:commission",
        "/v1/nodes:decommission",
        "/v1/nodes:upgrade",
        "/v1/discover",
        "/v1/globals",
        "/v1/jobs",
        "/v1/jobs/{id}",
        "/v1/jobs/{id}/logs",
        "/v1/jobs/{id}/cancel",
        "/v1/cluster",
        "/v1/events",
    ] {
        assert!(doc["paths"].get(path).is_some(), "openapi lacks {path}");
    }
    assert!(doc["components"]["schemas"].get("Node").is_some());

    let resp = raw.req("GET", "/metrics").send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let text = resp.text().await.unwrap();
    assert!(
        text.contains("clusterm_nodes{status=\"Decommissioned\"} 3"),
        "{text}"
    );
    assert!(text.contains("clusterm_nodes{status=\"New\"} 1"), "{text}");
    assert!(
        text.contains("clusterm_transitions_total{to=\"Commissioned\"} 3"),
        "{text}"
    );
    assert!(
        text.contains("clusterm_jobs{kind=\"commission\",status=\"Complete\"} 2"),
        "{text}"
    );
    assert!(
        text.contains(
            "clusterm_api_request_duration_seconds_bucket{method=\"GET\",route=\"/v1/nodes\""
        ),
        "{text}"
    );
}

#[tokio::test]
async fn old_logs_come_from_the_spill_file_and_event_streams_resume() {
    let d = Daemon::start(DaemonSpec::default().toml("[manager]\nlogs_kept = 1"));
    let raw = d.http();
    discover_nodes(&raw, &["n1", "n2", "n3"]).await;
    let mut ids = Vec::new();
    for n in ["n1", "n2", "n3"] {
        let id = accepted(
            &raw,
            &format!("/v1/nodes/{n}/commission"),
            json!({"host_group": "service-worker"}),
        )
        .await;
        complete(&raw, id).await;
        ids.push(id);
    }
    // Only the newest log stays in memory; the first one is read back from its file.
    assert!(
        d.dir
            .join(format!("data/logs/job-{}.log", ids[0]))
            .is_file()
    );
    let (s, logs) = raw.get(&format!("/v1/jobs/{}/logs", ids[0])).await;
    assert_eq!(s, 200);
    let lines = logs["lines"].as_array().unwrap();
    assert!(
        lines
            .iter()
            .any(|l| l["text"] == format!("job {} Complete", ids[0])),
        "{logs}"
    );
    let streamed = read_sse(
        &raw,
        &format!("/v1/jobs/{}/logs?follow=true&after=1", ids[0]),
        |evs| evs.iter().any(|(e, _)| e == "end"),
    )
    .await;
    assert_eq!(
        streamed.iter().filter(|(e, _)| e == "line").count(),
        lines.len() - 1
    );

    // Resuming the audit stream with Last-Event-ID skips what was seen.
    let mut resp = raw
        .req("GET", "/v1/events")
        .header("last-event-id", "4")
        .send()
        .await
        .unwrap();
    let mut parser = clusterm_examples::client::SseParser::default();
    let mut first = Vec::new();
    while first.is_empty() {
        let chunk = tokio::time::timeout(common::PATIENCE, resp.chunk())
            .await
            .unwrap()
            .unwrap()
            .expect("the stream stays open");
        first = parser.feed(&chunk);
    }
    let ev: Value = serde_json::from_str(&first[0].data).unwrap();
    assert_eq!(ev["seq"], 5);
}

#[tokio::test]
async fn the_audit_stream_delivers_changes_as_they_commit() {
    let d = Daemon::start(DaemonSpec::default());
    let raw = d.http();
    discover_nodes(&raw, &["n1"]).await;
    let (_, events) = raw.get("/v1/nodes/n1/events").await;
    let last = events.as_array().unwrap().last().unwrap()["seq"]
        .as_u64()
        .unwrap();

    let mut resp = raw
        .req("GET", &format!("/v1/events?after={last}"))
        .send()
        .await
        .unwrap();
    // The follower is waiting at the end of the log; a new change must wake it.
    let id = accepted(
        &raw,
        "/v1/nodes/n1/commission",
        json!({"host_group": "service-master"}),
    )
    .await;
    let mut parser = clusterm_examples::client::SseParser::default();
    let mut seen: Vec<Value> = Vec::new();
    while !seen.iter().any(|e| e["to"] == "Commissioned") {
        let chunk = tokio::time::timeout(common::PATIENCE, resp.chunk())
            .await
            .expect("the change reached the follower")
            .unwrap()
            .expect("the stream stays open");
        seen.extend(
            parser
                .feed(&chunk)
                .iter()
                .map(|e| serde_json::from_str::<Value>(&e.data).unwrap()),
        );
    }
    assert!(seen.iter().all(|e| e["seq"].as_u64().unwrap() > last));
    assert_eq!(seen[0]["to"], "Commissioning");
    assert_eq!(seen[0]["job"].as_u64(), Some(id));
}
