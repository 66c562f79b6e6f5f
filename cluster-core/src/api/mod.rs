//! The HTTP API of the manager (feature `http`): REST API v1 with its OpenAPI document,
//! the Contiv-compatible endpoints, Server-Sent Events for job logs and the audit log,
//! Prometheus metrics and a health probe.
//!
//! This module only translates HTTP to [`Manager`] calls and back; every rule (what is
//! a legal request, what changes) lives in the manager. Bad input of any kind is a 4xx
//! with a JSON body; see [`error`].

pub mod compat;
pub mod error;
mod metrics;
pub mod openapi;
mod sse;
pub mod v1;

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::job::JobId;
use crate::manager::{Manager, Request as LifecycleRequest};
pub use error::{ApiError, ApiResult};

/// The lifecycle requests both APIs carry; their routes differ only in which one they make.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Lifecycle {
    Commission,
    Decommission,
    Upgrade,
}

impl Lifecycle {
    /// Hands `req` to the manager as this request; the job that carries it out.
    async fn submit(self, manager: &Manager, req: LifecycleRequest) -> ApiResult<JobId> {
        Ok(match self {
            Lifecycle::Commission => manager.commission(req).await?,
            Lifecycle::Decommission => manager.decommission(req).await?,
            Lifecycle::Upgrade => manager.upgrade(req).await?,
        })
    }
}

/// Settings of the HTTP API.
#[derive(Clone)]
pub struct ApiConfig {
    /// Bearer token every request except `/healthz` must carry; none turns auth off.
    pub token: Option<String>,
    /// Largest request body accepted, in bytes.
    pub body_limit: usize,
    /// What the Contiv `GET /config` endpoint reports (the daemon's settings in the
    /// Contiv shape, secrets removed).
    pub compat_config: Value,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            token: None,
            body_limit: 1024 * 1024,
            compat_config: Value::Object(Default::default()),
        }
    }
}

impl std::fmt::Debug for ApiConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiConfig")
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("body_limit", &self.body_limit)
            .finish_non_exhaustive()
    }
}

/// What every handler shares.
#[derive(Clone)]
pub(crate) struct ApiState {
    manager: Manager,
    config: Arc<ApiConfig>,
    metrics: Arc<metrics::Metrics>,
    /// Ends long-lived streams so a graceful shutdown does not wait on followers.
    closing: CancellationToken,
}

/// The HTTP API bound to one manager.
#[derive(Clone)]
pub struct Api {
    state: ApiState,
}

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Api")
            .field("config", &self.state.config)
            .finish_non_exhaustive()
    }
}

impl Api {
    /// An API serving `manager` with `config`.
    pub fn new(manager: Manager, config: ApiConfig) -> Self {
        Api {
            state: ApiState {
                manager,
                config: Arc::new(config),
                metrics: Arc::new(metrics::Metrics::new()),
                closing: CancellationToken::new(),
            },
        }
    }

    /// The axum router with every route, auth, body limit and metrics in place.
    pub fn router(&self) -> Router {
        let state = self.state.clone();
        Router::new()
            .merge(v1::routes())
            .merge(compat::routes())
            .route("/v1/openapi.json", get(openapi::document))
            .route("/metrics", get(metrics::scrape))
            .route_layer(middleware::from_fn_with_state(
                state.clone(),
                metrics::track,
            ))
            .route("/healthz", get(healthz))
            .fallback(unknown_route)
            .method_not_allowed_fallback(wrong_method)
            .layer(middleware::from_fn_with_state(state.clone(), authenticate))
            .layer(DefaultBodyLimit::max(state.config.body_limit))
            .layer(tower_http::trace::TraceLayer::new_for_http())
            .with_state(state)
    }

    /// Ends every open event stream (job logs, audit log); call before a graceful
    /// shutdown so the server does not wait on followers.
    pub fn close_streams(&self) {
        self.state.closing.cancel();
    }
}

async fn healthz() -> impl IntoResponse {
    axum::Json(serde_json::json!({"status": "ok"}))
}

async fn unknown_route(uri: axum::http::Uri) -> ApiError {
    ApiError::not_found(format!("no route for {}", uri.path()))
}

async fn wrong_method(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{method} is not allowed on {}", uri.path()),
    )
}

/// Compares a presented secret `given` with `secret`: the time taken depends only on
/// the length of `given` (which the caller already knows), never on where the two
/// differ or on the secret's length.
fn constant_time_eq(given: &[u8], secret: &[u8]) -> bool {
    if secret.is_empty() {
        return given.is_empty();
    }
    let mut diff = u8::from(given.len() != secret.len());
    for (i, g) in given.iter().enumerate() {
        diff |= g ^ secret[i % secret.len()];
    }
    diff == 0
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

async fn authenticate(State(state): State<ApiState>, req: Request, next: Next) -> Response {
    let Some(token) = state.config.token.as_deref() else {
        return next.run(req).await;
    };
    if req.uri().path() == "/healthz" {
        return next.run(req).await;
    }
    match bearer(req.headers()) {
        Some(given) if constant_time_eq(given.as_bytes(), token.as_bytes()) => next.run(req).await,
        Some(_) => unauthorized("wrong bearer token"),
        None => unauthorized("missing bearer token (Authorization: Bearer <token>)"),
    }
}

fn unauthorized(message: &str) -> Response {
    let mut resp = ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message).into_response();
    resp.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Bearer"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_whole() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
        assert!(!constant_time_eq(b"", b"x"));
        assert!(
            !constant_time_eq(b"secretsecret", b"secret"),
            "a repeated secret"
        );
        assert!(!constant_time_eq(b"x", b""));
    }

    #[test]
    fn bearer_scheme_is_case_insensitive() {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, "bearer abc".parse().unwrap());
        assert_eq!(bearer(&h), Some("abc"));
        h.insert(header::AUTHORIZATION, "Basic abc".parse().unwrap());
        assert_eq!(bearer(&h), None);
    }

    #[test]
    fn debug_never_shows_the_token() {
        let c = ApiConfig {
            token: Some("hunter2".into()),
            ..ApiConfig::default()
        };
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
