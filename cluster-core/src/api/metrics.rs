//! Prometheus metrics: API latency per route (recorded as requests pass), and at scrape
//! time nodes by status, jobs by kind and status, and lifecycle transitions counted from
//! the audit log.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusRecorder};

use super::ApiState;
use super::error::ApiResult;
use crate::event::EventKind;
use crate::job::{JobKind, JobStatus};
use crate::node::NodeStatus;
use crate::store::EventQuery;

/// The API's own recorder (not the process-global one, so several APIs can coexist).
pub(crate) struct Metrics {
    recorder: PrometheusRecorder,
    /// Audit-log position up to which transitions are counted.
    counted: tokio::sync::Mutex<u64>,
}

const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

impl Metrics {
    pub fn new() -> Self {
        let recorder = PrometheusBuilder::new()
            .set_buckets(LATENCY_BUCKETS)
            .map(PrometheusBuilder::build_recorder)
            .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder());
        Metrics {
            recorder,
            counted: tokio::sync::Mutex::new(0),
        }
    }

    fn with<T>(&self, f: impl FnOnce() -> T) -> T {
        metrics::with_local_recorder(&self.recorder, f)
    }
}

/// Records the latency of every routed request.
pub(crate) async fn track(State(s): State<ApiState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = req.method().as_str().to_owned();
    let start = Instant::now();
    let resp = next.run(req).await;
    let status = resp.status().as_u16().to_string();
    let secs = start.elapsed().as_secs_f64();
    s.metrics.with(|| {
        metrics::histogram!(
            "clusterm_api_request_duration_seconds",
            "method" => method,
            "route" => route,
            "status" => status
        )
        .record(secs);
    });
    resp
}

fn kind_name(k: JobKind) -> String {
    k.to_string()
}

fn status_name(s: JobStatus) -> &'static str {
    match s {
        JobStatus::Queued => "Queued",
        JobStatus::Running => "Running",
        JobStatus::Complete => "Complete",
        JobStatus::Errored => "Errored",
        JobStatus::Cancelled => "Cancelled",
    }
}

/// `GET /metrics`: the Prometheus text format.
pub(crate) async fn scrape(State(s): State<ApiState>) -> ApiResult<Response> {
    let mut by_status = [0u64; NodeStatus::ALL.len()];
    s.manager.for_each_node(|n| {
        if let Some(i) = NodeStatus::ALL.iter().position(|st| *st == n.status) {
            by_status[i] += 1;
        }
    });
    let jobs = s.manager.jobs().await?;
    let mut job_counts = std::collections::BTreeMap::<(String, &'static str), u64>::new();
    for j in &jobs {
        *job_counts
            .entry((kind_name(j.kind), status_name(j.status)))
            .or_default() += 1;
    }

    let mut counted = s.metrics.counted.lock().await;
    let mut transitions = std::collections::BTreeMap::<String, u64>::new();
    loop {
        let page = s.manager.events(EventQuery::all(*counted, 10_000)).await?;
        let Some(last) = page.last() else { break };
        *counted = last.seq;
        for e in page.iter().filter(|e| e.kind == EventKind::Status) {
            *transitions.entry(e.to.clone()).or_default() += 1;
        }
    }
    drop(counted);

    s.metrics.with(|| {
        for (st, n) in NodeStatus::ALL.iter().zip(by_status) {
            metrics::gauge!("clusterm_nodes", "status" => st.as_str()).set(n as f64);
        }
        for ((kind, status), n) in job_counts {
            metrics::gauge!("clusterm_jobs", "kind" => kind, "status" => status).set(n as f64);
        }
        for (to, n) in transitions {
            metrics::counter!("clusterm_transitions_total", "to" => to).increment(n);
        }
        metrics::gauge!("clusterm_jobs_running").set(
            jobs.iter()
                .filter(|j| j.status == JobStatus::Running)
                .count() as f64,
        );
    });
    let text = s.metrics.recorder.handle().render();
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response())
}
