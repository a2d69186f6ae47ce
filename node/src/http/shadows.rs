//! Data plane: UpdateThingShadow, GetThingShadow, DeleteThingShadow,
//! ListNamedShadowsForThing. `?name=` selects a named shadow.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::Json;
use fleetcore_model::ShadowKey;
use fleetcore_raft::Connector;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{with_next_token, AwsQuery};
use crate::error::ApiError;
use crate::service::{Service, ServiceError};

/// The data plane (`iot-data`) names a version conflict `ConflictException`,
/// the control plane `VersionConflictException`.
fn data_plane(e: ServiceError) -> ApiError {
    let mut e = ApiError::from(e);
    if e.kind == "VersionConflictException" {
        e.kind = "ConflictException";
    }
    e
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct ShadowQuery {
    name: Option<String>,
}

fn key(thing: String, query: ShadowQuery) -> ShadowKey {
    match query.name {
        Some(name) => ShadowKey::named(thing, name),
        None => ShadowKey::classic(thing),
    }
}

pub(crate) async fn update<C: Connector>(
    State(service): State<Service<C>>,
    Path(thing): Path<String>,
    AwsQuery(query): AwsQuery<ShadowQuery>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let key = key(thing, query);
    Ok(Json(
        service
            .update_shadow(key, &body)
            .await
            .map_err(data_plane)?,
    ))
}

pub(crate) async fn get<C: Connector>(
    State(service): State<Service<C>>,
    Path(thing): Path<String>,
    AwsQuery(query): AwsQuery<ShadowQuery>,
) -> Result<Json<Value>, ApiError> {
    let key = key(thing, query);
    Ok(Json(service.get_shadow(&key).await?))
}

pub(crate) async fn delete<C: Connector>(
    State(service): State<Service<C>>,
    Path(thing): Path<String>,
    AwsQuery(query): AwsQuery<ShadowQuery>,
) -> Result<Json<Value>, ApiError> {
    let key = key(thing, query);
    Ok(Json(
        service
            .delete_shadow(key, None, None)
            .await
            .map_err(data_plane)?,
    ))
}

/// AWS's `pageSize` ceiling for ListNamedShadowsForThing, and the size of a
/// page when none is asked for.
const NAMED_SHADOWS_PAGE_MAX: usize = 100;

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ListNamedQuery {
    next_token: Option<String>,
    page_size: Option<usize>,
}

pub(crate) async fn list_named<C: Connector>(
    State(service): State<Service<C>>,
    Path(thing): Path<String>,
    AwsQuery(q): AwsQuery<ListNamedQuery>,
) -> Result<Json<Value>, ApiError> {
    let limit = match q.page_size {
        None => NAMED_SHADOWS_PAGE_MAX,
        Some(n) if (1..=NAMED_SHADOWS_PAGE_MAX).contains(&n) => n,
        Some(_) => {
            return Err(ApiError::invalid(format!(
                "pageSize must be between 1 and {NAMED_SHADOWS_PAGE_MAX}"
            )))
        }
    };
    let (names, next) = service
        .list_named_shadows(&thing, q.next_token.as_deref(), limit)
        .await?;
    let now_s = service.now_ms() / 1000;
    Ok(Json(with_next_token(
        json!({ "results": names, "timestamp": now_s }),
        next,
    )))
}
