//! Property: no request body, however malformed, makes the API answer 5xx; every
//! refusal carries the JSON error body.

mod common;

use common::{Daemon, DaemonSpec, discover_nodes};
use proptest::prelude::*;
use serde_json::{Map, Value};

const ROUTES: &[(&str, &str)] = &[
    ("POST", "/v1/nodes/n1/commission"),
    ("POST", "/v1/nodes/n2/decommission"),
    ("POST", "/v1/nodes/ghost/upgrade"),
    ("POST", "/v1/nodes:commission"),
    ("POST", "/v1/nodes:decommission"),
    ("POST", "/v1/nodes:upgrade"),
    ("POST", "/v1/discover"),
    ("PUT", "/v1/globals"),
    ("POST", "/v1/jobs/1/cancel"),
    ("POST", "/commission/nodes"),
    ("POST", "/decommission/nodes"),
    ("POST", "/update/nodes"),
    ("POST", "/discover/nodes"),
    ("POST", "/globals"),
    ("POST", "/monitor/event"),
    ("POST", "/config"),
];

/// Field names the API knows, so random objects often look almost right.
const KEYS: &[&str] = &[
    "nodes",
    "addrs",
    "host_group",
    "extra_vars",
    "rolling",
    "batch_size",
    "max_failures",
    "monitor_event",
    "name",
    "label",
    "serial",
    "addr",
    "config",
    "job",
    "manager",
    "x",
];

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        "[a-z0-9 .:{}\"\\[\\]-]{0,12}".prop_map(Value::String),
        prop::sample::select(vec![
            "n1",
            "n2",
            "ghost",
            "service-master",
            "service-worker",
            "discovered",
            "disappeared",
            "127.0.0.7",
            "{}",
            "{\"a\":1}"
        ])
        .prop_map(|s| Value::String(s.to_owned())),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(KEYS), inner), 0..5).prop_map(|kv| {
                Value::Object(
                    kv.into_iter()
                        .map(|(k, v)| (k.to_owned(), v))
                        .collect::<Map<_, _>>(),
                )
            }),
        ]
    })
}

fn body() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => json_value().prop_map(|v| v.to_string()),
        1 => "\\PC{0,40}",
        1 => prop::collection::vec(any::<u8>(), 0..40).prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
    ]
}

#[test]
fn random_bodies_never_yield_a_server_error() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let d = Daemon::start(DaemonSpec::default());
    let raw = d.http();
    rt.block_on(discover_nodes(&raw, &["n1", "n2"]));

    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 400,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    runner
        .run(&(0..ROUTES.len(), body()), |(route, body)| {
            let (method, path) = ROUTES[route];
            let (status, answer) = rt.block_on(raw.call(method, path, Some(&body)));
            prop_assert!(
                status < 500,
                "{method} {path} {body:?} -> {status} {answer}"
            );
            if status >= 400 {
                prop_assert!(
                    answer["error"]["code"].is_string(),
                    "{method} {path} -> {answer}"
                );
            }
            Ok(())
        })
        .unwrap();
    let (status, _) = rt.block_on(raw.get("/healthz"));
    assert_eq!(status, 200, "daemon still healthy:\n{}", d.output());
}
