//! `/api/expenses`: create, read, list, and the summary.

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{Datelike, Months, NaiveDate, Utc};
use finance_shared::{
    EXPORT_CSV_HEADER, ErrorBody, Expense, ExpensePage, ExpenseUpdate, ExportFormat, ExportQuery,
    LIST_LIMIT_DEFAULT, LIST_LIMIT_MAX, ListQuery, NewExpense, Summary, SummaryQuery,
    TREND_MONTHS_DEFAULT, TREND_MONTHS_MAX, Trend, TrendQuery, spreadsheet, validate,
};
use futures::StreamExt;
use uuid::Uuid;

use super::error::ApiError;
use super::extract::{ApiQuery, AuthUser, JsonObject};
use super::idempotency::{self, IdempotencyHeader};
use crate::cache::{CacheOutcome, SummaryCache};
use crate::state::AppState;
use crate::store::{
    Cursor, ExpenseInput, ExpensePatch, ListFilter, StoreError, Unique, months_from_rows,
    search_key,
};

/// Where a created expense lives.
const LOCATION_PREFIX: &str = "/api/expenses";

/// Longest search text.
const SEARCH_MAX_CHARS: usize = 200;

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
    let amount = body.money("amount", true);
    let amount = body.check("amount", amount, validate::amount);
    let description: Option<String> = body.optional("description", "a string or null");
    let description = match description {
        Some(d) => body.check("description", Some(d), |d| {
            validate::description(&d).map(|()| d)
        }),
        None => None,
    };
    let spent_on: Option<NaiveDate> = body.optional("spent_on", "a date (YYYY-MM-DD)");
    let spent_on = body.check("spent_on", spent_on, validate::date);
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
        Err(StoreError::Conflict(Unique::IdempotencyKey)) if key.is_some() => {
            return idempotency::replay_winner(
                &state,
                auth.id,
                key.as_ref(),
                Some(LOCATION_PREFIX),
            )
            .await;
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
    let id = expense_id(&id)?;
    state
        .store
        .expense(auth.id, id)
        .await?
        .map(Json)
        .ok_or(ApiError::NotFound)
}

/// An expense id from the path; anything else cannot name an expense.
fn expense_id(raw: &str) -> Result<Uuid, ApiError> {
    raw.parse().map_err(|_| ApiError::NotFound)
}

/// `PATCH /api/expenses/{id}`
#[utoipa::path(
    patch, path = "/api/expenses/{id}", tag = "expenses",
    security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid, description = "Expense id")),
    request_body = ExpenseUpdate,
    responses(
        (status = 200, description = "The expense as changed", body = Expense),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 404, description = "No such expense, or another user's", body = ErrorBody),
        (status = 413, description = "Body over 1 MiB", body = ErrorBody),
        (status = 415, description = "Not application/json", body = ErrorBody),
        (status = 422, description = "Invalid fields, each named in `fields`", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn update(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
    JsonObject(mut body): JsonObject,
) -> Result<Json<Expense>, ApiError> {
    // Only the description can be cleared.
    for name in ["category", "amount", "spent_on"] {
        if body.is_null(name) {
            body.reject(name, "cannot be null; leave it out to keep it");
        }
    }
    let category: Option<String> = body.optional("category", "a string");
    let category = body.check("category", category, |c| validate::category(&c));
    let amount = body.money("amount", false);
    let amount = body.check("amount", amount, validate::amount);
    // Present and null clears the description; absent leaves it.
    let description = if body.has("description") {
        let d: Option<String> = body.optional("description", "a string or null");
        Some(match d {
            Some(d) => body.check("description", Some(d), |d| {
                validate::description(&d).map(|()| d)
            }),
            None => None,
        })
    } else {
        None
    };
    let spent_on: Option<NaiveDate> = body.optional("spent_on", "a date (YYYY-MM-DD)");
    let spent_on = body.check("spent_on", spent_on, validate::date);
    body.finish()?;
    let id = expense_id(&id)?;
    let patch = ExpensePatch {
        category,
        description,
        amount,
        spent_on,
    };
    state
        .store
        .update_expense(auth.id, id, &patch)
        .await?
        .map(Json)
        .ok_or(ApiError::NotFound)
}

/// `DELETE /api/expenses/{id}`
#[utoipa::path(
    delete, path = "/api/expenses/{id}", tag = "expenses",
    security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid, description = "Expense id")),
    responses(
        (status = 204, description = "Deleted; an imported expense is not imported again"),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 404, description = "No such expense, or another user's", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn delete(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = expense_id(&id)?;
    if state.store.delete_expense(auth.id, id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound)
    }
}

/// `GET /api/expenses`
#[utoipa::path(
    get, path = "/api/expenses", tag = "expenses",
    security(("bearer" = [])),
    params(ListQuery),
    responses(
        (status = 200, description = "Newest first (spent_on, created_at, id)", body = ExpensePage,
            headers(("X-Cache" = String, description = "`hit` or `miss`"))),
        (status = 400, description = "Bad query string (limit out of range, bad date or cursor)", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Response, ApiError> {
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
    let search = query.q.as_deref().map(str::trim).filter(|q| !q.is_empty());
    if search.is_some_and(|q| q.chars().count() > SEARCH_MAX_CHARS) {
        return Err(ApiError::BadRequest(format!(
            "invalid query string: q must be at most {SEARCH_MAX_CHARS} characters"
        )));
    }
    let filter = ListFilter {
        limit: limit + 1,
        after,
        category_key: query.category.as_deref().map(validate::category_key),
        from: query.from,
        to: query.to,
        search: search.map(search_key),
        seen_version: auth.data_version,
    };
    // No category holds control characters (they are refused on write), so
    // such a filter matches nothing; PostgreSQL would refuse a NUL outright.
    let has_control = |s: Option<&str>| s.is_some_and(|c| c.chars().any(char::is_control));
    if has_control(query.category.as_deref()) || has_control(search) {
        return Ok(Json(ExpensePage {
            expenses: Vec::new(),
            next_cursor: None,
        })
        .into_response());
    }
    // Pages are cached like summaries, under the user's data version: the
    // dashboard and scripts that poll the newest page are served from memory.
    let shape = serde_json::to_vec(&(
        limit,
        query.cursor.as_deref().filter(|c| !c.is_empty()),
        filter
            .category_key
            .as_ref()
            .map(validate::CategoryKey::as_str),
        filter.from,
        filter.to,
        &filter.search,
    ))
    .map_err(|e| ApiError::Internal(e.into()))?;
    let key = SummaryCache::list_key(auth.id, auth.data_version, &shape);
    let (body, outcome) = state
        .summaries
        .get_or_compute(key, || async {
            let mut expenses = state.store.list_expenses(auth.id, &filter).await?;
            let next_cursor = if expenses.len() > limit as usize {
                expenses.truncate(limit as usize);
                expenses.last().map(|e| Cursor::after(e).encode())
            } else {
                None
            };
            serde_json::to_vec(&ExpensePage {
                expenses,
                next_cursor,
            })
            .map(Into::into)
            .map_err(|e| ApiError::Internal(e.into()))
        })
        .await?;
    Ok(cached_json(body, outcome))
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
            let summary = state
                .store
                .summary(auth.id, auth.data_version, query.from, query.to)
                .await?;
            serde_json::to_vec(&summary)
                .map(Into::into)
                .map_err(|e| ApiError::Internal(e.into()))
        })
        .await?;
    Ok(cached_json(body, outcome))
}

/// The first day of the month `back` months before `day`'s.
fn month_start(day: NaiveDate, back: u32) -> NaiveDate {
    let first = day.with_day(1).unwrap_or(day);
    first.checked_sub_months(Months::new(back)).unwrap_or(first)
}

/// `GET /api/expenses/trend`, served from the cache like the summary.
#[utoipa::path(
    get, path = "/api/expenses/trend", tag = "expenses",
    security(("bearer" = [])),
    params(TrendQuery),
    responses(
        (status = 200, description = "Per-month totals per category, oldest month first", body = Trend,
            headers(("X-Cache" = String, description = "`hit` or `miss`"))),
        (status = 400, description = "Bad query string (months out of range)", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn trend(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiQuery(query): ApiQuery<TrendQuery>,
) -> Result<Response, ApiError> {
    let months = query.months.unwrap_or(TREND_MONTHS_DEFAULT);
    if !(1..=TREND_MONTHS_MAX).contains(&months) {
        return Err(ApiError::BadRequest(format!(
            "invalid query string: months must be between 1 and {TREND_MONTHS_MAX}"
        )));
    }
    let end = query.end.unwrap_or_else(|| Utc::now().date_naive());
    let from = month_start(end, months - 1);
    let to = month_start(end, 0)
        .checked_add_months(Months::new(1))
        .and_then(|d| d.pred_opt())
        .unwrap_or(end);
    let key = SummaryCache::trend_key(auth.id, auth.data_version, from, to);
    let (body, outcome) = state
        .summaries
        .get_or_compute(key, || async {
            let labels: Vec<String> = (0..months)
                .rev()
                .map(|back| month_start(end, back).format("%Y-%m").to_string())
                .collect();
            let rows = state
                .store
                .monthly_totals(auth.id, auth.data_version, from, to)
                .await?;
            let trend = Trend {
                from,
                to,
                months: months_from_rows(&labels, rows),
            };
            serde_json::to_vec(&trend)
                .map(Into::into)
                .map_err(|e| ApiError::Internal(e.into()))
        })
        .await?;
    Ok(cached_json(body, outcome))
}

/// A cached JSON body with its `X-Cache` header.
fn cached_json(body: Bytes, outcome: CacheOutcome) -> Response {
    (
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
        .into_response()
}

/// Rows read from the database per round trip of an export.
const EXPORT_BATCH: u32 = 1000;

/// `GET /api/expenses/export`
#[utoipa::path(
    get, path = "/api/expenses/export", tag = "expenses",
    security(("bearer" = [])),
    params(ExportQuery),
    responses(
        (status = 200, description = "Every matching expense, newest first, streamed: CSV (`id,spent_on,category,description,amount,source`, what `POST /api/imports/csv` reads back) or a JSON array",
            content(
                (String = "text/csv"),
                (Vec<Expense> = "application/json"),
            )),
        (status = 400, description = "Bad query string", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn export(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiQuery(query): ApiQuery<ExportQuery>,
) -> Result<Response, ApiError> {
    let format = query.format.unwrap_or_default();
    let filter = ListFilter {
        limit: EXPORT_BATCH,
        from: query.from,
        to: query.to,
        seen_version: auth.data_version,
        ..ListFilter::default()
    };
    // The first batch is read before answering, so an unreachable database is
    // a 503 rather than a cut stream.
    let first = state.store.list_expenses(auth.id, &filter).await?;
    let user = auth.id;
    let pages = futures::stream::unfold(
        (Some(first), filter, state),
        move |(page, mut filter, state)| async move {
            let page = match page {
                Some(page) => page,
                None if filter.after.is_none() => return None,
                None => match state.store.list_expenses(user, &filter).await {
                    Ok(page) => page,
                    Err(e) => {
                        tracing::error!(error = %e, "export stopped: database error");
                        return Some((
                            Err(std::io::Error::other("database error")),
                            (None, filter, state),
                        ));
                    }
                },
            };
            if page.is_empty() {
                return None;
            }
            let full = page.len() == EXPORT_BATCH as usize;
            filter.after = page.last().filter(|_| full).map(Cursor::after);
            if !full {
                filter.after = None;
            }
            Some((Ok(page), (None, filter, state)))
        },
    );
    let body = match format {
        ExportFormat::Csv => {
            let header = futures::stream::once(async {
                Ok::<_, std::io::Error>(Bytes::from(format!("{}\n", EXPORT_CSV_HEADER.join(","))))
            });
            Body::from_stream(header.chain(pages.map(|page| page.and_then(|p| csv_rows(&p)))))
        }
        ExportFormat::Json => {
            let mut first = true;
            let items = pages.map(move |page| {
                page.and_then(|p| {
                    let mut out = Vec::new();
                    for e in &p {
                        out.push(if first { b'[' } else { b',' });
                        first = false;
                        serde_json::to_writer(&mut out, e).map_err(std::io::Error::other)?;
                    }
                    Ok(Bytes::from(out))
                })
            });
            // The closing bracket (or the whole `[]` when nothing matched).
            let tail = futures::stream::once(async { Ok::<_, std::io::Error>(()) });
            let mut empty = true;
            let items = items
                .map(Some)
                .chain(tail.map(|_| None))
                .map(move |item| match item {
                    Some(Ok(bytes)) => {
                        empty &= bytes.is_empty();
                        Ok(bytes)
                    }
                    Some(Err(e)) => Err(e),
                    None => Ok(Bytes::from_static(if empty { b"[]" } else { b"]" })),
                });
            Body::from_stream(items)
        }
    };
    let (content_type, extension) = match format {
        ExportFormat::Csv => ("text/csv; charset=utf-8", "csv"),
        ExportFormat::Json => ("application/json", "json"),
    };
    let disposition = format!("attachment; filename=\"expenses.{extension}\"");
    Ok((
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (
                header::CONTENT_DISPOSITION,
                HeaderValue::from_str(&disposition).map_err(|e| ApiError::Internal(e.into()))?,
            ),
        ],
        body,
    )
        .into_response())
}

/// Expenses as rows of the CSV export; texts a spreadsheet would run as a
/// formula are guarded (and read back unchanged by the CSV import).
fn csv_rows(expenses: &[Expense]) -> Result<Bytes, std::io::Error> {
    let mut writer = ::csv::Writer::from_writer(Vec::new());
    for e in expenses {
        writer
            .write_record([
                e.id.to_string().as_str(),
                &e.spent_on.to_string(),
                &spreadsheet::guard(&e.category),
                &spreadsheet::guard(e.description.as_deref().unwrap_or("")),
                &e.amount.to_string(),
                &e.source,
            ])
            .map_err(std::io::Error::other)?;
    }
    writer
        .into_inner()
        .map(Bytes::from)
        .map_err(|e| std::io::Error::other(e.to_string()))
}
