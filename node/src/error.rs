//! The node's errors, and how each becomes an HTTP answer in AWS's error shape
//! (the service layer's [`ServiceError`] decides status and name; this is its HTTP form).

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use fleetcore_model::Rejection;
use fleetcore_raft::RaftError;

use crate::service::ServiceError;

/// Configuration problems, found before anything starts.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A value is wrong; the message says which and why.
    #[error("configuration: {0}")]
    Invalid(String),
}

/// An API failure: the status code, AWS's exception name, and a message.
#[derive(Debug, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// AWS exception name, e.g. `ResourceNotFoundException`.
    pub kind: &'static str,
    /// Human-readable reason.
    pub message: String,
}

impl ApiError {
    /// 400 InvalidRequestException.
    pub fn invalid(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            kind: "InvalidRequestException",
            message: message.into(),
        }
    }

    /// 404 ResourceNotFoundException.
    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::NOT_FOUND,
            kind: "ResourceNotFoundException",
            message: message.into(),
        }
    }

    /// 429 ThrottlingException: a bound on work in flight is full; nothing was done.
    pub fn throttled(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::TOO_MANY_REQUESTS,
            kind: "ThrottlingException",
            message: message.into(),
        }
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        if status.is_server_error() {
            tracing::warn!(error = %e, "request failed");
        }
        ApiError {
            status,
            kind: e.aws_type(),
            message: e.to_string(),
        }
    }
}

impl From<Rejection> for ApiError {
    fn from(r: Rejection) -> Self {
        ServiceError::from(r).into()
    }
}

impl From<RaftError> for ApiError {
    fn from(e: RaftError) -> Self {
        ServiceError::from(e).into()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        // botocore's rest-json parser reads the exception name from this header and
        // the body's `message`.
        let body = serde_json::json!({ "message": self.message, "__type": self.kind });
        let mut response = (self.status, axum::Json(body)).into_response();
        response
            .headers_mut()
            .insert("x-amzn-ErrorType", HeaderValue::from_static(self.kind));
        response
    }
}
