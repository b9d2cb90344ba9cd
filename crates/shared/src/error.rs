//! The JSON error body every failed request carries.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Stable machine-readable error codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    BadRequest,
    ValidationFailed,
    Unauthorized,
    Forbidden,
    NotFound,
    Conflict,
    PayloadTooLarge,
    UnsupportedMediaType,
    RateLimited,
    MethodNotAllowed,
    ServiceUnavailable,
    Internal,
    /// A code this client does not know yet (a newer server).
    #[serde(other)]
    Unknown,
}

/// `{"error": "...", "message": "...", "fields": {...}}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    pub error: ErrorCode,
    pub message: String,
    /// Per-field reasons, only on `validation_failed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(required = false))]
    pub fields: Option<BTreeMap<String, String>>,
}

impl ErrorCode {
    /// Every code a server sends.
    pub const ALL: [ErrorCode; 12] = [
        ErrorCode::BadRequest,
        ErrorCode::ValidationFailed,
        ErrorCode::Unauthorized,
        ErrorCode::Forbidden,
        ErrorCode::NotFound,
        ErrorCode::Conflict,
        ErrorCode::PayloadTooLarge,
        ErrorCode::UnsupportedMediaType,
        ErrorCode::RateLimited,
        ErrorCode::MethodNotAllowed,
        ErrorCode::ServiceUnavailable,
        ErrorCode::Internal,
    ];
}

#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for ErrorCode {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        let codes = ErrorCode::ALL
            .iter()
            .filter_map(|c| serde_json::to_value(c).ok());
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(codes))
            .description(Some("Stable machine-readable error code"))
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for ErrorCode {}
