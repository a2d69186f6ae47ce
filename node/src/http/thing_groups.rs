//! Thing groups: CreateThingGroup, DescribeThingGroup, UpdateThingGroup,
//! DeleteThingGroup, ListThingGroups, AddThingToThingGroup,
//! RemoveThingFromThingGroup, ListThingsInThingGroup, ListThingGroupsForThing.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::Json;
use fleetcore_model::{limits, AttributeUpdate};
use fleetcore_raft::Connector;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{json_body, page_size, with_next_token, AttributePayload, AwsQuery};
use crate::error::ApiError;
use crate::service::registry::GroupProperties;
use crate::service::Service;

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Properties {
    thing_group_description: Option<String>,
    attribute_payload: Option<AttributePayload>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateRequest {
    parent_group_name: Option<String>,
    thing_group_properties: Option<Properties>,
}

pub(crate) async fn create<C: Connector>(
    State(service): State<Service<C>>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let request: CreateRequest = json_body(&body)?;
    let props = request.thing_group_properties.unwrap_or_default();
    let properties = GroupProperties {
        description: props.thing_group_description,
        attributes: props.attribute_payload.map(AttributeUpdate::from),
    };
    let g = service
        .create_thing_group(&name, request.parent_group_name, properties)
        .await?;
    Ok(Json(json!({
        "thingGroupName": g.name,
        "thingGroupArn": service.arn("thinggroup", &g.name),
        "thingGroupId": g.thing_group_id,
    })))
}

pub(crate) async fn describe<C: Connector>(
    State(service): State<Service<C>>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let described = service.describe_thing_group(&name).await?;
    let (g, ancestors) = (described.group, described.ancestors);
    let mut props = json!({ "attributePayload": { "attributes": g.attributes } });
    if let Some(d) = &g.description {
        props["thingGroupDescription"] = json!(d);
    }
    let mut meta = json!({
        "creationDate": g.created_at_ms as f64 / 1000.0,
        "rootToParentThingGroups": ancestors.iter().rev()
            .map(|a| json!({ "groupName": a, "groupArn": service.arn("thinggroup", a) }))
            .collect::<Vec<_>>(),
    });
    if let Some(p) = &g.parent {
        meta["parentGroupName"] = json!(p);
    }
    Ok(Json(json!({
        "thingGroupName": g.name,
        "thingGroupId": g.thing_group_id,
        "thingGroupArn": service.arn("thinggroup", &g.name),
        "version": g.version,
        "thingGroupProperties": props,
        "thingGroupMetadata": meta,
    })))
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct UpdateRequest {
    thing_group_properties: Option<Properties>,
    expected_version: Option<u64>,
}

pub(crate) async fn update<C: Connector>(
    State(service): State<Service<C>>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let request: UpdateRequest = json_body(&body)?;
    let props = request.thing_group_properties.unwrap_or_default();
    let properties = GroupProperties {
        description: props.thing_group_description,
        attributes: props.attribute_payload.map(AttributeUpdate::from),
    };
    let g = service
        .update_thing_group(&name, properties, request.expected_version)
        .await?;
    Ok(Json(json!({ "version": g.version })))
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct DeleteQuery {
    expected_version: Option<u64>,
}

pub(crate) async fn delete<C: Connector>(
    State(service): State<Service<C>>,
    Path(name): Path<String>,
    AwsQuery(q): AwsQuery<DeleteQuery>,
) -> Result<Json<Value>, ApiError> {
    service
        .delete_thing_group(&name, q.expected_version)
        .await?;
    Ok(Json(json!({})))
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ListQuery {
    next_token: Option<String>,
    max_results: Option<usize>,
    parent_group: Option<String>,
    name_prefix_filter: Option<String>,
    #[serde(default)]
    recursive: bool,
}

pub(crate) async fn list<C: Connector>(
    State(service): State<Service<C>>,
    AwsQuery(q): AwsQuery<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let limit = page_size(q.max_results, limits::LIST_PAGE_MAX)?;
    let (groups, next) = service
        .list_thing_groups(
            q.parent_group.as_deref(),
            q.name_prefix_filter.as_deref(),
            q.recursive,
            q.next_token.as_deref(),
            limit,
        )
        .await?;
    Ok(Json(with_next_token(
        json!({ "thingGroups": groups.iter()
        .map(|g| json!({ "groupName": g.name, "groupArn": service.arn("thinggroup", &g.name) }))
        .collect::<Vec<_>>() }),
        next,
    )))
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct MembershipRequest {
    thing_group_name: Option<String>,
    thing_group_arn: Option<String>,
    thing_name: Option<String>,
    thing_arn: Option<String>,
}

impl MembershipRequest {
    /// Group and thing, by name or by ARN (the name is the ARN's last segment).
    fn names(self) -> Result<(String, String), ApiError> {
        let last = |arn: String| arn.rsplit('/').next().map(str::to_string);
        let group = self
            .thing_group_name
            .or(self.thing_group_arn.and_then(last))
            .ok_or_else(|| ApiError::invalid("thingGroupName or thingGroupArn is required"))?;
        let thing = self
            .thing_name
            .or(self.thing_arn.and_then(last))
            .ok_or_else(|| ApiError::invalid("thingName or thingArn is required"))?;
        Ok((group, thing))
    }
}

pub(crate) async fn add_thing<C: Connector>(
    State(service): State<Service<C>>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let (group, thing) = json_body::<MembershipRequest>(&body)?.names()?;
    service.add_thing_to_group(&group, &thing).await?;
    Ok(Json(json!({})))
}

pub(crate) async fn remove_thing<C: Connector>(
    State(service): State<Service<C>>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let (group, thing) = json_body::<MembershipRequest>(&body)?.names()?;
    service.remove_thing_from_group(&group, &thing).await?;
    Ok(Json(json!({})))
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct MembersQuery {
    next_token: Option<String>,
    max_results: Option<usize>,
    #[serde(default)]
    recursive: bool,
}

pub(crate) async fn things_in_group<C: Connector>(
    State(service): State<Service<C>>,
    Path(name): Path<String>,
    AwsQuery(q): AwsQuery<MembersQuery>,
) -> Result<Json<Value>, ApiError> {
    let limit = page_size(q.max_results, limits::LIST_PAGE_MAX)?;
    let (things, next) = service
        .things_in_group(&name, q.recursive, q.next_token.as_deref(), limit)
        .await?;
    Ok(Json(with_next_token(json!({ "things": things }), next)))
}

pub(crate) async fn groups_for_thing<C: Connector>(
    State(service): State<Service<C>>,
    Path(thing): Path<String>,
    AwsQuery(q): AwsQuery<MembersQuery>,
) -> Result<Json<Value>, ApiError> {
    let limit = page_size(q.max_results, limits::LIST_PAGE_MAX)?;
    let (groups, next) = service
        .groups_of_thing(&thing, q.next_token.as_deref(), limit)
        .await?;
    Ok(Json(with_next_token(
        json!({ "thingGroups": groups.iter()
        .map(|g| json!({ "groupName": g, "groupArn": service.arn("thinggroup", g) }))
        .collect::<Vec<_>>() }),
        next,
    )))
}
