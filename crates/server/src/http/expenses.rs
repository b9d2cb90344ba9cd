//! `/api/expenses`: create, read, list, and the summary.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{NaiveDate, Utc};
use finance_shared::{
    ErrorBody, Expense, ExpensePage, LIST_LIMIT_DEFAULT, LIST_LIMIT_MAX, ListQuery, Money,
    NewExpense, Summary, SummaryQuery, validate,
};
use uuid::Uuid;

use super::error::ApiError;
use super::extract::{ApiQuery, AuthUser, JsonObject};
use super::idempotency::{self, IdempotencyHeader};
use crate::AppState;
use crate::cache::SummaryCache;
use crate::store::{Cursor, ExpenseInput, ListFilter, StoreError};

/// Where a created expense lives.
const LOCATION_PREFIX: &str = "/api/expenses";

/// `POST /api/expenses`
#[utoipa::path(
    post, path = "/api/expenses", tag = "expenses",
    security(("bearer" = [])),
    params(IdempotencyHeader),
    request_body = NewExpense,
    responses(
        (status = 201, description = "Created", body = Expense,
            headers(("Location" = String, description = "URL of the new expense"))),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 413, description = "Body over 1 MiB", body = ErrorBody),
        (status = 415, description = "Not application/json", body = ErrorBody),
        (status = 422, description = "Invalid fields, each named in `fields`; or an Idempotency-Key reused with another body", body = ErrorBody),
        (status = 409, description = "A request with this Idempotency-Key is still in progress", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn create(
    State(state): State<AppState>,
    auth: AuthUser,
    headers: HeaderMap,
    JsonObject(mut body): JsonObject,
) -> Result<Response, ApiError> {
    let key = idempotency::key(&headers, "POST /api/expenses", body.canonical())?;
    if let Some(replayed) =
        idempotency::replay(&state, auth.id, key.as_ref(), Some(LOCATION_PREFIX)).await?
    {
        return Ok(replayed);
    }
    let category: Option<String> = body.required("category", "a string");
    let category = body.check("category", category, |c| validate::category(&c));
    let amount: Option<Money> = body.required("amount", "a number or a decimal string");
    let amount = body.check("amount", amount, validate::amount);
    let description: Option<String> = body.optional("description", "a string or null");
    let description = match description {
        Some(d) => body.check("description", Some(d), |d| {
            validate::description(&d).map(|()| d)
        }),
        None => None,
    };
    let spent_on: Option<NaiveDate> = body.optional("spent_on", "a date (YYYY-MM-DD)");
    body.finish()?;
    let (Some(category), Some(amount)) = (category, amount) else {
        return Err(ApiError::BadRequest(
            "category and amount are required".into(),
        ));
    };
    let input = ExpenseInput {
        category,
        description,
        amount,
        spent_on: spent_on.unwrap_or_else(|| Utc::now().date_naive()),
    };
    let expense = match state
        .store
        .create_expense(auth.id, input, key.as_ref())
        .await
    {
        // A concurrent request with the same key committed first: answer as it did.
        Err(StoreError::Conflict) if key.is_some() => {
            return idempotency::replay(&state, auth.id, key.as_ref(), Some(LOCATION_PREFIX))
                .await?
                .ok_or(ApiError::Conflict(
                    "a request with this Idempotency-Key is in progress",
                ));
        }
        other => other?,
    };
    let location = HeaderValue::from_str(&format!("{LOCATION_PREFIX}/{}", expense.id))
        .map_err(|e| ApiError::Internal(e.into()))?;
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(expense),
    )
        .into_response())
}

/// `GET /api/expenses/{id}`
#[utoipa::path(
    get, path = "/api/expenses/{id}", tag = "expenses",
    security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid, description = "Expense id")),
    responses(
        (status = 200, description = "The expense", body = Expense),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 404, description = "No such expense, or another user's", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn get_one(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> Result<Json<Expense>, ApiError> {
    // Not a UUID: it cannot name an expense.
    let id: Uuid = id.parse().map_err(|_| ApiError::NotFound)?;
    state
        .store
        .expense(auth.id, id)
        .await?
        .map(Json)
        .ok_or(ApiError::NotFound)
}

/// `GET /api/expenses`
#[utoipa::path(
    get, path = "/api/expenses", tag = "expenses",
    security(("bearer" = [])),
    params(ListQuery),
    responses(
        (status = 200, description = "Newest first (spent_on, created_at, id)", body = ExpensePage),
        (status = 400, description = "Bad query string (limit out of range, bad date or cursor)", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Json<ExpensePage>, ApiError> {
    let limit = query.limit.unwrap_or(LIST_LIMIT_DEFAULT);
    if !(1..=LIST_LIMIT_MAX).contains(&limit) {
        return Err(ApiError::BadRequest(format!(
            "invalid query string: limit must be between 1 and {LIST_LIMIT_MAX}"
        )));
    }
    let after = match query.cursor.as_deref() {
        None | Some("") => None,
        Some(c) => Some(Cursor::decode(c).ok_or_else(|| {
            ApiError::BadRequest(
                "invalid query string: cursor is not one this server issued".into(),
            )
        })?),
    };
    let filter = ListFilter {
        limit: limit + 1,
        after,
        category_key: query.category.as_deref().map(validate::category_key),
        from: query.from,
        to: query.to,
    };
    // No category holds control characters (they are refused on write), so
    // such a filter matches nothing; PostgreSQL would refuse a NUL outright.
    if query
        .category
        .as_deref()
        .is_some_and(|c| c.chars().any(char::is_control))
    {
        return Ok(Json(ExpensePage {
            expenses: Vec::new(),
            next_cursor: None,
        }));
    }
    let mut expenses = state.store.list_expenses(auth.id, &filter).await?;
    let next_cursor = if expenses.len() > limit as usize {
        expenses.truncate(limit as usize);
        expenses.last().map(|e| Cursor::after(e).encode())
    } else {
        None
    };
    Ok(Json(ExpensePage {
        expenses,
        next_cursor,
    }))
}

/// `GET /api/expenses/summary`, served from the cache when it can be.
#[utoipa::path(
    get, path = "/api/expenses/summary", tag = "expenses",
    security(("bearer" = [])),
    params(SummaryQuery),
    responses(
        (status = 200, description = "Totals per category, largest first", body = Summary,
            headers(("X-Cache" = String, description = "`hit` or `miss`"))),
        (status = 400, description = "Bad query string", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn summary(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiQuery(query): ApiQuery<SummaryQuery>,
) -> Result<Response, ApiError> {
    let key = SummaryCache::key(auth.id, auth.data_version, query.from, query.to);
    let (body, outcome) = state
        .summaries
        .get_or_compute(key, || async {
            let summary = state.store.summary(auth.id, query.from, query.to).await?;
            serde_json::to_vec(&summary)
                .map(Into::into)
                .map_err(|e| ApiError::Internal(e.into()))
        })
        .await?;
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (
                header::HeaderName::from_static("x-cache"),
                HeaderValue::from_static(outcome.header_value()),
            ),
        ],
        body,
    )
        .into_response())
}
