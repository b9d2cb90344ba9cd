//! `/api/categories`: what a user's expenses are filed under.

use axum::Json;
use axum::extract::State;
use finance_shared::{CategoryList, CategoryRename, ErrorBody, RenameResult, validate};

use super::error::ApiError;
use super::extract::{AuthUser, JsonObject};
use crate::state::AppState;

/// `GET /api/categories`
#[utoipa::path(
    get, path = "/api/categories", tag = "categories",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Every category in use, most used first", body = CategoryList),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    auth: AuthUser,
) -> Result<Json<CategoryList>, ApiError> {
    Ok(Json(CategoryList {
        categories: state.store.categories(auth.id, auth.data_version).await?,
    }))
}

/// `POST /api/categories/rename`
#[utoipa::path(
    post, path = "/api/categories/rename", tag = "categories",
    security(("bearer" = [])),
    request_body = CategoryRename,
    responses(
        (status = 200, description = "Every expense of `from` is now in `to` (merged when `to` existed)", body = RenameResult),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 404, description = "No expense is in `from`", body = ErrorBody),
        (status = 413, description = "Body over 1 MiB", body = ErrorBody),
        (status = 415, description = "Not application/json", body = ErrorBody),
        (status = 422, description = "Invalid fields, each named in `fields`", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn rename(
    State(state): State<AppState>,
    auth: AuthUser,
    JsonObject(mut body): JsonObject,
) -> Result<Json<RenameResult>, ApiError> {
    let from: Option<String> = body.required("from", "a string");
    let to: Option<String> = body.required("to", "a string");
    let to = body.check("to", to, |c| validate::category(&c));
    body.finish()?;
    let (Some(from), Some(to)) = (from, to) else {
        return Err(ApiError::BadRequest("from and to are required".into()));
    };
    // `from` only names what exists: a name no category can have matches nothing.
    let Ok(from) = validate::category(&from) else {
        return Err(ApiError::NotFound);
    };
    let moved = state
        .store
        .rename_category(auth.id, &from, &to)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(Json(RenameResult {
        category: to,
        moved,
    }))
}
