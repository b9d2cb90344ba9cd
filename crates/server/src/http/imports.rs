//! `/api/imports/*`: bringing in bank transactions.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::Utc;
use finance_shared::{IMPORT_COUNT_DEFAULT, IMPORT_COUNT_MAX, ImportResult};

use super::error::ApiError;
use super::extract::{AuthUser, JsonObject};
use crate::AppState;
use crate::bank::FetchRequest;

/// `POST /api/imports/mock`
pub async fn mock(
    State(state): State<AppState>,
    auth: AuthUser,
    JsonObject(mut body): JsonObject,
) -> Result<(StatusCode, Json<ImportResult>), ApiError> {
    let count: Option<i64> = body.optional("count", "an integer");
    let count = body.check("count", count, |n| {
        u32::try_from(n)
            .ok()
            .filter(|n| (1..=IMPORT_COUNT_MAX).contains(n))
            .ok_or("must be between 1 and 1000")
    });
    let seed: Option<i64> = body.optional("seed", "an integer");
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
