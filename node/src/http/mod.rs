//! The HTTP API on every node, with AWS IoT's REST paths (botocore's `iot` and
//! `iot-data` service models): any node answers any request.

mod certificates;
mod cluster;
pub use cluster::AddMember as AddMemberBody;
mod policies;
mod publish;
mod quotas;
mod retained;
mod shadows;
mod thing_groups;
mod thing_types;
mod things;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post, put};
use axum::Router;
use fleetcore_raft::Connector;
use serde::de::DeserializeOwned;

use crate::error::ApiError;
use crate::service::Service;

/// Largest request body accepted; larger ones get 413 before they are read whole.
pub const BODY_BYTES_MAX: usize = 64 * 1024;

/// The API's routes.
pub fn router<C: Connector>(service: Service<C>) -> Router {
    Router::new()
        .route("/things", get(things::list::<C>))
        .route(
            "/things/{thing_name}",
            post(things::create::<C>)
                .get(things::describe::<C>)
                .patch(things::update::<C>)
                .delete(things::delete::<C>),
        )
        .route(
            "/things/{thing_name}/shadow",
            post(shadows::update::<C>)
                .get(shadows::get::<C>)
                .delete(shadows::delete::<C>),
        )
        .route(
            "/api/things/shadow/ListNamedShadowsForThing/{thing_name}",
            get(shadows::list_named::<C>),
        )
        .route("/thing-types", get(thing_types::list::<C>))
        .route(
            "/thing-types/{thing_type_name}",
            post(thing_types::create::<C>)
                .get(thing_types::describe::<C>)
                .delete(thing_types::delete::<C>),
        )
        .route(
            "/thing-types/{thing_type_name}/deprecate",
            post(thing_types::deprecate::<C>),
        )
        .route("/thing-groups", get(thing_groups::list::<C>))
        .route(
            "/thing-groups/addThingToThingGroup",
            put(thing_groups::add_thing::<C>),
        )
        .route(
            "/thing-groups/removeThingFromThingGroup",
            put(thing_groups::remove_thing::<C>),
        )
        .route(
            "/thing-groups/{thing_group_name}",
            post(thing_groups::create::<C>)
                .get(thing_groups::describe::<C>)
                .patch(thing_groups::update::<C>)
                .delete(thing_groups::delete::<C>),
        )
        .route(
            "/thing-groups/{thing_group_name}/things",
            get(thing_groups::things_in_group::<C>),
        )
        .route(
            "/things/{thing_name}/thing-groups",
            get(thing_groups::groups_for_thing::<C>),
        )
        .route("/policies", get(policies::list::<C>))
        .route(
            "/policies/{policy_name}",
            post(policies::create::<C>)
                .get(policies::get::<C>)
                .delete(policies::delete::<C>),
        )
        .route(
            "/policies/{policy_name}/version",
            post(policies::create_version::<C>).get(policies::list_versions::<C>),
        )
        .route(
            "/policies/{policy_name}/version/{version_id}",
            get(policies::get_version::<C>)
                .delete(policies::delete_version::<C>)
                .patch(policies::set_default_version::<C>),
        )
        .route(
            "/target-policies/{policy_name}",
            put(policies::attach::<C>).post(policies::detach::<C>),
        )
        .route(
            "/attached-policies/{target}",
            post(policies::list_attached::<C>),
        )
        .route(
            "/policy-targets/{policy_name}",
            post(policies::list_targets::<C>),
        )
        .route(
            "/keys-and-certificate",
            post(certificates::create_keys::<C>),
        )
        .route(
            "/certificate/register-no-ca",
            post(certificates::register_without_ca::<C>),
        )
        .route("/certificates", get(certificates::list::<C>))
        .route(
            "/certificates/{certificate_id}",
            get(certificates::describe::<C>)
                .put(certificates::update::<C>)
                .delete(certificates::delete::<C>),
        )
        .route(
            "/things/{thing_name}/principals",
            put(certificates::attach_principal::<C>)
                .delete(certificates::detach_principal::<C>)
                .get(certificates::list_thing_principals::<C>),
        )
        .route(
            "/principals/things",
            get(certificates::list_principal_things::<C>),
        )
        .route("/effective-policies", post(policies::effective::<C>))
        .route(
            "/test-authorization",
            post(policies::test_authorization::<C>),
        )
        .route("/cluster/status", get(cluster::status::<C>))
        .route("/cluster/members", post(cluster::add_member::<C>))
        .route("/cluster/init", post(cluster::init::<C>))
        .route(
            "/cluster/members/{id}",
            axum::routing::delete(cluster::remove_member::<C>),
        )
        .route("/topics/{*topic}", post(publish::publish::<C>))
        .route("/mqtt/stats", get(publish::stats::<C>))
        .route("/mqtt/links/reset", post(publish::reset_links::<C>))
        .route("/retainedMessage", get(retained::list::<C>))
        .route("/retainedMessage/{*topic}", get(retained::get::<C>))
        .route("/quotas", get(quotas::get::<C>).put(quotas::put::<C>))
        .route("/healthz", get(cluster::healthz))
        .route("/readyz", get(cluster::readyz::<C>))
        .layer(DefaultBodyLimit::max(BODY_BYTES_MAX))
        .with_state(service)
}

/// Parses a JSON body, empty meaning `{}`, with a message that says what is wrong.
pub(crate) fn json_body<T: DeserializeOwned + Default>(body: &[u8]) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body).map_err(|e| ApiError::invalid(format!("malformed JSON body: {e}")))
}

/// A query string, refused with a 400 in AWS's shape when it does not parse.
pub(crate) struct AwsQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> axum::extract::FromRequestParts<S>
    for AwsQuery<T>
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(v)| AwsQuery(v))
            .map_err(|e| ApiError::invalid(e.body_text()))
    }
}

/// AWS's `attributePayload`: attributes, merged into the old ones or replacing them.
#[derive(Debug, Default, serde::Deserialize)]
pub(crate) struct AttributePayload {
    #[serde(default)]
    pub attributes: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    pub merge: bool,
}

impl From<AttributePayload> for fleetcore_model::AttributeUpdate {
    fn from(p: AttributePayload) -> Self {
        fleetcore_model::AttributeUpdate {
            attributes: p.attributes,
            merge: p.merge,
        }
    }
}

/// `maxResults`, checked against `max`.
pub(crate) fn page_size(requested: Option<usize>, max: usize) -> Result<usize, ApiError> {
    match requested {
        None => Ok(max),
        Some(n) if (1..=max).contains(&n) => Ok(n),
        Some(_) => Err(ApiError::invalid(format!(
            "maxResults must be between 1 and {max}"
        ))),
    }
}

/// Adds `nextToken` to a list answer when more pages remain.
pub(crate) fn with_next_token(
    mut body: serde_json::Value,
    next: Option<String>,
) -> serde_json::Value {
    if let Some(token) = next {
        body["nextToken"] = serde_json::Value::String(token);
    }
    body
}
