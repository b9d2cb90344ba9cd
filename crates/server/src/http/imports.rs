//! `/api/imports/*`: bringing in bank transactions.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::Utc;
use finance_shared::{
    ErrorBody, IMPORT_COUNT_DEFAULT, IMPORT_COUNT_MAX, ImportResult, MockImportRequest,
};

use super::error::ApiError;
use super::extract::{AuthUser, JsonObject};
use crate::AppState;
use crate::bank::FetchRequest;

/// `POST /api/imports/mock`
#[utoipa::path(
    post, path = "/api/imports/mock", tag = "imports",
    security(("bearer" = [])),
    request_body = MockImportRequest,
    responses(
        (status = 201, description = "What was imported and what was already there", body = ImportResult),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 413, description = "Body over 1 MiB", body = ErrorBody),
        (status = 415, description = "Not application/json", body = ErrorBody),
        (status = 422, description = "count out of range, or seed not an integer", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn mock(
    State(state): State<AppState>,
    auth: AuthUser,
    JsonObject(mut body): JsonObject,
) -> Result<(StatusCode, Json<ImportResult>), ApiError> {
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
    let outcome = state
        .store
        .import(auth.id, state.bank.source(), &transactions)
        .await?;
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
    ))
}
