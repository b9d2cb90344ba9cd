//! The one error type of the HTTP layer: every failure becomes the JSON error body.

use std::collections::BTreeMap;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use finance_shared::{ErrorBody, ErrorCode};

use crate::auth::PasswordError;
use crate::store::StoreError;

/// A request that failed, as the client will see it.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("validation failed")]
    Validation(BTreeMap<String, String>),
    #[error("{0}")]
    Unauthorized(&'static str),
    #[error("not found")]
    NotFound,
    #[error("{0}")]
    Conflict(&'static str),
    /// The body is over the route's limit, named (`1 MiB`, `64 MiB`).
    #[error("request body is larger than {0}")]
    PayloadTooLarge(&'static str),
    #[error("request body must be JSON with Content-Type: application/json")]
    UnsupportedMediaType,
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("the database is unavailable")]
    Unavailable,
    #[error("too many failed attempts; try again later")]
    RateLimited(std::time::Duration),
    /// As many file imports as this server runs at once are under way (the
    /// caller's own, or everyone's).
    #[error("{0}")]
    Busy(&'static str, std::time::Duration),
    /// Logged in full, never sent.
    #[error("internal error: {0}")]
    Internal(anyhow::Error),
}

impl ApiError {
    /// A validation failure of one field.
    pub fn field(name: &str, reason: impl Into<String>) -> Self {
        ApiError::Validation(BTreeMap::from([(name.to_owned(), reason.into())]))
    }

    fn parts(&self) -> (StatusCode, ErrorCode, String) {
        use ApiError::*;
        let message = self.to_string();
        match self {
            BadRequest(_) => (StatusCode::BAD_REQUEST, ErrorCode::BadRequest, message),
            Validation(_) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                ErrorCode::ValidationFailed,
                "some fields are invalid; see fields".to_owned(),
            ),
            Unauthorized(_) => (StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized, message),
            NotFound => (
                StatusCode::NOT_FOUND,
                ErrorCode::NotFound,
                "not found".to_owned(),
            ),
            Conflict(_) => (StatusCode::CONFLICT, ErrorCode::Conflict, message),
            PayloadTooLarge(_) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                ErrorCode::PayloadTooLarge,
                message,
            ),
            UnsupportedMediaType => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                ErrorCode::UnsupportedMediaType,
                message,
            ),
            MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                ErrorCode::MethodNotAllowed,
                "this method is not allowed on this route".to_owned(),
            ),
            RateLimited(_) | Busy(..) => (
                StatusCode::TOO_MANY_REQUESTS,
                ErrorCode::RateLimited,
                message,
            ),
            Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::ServiceUnavailable,
                "the service is temporarily unavailable; try again shortly".to_owned(),
            ),
            Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                ErrorCode::Internal,
                "something went wrong on our side".to_owned(),
            ),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match &self {
            ApiError::Internal(e) => tracing::error!(error = ?e, "request failed"),
            ApiError::Unavailable => tracing::warn!("request failed: database unavailable"),
            _ => {}
        }
        let (status, error, message) = self.parts();
        let retry_after = match &self {
            ApiError::RateLimited(wait) | ApiError::Busy(_, wait) => {
                Some(wait.as_secs() + u64::from(wait.subsec_nanos() > 0))
            }
            _ => None,
        };
        let fields = match self {
            ApiError::Validation(fields) => Some(fields),
            _ => None,
        };
        let mut response = (
            status,
            Json(ErrorBody {
                error,
                message,
                fields,
            }),
        )
            .into_response();
        if let Some(secs) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
        }
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(_) => ApiError::Conflict("already exists"),
            StoreError::Unavailable(e) => {
                tracing::warn!(error = %e, "database unavailable");
                ApiError::Unavailable
            }
            StoreError::Contended(e) => {
                tracing::warn!(error = %e, "transaction kept losing to others; gave up");
                ApiError::Unavailable
            }
            StoreError::Other(e) => ApiError::Internal(e.into()),
        }
    }
}

impl From<PasswordError> for ApiError {
    fn from(e: PasswordError) -> Self {
        ApiError::Internal(e.into())
    }
}

/// Answers routes that do not exist.
pub async fn not_found() -> ApiError {
    ApiError::NotFound
}

/// Answers known routes called with the wrong method.
pub async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}
