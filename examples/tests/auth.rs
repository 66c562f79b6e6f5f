//! Bearer-token auth: on when a token is configured, off otherwise; the token never
//! shows in the daemon's output.

mod common;

use std::process::Command;

use common::{Daemon, DaemonSpec, bin};
use serde_json::json;

const TOKEN: &str = "s3cret-Token-4711";

#[tokio::test]
async fn with_a_token_every_route_but_healthz_requires_it() {
    let d = Daemon::start(DaemonSpec::default().token(TOKEN));
    let anonymous = common::Raw {
        base: d.url(),
        token: None,
        http: reqwest::Client::new(),
    };
    let wrong = common::Raw {
        base: d.url(),
        token: Some("s3cret-Token-4712".into()),
        http: reqwest::Client::new(),
    };
    let good = d.http();

    assert_eq!(anonymous.get("/healthz").await.0, 200);
    for path in [
        "/v1/nodes",
        "/v1/jobs",
        "/info/nodes",
        "/metrics",
        "/v1/openapi.json",
        "/v1/nope",
    ] {
        let resp = anonymous.req("GET", path).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 401, "{path}");
        assert_eq!(resp.headers()["www-authenticate"], "Bearer");
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["code"], "unauthorized", "{path}");
        let (s, body) = wrong.get(path).await;
        assert_eq!(s, 401, "{path}");
        assert_eq!(body["error"]["message"], "wrong bearer token");
    }
    // A refused write changes nothing.
    let (s, _) = anonymous
        .call("PUT", "/v1/globals", Some(r#"{"x": 1}"#))
        .await;
    assert_eq!(s, 401);
    let (s, g) = good.get("/v1/globals").await;
    assert_eq!((s, g), (200, json!({})));
    let (s, _) = good.call("PUT", "/v1/globals", Some(r#"{"x": 1}"#)).await;
    assert_eq!(s, 200);
    assert_eq!(good.get("/v1/globals").await.1, json!({"x": 1}));

    let ctl = |token: Option<&str>| {
        let mut c = Command::new(bin("clusterctl"));
        c.env_remove("CLUSTERCTL_TOKEN")
            .args(["--url", &d.url(), "global", "get"]);
        if let Some(t) = token {
            c.env("CLUSTERCTL_TOKEN", t);
        }
        c.output().unwrap()
    };
    let ok = ctl(Some(TOKEN));
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let refused = ctl(None);
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains("missing bearer token") && err.contains("401"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");

    assert!(!d.output().contains(TOKEN), "the token leaked into the log");
}

#[tokio::test]
async fn without_a_token_auth_is_off() {
    let d = Daemon::start(DaemonSpec::default());
    let anonymous = d.http();
    assert!(anonymous.token.is_none());
    for path in ["/v1/nodes", "/info/nodes", "/metrics", "/v1/openapi.json"] {
        assert_eq!(anonymous.get(path).await.0, 200, "{path}");
    }
    // A token sent to a daemon without auth is simply not needed.
    let with = common::Raw {
        base: d.url(),
        token: Some("anything".into()),
        http: reqwest::Client::new(),
    };
    assert_eq!(with.get("/v1/nodes").await.0, 200);
}
