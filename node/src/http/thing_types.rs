//! Thing types: CreateThingType, DescribeThingType, ListThingTypes,
//! DeprecateThingType, DeleteThingType.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::Json;
use fleetcore_model::{limits, ThingType};
use fleetcore_raft::Connector;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{json_body, page_size, with_next_token, AwsQuery};
use crate::error::ApiError;
use crate::service::Service;

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Properties {
    thing_type_description: Option<String>,
    #[serde(default)]
    searchable_attributes: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateRequest {
    thing_type_properties: Option<Properties>,
}

fn describe_json<C: Connector>(service: &Service<C>, t: &ThingType) -> Value {
    let mut props = json!({ "searchableAttributes": t.searchable_attributes });
    if let Some(d) = &t.description {
        props["thingTypeDescription"] = json!(d);
    }
    let mut meta =
        json!({ "deprecated": t.deprecated, "creationDate": t.created_at_ms as f64 / 1000.0 });
    if let Some(at) = t.deprecated_at_ms {
        meta["deprecationDate"] = json!(at as f64 / 1000.0);
    }
    json!({
        "thingTypeName": t.name,
        "thingTypeId": t.thing_type_id,
        "thingTypeArn": service.arn("thingtype", &t.name),
        "thingTypeProperties": props,
        "thingTypeMetadata": meta,
    })
}

pub(crate) async fn create<C: Connector>(
    State(service): State<Service<C>>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let request: CreateRequest = json_body(&body)?;
    let props = request.thing_type_properties.unwrap_or_default();
    let t = service
        .create_thing_type(
            &name,
            props.thing_type_description,
            props.searchable_attributes,
        )
        .await?;
    Ok(Json(json!({
        "thingTypeName": t.name,
        "thingTypeArn": service.arn("thingtype", &t.name),
        "thingTypeId": t.thing_type_id,
    })))
}

pub(crate) async fn describe<C: Connector>(
    State(service): State<Service<C>>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let t = service.describe_thing_type(&name).await?;
    Ok(Json(describe_json(&service, &t)))
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ListQuery {
    next_token: Option<String>,
    max_results: Option<usize>,
    thing_type_name: Option<String>,
}

pub(crate) async fn list<C: Connector>(
    State(service): State<Service<C>>,
    AwsQuery(q): AwsQuery<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let limit = page_size(q.max_results, limits::LIST_PAGE_MAX)?;
    let (types, next) = service
        .list_thing_types(q.thing_type_name.as_deref(), q.next_token.as_deref(), limit)
        .await?;
    Ok(Json(with_next_token(
        json!({ "thingTypes": types.iter().map(|t| describe_json(&service, t)).collect::<Vec<_>>() }),
        next,
    )))
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DeprecateRequest {
    #[serde(default)]
    undo_deprecate: bool,
}

pub(crate) async fn deprecate<C: Connector>(
    State(service): State<Service<C>>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let request: DeprecateRequest = json_body(&body)?;
    service
        .deprecate_thing_type(&name, request.undo_deprecate)
        .await?;
    Ok(Json(json!({})))
}

pub(crate) async fn delete<C: Connector>(
    State(service): State<Service<C>>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    service.delete_thing_type(&name).await?;
    Ok(Json(json!({})))
}
