//! `/api/imports/*`: bringing in bank transactions.

use axum::Json;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{NaiveDate, Utc};
use finance_shared::{
    CsvImportQuery, DEFAULT_IMPORT_CATEGORY, ErrorBody, FileImportResult, IMPORT_COUNT_DEFAULT,
    IMPORT_COUNT_MAX, ImportJob, ImportResult, MockImportQuery, MockImportRequest, OfxImportQuery,
    validate,
};
use sha2::{Digest, Sha256};

use super::error::ApiError;
use super::extract::{ApiQuery, AuthUser, JsonObject};
use super::idempotency::{self, IdempotencyHeader};
use super::upload::{FileUpload, Upload, options, upload};
use crate::bank::BankTransaction;
use crate::bank::dates::DateRange;
use crate::bank::file::{Encoding, FileError, ParsedFile, decode, to_bank_transactions};
use crate::bank::{FetchRequest, csv, ofx};
use crate::jobs::{Report, SubmitError};
use crate::state::AppState;
use crate::store::{IdempotencyKey, ImportOutcome, ImportRequest, StoreError, Unique, import_body};

/// `POST /api/imports/mock`
#[utoipa::path(
    post, path = "/api/imports/mock", tag = "imports",
    security(("bearer" = [])),
    params(MockImportQuery, IdempotencyHeader),
    request_body = MockImportRequest,
    responses(
        (status = 201, description = "What was imported and what was already there", body = ImportResult),
        (status = 202, description = "async=true: the import is queued; poll its status_url", body = ImportJob,
            headers(("Location" = String, description = "The job's status_url"))),
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
    ApiQuery(query): ApiQuery<MockImportQuery>,
    JsonObject(mut body): JsonObject,
) -> Result<Response, ApiError> {
    let background = query.background.unwrap_or(false);
    let route = if background {
        "POST /api/imports/mock?async=true"
    } else {
        "POST /api/imports/mock"
    };
    let key = idempotency::key(&headers, route, body.canonical())?;
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
    if background {
        let report = Report {
            transactions: transactions.len() as u64,
            ..Report::default()
        };
        return queue(
            &state,
            &auth,
            state.bank.source(),
            &transactions,
            report,
            key,
        )
        .await;
    }
    let outcome = match state
        .store
        .import(
            auth.id,
            ImportRequest {
                source: state.bank.source(),
                transactions: &transactions,
                corrections: &[],
                idempotency: key.as_ref(),
                dry_run: false,
                body: &import_body,
                progress: None,
                job: None,
            },
        )
        .await
    {
        // A concurrent request with the same key committed first: answer as it did.
        Err(StoreError::Conflict(Unique::IdempotencyKey)) if key.is_some() => {
            return idempotency::replay_winner(&state, auth.id, key.as_ref(), None).await;
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

/// Largest bank file accepted (an export of a few hundred thousand expenses).
pub const FILE_BODY_LIMIT: usize = 64 * 1024 * 1024;
/// Transactions one file import takes at most (a 64 MiB file holds about as many).
pub const IMPORT_ROWS_MAX: usize = 1_000_000;

/// What is common to every file import once the file is read.
struct FileImport<'a> {
    route: &'a str,
    source: &'static str,
    /// Put before each provider id (the account, for OFX).
    id_prefix: String,
    default_category: Option<String>,
    dry_run: bool,
    strict: bool,
    background: bool,
    /// The day of the import: a file's dates may be at most a year past it.
    today: NaiveDate,
    /// The import profile the file was read with.
    profile: Option<String>,
}

async fn import_file(
    state: &AppState,
    auth: &AuthUser,
    headers: &HeaderMap,
    upload: &Upload,
    import: FileImport<'_>,
    mut parsed: ParsedFile,
) -> Result<Response, ApiError> {
    let default_category = match import.default_category.as_deref() {
        None => DEFAULT_IMPORT_CATEGORY.to_owned(),
        Some(c) => validate::category(c).map_err(|why| ApiError::field("default_category", why))?,
    };
    if parsed.transactions.len() > IMPORT_ROWS_MAX {
        return Err(ApiError::field(
            "file",
            format!(
                "has {} transactions; one import takes at most {IMPORT_ROWS_MAX}: split the file by date",
                parsed.transactions.len()
            ),
        ));
    }
    // The file's rows become the import's (and are let go of on the way).
    let (transactions, totals) = to_bank_transactions(
        &mut parsed,
        &import.id_prefix,
        &default_category,
        DateRange::around(import.today),
    );
    if let Some(why) = totals.unreadable(&parsed) {
        return Err(ApiError::field("file", why));
    }
    if import.strict && !parsed.errors.is_empty() {
        return Err(ApiError::Validation(
            parsed
                .errors
                .iter()
                .map(|e| (format!("line {}", e.line), e.message.clone()))
                .collect(),
        ));
    }
    // The key covers the options (`async` among them) and the file's bytes:
    // a retry of the same upload replays, another file with the same key is
    // refused.
    let key = if import.dry_run {
        None
    } else {
        idempotency::key(
            headers,
            import.route,
            &format!("{}\n{:x}", upload.query, Sha256::digest(&upload.bytes)),
        )?
    };
    if let Some(replayed) = idempotency::replay(state, auth.id, key.as_ref(), None).await? {
        return Ok(replayed);
    }
    let (errors, errors_total) = (parsed.errors, parsed.errors_total);
    if import.background && !import.dry_run {
        let report = Report {
            transactions: totals.transactions,
            ignored: totals.ignored(),
            pending: totals.pending,
            zero_amount: totals.zero_amount,
            money_in_count: totals.money_in_count,
            errors,
            errors_total,
        };
        return queue(state, auth, import.source, &transactions, report, key).await;
    }
    let (corrections, transactions): (Vec<_>, Vec<_>) = transactions
        .into_iter()
        .partition(|t| t.correction.is_some());
    let result = |outcome: &ImportOutcome| FileImportResult {
        dry_run: import.dry_run,
        transactions: totals.transactions,
        imported: outcome.imported.len() as u64,
        skipped: outcome.skipped,
        replaced: outcome.replaced,
        deleted: outcome.deleted,
        pending: totals.pending,
        zero_amount: totals.zero_amount,
        money_in_count: totals.money_in_count,
        ignored: totals.ignored(),
        money_out: totals.money_out,
        money_in: totals.money_in,
        errors: errors.clone(),
        errors_total,
        expenses: outcome.imported.clone(),
        profile: import.profile.clone(),
    };
    let body =
        |outcome: &ImportOutcome| serde_json::to_string(&result(outcome)).unwrap_or_default();
    let outcome = match state
        .store
        .import(
            auth.id,
            ImportRequest {
                source: import.source,
                transactions: &transactions,
                corrections: &corrections,
                idempotency: key.as_ref(),
                dry_run: import.dry_run,
                body: &body,
                progress: None,
                job: None,
            },
        )
        .await
    {
        Err(StoreError::Conflict(Unique::IdempotencyKey)) if key.is_some() => {
            return idempotency::replay_winner(state, auth.id, key.as_ref(), None).await;
        }
        other => other?,
    };
    if !import.dry_run {
        metrics::counter!("imports_total", "source" => import.source).increment(1);
        metrics::counter!("imported_transactions_total", "source" => import.source)
            .increment(outcome.imported.len() as u64);
    }
    tracing::info!(
        user = %auth.id,
        source = import.source,
        dry_run = import.dry_run,
        read = totals.transactions,
        imported = outcome.imported.len(),
        skipped = outcome.skipped,
        replaced = outcome.replaced,
        deleted = outcome.deleted,
        pending = totals.pending,
        errors = errors_total,
        "file import"
    );
    let status = if import.dry_run {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(result(&outcome))).into_response())
}

/// Parsing a large file is CPU work: off the async workers.
async fn parse_off_thread<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, FileError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| ApiError::Internal(e.into()))?
        .map_err(|e| ApiError::field("file", e.0))
}

/// Options that cannot take effect together, or at all: a 422 naming them.
/// Column options other than `status` take effect only with a mapping
/// (`date=` and `amount=`, or `debit=`/`credit=`); without one the columns
/// are found by their names.
pub(super) fn check_csv_options(query: &CsvImportQuery) -> Result<(), ApiError> {
    let mut fields = std::collections::BTreeMap::new();
    let mut clash = |a: &str, b: &str, why: &str| {
        fields.insert(a.to_owned(), format!("cannot be given with {b}: {why}"));
        fields.insert(b.to_owned(), format!("cannot be given with {a}: {why}"));
    };
    let amount = query.amount.is_some();
    if amount && query.debit.is_some() {
        clash("amount", "debit", "give amount=, or debit= and credit=");
    }
    if amount && query.credit.is_some() {
        clash("amount", "credit", "give amount=, or debit= and credit=");
    }
    if query.direction.is_some() && query.sign.is_some() {
        clash(
            "direction",
            "sign",
            "the direction column gives each row's sign",
        );
    }
    let mapped = csv::is_mapped(query);
    let needs = [
        (
            "direction",
            query.direction.is_some() && mapped && !amount,
            "takes effect only with amount=",
        ),
        (
            "out_value",
            query.out_value.is_some() && query.direction.is_none(),
            "takes effect only with direction=",
        ),
    ];
    for (name, bad, why) in needs {
        if bad {
            fields
                .entry(name.to_owned())
                .or_insert_with(|| why.to_owned());
        }
    }
    let columns = [
        ("id", &query.id),
        ("description", &query.description),
        ("category", &query.category),
        ("direction", &query.direction),
    ];
    for (name, value) in columns {
        if !mapped && value.is_some() {
            fields.entry(name.to_owned()).or_insert_with(|| {
                "takes effect only with date= and amount= (or debit= and credit=)".to_owned()
            });
        }
    }
    if let Some(format) = &query.date_format
        && !format.contains('%')
    {
        fields.insert(
            "date_format".into(),
            format!("{format:?} is not a chrono format such as %d.%m.%Y or %d/%m/%y"),
        );
    }
    match fields.is_empty() {
        true => Ok(()),
        false => Err(ApiError::Validation(fields)),
    }
}

/// `POST /api/imports/csv`
#[utoipa::path(
    post, path = "/api/imports/csv", tag = "imports",
    security(("bearer" = [])),
    params(CsvImportQuery, IdempotencyHeader),
    request_body(
        description = "The CSV file: the whole body (`text/csv`), or the `file` part of a `multipart/form-data` body whose text parts may carry the query's fields",
        content(
            (String = "text/csv"),
            (FileUpload = "multipart/form-data"),
        ),
    ),
    responses(
        (status = 201, description = "What was imported, skipped, ignored and refused (line by line)", body = FileImportResult),
        (status = 200, description = "dry_run: what would be imported and skipped", body = FileImportResult),
        (status = 202, description = "async=true: the import is queued; poll its status_url", body = ImportJob,
            headers(("Location" = String, description = "The job's status_url"))),
        (status = 400, description = "Bad query string or unreadable form", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 409, description = "A request with this Idempotency-Key is still in progress", body = ErrorBody),
        (status = 413, description = "File over 64 MiB", body = ErrorBody),
        (status = 429, description = "Another of the caller's file imports, or as many as the server reads at once, is under way", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait before trying again"))),
        (status = 415, description = "Not text/csv or multipart/form-data", body = ErrorBody),
        (status = 422, description = "The mapping does not fit the file, a bad line with strict=true, an Idempotency-Key reused with another file, or (async=true) a file too large for the database to keep as a job", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn csv(
    State(state): State<AppState>,
    auth: AuthUser,
    headers: HeaderMap,
    req: Request,
) -> Result<Response, ApiError> {
    // Taken before the body is read: the body is what costs memory.
    let _slot = state.file_imports.take(auth.id)?;
    let upload = upload(
        req,
        &[
            "text/csv",
            "text/plain",
            "application/csv",
            "application/octet-stream",
            "application/vnd.ms-excel",
        ],
    )
    .await?;
    let query: CsvImportQuery = options(&upload.query)?;
    check_csv_options(&query)?;
    let encoding = Encoding::from_label(query.encoding.as_deref().unwrap_or("auto"))
        .map_err(|why| ApiError::field("encoding", why))?;
    let today = Utc::now().date_naive();
    let bytes = upload.bytes.clone();
    let mapping = query.clone();
    let parsed = parse_off_thread(move || {
        let text = decode(&bytes, encoding)?;
        csv::read(&text, &mapping, today)
    })
    .await?;
    let import = FileImport {
        route: "POST /api/imports/csv",
        source: "csv",
        id_prefix: String::new(),
        default_category: query.default_category,
        dry_run: query.dry_run.unwrap_or(false),
        strict: query.strict.unwrap_or(false),
        background: query.background.unwrap_or(false),
        today,
        profile: None,
    };
    import_file(&state, &auth, &headers, &upload, import, parsed).await
}

/// `POST /api/imports/ofx`
#[utoipa::path(
    post, path = "/api/imports/ofx", tag = "imports",
    security(("bearer" = [])),
    params(OfxImportQuery, IdempotencyHeader),
    request_body(
        description = "The OFX (1.x SGML or 2.x XML) or QFX file: the whole body, or the `file` part of a `multipart/form-data` body",
        content(
            (String = "application/x-ofx"),
            (FileUpload = "multipart/form-data"),
        ),
    ),
    responses(
        (status = 201, description = "What was imported, skipped, ignored and refused; each FITID is imported once", body = FileImportResult),
        (status = 200, description = "dry_run: what would be imported and skipped", body = FileImportResult),
        (status = 202, description = "async=true: the import is queued; poll its status_url", body = ImportJob,
            headers(("Location" = String, description = "The job's status_url"))),
        (status = 400, description = "Bad query string or unreadable form", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 409, description = "A request with this Idempotency-Key is still in progress", body = ErrorBody),
        (status = 413, description = "File over 64 MiB", body = ErrorBody),
        (status = 429, description = "Another of the caller's file imports, or as many as the server reads at once, is under way", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait before trying again"))),
        (status = 415, description = "Not an OFX media type or multipart/form-data", body = ErrorBody),
        (status = 422, description = "Not an OFX document, a bad transaction with strict=true, an Idempotency-Key reused with another file, or (async=true) a file too large for the database to keep as a job", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn ofx(
    State(state): State<AppState>,
    auth: AuthUser,
    headers: HeaderMap,
    req: Request,
) -> Result<Response, ApiError> {
    let _slot = state.file_imports.take(auth.id)?;
    let upload = upload(
        req,
        &[
            "application/x-ofx",
            "application/ofx",
            "application/vnd.intu.qfx",
            "application/x-qfx",
            "application/xml",
            "text/xml",
            "text/plain",
            "application/octet-stream",
        ],
    )
    .await?;
    let query: OfxImportQuery = options(&upload.query)?;
    let bytes = upload.bytes.clone();
    let statement = parse_off_thread(move || {
        let text = decode(&bytes, Encoding::Auto)?;
        ofx::read(&text)
    })
    .await?;
    let import = FileImport {
        route: "POST /api/imports/ofx",
        source: "ofx",
        id_prefix: statement
            .account
            .map(|a| format!("{a}:"))
            .unwrap_or_default(),
        default_category: query.default_category,
        dry_run: query.dry_run.unwrap_or(false),
        strict: query.strict.unwrap_or(false),
        background: query.background.unwrap_or(false),
        today: Utc::now().date_naive(),
        profile: None,
    };
    import_file(&state, &auth, &headers, &upload, import, statement.parsed).await
}

/// Queues an import to run in the background: 202 with the job, whose
/// `status_url` is also the `Location`.
async fn queue(
    state: &AppState,
    auth: &AuthUser,
    source: &str,
    transactions: &[BankTransaction],
    report: Report,
    key: Option<IdempotencyKey>,
) -> Result<Response, ApiError> {
    let job = match state
        .jobs
        .submit(
            state.store.as_ref(),
            auth.id,
            source,
            transactions,
            report,
            key.as_ref(),
        )
        .await
    {
        Err(SubmitError::Store(StoreError::Conflict(Unique::IdempotencyKey))) if key.is_some() => {
            return idempotency::replay_winner(state, auth.id, key.as_ref(), None).await;
        }
        Err(SubmitError::Store(e)) => return Err(e.into()),
        Err(SubmitError::TooLarge { bytes, limit }) => {
            return Err(ApiError::field(
                "async",
                format!(
                    "the file is too large to import in the background on this database \
                     ({} MiB of transactions, at most {} MiB): import it without async=true",
                    bytes.div_ceil(1024 * 1024),
                    limit / (1024 * 1024)
                ),
            ));
        }
        Ok(job) => job,
    };
    tracing::info!(user = %auth.id, job = %job.job_id, source, total = job.total, "import queued");
    let location =
        HeaderValue::from_str(&job.status_url).map_err(|e| ApiError::Internal(e.into()))?;
    Ok((
        StatusCode::ACCEPTED,
        [(header::LOCATION, location)],
        Json(job),
    )
        .into_response())
}

/// `GET /api/imports/{job_id}`
#[utoipa::path(
    get, path = "/api/imports/{job_id}", tag = "imports",
    security(("bearer" = [])),
    params(("job_id" = String, Path, format = Uuid, description = "The id a 202 answered with")),
    responses(
        (status = 200, description = "Where the import is: queued, running (with progress), succeeded or failed", body = ImportJob),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 404, description = "No such job, or another user's", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn job(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> Result<Json<ImportJob>, ApiError> {
    let id: uuid::Uuid = id.parse().map_err(|_| ApiError::NotFound)?;
    let record = state
        .store
        .job(id)
        .await?
        .filter(|job| job.user_id == auth.id)
        .ok_or(ApiError::NotFound)?;
    Ok(Json(state.jobs.view(&record).await))
}
