//! `/api/imports/*`: bringing in bank transactions.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use finance_shared::{
    ErrorBody, IMPORT_COUNT_DEFAULT, IMPORT_COUNT_MAX, ImportResult, MockImportRequest,
};

use super::error::ApiError;
use super::extract::{AuthUser, JsonObject};
use super::idempotency::{self, IdempotencyHeader};
use crate::AppState;
use crate::bank::FetchRequest;
use crate::store::StoreError;

/// `POST /api/imports/mock`
#[utoipa::path(
    post, path = "/api/imports/mock", tag = "imports",
    security(("bearer" = [])),
    params(IdempotencyHeader),
    request_body = MockImportRequest,
    responses(
        (status = 201, description = "What was imported and what was already there", body = ImportResult),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 413, description = "Body over 1 MiB", body = ErrorBody),
        (status = 415, description = "Not application/json", body = ErrorBody),
        (status = 422, description = "count out of range, seed not an integer, or an Idempotency-Key reused with another body", body = ErrorBody),
        (status = 409, description = "A request with this Idempotency-Key is still in progress", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn mock(
    State(state): State<AppState>,
    auth: AuthUser,
    headers: HeaderMap,
    JsonObject(mut body): JsonObject,
) -> Result<Response, ApiError> {
    let key = idempotency::key(&headers, "POST /api/imports/mock", body.canonical())?;
    if let Some(replayed) = idempotency::replay(&state, auth.id, key.as_ref(), None).await? {
        return Ok(replayed);
    }
    let count = body.optional_integer("count");
    let count = body.check("count", count, |n| {
        u32::try_from(n)
            .ok()
            .filter(|n| (1..=IMPORT_COUNT_MAX).contains(n))
            .ok_or("must be between 1 and 1000")
    });
    let seed = body.optional_integer("seed");
    body.finish()?;
    let request = FetchRequest {
        count: count.unwrap_or(IMPORT_COUNT_DEFAULT),
        seed: seed.unwrap_or_else(rand::random),
        today: Utc::now().date_naive(),
    };
    let transactions = state
        .bank
        .fetch(request)
        .await
        .map_err(|e| ApiError::Internal(e.into()))?;
    let outcome = match state
        .store
        .import(auth.id, state.bank.source(), &transactions, key.as_ref())
        .await
    {
        // A concurrent request with the same key committed first: answer as it did.
        Err(StoreError::Conflict) if key.is_some() => {
            return idempotency::replay(&state, auth.id, key.as_ref(), None)
                .await?
                .ok_or(ApiError::Conflict(
                    "a request with this Idempotency-Key is in progress",
                ));
        }
        other => other?,
    };
    let source = state.bank.source();
    metrics::counter!("imports_total", "source" => source).increment(1);
    metrics::counter!("imported_transactions_total", "source" => source)
        .increment(outcome.imported.len() as u64);
    tracing::info!(
        user = %auth.id,
        imported = outcome.imported.len(),
        skipped = outcome.skipped,
        "mock import"
    );
    Ok((
        StatusCode::CREATED,
        Json(ImportResult {
            imported: outcome.imported.len() as u64,
            skipped: outcome.skipped,
            expenses: outcome.imported,
        }),
    )
        .into_response())
}
