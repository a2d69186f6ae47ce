//! The quotas of the replicated state (Fleetcore's own API; AWS sets its quotas
//! per account through Service Quotas): `GET /quotas` and `PUT /quotas` with any
//! subset of the fields, the rest kept.

use axum::body::Bytes;
use axum::extract::State;
use axum::Json;
use fleetcore_model::limits::Quotas;
use fleetcore_raft::Connector;
use serde_json::Value;

use super::json_body;
use crate::error::ApiError;
use crate::service::Service;

fn as_json(quotas: &Quotas) -> Result<Json<Value>, ApiError> {
    serde_json::to_value(quotas)
        .map(Json)
        .map_err(|e| ApiError::invalid(format!("quotas: {e}")))
}

pub(crate) async fn get<C: Connector>(
    State(service): State<Service<C>>,
) -> Result<Json<Value>, ApiError> {
    as_json(&service.quotas().await?)
}

pub(crate) async fn put<C: Connector>(
    State(service): State<Service<C>>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let changes: serde_json::Map<String, Value> = json_body(&body)?;
    let current = service.quotas().await?;
    let mut merged = as_json(&current)?.0;
    for (name, value) in changes {
        if merged.get(&name).is_none() {
            return Err(ApiError::invalid(format!("unknown quota '{name}'")));
        }
        merged[&name] = value;
    }
    let quotas: Quotas =
        serde_json::from_value(merged).map_err(|e| ApiError::invalid(format!("quotas: {e}")))?;
    as_json(&service.set_quotas(quotas).await?)
}
