//! `Idempotency-Key` on the POSTs that create things.
//!
//! The first response is stored in the same database transaction as what the
//! request created, so a retry (same key, same body, same user, within 24
//! hours) gets that response on any instance, after any restart, and never
//! creates twice; the same key with another body is refused with 422.

use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::error::ApiError;
use crate::state::AppState;
use crate::store::{IdempotencyKey, StoredResponse};

/// The request header.
pub const HEADER: &str = "idempotency-key";

/// Marks a response that was replayed from an earlier request.
pub const REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");

/// The `Idempotency-Key` header, as documented.
#[derive(utoipa::IntoParams, serde::Deserialize)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)] // Read from the headers directly; this type only documents them.
pub struct IdempotencyHeader {
    /// Makes retries safe: a retry with the same key and body within 24 hours
    /// returns the first response and creates nothing; another body with the
    /// same key is refused (422).
    #[serde(rename = "Idempotency-Key")]
    #[param(value_type = String, required = false, min_length = 1, max_length = 255, pattern = r"^[\x20-\x7E]+$")]
    pub key: Option<String>,
}

/// The request's key and fingerprint, if it sent a key.
pub fn key(
    headers: &HeaderMap,
    route: &str,
    canonical_body: &str,
) -> Result<Option<IdempotencyKey>, ApiError> {
    let Some(value) = headers.get(HEADER) else {
        return Ok(None);
    };
    let bytes = value.as_bytes();
    if bytes.is_empty() || bytes.len() > 255 || !bytes.iter().all(|b| (0x20..=0x7e).contains(b)) {
        return Err(ApiError::BadRequest(
            "Idempotency-Key must be 1 to 255 printable ASCII characters".into(),
        ));
    }
    let mut hash = Sha256::new();
    hash.update(route.as_bytes());
    hash.update(b"\n");
    hash.update(canonical_body.as_bytes());
    let request_hash = format!("{:x}", hash.finalize());
    Ok(Some(IdempotencyKey {
        key: String::from_utf8_lossy(bytes).into_owned(),
        request_hash,
    }))
}

/// The stored response for this key, if there is one; 422 if it was for another request.
pub async fn replay(
    state: &AppState,
    user: Uuid,
    key: Option<&IdempotencyKey>,
    location_prefix: Option<&str>,
) -> Result<Option<Response>, ApiError> {
    let Some(key) = key else {
        return Ok(None);
    };
    match state.store.idempotent_response(user, &key.key).await? {
        None => Ok(None),
        Some(stored) if stored.request_hash != key.request_hash => Err(ApiError::field(
            "Idempotency-Key",
            "was already used with a different request",
        )),
        Some(stored) => Ok(Some(response(stored, location_prefix))),
    }
}

/// The answer to a request whose key a concurrent request took first: that
/// request's response once it has committed, else 409.
pub async fn replay_winner(
    state: &AppState,
    user: Uuid,
    key: Option<&IdempotencyKey>,
    location_prefix: Option<&str>,
) -> Result<Response, ApiError> {
    replay(state, user, key, location_prefix)
        .await?
        .ok_or(ApiError::Conflict(
            "a request with this Idempotency-Key is in progress",
        ))
}

fn response(stored: StoredResponse, location_prefix: Option<&str>) -> Response {
    let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK);
    // A created thing's Location is its prefix and id; a queued job's is its
    // `status_url`, as the first answer had it.
    let location = (location_prefix.is_some() || status == StatusCode::ACCEPTED)
        .then(|| serde_json::from_str::<serde_json::Value>(&stored.body).ok())
        .flatten()
        .and_then(|body| {
            let url = match location_prefix {
                Some(prefix) => format!("{prefix}/{}", body["id"].as_str()?),
                None => body["status_url"].as_str()?.to_owned(),
            };
            HeaderValue::from_str(&url).ok()
        });
    let mut response = (
        status,
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (REPLAYED, HeaderValue::from_static("true")),
        ],
        stored.body,
    )
        .into_response();
    if let Some(location) = location {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}
