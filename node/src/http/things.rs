//! Registry: CreateThing, DescribeThing, UpdateThing, DeleteThing, ListThings.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::Json;
use fleetcore_model::{AttributeUpdate, ThingQuery};
use fleetcore_raft::Connector;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{json_body, page_size, with_next_token, AttributePayload, AwsQuery};
use crate::error::ApiError;
use crate::service::Service;

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CreateThingRequest {
    thing_type_name: Option<String>,
    attribute_payload: Option<AttributePayload>,
    billing_group_name: Option<String>,
}

pub(crate) async fn create<C: Connector>(
    State(service): State<Service<C>>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let request: CreateThingRequest = json_body(&body)?;
    if request.billing_group_name.is_some() {
        return Err(ApiError::invalid("billing groups are not supported"));
    }
    let attributes = request
        .attribute_payload
        .map(|p| p.attributes)
        .unwrap_or_default();
    let thing = service
        .create_thing(&name, request.thing_type_name, attributes)
        .await?;
    Ok(Json(json!({
        "thingName": thing.name,
        "thingArn": service.thing_arn(&thing.name),
        "thingId": thing.thing_id,
    })))
}

pub(crate) async fn describe<C: Connector>(
    State(service): State<Service<C>>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let thing = service.describe_thing(&name).await?;
    let mut body = json!({
        "defaultClientId": thing.name,
        "thingName": thing.name,
        "thingId": thing.thing_id,
        "thingArn": service.thing_arn(&thing.name),
        "attributes": thing.attributes,
        "version": thing.version,
    });
    if let Some(t) = &thing.thing_type_name {
        body["thingTypeName"] = json!(t);
    }
    Ok(Json(body))
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct UpdateThingRequest {
    thing_type_name: Option<String>,
    attribute_payload: Option<AttributePayload>,
    expected_version: Option<u64>,
    #[serde(default)]
    remove_thing_type: bool,
}

pub(crate) async fn update<C: Connector>(
    State(service): State<Service<C>>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let request: UpdateThingRequest = json_body(&body)?;
    let attributes = request.attribute_payload.map(AttributeUpdate::from);
    service
        .update_thing(
            &name,
            attributes,
            request.thing_type_name,
            request.remove_thing_type,
            request.expected_version,
        )
        .await?;
    Ok(Json(json!({})))
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct DeleteThingQuery {
    expected_version: Option<u64>,
}

pub(crate) async fn delete<C: Connector>(
    State(service): State<Service<C>>,
    Path(name): Path<String>,
    AwsQuery(query): AwsQuery<DeleteThingQuery>,
) -> Result<Json<Value>, ApiError> {
    service.delete_thing(&name, query.expected_version).await?;
    Ok(Json(json!({})))
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ListThingsQuery {
    next_token: Option<String>,
    max_results: Option<usize>,
    attribute_name: Option<String>,
    attribute_value: Option<String>,
    thing_type_name: Option<String>,
}

pub(crate) async fn list<C: Connector>(
    State(service): State<Service<C>>,
    AwsQuery(q): AwsQuery<ListThingsQuery>,
) -> Result<Json<Value>, ApiError> {
    let filter = ThingQuery {
        attribute_name: q.attribute_name,
        attribute_value: q.attribute_value,
        thing_type_name: q.thing_type_name,
    };
    let page = service
        .list_things(
            &filter,
            q.next_token.as_deref(),
            page_size(q.max_results, fleetcore_model::limits::LIST_PAGE_MAX)?,
        )
        .await?;
    let things: Vec<Value> = page
        .things
        .iter()
        .map(|t| {
            let mut v = json!({
                "thingName": t.name,
                "thingArn": service.thing_arn(&t.name),
                "attributes": t.attributes,
                "version": t.version,
            });
            if let Some(ty) = &t.thing_type_name {
                v["thingTypeName"] = json!(ty);
            }
            v
        })
        .collect();
    Ok(Json(with_next_token(
        json!({ "things": things }),
        page.next_token,
    )))
}
