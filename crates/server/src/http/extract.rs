//! Extractors that turn every rejection into the API's JSON errors.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::header;
use axum::http::request::Parts;
use finance_shared::Money;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use uuid::Uuid;

use super::error::ApiError;
use crate::state::AppState;

/// The user an access token names. Rejects with 401.
#[derive(Clone, Copy, Debug)]
pub struct AuthUser {
    pub id: Uuid,
    /// The token's id and expiry, for logout.
    pub jti: Uuid,
    pub expires_at: i64,
    /// The user's data version, read with the token's state (see the summary cache).
    pub data_version: i64,
}

const INVALID_TOKEN: &str = "access token is invalid, expired or revoked";

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let header = parts
            .headers
            .get(header::AUTHORIZATION)
            .ok_or(ApiError::Unauthorized(
                "missing Authorization: Bearer token",
            ))?;
        let token = header
            .to_str()
            .ok()
            .and_then(|h| h.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
            .ok_or(ApiError::Unauthorized(
                "Authorization must be: Bearer <token>",
            ))?;
        let claims = state
            .tokens
            .verify(token)
            .map_err(|_| ApiError::Unauthorized(INVALID_TOKEN))?;
        // The database decides revocation, so logout and password changes hold
        // on every instance at once, and across restarts of anything else.
        let session = state
            .store
            .session_state(claims.sub, claims.jti)
            .await?
            .filter(|s| !s.revoked && s.token_generation == claims.generation)
            .ok_or(ApiError::Unauthorized(INVALID_TOKEN))?;
        Ok(AuthUser {
            id: claims.sub,
            jti: claims.jti,
            expires_at: claims.exp,
            data_version: session.data_version,
        })
    }
}

/// A JSON object body, read field by field with [`Fields`].
pub struct JsonObject(pub Fields);

fn is_json(content_type: Option<&header::HeaderValue>) -> bool {
    let Some(mime) = content_type.and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = mime
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

impl<S: Send + Sync> FromRequest<S> for JsonObject {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        if !is_json(req.headers().get(header::CONTENT_TYPE)) {
            return Err(ApiError::UnsupportedMediaType);
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|e| match e {
            BytesRejection::FailedToBufferBody(_) if e.status().as_u16() == 413 => {
                ApiError::PayloadTooLarge("1 MiB")
            }
            other => ApiError::BadRequest(format!("cannot read request body: {other}")),
        })?;
        let value: Value = serde_json::from_slice(&bytes)
            .map_err(|e| ApiError::BadRequest(format!("request body is not valid JSON: {e}")))?;
        match value {
            Value::Object(map) => {
                let raw_decimals = raw_decimals(&bytes, &map);
                Ok(JsonObject(Fields::new(map, raw_decimals)))
            }
            _ => Err(ApiError::field("body", "must be a JSON object")),
        }
    }
}

/// The text of the top-level fields that are JSON numbers with a fraction,
/// as the client wrote them: a float would round `12.339999999999999999` to
/// `12.34`, and money must be read from its digits.
fn raw_decimals(bytes: &[u8], map: &Map<String, Value>) -> BTreeMap<String, String> {
    let has_fraction = |v: &Value| matches!(v, Value::Number(n) if n.is_f64());
    if !map.values().any(has_fraction) {
        return BTreeMap::new();
    }
    let raw: BTreeMap<String, &serde_json::value::RawValue> =
        serde_json::from_slice(bytes).unwrap_or_default();
    raw.into_iter()
        .filter(|(name, _)| map.get(name).is_some_and(has_fraction))
        .map(|(name, text)| (name, text.get().trim().to_owned()))
        .collect()
}

/// Reads typed fields out of a JSON object, collecting every problem so the
/// client learns all of them at once.
pub struct Fields {
    map: Map<String, Value>,
    /// See [`raw_decimals`].
    raw_decimals: BTreeMap<String, String>,
    errors: BTreeMap<String, String>,
    canonical: String,
}

impl Fields {
    fn new(map: Map<String, Value>, raw_decimals: BTreeMap<String, String>) -> Self {
        // Keys sorted, no whitespace: the same body however it was formatted.
        let canonical = serde_json::to_string(&map).unwrap_or_default();
        Fields {
            map,
            raw_decimals,
            errors: BTreeMap::new(),
            canonical,
        }
    }

    /// The body as canonical JSON (sorted keys, no whitespace).
    pub fn canonical(&self) -> &str {
        &self.canonical
    }

    /// Whether the body has this field as an explicit null.
    pub fn is_null(&self, name: &str) -> bool {
        self.map.get(name).is_some_and(Value::is_null)
    }

    /// Whether the body has this field (even as null).
    pub fn has(&self, name: &str) -> bool {
        self.map.contains_key(name)
    }

    /// A field that must be present and not null.
    pub fn required<T: DeserializeOwned>(&mut self, name: &str, expected: &str) -> Option<T> {
        match self.map.remove(name) {
            None | Some(Value::Null) => {
                self.reject(name, "is required");
                None
            }
            Some(value) => self.decode(name, value, expected),
        }
    }

    /// An amount: a JSON number read from the digits the client sent (never
    /// through a float), or a decimal string.
    pub fn money(&mut self, name: &str, required: bool) -> Option<Money> {
        let expected = "a number or a decimal string";
        match self.raw_decimals.remove(name) {
            // Exponent forms (`1.25e1`) have no digits to read: the number it is.
            Some(raw) if !raw.contains(['e', 'E']) && self.map.remove(name).is_some() => {
                self.decode(name, Value::String(raw), expected)
            }
            _ if required => self.required(name, expected),
            _ => self.optional(name, expected),
        }
    }

    /// A field that may be absent or null.
    pub fn optional<T: DeserializeOwned>(&mut self, name: &str, expected: &str) -> Option<T> {
        match self.map.remove(name) {
            None | Some(Value::Null) => None,
            Some(value) => self.decode(name, value, expected),
        }
    }

    fn decode<T: DeserializeOwned>(
        &mut self,
        name: &str,
        value: Value,
        expected: &str,
    ) -> Option<T> {
        match serde_json::from_value(value) {
            Ok(v) => Some(v),
            // The money type's own reasons are phrased for the client; serde's are not.
            Err(e) if e.to_string().starts_with("must ") => {
                self.reject(name, e.to_string());
                None
            }
            Err(_) => {
                self.reject(name, format!("must be {expected}"));
                None
            }
        }
    }

    /// An optional integer field; `12.0` counts as the integer it is.
    pub fn optional_integer(&mut self, name: &str) -> Option<i64> {
        let value = self.map.remove(name)?;
        let integer = match &value {
            Value::Null => return None,
            Value::Number(n) => n.as_i64().or_else(|| {
                n.as_f64()
                    .filter(|f| f.fract() == 0.0 && f.abs() < 9.2e18)
                    .map(|f| f as i64)
            }),
            _ => None,
        };
        if integer.is_none() {
            self.reject(name, "must be an integer");
        }
        integer
    }

    /// Applies a validation rule to a field that was read.
    pub fn check<T, U>(
        &mut self,
        name: &str,
        value: Option<T>,
        rule: impl FnOnce(T) -> Result<U, &'static str>,
    ) -> Option<U> {
        match rule(value?) {
            Ok(v) => Some(v),
            Err(reason) => {
                self.reject(name, reason);
                None
            }
        }
    }

    /// Records a problem with a field (the first one wins).
    pub fn reject(&mut self, name: &str, reason: impl Into<String>) {
        self.errors
            .entry(name.to_owned())
            .or_insert_with(|| reason.into());
    }

    /// `Err(422)` if any field was rejected.
    pub fn finish(self) -> Result<(), ApiError> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(ApiError::Validation(self.errors))
        }
    }
}

/// A query string; a malformed one is a 400.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(q)| ApiQuery(q))
            .map_err(|e| ApiError::BadRequest(format!("invalid query string: {}", e.body_text())))
    }
}
