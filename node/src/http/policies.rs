//! IoT policies: CreatePolicy, GetPolicy, ListPolicies, DeletePolicy,
//! CreatePolicyVersion, GetPolicyVersion, ListPolicyVersions,
//! DeletePolicyVersion, SetDefaultPolicyVersion, AttachPolicy, DetachPolicy,
//! ListAttachedPolicies, ListTargetsForPolicy, GetEffectivePolicies and
//! TestAuthorization (AWS's paths and shapes).

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::Json;
use fleetcore_model::Policy;
use fleetcore_raft::Connector;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{json_body, AwsQuery};
use crate::error::ApiError;
use crate::service::Service;

/// AWS's `pageSize` ceiling for the policy lists, and the page when none is asked for.
const PAGE_MAX: usize = 250;

fn seconds(ms: u64) -> f64 {
    ms as f64 / 1000.0
}

fn version_id(raw: &str) -> Result<u64, ApiError> {
    raw.parse()
        .map_err(|_| ApiError::invalid(format!("policyVersionId '{raw}' is not a number")))
}

fn page_size(requested: Option<usize>) -> Result<usize, ApiError> {
    match requested {
        None => Ok(PAGE_MAX),
        Some(n) if (1..=PAGE_MAX).contains(&n) => Ok(n),
        Some(_) => Err(ApiError::invalid(format!(
            "pageSize must be between 1 and {PAGE_MAX}"
        ))),
    }
}

fn with_next_marker(mut body: Value, next: Option<String>) -> Value {
    if let Some(marker) = next {
        body["nextMarker"] = Value::String(marker);
    }
    body
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DocumentBody {
    policy_document: Option<String>,
}

fn document(body: &Bytes) -> Result<String, ApiError> {
    let request: DocumentBody = json_body(body)?;
    request
        .policy_document
        .ok_or_else(|| ApiError::invalid("policyDocument is required"))
}

pub(crate) async fn create<C: Connector>(
    State(service): State<Service<C>>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let document = document(&body)?;
    let created = service.create_policy(&name, &document).await?;
    Ok(Json(json!({
        "policyName": name,
        "policyArn": service.policy_arn(&name),
        "policyDocument": document,
        "policyVersionId": created.version.to_string(),
    })))
}

pub(crate) async fn get<C: Connector>(
    State(service): State<Service<C>>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let policy = service.get_policy(&name).await?;
    Ok(Json(json!({
        "policyName": policy.name,
        "policyArn": service.policy_arn(&policy.name),
        "policyDocument": policy.default_document().unwrap_or_default(),
        "defaultVersionId": policy.default_version.to_string(),
        "creationDate": seconds(policy.created_at_ms),
        "lastModifiedDate": seconds(policy.updated_at_ms),
        "generationId": policy.generation.to_string(),
    })))
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PageQuery {
    marker: Option<String>,
    page_size: Option<usize>,
    /// Accepted for AWS's shape; lists are in name order either way.
    #[serde(rename = "isAscendingOrder")]
    _ascending: Option<bool>,
    /// ListAttachedPolicies: accepted; policies inherited from parent groups are
    /// not listed yet.
    #[serde(rename = "recursive")]
    _recursive: Option<bool>,
}

fn summary<C: Connector>(service: &Service<C>, p: &Policy) -> Value {
    json!({ "policyName": p.name, "policyArn": service.policy_arn(&p.name) })
}

pub(crate) async fn list<C: Connector>(
    State(service): State<Service<C>>,
    AwsQuery(q): AwsQuery<PageQuery>,
) -> Result<Json<Value>, ApiError> {
    let limit = page_size(q.page_size)?;
    let (policies, next) = service.list_policies(q.marker.as_deref(), limit).await?;
    Ok(Json(with_next_marker(
        json!({ "policies": policies.iter().map(|p| summary(&service, p)).collect::<Vec<_>>() }),
        next,
    )))
}

pub(crate) async fn delete<C: Connector>(
    State(service): State<Service<C>>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    service.delete_policy(&name).await?;
    Ok(Json(json!({})))
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct VersionQuery {
    #[serde(default)]
    set_as_default: bool,
}

pub(crate) async fn create_version<C: Connector>(
    State(service): State<Service<C>>,
    Path(name): Path<String>,
    AwsQuery(q): AwsQuery<VersionQuery>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let document = document(&body)?;
    let created = service
        .create_policy_version(&name, &document, q.set_as_default)
        .await?;
    Ok(Json(json!({
        "policyArn": service.policy_arn(&name),
        "policyDocument": document,
        "policyVersionId": created.version.to_string(),
        "isDefaultVersion": created.is_default,
    })))
}

pub(crate) async fn get_version<C: Connector>(
    State(service): State<Service<C>>,
    Path((name, version)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let id = version_id(&version)?;
    let policy = service.get_policy(&name).await?;
    let v = policy.versions.get(&id).ok_or_else(|| {
        ApiError::from(crate::service::ServiceError::NotFound(format!(
            "Version {id} of policy {name} cannot be found."
        )))
    })?;
    Ok(Json(json!({
        "policyArn": service.policy_arn(&name),
        "policyName": name,
        "policyDocument": v.document,
        "policyVersionId": id.to_string(),
        "isDefaultVersion": id == policy.default_version,
        "creationDate": seconds(v.created_at_ms),
        "lastModifiedDate": seconds(policy.updated_at_ms),
        "generationId": policy.generation.to_string(),
    })))
}

pub(crate) async fn list_versions<C: Connector>(
    State(service): State<Service<C>>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let policy = service.get_policy(&name).await?;
    let versions: Vec<Value> = policy
        .versions
        .iter()
        .rev()
        .map(|(id, v)| {
            json!({
                "versionId": id.to_string(),
                "isDefaultVersion": *id == policy.default_version,
                "createDate": seconds(v.created_at_ms),
            })
        })
        .collect();
    Ok(Json(json!({ "policyVersions": versions })))
}

pub(crate) async fn delete_version<C: Connector>(
    State(service): State<Service<C>>,
    Path((name, version)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    service
        .delete_policy_version(&name, version_id(&version)?)
        .await?;
    Ok(Json(json!({})))
}

pub(crate) async fn set_default_version<C: Connector>(
    State(service): State<Service<C>>,
    Path((name, version)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    service
        .set_default_policy_version(&name, version_id(&version)?)
        .await?;
    Ok(Json(json!({})))
}

#[derive(Debug, Default, Deserialize)]
struct TargetBody {
    target: Option<String>,
}

fn target(body: &Bytes) -> Result<String, ApiError> {
    let request: TargetBody = json_body(body)?;
    request
        .target
        .ok_or_else(|| ApiError::invalid("target is required"))
}

pub(crate) async fn attach<C: Connector>(
    State(service): State<Service<C>>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    service.attach_policy(&name, &target(&body)?).await?;
    Ok(Json(json!({})))
}

pub(crate) async fn detach<C: Connector>(
    State(service): State<Service<C>>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    service.detach_policy(&name, &target(&body)?).await?;
    Ok(Json(json!({})))
}

pub(crate) async fn list_attached<C: Connector>(
    State(service): State<Service<C>>,
    Path(target): Path<String>,
    AwsQuery(q): AwsQuery<PageQuery>,
) -> Result<Json<Value>, ApiError> {
    let limit = page_size(q.page_size)?;
    let (names, next) = service
        .list_attached_policies(&target, q.marker.as_deref(), limit)
        .await?;
    let policies: Vec<Value> = names
        .iter()
        .map(|n| json!({ "policyName": n, "policyArn": service.policy_arn(n) }))
        .collect();
    Ok(Json(with_next_marker(
        json!({ "policies": policies }),
        next,
    )))
}

pub(crate) async fn list_targets<C: Connector>(
    State(service): State<Service<C>>,
    Path(name): Path<String>,
    AwsQuery(q): AwsQuery<PageQuery>,
) -> Result<Json<Value>, ApiError> {
    let limit = page_size(q.page_size)?;
    let (targets, next) = service
        .list_targets_for_policy(&name, q.marker.as_deref(), limit)
        .await?;
    Ok(Json(with_next_marker(json!({ "targets": targets }), next)))
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PrincipalBody {
    principal: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ThingQuery {
    thing_name: Option<String>,
}

pub(crate) async fn effective<C: Connector>(
    State(service): State<Service<C>>,
    AwsQuery(q): AwsQuery<ThingQuery>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let request: PrincipalBody = json_body(&body)?;
    let policies = service
        .effective_policies(request.principal.as_deref(), q.thing_name.as_deref())
        .await?;
    let effective: Vec<Value> = policies
        .iter()
        .map(|p| {
            json!({
                "policyName": p.name,
                "policyArn": service.policy_arn(&p.name),
                "policyDocument": p.default_document().unwrap_or_default(),
            })
        })
        .collect();
    Ok(Json(json!({ "effectivePolicies": effective })))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AuthInfo {
    action_type: Option<String>,
    #[serde(default)]
    resources: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct TestAuthorizationBody {
    principal: Option<String>,
    #[serde(default)]
    auth_infos: Vec<AuthInfo>,
    #[serde(default)]
    policy_names_to_add: Vec<String>,
    #[serde(default)]
    policy_names_to_skip: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ClientQuery {
    client_id: Option<String>,
}

/// AWS's `ActionType` names.
fn action(name: Option<&str>) -> Result<fleetcore_policy::Action, ApiError> {
    use fleetcore_policy::Action;
    match name {
        Some("PUBLISH") => Ok(Action::Publish),
        Some("SUBSCRIBE") => Ok(Action::Subscribe),
        Some("RECEIVE") => Ok(Action::Receive),
        Some("CONNECT") => Ok(Action::Connect),
        Some(other) => Err(ApiError::invalid(format!(
            "actionType '{other}' is not one of PUBLISH, SUBSCRIBE, RECEIVE, CONNECT"
        ))),
        None => Err(ApiError::invalid("actionType is required")),
    }
}

pub(crate) async fn test_authorization<C: Connector>(
    State(service): State<Service<C>>,
    AwsQuery(q): AwsQuery<ClientQuery>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    use crate::service::policy::AuthCheck;
    let request: TestAuthorizationBody = json_body(&body)?;
    if request.auth_infos.is_empty() {
        return Err(ApiError::invalid("authInfos must name at least one action"));
    }
    let checks = request
        .auth_infos
        .iter()
        .map(|info| {
            Ok(AuthCheck {
                action: action(info.action_type.as_deref())?,
                resources: info.resources.clone(),
            })
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    let verdicts = service
        .test_authorization(
            request.principal.as_deref(),
            q.client_id.as_deref(),
            &checks,
            &request.policy_names_to_add,
            &request.policy_names_to_skip,
        )
        .await?;
    let named = |names: &[String]| -> Value {
        json!({ "policies": names.iter().map(|n| json!({
            "policyName": n,
            "policyArn": service.policy_arn(n),
        })).collect::<Vec<_>>() })
    };
    let results: Vec<Value> = request
        .auth_infos
        .iter()
        .zip(&verdicts)
        .map(|(info, v)| {
            json!({
                "authInfo": { "actionType": info.action_type, "resources": info.resources },
                "allowed": named(&v.allowed),
                "denied": {
                    "implicitDeny": named(&v.implicit_deny),
                    "explicitDeny": named(&v.explicit_deny),
                },
                "authDecision": match v.decision {
                    fleetcore_policy::Decision::Allow => "ALLOWED",
                    fleetcore_policy::Decision::ExplicitDeny => "EXPLICIT_DENY",
                    fleetcore_policy::Decision::ImplicitDeny => "IMPLICIT_DENY",
                },
                "missingContextValues": [],
            })
        })
        .collect();
    Ok(Json(json!({ "authResults": results })))
}
