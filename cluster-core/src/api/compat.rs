//! The Contiv clusterm API, so existing `clusterctl` binaries and scripts work
//! unchanged: the same paths, request fields (`extra_vars` is a JSON *string*) and
//! response keys (`monitoring_state`, `inventory_state`, `configuration_state`, ...).
//! Successful POSTs answer 200 with an empty body, as Contiv's did; errors use the
//! v1 statuses and JSON body (Contiv clients print any non-200 body as the error).

use std::collections::{BTreeMap, HashMap};

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::error::{ApiError, ApiResult, JsonBody, Segment};
use super::sse::spilled_lines;
use super::v1::resolve_job;
use super::{ApiState, Lifecycle};
use crate::event::{EventKind, MembershipEvent, MembershipKind, NodeEvent};
use crate::job::{Job, JobStatus};
use crate::manager::{Manager, Request};
use crate::node::{Member, MemberStatus, Node, NodeStatus};
use crate::store::EventQuery;
use crate::vars;

/// Routes of the Contiv-compatible API.
pub(crate) fn routes() -> Router<ApiState> {
    Router::new()
        .route(
            "/commission/nodes",
            post(|s, r| lifecycle(s, r, Lifecycle::Commission)),
        )
        .route(
            "/decommission/nodes",
            post(|s, r| lifecycle(s, r, Lifecycle::Decommission)),
        )
        .route(
            "/update/nodes",
            post(|s, r| lifecycle(s, r, Lifecycle::Upgrade)),
        )
        .route("/discover/nodes", post(discover))
        .route("/globals", post(set_globals))
        .route("/monitor/event", post(monitor_event))
        .route("/info/nodes", get(all_nodes))
        .route("/info/node/{name}", get(one_node))
        .route("/info/globals", get(globals))
        .route("/info/job/{job}", get(job))
        .route("/info/logs/{job}", get(logs))
        .route("/config", get(get_config).post(set_config))
}

/// Contiv's request body: one shape for every POST; absent fields mean "not given".
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompatRequest {
    /// Node names.
    #[serde(default)]
    pub nodes: Option<Vec<String>>,
    /// Host addresses (discover).
    #[serde(default)]
    pub addrs: Option<Vec<String>>,
    /// Host group; empty means none.
    #[serde(default)]
    pub host_group: Option<String>,
    /// Extra vars as a JSON string.
    #[serde(default)]
    pub extra_vars: Option<String>,
    /// Job label (unused by the POSTs, accepted because clients send it).
    #[serde(default)]
    pub job: Option<String>,
    /// Monitor event (`/monitor/event`).
    #[serde(default)]
    pub monitor_event: Option<MonitorEvent>,
    /// New daemon configuration (`/config`).
    #[serde(default)]
    pub config: Option<Value>,
}

/// A discovery event posted by an external monitor.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MonitorEvent {
    /// `discovered` or `disappeared` (any case).
    #[serde(default)]
    pub name: String,
    /// The nodes concerned.
    #[serde(default)]
    pub nodes: Option<Vec<MonitorNode>>,
}

/// A node in a monitor event.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MonitorNode {
    /// Node name.
    #[serde(default)]
    pub label: String,
    /// Serial number.
    #[serde(default)]
    pub serial: String,
    /// Management address.
    #[serde(default)]
    pub addr: String,
}

fn ok() -> Response {
    StatusCode::OK.into_response()
}

fn lifecycle_request(req: CompatRequest) -> ApiResult<Request> {
    let extra_vars = vars::parse_object("extra_vars", req.extra_vars.as_deref().unwrap_or(""))?;
    Ok(Request {
        nodes: req.nodes.unwrap_or_default(),
        host_group: req
            .host_group
            .filter(|g| !g.trim().is_empty())
            .map(|g| g.as_str().into()),
        extra_vars,
        rolling: None,
    })
}

async fn lifecycle(
    State(s): State<ApiState>,
    JsonBody(req): JsonBody<CompatRequest>,
    op: Lifecycle,
) -> ApiResult<Response> {
    op.submit(&s.manager, lifecycle_request(req)?).await?;
    Ok(ok())
}

async fn discover(
    State(s): State<ApiState>,
    JsonBody(req): JsonBody<CompatRequest>,
) -> ApiResult<Response> {
    let extra_vars = vars::parse_object("extra_vars", req.extra_vars.as_deref().unwrap_or(""))?;
    s.manager
        .discover(req.addrs.unwrap_or_default(), extra_vars)
        .await?;
    Ok(ok())
}

async fn set_globals(
    State(s): State<ApiState>,
    JsonBody(req): JsonBody<CompatRequest>,
) -> ApiResult<Response> {
    let globals = vars::parse_object("extra_vars", req.extra_vars.as_deref().unwrap_or(""))?;
    s.manager.set_globals(globals).await?;
    Ok(ok())
}

async fn monitor_event(
    State(s): State<ApiState>,
    JsonBody(req): JsonBody<CompatRequest>,
) -> ApiResult<Response> {
    let event = req.monitor_event.unwrap_or_default();
    let kind = match event.name.to_ascii_lowercase().as_str() {
        "discovered" => MembershipKind::Joined,
        "disappeared" => MembershipKind::Failed,
        _ => {
            return Err(ApiError::bad_request(format!(
                "invalid or empty event name specified: {:?}",
                event.name
            )));
        }
    };
    let nodes = event.nodes.unwrap_or_default();
    if let Some(blank) = nodes.iter().position(|n| n.label.trim().is_empty()) {
        return Err(ApiError::bad_request(format!(
            "monitor_event.nodes[{blank}]: label must not be empty"
        )));
    }
    for n in nodes {
        let member = Member {
            name: n.label,
            serial: n.serial,
            addr: n.addr,
            tags: BTreeMap::new(),
            status: match kind {
                MembershipKind::Joined => MemberStatus::Alive,
                _ => MemberStatus::Failed,
            },
        };
        s.manager.membership(MembershipEvent { kind, member })?;
    }
    Ok(ok())
}

/// Contiv's view of one node.
#[derive(Debug, Serialize)]
struct CompatNode {
    monitoring_state: MonitoringState,
    inventory_state: InventoryState,
    configuration_state: ConfigurationState,
}

#[derive(Debug, Serialize)]
struct MonitoringState {
    label: String,
    serial_number: String,
    management_address: String,
}

#[derive(Debug, Serialize)]
struct InventoryState {
    name: String,
    status: &'static str,
    prev_status: &'static str,
    state: &'static str,
    prev_state: &'static str,
}

#[derive(Debug, Serialize)]
struct ConfigurationState {
    inventory_name: String,
    host_group: String,
    ssh_address: String,
    inventory_vars: BTreeMap<String, String>,
}

/// Contiv's discovery state names for a reachability (or its name in an audit record).
fn contiv_state(reachability: &str) -> &'static str {
    match reachability {
        "reachable" => "Discovered",
        "unreachable" | "left" => "Disappeared",
        _ => "Unknown",
    }
}

/// Previous status and previous discovery state of each node, from its audit log.
#[derive(Debug, Default, Clone, Copy)]
struct History {
    prev_status: Option<NodeStatus>,
    prev_state: Option<&'static str>,
}

fn history(events: &[NodeEvent]) -> HashMap<String, History> {
    let mut out: HashMap<String, History> = HashMap::new();
    for e in events {
        let h = out.entry(e.node.clone()).or_default();
        match e.kind {
            EventKind::Status => {
                h.prev_status = NodeStatus::ALL.into_iter().find(|s| s.as_str() == e.from);
            }
            EventKind::Reachability => h.prev_state = Some(contiv_state(&e.from)),
            _ => {}
        }
    }
    out
}

fn compat_node(n: &Node, h: History) -> CompatNode {
    let mut inventory_vars = BTreeMap::new();
    inventory_vars.insert("node_name".to_owned(), n.name.clone());
    inventory_vars.insert("node_addr".to_owned(), n.addr.clone());
    CompatNode {
        monitoring_state: MonitoringState {
            label: n.name.clone(),
            serial_number: n.serial.clone(),
            management_address: n.addr.clone(),
        },
        inventory_state: InventoryState {
            name: n.name.clone(),
            status: n.status.collins(),
            // Contiv's zero status was "Incomplete": nothing came before.
            prev_status: h.prev_status.map_or("Incomplete", NodeStatus::collins),
            state: contiv_state(n.reachability.as_str()),
            prev_state: h.prev_state.unwrap_or("Unknown"),
        },
        configuration_state: ConfigurationState {
            inventory_name: n.name.clone(),
            host_group: n
                .host_group
                .as_ref()
                .map_or_else(String::new, |g| g.as_str().to_owned()),
            ssh_address: n.addr.clone(),
            inventory_vars,
        },
    }
}

async fn all_nodes(State(s): State<ApiState>) -> ApiResult<Json<BTreeMap<String, CompatNode>>> {
    let events = s.manager.events(EventQuery::all(0, usize::MAX)).await?;
    let hist = history(&events);
    let mut out = BTreeMap::new();
    s.manager.for_each_node(|n| {
        let h = hist.get(&n.name).copied().unwrap_or_default();
        out.insert(n.name.clone(), compat_node(n, h));
    });
    Ok(Json(out))
}

async fn one_node(
    State(s): State<ApiState>,
    Segment(name): Segment,
) -> ApiResult<Json<CompatNode>> {
    let node = s.manager.node(name.trim())?;
    let events = s
        .manager
        .events(EventQuery::node(node.name.clone(), 0, usize::MAX))
        .await?;
    let h = history(&events).remove(&node.name).unwrap_or_default();
    Ok(Json(compat_node(&node, h)))
}

async fn globals(State(s): State<ApiState>) -> Json<Value> {
    Json(json!({ "extra_vars": s.manager.globals() }))
}

async fn contiv_job(manager: &Manager, label: &str) -> ApiResult<Job> {
    let label = label.trim();
    if label.is_empty() {
        return Err(ApiError::bad_request(
            "invalid or empty job label specified: \"\"",
        ));
    }
    match resolve_job(manager, label).await {
        Err(e) if e.status == StatusCode::NOT_FOUND => Err(ApiError::not_found(format!(
            "info for {label:?} job doesn't exist"
        ))),
        other => other,
    }
}

async fn log_lines(manager: &Manager, job: &Job) -> Vec<String> {
    let lines = match manager.job_log(job.id) {
        Some(log) => log.lines_after(0),
        None => spilled_lines(manager, job.id, 0).await,
    };
    lines.into_iter().map(|l| l.text).collect()
}

async fn job(State(s): State<ApiState>, Segment(label): Segment) -> ApiResult<Json<Value>> {
    let job = contiv_job(&s.manager, &label).await?;
    let status = match job.status {
        JobStatus::Queued => "Queued",
        JobStatus::Running => "Running",
        JobStatus::Complete => "Complete",
        // Contiv had no separate cancelled status: a cancelled job ended in error.
        JobStatus::Errored | JobStatus::Cancelled => "Errored",
    };
    let error = job.error.clone().unwrap_or_else(|| {
        job.failed
            .iter()
            .map(|(n, why)| format!("{n}: {why}"))
            .collect::<Vec<_>>()
            .join("; ")
    });
    let host_group = job.host_group.as_ref().map_or("", |g| g.as_str());
    Ok(Json(json!({
        // Contiv's description format, e.g. `commissionEvent: nodes:[n1 n2] host-group:g`.
        "desc": format!(
            "{}Event: nodes:[{}] host-group:{host_group}",
            job.kind,
            job.nodes.join(" ")
        ),
        "task": job.kind.to_string(),
        "status": status,
        "error": error,
        "logs": log_lines(&s.manager, &job).await,
    })))
}

/// Streams a job log as plain text; an active job's log is followed until it ends.
async fn logs(State(s): State<ApiState>, Segment(label): Segment) -> ApiResult<Response> {
    let job = contiv_job(&s.manager, &label).await?;
    let Some(log) = s.manager.job_log(job.id) else {
        let mut text = log_lines(&s.manager, &job).await.join("\n");
        text.push('\n');
        return Ok(([(header::CONTENT_TYPE, "text/plain")], text).into_response());
    };
    let closing = s.closing.clone();
    let stream = futures::stream::unfold((log, 0u64), move |(log, after)| {
        let closing = closing.clone();
        async move {
            let lines = tokio::select! {
                l = log.follow(after) => l,
                _ = closing.cancelled() => Vec::new(),
            };
            let last = lines.last()?.n;
            let mut chunk = String::new();
            for l in lines {
                chunk.push_str(&l.text);
                chunk.push('\n');
            }
            Some((Ok::<_, std::convert::Infallible>(chunk), (log, last)))
        }
    });
    Ok((
        [(header::CONTENT_TYPE, "text/plain")],
        Body::from_stream(stream),
    )
        .into_response())
}

async fn get_config(State(s): State<ApiState>) -> Json<Value> {
    Json(s.config.compat_config.clone())
}

/// Contiv allowed changing only its Ansible settings at runtime; here every component
/// is fixed for the daemon's life, so only a configuration equal to the running one is
/// accepted (scripts that re-post it keep working) and any change is a 409.
async fn set_config(
    State(s): State<ApiState>,
    JsonBody(req): JsonBody<CompatRequest>,
) -> ApiResult<Response> {
    let Some(config) = req.config.filter(|c| !c.is_null()) else {
        return Err(ApiError::bad_request(
            "nil value specified for clusterm configuration",
        ));
    };
    if !config.is_object() {
        return Err(ApiError::bad_request("config must be a JSON object"));
    }
    let current = &s.config.compat_config;
    let mut merged = current.clone();
    vars::deep_merge(&mut merged, &config);
    if &merged == current {
        return Ok(ok());
    }
    Err(ApiError::new(
        StatusCode::CONFLICT,
        "config_fixed",
        "clusterm configuration can't be changed while it runs; edit the daemon's config file and restart it",
    ))
}
