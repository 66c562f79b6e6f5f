//! The OpenAPI document of API v1, generated from the handlers' annotations and the
//! model types, served at `/v1/openapi.json`.

use axum::Json;
use utoipa::OpenApi;

use super::error::{ErrorBody, ErrorDetail};
use super::v1::{Accepted, BatchRequest, DiscoverRequest, NodeRequest};
use super::{sse, v1};
use crate::cluster::{Cluster, ClusterState};
use crate::event::{EventKind, NodeEvent};
use crate::job::{Job, JobKind, JobStatus};
use crate::node::{Node, NodeStatus, Reachability};

/// API v1 as an OpenAPI 3.1 document.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "clusterm API",
        description = "Node lifecycle management for clusters: REST API v1"
    ),
    paths(
        v1::list_nodes,
        v1::get_node,
        v1::node_events,
        v1::commission_node,
        v1::decommission_node,
        v1::upgrade_node,
        v1::commission_nodes,
        v1::decommission_nodes,
        v1::upgrade_nodes,
        v1::discover,
        v1::get_globals,
        v1::put_globals,
        v1::list_jobs,
        v1::get_job,
        v1::job_logs,
        v1::cancel_job,
        v1::get_cluster,
        sse::events,
    ),
    components(schemas(
        Node,
        NodeStatus,
        Reachability,
        Job,
        JobKind,
        JobStatus,
        NodeEvent,
        EventKind,
        Cluster,
        ClusterState,
        NodeRequest,
        BatchRequest,
        DiscoverRequest,
        Accepted,
        ErrorBody,
        ErrorDetail,
    )),
    modifiers(&BearerAuth)
)]
pub struct ApiDoc;

/// Declares the optional bearer token (required when the daemon is given one).
struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{
            HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
        };
        let scheme = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .description(Some(
                "Required on every route but /healthz when the daemon has a token; a missing or wrong token is a 401",
            ))
            .build();
        doc.components
            .get_or_insert_with(Default::default)
            .add_security_scheme("bearer", SecurityScheme::Http(scheme));
        // Both alternatives: with the token, or none when auth is off.
        doc.security = Some(vec![
            SecurityRequirement::new("bearer", Vec::<String>::new()),
            SecurityRequirement::default(),
        ]);
    }
}

pub(crate) async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
