//! The Contiv-compatible API end to end: request bodies exactly as Contiv's client
//! encodes them, responses checked against shapes written from Contiv's structs.

mod common;

use common::{Daemon, DaemonSpec, eventually, wait_job};
use serde_json::{Value, json};

fn fixture(name: &str) -> Value {
    let path = format!(
        "{}/tests/fixtures/contiv/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Same keys (recursively) and the same JSON types as the fixture.
fn assert_shape(want: &Value, got: &Value, at: &str) {
    assert_eq!(kind(want), kind(got), "{at}: {got}");
    match (want, got) {
        (Value::Object(w), Value::Object(g)) => {
            let wk: Vec<&String> = w.keys().collect();
            let gk: Vec<&String> = g.keys().collect();
            assert_eq!(wk, gk, "{at}: keys differ");
            for (k, v) in w {
                assert_shape(v, &g[k], &format!("{at}.{k}"));
            }
        }
        (Value::Array(w), Value::Array(g)) => {
            if let Some(first) = w.first() {
                for (i, item) in g.iter().enumerate() {
                    assert_shape(first, item, &format!("{at}[{i}]"));
                }
            }
        }
        _ => {}
    }
}

async fn post_ok(raw: &common::Raw, path: &str, body: &Value) {
    let resp = raw.post_json(path, body).await;
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    assert_eq!(status, 200, "{path}: {text}");
    assert!(text.is_empty(), "Contiv answers an empty body: {text}");
}

/// Posts Contiv's monitor-event fixture and waits until both of its nodes are listed.
async fn monitor_event(raw: &common::Raw) {
    post_ok(
        raw,
        "/monitor/event",
        &fixture("monitor_event_request.json"),
    )
    .await;
    eventually("monitor event applied", || async {
        let (_, nodes) = raw.get("/info/nodes").await;
        (nodes.as_object().map(|m| m.len()) == Some(2)).then_some(())
    })
    .await;
}

async fn last_job(raw: &common::Raw) -> Value {
    let (_, j) = raw.get("/v1/jobs/last").await;
    wait_job(raw, j["id"].as_u64().unwrap()).await
}

#[tokio::test]
async fn contiv_requests_and_response_shapes() {
    let d = Daemon::start(DaemonSpec::default());
    let raw = d.http();

    monitor_event(&raw).await;

    post_ok(&raw, "/globals", &fixture("globals_request.json")).await;
    let (s, globals) = raw.get("/info/globals").await;
    assert_eq!(s, 200);
    assert_eq!(globals, fixture("globals_info_response.json"));
    assert_eq!(
        raw.get("/v1/globals").await.1["env"]["no_proxy"],
        "localhost",
        "extra_vars string became the globals object"
    );

    post_ok(
        &raw,
        "/commission/nodes",
        &fixture("commission_request.json"),
    )
    .await;
    let job = last_job(&raw).await;
    assert_eq!(job["status"], "Complete", "{job}");
    assert_eq!(job["nodes"], json!(["node1", "node2"]));
    assert_eq!(job["host_group"], "service-master");

    let (s, node) = raw.get("/info/node/node1").await;
    assert_eq!(s, 200);
    assert_shape(&fixture("node_info_response.json"), &node, "node");
    assert_eq!(node["inventory_state"]["status"], "Allocated");
    assert_eq!(node["inventory_state"]["prev_status"], "Provisioning");
    assert_eq!(node["inventory_state"]["state"], "Discovered");
    assert_eq!(node["monitoring_state"]["serial_number"], "SN-1");
    assert_eq!(node["monitoring_state"]["management_address"], "127.0.0.11");
    assert_eq!(node["configuration_state"]["host_group"], "service-master");

    let (s, all) = raw.get("/info/nodes").await;
    assert_eq!(s, 200);
    let all = all.as_object().unwrap();
    assert_eq!(all.keys().collect::<Vec<_>>(), ["node1", "node2"]);
    for (name, n) in all {
        assert_shape(&fixture("node_info_response.json"), n, name);
    }

    let (s, info) = raw.get("/info/job/last").await;
    assert_eq!(s, 200);
    assert_shape(&fixture("job_info_response.json"), &info, "job");
    assert_eq!(info["status"], "Complete");
    assert_eq!(
        info["desc"],
        "commissionEvent: nodes:[node1 node2] host-group:service-master"
    );
    assert!(!info["logs"].as_array().unwrap().is_empty());
    let (s, e) = raw.get("/info/job/active").await;
    assert_eq!(s, 404, "{e}");

    let resp = raw.req("GET", "/info/logs/last").send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let text = resp.text().await.unwrap();
    let want: Vec<String> = info["logs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(text.lines().collect::<Vec<_>>(), want);

    post_ok(&raw, "/update/nodes", &fixture("update_request.json")).await;
    let job = last_job(&raw).await;
    assert_eq!(
        (job["kind"].as_str(), job["status"].as_str()),
        (Some("upgrade"), Some("Complete"))
    );
    let (_, n2) = raw.get("/info/node/node2").await;
    assert_eq!(n2["inventory_state"]["status"], "Allocated");
    assert_eq!(n2["inventory_state"]["prev_status"], "Maintenance");
    assert_eq!(
        raw.get("/v1/nodes/node2").await.1["host_group"],
        "service-worker"
    );

    post_ok(
        &raw,
        "/decommission/nodes",
        &fixture("decommission_request.json"),
    )
    .await;
    last_job(&raw).await;
    let (_, n1) = raw.get("/info/node/node1").await;
    assert_eq!(n1["inventory_state"]["status"], "Decommissioned");
    assert_eq!(n1["inventory_state"]["prev_status"], "Cancelled");

    post_ok(&raw, "/discover/nodes", &fixture("discover_request.json")).await;
    let job = last_job(&raw).await;
    assert_eq!(job["kind"], "discover");
    let (s, enrolled) = raw.get("/info/node/127.0.0.50").await;
    assert_eq!(s, 200);
    assert_eq!(enrolled["inventory_state"]["status"], "New");
    assert_eq!(enrolled["inventory_state"]["state"], "Unknown");

    post_ok(
        &raw,
        "/monitor/event",
        &json!({"monitor_event": {"name": "Disappeared", "nodes": [{"label": "node2", "serial": "SN-2", "addr": "127.0.0.12"}]}}),
    )
    .await;
    eventually("node2 disappeared", || async {
        let (_, n) = raw.get("/info/node/node2").await;
        (n["inventory_state"]["state"] == "Disappeared").then_some(n)
    })
    .await;
    let (_, n2) = raw.get("/info/node/node2").await;
    assert_eq!(n2["inventory_state"]["prev_state"], "Discovered");

    let (s, config) = raw.get("/config").await;
    assert_eq!(s, 200);
    assert_shape(&fixture("config_response.json"), &config, "config");
    assert_eq!(config["manager"]["addr"], format!("127.0.0.1:{}", d.port));
    // Re-posting the running configuration is accepted; changing it is not.
    post_ok(
        &raw,
        "/config",
        &json!({"config": config, "monitor_event": {"name": "", "nodes": null}}),
    )
    .await;
    let mut changed = config.clone();
    changed["serf"]["Addr"] = json!("127.0.0.1:1");
    let (s, e) = raw.post("/config", &json!({"config": changed})).await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (409, Some("config_fixed"))
    );
}

#[tokio::test]
async fn a_finished_contiv_job_log_is_served_whole() {
    let d = Daemon::start(DaemonSpec::default());
    let raw = d.http();
    monitor_event(&raw).await;
    post_ok(
        &raw,
        "/commission/nodes",
        &json!({"nodes": ["node1"], "host_group": "service-master"}),
    )
    .await;
    let job = last_job(&raw).await;
    // A finished job's log is served whole and the stream closes.
    let resp = raw.req("GET", "/info/logs/last").send().await.unwrap();
    let text = tokio::time::timeout(common::PATIENCE, resp.text())
        .await
        .unwrap()
        .unwrap();
    assert!(
        text.contains(&format!("job {} Complete", job["id"])),
        "{text}"
    );
}
