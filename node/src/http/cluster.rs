//! Cluster operations: status, membership, health and readiness.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use fleetcore_raft::{ClusterStatus, Connector, NodeInfo};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::json_body;
use crate::error::ApiError;
use crate::service::Service;

pub(crate) async fn status<C: Connector>(State(service): State<Service<C>>) -> Json<ClusterStatus> {
    Json(service.node().status())
}

/// Body of `POST /cluster/members`.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct AddMember {
    /// The new node's id.
    pub id: u64,
    /// Its Raft gRPC address.
    pub raft_addr: String,
    /// Its HTTP address.
    pub http_addr: String,
}

pub(crate) async fn add_member<C: Connector>(
    State(service): State<Service<C>>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let m: AddMember = json_body(&body)?;
    if m.id == 0 || m.raft_addr.is_empty() {
        return Err(ApiError::invalid("id (>= 1) and raft_addr are required"));
    }
    service
        .node()
        .add_node(
            m.id,
            NodeInfo {
                raft_addr: m.raft_addr,
                http_addr: m.http_addr,
            },
        )
        .await?;
    Ok(Json(json!({ "added": m.id })))
}

/// `fleetcore cluster init`: a node started with `--bootstrap false` forms a new
/// single-node cluster, which others then join.
pub(crate) async fn init<C: Connector>(
    State(service): State<Service<C>>,
) -> Result<Json<Value>, ApiError> {
    let node = service.node();
    if node.is_initialized().await? {
        return Err(ApiError::invalid(format!(
            "node {} already belongs to cluster {}",
            node.id(),
            node.cluster().get().unwrap_or_default()
        )));
    }
    let cluster_id = format!("fc-{}", service.entropy().uuid().simple());
    node.bootstrap(
        &cluster_id,
        std::collections::BTreeMap::from([(node.id(), node.info().clone())]),
    )
    .await?;
    Ok(Json(
        json!({ "cluster_id": cluster_id, "node_id": node.id() }),
    ))
}

pub(crate) async fn remove_member<C: Connector>(
    State(service): State<Service<C>>,
    Path(id): Path<u64>,
) -> Result<Json<Value>, ApiError> {
    service.node().remove_node(id).await?;
    Ok(Json(json!({ "removed": id })))
}

pub(crate) async fn healthz() -> &'static str {
    "ok"
}

pub(crate) async fn readyz<C: Connector>(
    State(service): State<Service<C>>,
) -> (StatusCode, &'static str) {
    if service.node().is_ready() {
        (StatusCode::OK, "ready")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: no leader or not caught up",
        )
    }
}
