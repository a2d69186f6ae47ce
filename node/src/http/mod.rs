//! The HTTP API on every node, with AWS IoT's REST paths (botocore's `iot` and
//! `iot-data` service models): any node answers any request.

mod cluster;
pub use cluster::AddMember as AddMemberBody;
mod shadows;
mod things;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
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
        .route("/cluster/status", get(cluster::status::<C>))
        .route("/cluster/members", post(cluster::add_member::<C>))
        .route("/cluster/init", post(cluster::init::<C>))
        .route(
            "/cluster/members/{id}",
            axum::routing::delete(cluster::remove_member::<C>),
        )
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
