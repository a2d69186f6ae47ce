//! Certificates and thing principals: CreateKeysAndCertificate,
//! RegisterCertificateWithoutCA, DescribeCertificate, ListCertificates,
//! UpdateCertificate, DeleteCertificate, AttachThingPrincipal,
//! DetachThingPrincipal, ListThingPrincipals, ListPrincipalThings (AWS's paths
//! and shapes; the principal travels in the `x-amzn-principal` header).

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::Json;
use fleetcore_model::{limits, Certificate, CertificateStatus};
use fleetcore_raft::Connector;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{json_body, page_size, with_next_token, AwsQuery};
use crate::error::ApiError;
use crate::service::Service;

/// AWS's `pageSize` ceiling for ListCertificates.
const PAGE_MAX: usize = 250;

fn seconds(ms: u64) -> f64 {
    ms as f64 / 1000.0
}

fn status(name: &str) -> Result<CertificateStatus, ApiError> {
    CertificateStatus::parse(name).ok_or_else(|| {
        ApiError::invalid(format!(
            "status '{name}' is not one of ACTIVE, INACTIVE, REVOKED"
        ))
    })
}

fn principal(headers: &HeaderMap) -> Result<String, ApiError> {
    headers
        .get("x-amzn-principal")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .ok_or_else(|| ApiError::invalid("the x-amzn-principal header (principal) is required"))
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ActiveQuery {
    #[serde(default)]
    set_as_active: bool,
}

pub(crate) async fn create_keys<C: Connector>(
    State(service): State<Service<C>>,
    AwsQuery(q): AwsQuery<ActiveQuery>,
) -> Result<Json<Value>, ApiError> {
    let created = service.create_keys_and_certificate(q.set_as_active).await?;
    let c = &created.certificate;
    Ok(Json(json!({
        "certificateArn": service.certificate_arn(&c.id),
        "certificateId": c.id,
        "certificatePem": c.pem,
        "keyPair": {
            "PublicKey": created.public_key_pem,
            "PrivateKey": created.private_key_pem,
        },
    })))
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RegisterBody {
    certificate_pem: Option<String>,
    status: Option<String>,
}

pub(crate) async fn register_without_ca<C: Connector>(
    State(service): State<Service<C>>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let request: RegisterBody = json_body(&body)?;
    let pem = request
        .certificate_pem
        .ok_or_else(|| ApiError::invalid("certificatePem is required"))?;
    // AWS's default for a certificate registered without a CA is INACTIVE.
    let initial = match request.status.as_deref() {
        Some(s) => status(s)?,
        None => CertificateStatus::Inactive,
    };
    let c = service.register_certificate(&pem, initial).await?;
    Ok(Json(json!({
        "certificateArn": service.certificate_arn(&c.id),
        "certificateId": c.id,
    })))
}

fn description<C: Connector>(service: &Service<C>, c: &Certificate) -> Value {
    json!({
        "certificateArn": service.certificate_arn(&c.id),
        "certificateId": c.id,
        "status": c.status.as_str(),
        "certificatePem": c.pem,
        "creationDate": seconds(c.created_at_ms),
        "lastModifiedDate": seconds(c.updated_at_ms),
        "generationId": c.generation.to_string(),
        "validity": {
            "notBefore": seconds(c.not_before_ms),
            "notAfter": seconds(c.not_after_ms),
        },
        "certificateMode": "SNI_ONLY",
    })
}

pub(crate) async fn describe<C: Connector>(
    State(service): State<Service<C>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let c = service.describe_certificate(&id).await?;
    Ok(Json(
        json!({ "certificateDescription": description(&service, &c) }),
    ))
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ListQuery {
    marker: Option<String>,
    page_size: Option<usize>,
    /// Accepted for AWS's shape; certificates are listed in id order.
    #[serde(rename = "isAscendingOrder")]
    _ascending: Option<bool>,
}

pub(crate) async fn list<C: Connector>(
    State(service): State<Service<C>>,
    AwsQuery(q): AwsQuery<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let limit = match q.page_size {
        None => PAGE_MAX,
        Some(n) if (1..=PAGE_MAX).contains(&n) => n,
        Some(_) => {
            return Err(ApiError::invalid(format!(
                "pageSize must be between 1 and {PAGE_MAX}"
            )))
        }
    };
    let (certificates, next) = service
        .list_certificates(q.marker.as_deref(), limit)
        .await?;
    let listed: Vec<Value> = certificates
        .iter()
        .map(|c| {
            json!({
                "certificateArn": service.certificate_arn(&c.id),
                "certificateId": c.id,
                "status": c.status.as_str(),
                "certificateMode": "SNI_ONLY",
                "creationDate": seconds(c.created_at_ms),
            })
        })
        .collect();
    let mut body = json!({ "certificates": listed });
    if let Some(marker) = next {
        body["nextMarker"] = json!(marker);
    }
    Ok(Json(body))
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct UpdateQuery {
    new_status: Option<String>,
}

pub(crate) async fn update<C: Connector>(
    State(service): State<Service<C>>,
    Path(id): Path<String>,
    AwsQuery(q): AwsQuery<UpdateQuery>,
) -> Result<Json<Value>, ApiError> {
    let new = q
        .new_status
        .ok_or_else(|| ApiError::invalid("newStatus is required"))?;
    service.update_certificate(&id, status(&new)?).await?;
    Ok(Json(json!({})))
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct DeleteQuery {
    #[serde(default)]
    force_delete: bool,
}

pub(crate) async fn delete<C: Connector>(
    State(service): State<Service<C>>,
    Path(id): Path<String>,
    AwsQuery(q): AwsQuery<DeleteQuery>,
) -> Result<Json<Value>, ApiError> {
    service.delete_certificate(&id, q.force_delete).await?;
    Ok(Json(json!({})))
}

pub(crate) async fn attach_principal<C: Connector>(
    State(service): State<Service<C>>,
    Path(thing): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    service
        .attach_thing_principal(&thing, &principal(&headers)?)
        .await?;
    Ok(Json(json!({})))
}

pub(crate) async fn detach_principal<C: Connector>(
    State(service): State<Service<C>>,
    Path(thing): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    service
        .detach_thing_principal(&thing, &principal(&headers)?)
        .await?;
    Ok(Json(json!({})))
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct TokenQuery {
    next_token: Option<String>,
    max_results: Option<usize>,
}

pub(crate) async fn list_thing_principals<C: Connector>(
    State(service): State<Service<C>>,
    Path(thing): Path<String>,
    AwsQuery(q): AwsQuery<TokenQuery>,
) -> Result<Json<Value>, ApiError> {
    let limit = page_size(q.max_results, limits::LIST_PAGE_MAX)?;
    let (principals, next) = service
        .list_thing_principals(&thing, q.next_token.as_deref(), limit)
        .await?;
    Ok(Json(with_next_token(
        json!({ "principals": principals }),
        next,
    )))
}

pub(crate) async fn list_principal_things<C: Connector>(
    State(service): State<Service<C>>,
    headers: HeaderMap,
    AwsQuery(q): AwsQuery<TokenQuery>,
) -> Result<Json<Value>, ApiError> {
    let limit = page_size(q.max_results, limits::LIST_PAGE_MAX)?;
    let (things, next) = service
        .list_principal_things(&principal(&headers)?, q.next_token.as_deref(), limit)
        .await?;
    Ok(Json(with_next_token(json!({ "things": things }), next)))
}
