//! REST API v1 (design.md section 5): nodes, lifecycle requests (one node or a batch),
//! discovery by address, globals, jobs and their logs, the cluster and the audit log.

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::error::{ApiError, ApiResult, JsonBody, QueryParams, Segment};
use super::sse;
use super::{ApiState, Lifecycle};
use crate::cluster::Cluster;
use crate::event::NodeEvent;
use crate::job::{Job, JobId, Rolling};
use crate::manager::{Manager, Request};
use crate::node::{HostGroup, Node, NodeStatus};
use crate::store::EventQuery;

/// Routes of API v1.
pub(crate) fn routes() -> Router<ApiState> {
    Router::new()
        .route("/v1/nodes", get(list_nodes))
        .route("/v1/nodes/{name}", get(get_node))
        .route("/v1/nodes/{name}/events", get(node_events))
        .route("/v1/nodes/{name}/commission", post(commission_node))
        .route("/v1/nodes/{name}/decommission", post(decommission_node))
        .route("/v1/nodes/{name}/upgrade", post(upgrade_node))
        .route("/v1/nodes:commission", post(commission_nodes))
        .route("/v1/nodes:decommission", post(decommission_nodes))
        .route("/v1/nodes:upgrade", post(upgrade_nodes))
        .route("/v1/discover", post(discover))
        .route("/v1/globals", get(get_globals).put(put_globals))
        .route("/v1/jobs", get(list_jobs))
        .route("/v1/jobs/{id}", get(get_job))
        .route("/v1/jobs/{id}/logs", get(job_logs))
        .route("/v1/jobs/{id}/cancel", post(cancel_job))
        .route("/v1/cluster", get(get_cluster))
        .route("/v1/events", get(sse::events))
}

/// Filter of the node listing.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct NodeFilter {
    /// Only nodes with this lifecycle status.
    pub status: Option<NodeStatus>,
}

/// A lifecycle request for the node named in the path.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NodeRequest {
    /// Host group to commission under (or to move to on upgrade).
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub host_group: Option<HostGroup>,
    /// Extra vars (a JSON object), merged over node vars and globals.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub extra_vars: Value,
}

/// A lifecycle request for several nodes in one job.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchRequest {
    /// Node names, in the order they should be handled.
    pub nodes: Vec<String>,
    /// Host group to commission under (or to move to on upgrade).
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub host_group: Option<HostGroup>,
    /// Extra vars (a JSON object), merged over node vars and globals.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub extra_vars: Value,
    /// Rolling options (upgrades only).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub rolling: Option<Rolling>,
}

/// Hosts to enroll by address.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DiscoverRequest {
    /// IP addresses or host names.
    pub addrs: Vec<String>,
    /// Extra vars for the discover playbook (a JSON object).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub extra_vars: Value,
}

/// The answer to an accepted request: the job that carries it out.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Accepted {
    /// The job id; follow it at `/v1/jobs/{job}`.
    pub job: u64,
}

/// Cursor of an audit-log page.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct Page {
    /// Only events with a sequence number above this.
    #[serde(default)]
    pub after: u64,
    /// At most this many (default 1000, at most 10000).
    pub limit: Option<usize>,
}

fn accepted(id: JobId) -> Response {
    let location = format!("/v1/jobs/{id}");
    (
        StatusCode::ACCEPTED,
        [(header::LOCATION, location)],
        Json(Accepted { job: id.0 }),
    )
        .into_response()
}

/// Every node, ordered by name.
#[utoipa::path(get, path = "/v1/nodes", params(NodeFilter),
    responses((status = 200, description = "OK", body = [Node]), (status = 400, description = "Bad input (malformed JSON, unknown field, wrong type, invalid value)", body = super::error::ErrorBody)))]
pub(crate) async fn list_nodes(
    State(s): State<ApiState>,
    QueryParams(filter): QueryParams<NodeFilter>,
) -> ApiResult<Response> {
    // Written straight into one buffer: no per-node clone for large inventories.
    let mut out = Vec::with_capacity(s.manager.node_count() * 320 + 2);
    out.push(b'[');
    let mut first = true;
    let mut failed = None;
    s.manager.for_each_node(|n| {
        if failed.is_some() || filter.status.is_some_and(|st| st != n.status) {
            return;
        }
        if !first {
            out.push(b',');
        }
        first = false;
        if let Err(e) = serde_json::to_writer(&mut out, n) {
            failed = Some(e);
        }
    });
    if let Some(e) = failed {
        return Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "encode",
            e.to_string(),
        ));
    }
    out.push(b']');
    Ok(([(header::CONTENT_TYPE, "application/json")], out).into_response())
}

/// One node.
#[utoipa::path(get, path = "/v1/nodes/{name}", params(("name" = String, Path)),
    responses((status = 200, description = "OK", body = Node), (status = 404, description = "Unknown node or job", body = super::error::ErrorBody)))]
pub(crate) async fn get_node(
    State(s): State<ApiState>,
    Segment(name): Segment,
) -> ApiResult<Json<Node>> {
    Ok(Json(s.manager.node(&name)?))
}

/// One node's audit log.
#[utoipa::path(get, path = "/v1/nodes/{name}/events", params(("name" = String, Path), Page),
    responses((status = 200, description = "OK", body = [NodeEvent]), (status = 404, description = "Unknown node or job", body = super::error::ErrorBody)))]
pub(crate) async fn node_events(
    State(s): State<ApiState>,
    Segment(name): Segment,
    QueryParams(page): QueryParams<Page>,
) -> ApiResult<Json<Vec<NodeEvent>>> {
    let limit = page.limit.unwrap_or(1000).clamp(1, 10_000);
    Ok(Json(
        s.manager
            .events(EventQuery::node(name, page.after, limit))
            .await?,
    ))
}

async fn submit(manager: &Manager, op: Lifecycle, req: Request) -> ApiResult<Response> {
    Ok(accepted(op.submit(manager, req).await?))
}

async fn one(s: &ApiState, name: String, body: NodeRequest, op: Lifecycle) -> ApiResult<Response> {
    let req = Request {
        nodes: vec![name],
        host_group: body.host_group,
        extra_vars: body.extra_vars,
        rolling: None,
    };
    submit(&s.manager, op, req).await
}

async fn batch(s: &ApiState, body: BatchRequest, op: Lifecycle) -> ApiResult<Response> {
    let req = Request {
        nodes: body.nodes,
        host_group: body.host_group,
        extra_vars: body.extra_vars,
        rolling: body.rolling,
    };
    submit(&s.manager, op, req).await
}

/// Defines the two handlers of one lifecycle request: for the node named in the path
/// and for a batch. They differ only in how the body becomes a [`Request`].
macro_rules! lifecycle_handlers {
    ($op:ident, $one:ident, $one_path:literal, $one_doc:literal,
        $many:ident, $many_path:literal, $many_doc:literal) => {
        #[doc = $one_doc]
        #[utoipa::path(post, path = $one_path, params(("name" = String, Path)),
            request_body = NodeRequest, responses((status = 202, description = "Accepted; follow the job at /v1/jobs/{job}", body = Accepted),
            (status = 400, description = "Bad input (malformed JSON, unknown field, wrong type, invalid value)", body = super::error::ErrorBody), (status = 404, description = "Unknown node or job", body = super::error::ErrorBody),
            (status = 409, description = "Illegal transition, busy node or finished job", body = super::error::ErrorBody)))]
        pub(crate) async fn $one(
            State(s): State<ApiState>,
            Segment(name): Segment,
            JsonBody(body): JsonBody<NodeRequest>,
        ) -> ApiResult<Response> {
            one(&s, name, body, Lifecycle::$op).await
        }

        #[doc = $many_doc]
        #[utoipa::path(post, path = $many_path, request_body = BatchRequest,
            responses((status = 202, description = "Accepted; follow the job at /v1/jobs/{job}", body = Accepted), (status = 400, description = "Bad input (malformed JSON, unknown field, wrong type, invalid value)", body = super::error::ErrorBody),
            (status = 404, description = "Unknown node or job", body = super::error::ErrorBody), (status = 409, description = "Illegal transition, busy node or finished job", body = super::error::ErrorBody)))]
        pub(crate) async fn $many(
            State(s): State<ApiState>,
            JsonBody(body): JsonBody<BatchRequest>,
        ) -> ApiResult<Response> {
            batch(&s, body, Lifecycle::$op).await
        }
    };
}

lifecycle_handlers!(
    Commission,
    commission_node,
    "/v1/nodes/{name}/commission",
    "Commissions one node under a host group.",
    commission_nodes,
    "/v1/nodes:commission",
    "Commissions several nodes in one job."
);
lifecycle_handlers!(
    Decommission,
    decommission_node,
    "/v1/nodes/{name}/decommission",
    "Decommissions one node.",
    decommission_nodes,
    "/v1/nodes:decommission",
    "Decommissions several nodes in one job."
);
lifecycle_handlers!(
    Upgrade,
    upgrade_node,
    "/v1/nodes/{name}/upgrade",
    "Upgrades one node.",
    upgrade_nodes,
    "/v1/nodes:upgrade",
    "Upgrades several nodes, all at once or rolling."
);

/// Enrolls hosts by address and runs the discover playbook on them.
#[utoipa::path(post, path = "/v1/discover", request_body = DiscoverRequest,
    responses((status = 202, description = "Accepted; follow the job at /v1/jobs/{job}", body = Accepted), (status = 400, description = "Bad input (malformed JSON, unknown field, wrong type, invalid value)", body = super::error::ErrorBody),
    (status = 409, description = "Illegal transition, busy node or finished job", body = super::error::ErrorBody)))]
pub(crate) async fn discover(
    State(s): State<ApiState>,
    JsonBody(body): JsonBody<DiscoverRequest>,
) -> ApiResult<Response> {
    let id = s.manager.discover(body.addrs, body.extra_vars).await?;
    Ok(accepted(id))
}

/// The cluster-wide extra vars.
#[utoipa::path(get, path = "/v1/globals", responses((status = 200, description = "OK", body = Object)))]
pub(crate) async fn get_globals(State(s): State<ApiState>) -> Json<Value> {
    Json(s.manager.globals())
}

/// Replaces the cluster-wide extra vars (a JSON object).
#[utoipa::path(put, path = "/v1/globals", request_body = Object,
    responses((status = 200, description = "OK", body = Object), (status = 400, description = "Bad input (malformed JSON, unknown field, wrong type, invalid value)", body = super::error::ErrorBody)))]
pub(crate) async fn put_globals(
    State(s): State<ApiState>,
    JsonBody(body): JsonBody<Value>,
) -> ApiResult<Json<Value>> {
    s.manager.set_globals(body).await?;
    Ok(Json(s.manager.globals()))
}

/// Every job in id order.
#[utoipa::path(get, path = "/v1/jobs", responses((status = 200, description = "OK", body = [Job])))]
pub(crate) async fn list_jobs(State(s): State<ApiState>) -> ApiResult<Json<Vec<Job>>> {
    Ok(Json(s.manager.jobs().await?))
}

/// Resolves a job reference: a number, `active` (oldest running) or `last` (newest).
pub(crate) async fn resolve_job(manager: &Manager, reference: &str) -> ApiResult<Job> {
    let job = match reference {
        "active" => manager.active_job().await?,
        "last" => manager.last_job().await?,
        n => {
            let id = n.parse::<u64>().map_err(|_| {
                ApiError::bad_request(format!("job {n:?} is not a job id, \"active\" or \"last\""))
            })?;
            Some(manager.job(JobId(id)).await?)
        }
    };
    job.ok_or_else(|| ApiError::not_found(format!("no {reference} job")))
}

/// One job: by id, `active` or `last`.
#[utoipa::path(get, path = "/v1/jobs/{id}", params(("id" = String, Path, description = "job id, `active` or `last`")),
    responses((status = 200, description = "OK", body = Job), (status = 400, description = "Bad input (malformed JSON, unknown field, wrong type, invalid value)", body = super::error::ErrorBody),
    (status = 404, description = "Unknown node or job", body = super::error::ErrorBody)))]
pub(crate) async fn get_job(
    State(s): State<ApiState>,
    Segment(id): Segment,
) -> ApiResult<Json<Job>> {
    Ok(Json(resolve_job(&s.manager, &id).await?))
}

/// How to read a job log.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct LogQuery {
    /// Stream new lines as Server-Sent Events until the job ends.
    #[serde(default)]
    pub follow: bool,
    /// Only lines numbered above this.
    #[serde(default)]
    pub after: u64,
}

/// A job's log: a JSON page, or Server-Sent Events when following.
#[utoipa::path(get, path = "/v1/jobs/{id}/logs",
    params(("id" = String, Path, description = "job id, `active` or `last`"), LogQuery),
    responses((status = 200, description = "`{job, lines: [{n, text}], finished}`, or an event stream (`line` events, then `end`) with `follow=true` or `Accept: text/event-stream`"),
    (status = 404, description = "Unknown node or job", body = super::error::ErrorBody)))]
pub(crate) async fn job_logs(
    State(s): State<ApiState>,
    Segment(id): Segment,
    QueryParams(q): QueryParams<LogQuery>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let job = resolve_job(&s.manager, &id).await?;
    let wants_stream = q.follow
        || headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("text/event-stream"));
    let log = s.manager.job_log(job.id);
    if wants_stream {
        return Ok(sse::job_log(&s, job.id, log, q.after).into_response());
    }
    let (lines, finished) = match log {
        Some(log) => (log.lines_after(q.after), log.is_finished()),
        None => (
            sse::spilled_lines(&s.manager, job.id, q.after).await,
            job.status.is_finished(),
        ),
    };
    Ok(Json(serde_json::json!({
        "job": job.id.0,
        "finished": finished,
        "lines": lines,
    }))
    .into_response())
}

/// Stops a running job; its nodes go to `Failed`.
#[utoipa::path(post, path = "/v1/jobs/{id}/cancel", params(("id" = String, Path, description = "job id or `active`")),
    responses((status = 202, description = "Accepted; follow the job at /v1/jobs/{job}", body = Accepted), (status = 404, description = "Unknown node or job", body = super::error::ErrorBody),
    (status = 409, description = "Illegal transition, busy node or finished job", body = super::error::ErrorBody)))]
pub(crate) async fn cancel_job(
    State(s): State<ApiState>,
    Segment(id): Segment,
) -> ApiResult<Response> {
    let job = resolve_job(&s.manager, &id).await?;
    s.manager.cancel(job.id).await?;
    Ok(accepted(job.id))
}

/// The cluster record.
#[utoipa::path(get, path = "/v1/cluster", responses((status = 200, description = "OK", body = Cluster)))]
pub(crate) async fn get_cluster(State(s): State<ApiState>) -> Json<Cluster> {
    Json(s.manager.cluster())
}
