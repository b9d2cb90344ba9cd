//! Storage: one trait, implemented once over every database (see `sql`).

mod cursor;
mod group_commit;
mod mysql;
mod postgres;
pub mod retry;
mod session_batch;
mod sessions;
mod sql;
mod sqlite;

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Datelike, NaiveDate, Utc};
use finance_shared::validate::{CategoryKey, Email};
use finance_shared::{
    CategoryInfo, CategoryTotal, Expense, ImportJobStatus, Money, MonthTotal, Summary, User,
};
use uuid::Uuid;

pub use cursor::Cursor;

use crate::bank::BankTransaction;

/// What can go wrong in the storage layer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique key was taken (see [`Unique`]).
    #[error("conflict on {0:?}")]
    Conflict(Unique),
    /// The database cannot be reached or has no connection to spare.
    #[error("database unavailable: {0}")]
    Unavailable(#[source] sqlx::Error),
    /// The transaction lost to another (deadlock, serialization failure,
    /// busy file) and was rolled back: it may be run again (see `retry`).
    #[error("transaction lost to another: {0}")]
    Contended(#[source] sqlx::Error),
    /// Anything else: a bug or a corrupt database.
    #[error("database error: {0}")]
    Other(#[source] sqlx::Error),
}

/// The unique key a write ran into.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unique {
    /// `users.email`: the email has an account.
    Email,
    /// An idempotency key, taken by a request that committed first.
    IdempotencyKey,
    /// Any other: new ids never collide, so this is a bug.
    Other,
}

impl StoreError {
    /// The same error, a conflict named `unique` (the statement that failed
    /// says which key it was: engines name them differently, or not at all).
    pub(crate) fn on(self, unique: Unique) -> StoreError {
        match self {
            StoreError::Conflict(_) => StoreError::Conflict(unique),
            other => other,
        }
    }

    /// The same failure, for another caller of one shared database call
    /// (sqlx's errors do not clone: the copy keeps the kind and the message).
    pub(crate) fn for_another_waiter(&self) -> StoreError {
        let copy = |e: &sqlx::Error| sqlx::Error::Io(std::io::Error::other(e.to_string()));
        match self {
            StoreError::Conflict(unique) => StoreError::Conflict(*unique),
            StoreError::Unavailable(e) => StoreError::Unavailable(copy(e)),
            StoreError::Contended(e) => StoreError::Contended(copy(e)),
            StoreError::Other(e) => StoreError::Other(copy(e)),
        }
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::Database(db) if db.is_unique_violation() => {
                StoreError::Conflict(Unique::Other)
            }
            sqlx::Error::Database(db) if retry::is_contention(db.as_ref()) => {
                StoreError::Contended(e)
            }
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed => StoreError::Unavailable(e),
            _ => StoreError::Other(e),
        }
    }
}

/// A user with the PHC string of their password hash.
#[derive(Clone, Debug)]
pub struct UserCredentials {
    pub user: User,
    pub password_hash: String,
    /// Tokens issued now carry this generation.
    pub token_generation: i64,
}

/// What an access token's validity depends on, read for every request.
#[derive(Clone, Copy, Debug)]
pub struct SessionState {
    /// Tokens of an older generation were issued before a password change.
    pub token_generation: i64,
    /// The token was logged out.
    pub revoked: bool,
    /// The user's data version (see the summary cache).
    pub data_version: i64,
}

/// A validated expense about to be written.
#[derive(Clone, Debug)]
pub struct ExpenseInput {
    pub category: String,
    pub description: Option<String>,
    pub amount: Money,
    pub spent_on: NaiveDate,
}

/// The fields of an expense a `PATCH` changes; `None` leaves one as it is.
#[derive(Clone, Debug, Default)]
pub struct ExpensePatch {
    pub category: Option<String>,
    /// `Some(None)` clears the description.
    pub description: Option<Option<String>>,
    pub amount: Option<Money>,
    pub spent_on: Option<NaiveDate>,
}

impl ExpensePatch {
    /// The expense with this patch applied.
    pub fn apply(&self, expense: &Expense) -> Expense {
        let mut e = expense.clone();
        if let Some(c) = &self.category {
            e.category.clone_from(c);
        }
        if let Some(d) = &self.description {
            e.description.clone_from(d);
        }
        if let Some(a) = self.amount {
            e.amount = a;
        }
        if let Some(d) = self.spent_on {
            e.spent_on = d;
        }
        e
    }
}

/// What a search compares: the lower-cased text (Rust's Unicode lower case,
/// the same on every database).
pub fn search_key(text: &str) -> String {
    text.to_lowercase()
}

/// Filters and position of one page of the expense list.
#[derive(Clone, Debug, Default)]
pub struct ListFilter {
    /// Rows to return (the caller asks for one more to learn whether a next page exists).
    pub limit: u32,
    pub after: Option<Cursor>,
    pub category_key: Option<CategoryKey>,
    pub from: Option<NaiveDate>,
    pub to: Option<NaiveDate>,
    /// Lower-cased text the description or the category contains.
    pub search: Option<String>,
    /// The user's data version the request saw (see [`SessionState`]): a
    /// read replica behind it is not read.
    pub seen_version: i64,
}

/// Transactions written per statement by an import (11 parameters each, well
/// under either database's limit).
pub(crate) const IMPORT_BATCH: usize = 500;

/// Rows of `categories` or `daily_totals` written per statement.
pub(crate) const ROLLUP_BATCH: usize = 1000;

/// How long an idempotency key is remembered.
pub const IDEMPOTENCY_WINDOW_SECS: i64 = 24 * 60 * 60;

/// An `Idempotency-Key` and what the request it came with was.
#[derive(Clone, Debug)]
pub struct IdempotencyKey {
    pub key: String,
    /// SHA-256 of the route and the canonical JSON body.
    pub request_hash: String,
}

/// The first response to a request with an idempotency key.
#[derive(Clone, Debug)]
pub struct StoredResponse {
    pub request_hash: String,
    pub status: u16,
    pub body: String,
}

/// The response body an import remembers with its idempotency key, from
/// what it wrote.
pub type ImportBody<'a> = dyn Fn(&ImportOutcome) -> String + Send + Sync + 'a;

/// Transactions a background import writes per transaction of the
/// database: each commit lets other writers in (SQLite has one writer), and
/// moves the job's cursor with it.
pub const JOB_CHUNK: usize = 10_000;

/// An import about to be written.
#[derive(Clone, Copy)]
pub struct ImportRequest<'a> {
    /// The `source` of the expenses it creates; ids are unique per source.
    pub source: &'a str,
    pub transactions: &'a [BankTransaction],
    pub idempotency: Option<&'a IdempotencyKey>,
    /// Roll back instead of committing.
    pub dry_run: bool,
    pub body: &'a ImportBody<'a>,
    /// Told how many transactions have been written so far, after each batch.
    pub progress: Option<&'a (dyn Fn(usize) + Send + Sync)>,
    /// A background job's import: written [`JOB_CHUNK`] transactions per
    /// commit, each with the job's cursor, and, run again, from the cursor
    /// on. Its outcome lists no expenses, only counts.
    pub job: Option<Uuid>,
}

impl ImportRequest<'_> {
    /// Whether any of its transactions had another id on an older server.
    pub fn looks_for_legacy_ids(&self) -> bool {
        self.transactions.iter().any(|t| t.legacy_id.is_some())
    }
}

/// The old ids of a batch's transactions, when the user has any to match.
pub(crate) fn legacy_ids<'a>(
    rows: &'a [(Expense, &BankTransaction)],
    legacy: bool,
) -> Vec<&'a str> {
    match legacy {
        true => rows
            .iter()
            .filter_map(|(_, t)| t.legacy_id.as_deref())
            .collect(),
        false => Vec::new(),
    }
}

/// What an import wrote.
#[derive(Clone, Debug)]
pub struct ImportOutcome {
    /// The expenses it made (none for a job's import: see `imported_total`).
    pub imported: Vec<Expense>,
    pub imported_total: u64,
    pub skipped: u64,
}

/// An import's transactions, batch by batch, as the expenses to insert (each
/// backend inserts a batch in one statement); keeps what each batch wrote and
/// reports progress after it.
pub(crate) struct ImportBatches<'a> {
    source: &'a str,
    chunks: std::slice::Chunks<'a, BankTransaction>,
    created_at: DateTime<Utc>,
    progress: Option<&'a (dyn Fn(usize) + Send + Sync)>,
    total: usize,
    done: usize,
    imported: Vec<Expense>,
}

impl<'a> ImportBatches<'a> {
    pub fn new(request: &ImportRequest<'a>) -> Self {
        ImportBatches {
            source: request.source,
            chunks: request.transactions.chunks(IMPORT_BATCH),
            created_at: now_micros(),
            progress: request.progress,
            total: request.transactions.len(),
            done: 0,
            imported: Vec::new(),
        }
    }

    /// The next batch, each transaction with the expense it would become.
    pub fn next_batch(&mut self) -> Option<Vec<(Expense, &'a BankTransaction)>> {
        let chunk = self.chunks.next()?;
        Some(
            chunk
                .iter()
                .map(|t| (t.to_expense(self.source, self.created_at), t))
                .collect(),
        )
    }

    /// Keeps the expenses of `rows` whose ids are `written`.
    pub fn keep(&mut self, rows: Vec<(Expense, &BankTransaction)>, written: &HashSet<Uuid>) {
        self.done += rows.len();
        self.imported.extend(
            rows.into_iter()
                .map(|(e, _)| e)
                .filter(|e| written.contains(&e.id)),
        );
        if let Some(progress) = self.progress {
            progress(self.done);
        }
    }

    /// What was written, and how many transactions were not.
    pub fn finish(self) -> ImportOutcome {
        let skipped = (self.total - self.imported.len()) as u64;
        ImportOutcome {
            imported_total: self.imported.len() as u64,
            imported: self.imported,
            skipped,
        }
    }
}

/// A background import about to be queued.
#[derive(Clone, Debug)]
pub struct NewJob {
    pub id: Uuid,
    pub source: String,
    /// The transactions to write, as JSON.
    pub payload: Vec<u8>,
    /// What reading the file found, as JSON (see `jobs::Report`).
    pub report: String,
    /// Transactions to write.
    pub total: u64,
    pub created_at: DateTime<Utc>,
}

/// A background import as stored (without its transactions).
#[derive(Clone, Debug)]
pub struct JobRecord {
    pub id: Uuid,
    pub user_id: Uuid,
    pub source: String,
    pub status: ImportJobStatus,
    pub report: String,
    pub total: u64,
    pub imported: Option<u64>,
    pub skipped: Option<u64>,
    pub error: Option<String>,
    pub attempts: u32,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// How a background import ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JobEnd {
    Succeeded { imported: u64, skipped: u64 },
    Failed(String),
}

impl JobEnd {
    /// The `status`, `imported`, `skipped` and `error` columns of the ended job.
    pub(crate) fn columns(&self) -> (&'static str, Option<i64>, Option<i64>, Option<&str>) {
        let count = |n: u64| Some(i64::try_from(n).unwrap_or(i64::MAX));
        match self {
            JobEnd::Succeeded { imported, skipped } => {
                ("succeeded", count(*imported), count(*skipped), None)
            }
            JobEnd::Failed(why) => ("failed", None, None, Some(why.as_str())),
        }
    }
}

/// The columns a [`JobRecord`] is read from, in the order of [`JobRow`].
macro_rules! job_columns {
    () => {
        "id, user_id, source, status, report, total, imported, skipped, error, attempts, \
         created_at, started_at, finished_at"
    };
}
pub(crate) use job_columns;

/// A row of `import_jobs` as [`job_columns`] reads it.
pub(crate) type JobRow = (
    Uuid,
    Uuid,
    String,
    String,
    String,
    i64,
    Option<i64>,
    Option<i64>,
    Option<String>,
    i32,
    i64,
    Option<i64>,
    Option<i64>,
);

pub(crate) fn job_from_row(row: JobRow) -> Result<JobRecord, sqlx::Error> {
    let (id, user_id, source, status, report, total, imported, skipped, error, attempts) = (
        row.0, row.1, row.2, row.3, row.4, row.5, row.6, row.7, row.8, row.9,
    );
    let time = |micros: i64| {
        DateTime::from_timestamp_micros(micros)
            .ok_or_else(|| sqlx::Error::Decode(format!("timestamp out of range: {micros}").into()))
    };
    let count = |n: i64| u64::try_from(n).unwrap_or(0);
    Ok(JobRecord {
        id,
        user_id,
        source,
        status: ImportJobStatus::parse(&status)
            .ok_or_else(|| sqlx::Error::Decode(format!("unknown job status {status:?}").into()))?,
        report,
        total: count(total),
        imported: imported.map(count),
        skipped: skipped.map(count),
        error,
        attempts: u32::try_from(attempts).unwrap_or(0),
        created_at: time(row.10)?,
        started_at: row.11.map(time).transpose()?,
        finished_at: row.12.map(time).transpose()?,
    })
}

/// Connection pool occupancy.
#[derive(Clone, Copy, Debug, Default)]
pub struct PoolStats {
    pub open: u32,
    pub idle: usize,
}

/// Connection pool settings, the same on every engine.
#[derive(Clone, Debug)]
pub struct PoolSettings {
    pub max_connections: u32,
    pub acquire_timeout: Duration,
}

impl Default for PoolSettings {
    fn default() -> Self {
        PoolSettings {
            max_connections: 10,
            acquire_timeout: Duration::from_secs(3),
        }
    }
}

/// Everything the server keeps.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// `"sqlite"`, `"postgres"` or `"mysql"`.
    fn backend(&self) -> &'static str;

    /// Answers when the database does.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Open and idle connections, for metrics.
    fn pool_stats(&self) -> PoolStats;

    /// The most bytes one statement can carry, where the database has such
    /// a limit (MySQL's `max_allowed_packet`): a background import's stored
    /// transactions must fit.
    fn statement_limit(&self) -> Option<usize> {
        None
    }

    /// Creates a user; `Conflict` when the email is taken.
    async fn create_user(&self, email: &Email, password_hash: &str) -> Result<User, StoreError>;

    /// The user with this email, with their password hash.
    async fn user_credentials(&self, email: &Email) -> Result<Option<UserCredentials>, StoreError>;

    /// The user with this id.
    async fn user(&self, id: Uuid) -> Result<Option<User>, StoreError>;

    /// The user with this id, with their password hash.
    async fn user_credentials_by_id(&self, id: Uuid)
    -> Result<Option<UserCredentials>, StoreError>;

    /// What decides whether token `jti` of this user is still good; `None` if the user is gone.
    async fn session_state(
        &self,
        user_id: Uuid,
        jti: Uuid,
    ) -> Result<Option<SessionState>, StoreError>;

    /// Refuses token `jti` from now on (it expires at `expires_at`, seconds since the epoch).
    async fn revoke_token(
        &self,
        user_id: Uuid,
        jti: Uuid,
        expires_at: i64,
    ) -> Result<(), StoreError>;

    /// Sets a new password hash and moves to a new token generation, which
    /// refuses every token issued before; returns the new generation.
    async fn change_password(&self, user_id: Uuid, password_hash: &str) -> Result<i64, StoreError>;

    /// Writes one manual expense, and with a key, its response in the same
    /// transaction (`Conflict` if the key was taken meanwhile).
    async fn create_expense(
        &self,
        user_id: Uuid,
        input: ExpenseInput,
        idempotency: Option<&IdempotencyKey>,
    ) -> Result<Expense, StoreError>;

    /// The response remembered for a key of this user, if younger than 24 hours.
    async fn idempotent_response(
        &self,
        user_id: Uuid,
        key: &str,
    ) -> Result<Option<StoredResponse>, StoreError>;

    /// One of the user's expenses.
    async fn expense(&self, user_id: Uuid, id: Uuid) -> Result<Option<Expense>, StoreError>;

    /// The user's expenses, newest first, after the cursor.
    async fn list_expenses(
        &self,
        user_id: Uuid,
        filter: &ListFilter,
    ) -> Result<Vec<Expense>, StoreError>;

    /// Per-category totals over an inclusive date range, computed by the
    /// database (a replica only when it has caught up with `seen_version`).
    async fn summary(
        &self,
        user_id: Uuid,
        seen_version: i64,
        from: Option<NaiveDate>,
        to: Option<NaiveDate>,
    ) -> Result<Summary, StoreError>;

    /// Writes a bank's transactions in one transaction, skipping those already
    /// imported or deleted after an import; a dry run rolls it back.
    async fn import(
        &self,
        user_id: Uuid,
        request: ImportRequest<'_>,
    ) -> Result<ImportOutcome, StoreError>;

    /// Changes one of the user's expenses; `None` when there is no such expense.
    async fn update_expense(
        &self,
        user_id: Uuid,
        id: Uuid,
        patch: &ExpensePatch,
    ) -> Result<Option<Expense>, StoreError>;

    /// Deletes one of the user's expenses (remembering an imported one's
    /// provider id); `false` when there is no such expense.
    async fn delete_expense(&self, user_id: Uuid, id: Uuid) -> Result<bool, StoreError>;

    /// The user's categories with their count, total and latest day, most used first.
    async fn categories(
        &self,
        user_id: Uuid,
        seen_version: i64,
    ) -> Result<Vec<CategoryInfo>, StoreError>;

    /// Moves every expense of category `from` to `to`; how many moved, or
    /// `None` when no expense is in `from`.
    async fn rename_category(
        &self,
        user_id: Uuid,
        from: &str,
        to: &str,
    ) -> Result<Option<u64>, StoreError>;

    /// Queues a background import: the job, and with a key, the response
    /// (202, `response`) in the same transaction (`Conflict` if the key was taken).
    async fn create_job(
        &self,
        user_id: Uuid,
        job: &NewJob,
        idempotency: Option<&IdempotencyKey>,
        response: &str,
    ) -> Result<(), StoreError>;

    /// A background import.
    async fn job(&self, id: Uuid) -> Result<Option<JobRecord>, StoreError>;

    /// Marks a queued or running job running (one more attempt) and returns
    /// it with its transactions; `None` if it has ended or does not exist.
    async fn start_job(&self, id: Uuid) -> Result<Option<(JobRecord, Vec<u8>)>, StoreError>;

    /// Ends a job that has not ended yet; `false` if it had.
    async fn finish_job(&self, id: Uuid, end: &JobEnd) -> Result<bool, StoreError>;

    /// Notes that the queue has the job.
    async fn mark_enqueued(&self, id: Uuid) -> Result<(), StoreError>;

    /// Jobs that have not ended, created before `before`, oldest first: all of
    /// them, or only those the queue was never given.
    async fn unfinished_jobs(
        &self,
        before: DateTime<Utc>,
        only_unqueued: bool,
    ) -> Result<Vec<Uuid>, StoreError>;

    /// Per-month, per-category totals of the days `from..=to`: rows of
    /// (`YYYY-MM`, category, total, count).
    async fn monthly_totals(
        &self,
        user_id: Uuid,
        seen_version: i64,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<(String, String, i64, i64)>, StoreError>;
}

/// Opens the database a URL names (`sqlite:` or `postgres:`) and applies its
/// migrations; `read_url` names a read replica of a PostgreSQL primary.
pub async fn connect(
    url: &str,
    read_url: Option<&str>,
    pool: &PoolSettings,
) -> anyhow::Result<Arc<dyn Store>> {
    let sqlite = url.starts_with("sqlite:");
    let mysql = url.starts_with("mysql:") || url.starts_with("mariadb:");
    if read_url.is_some() && (sqlite || mysql) {
        anyhow::bail!("DATABASE_READ_URL needs a PostgreSQL DATABASE_URL");
    }
    let store: Arc<dyn Store> = if sqlite {
        Arc::new(sqlite::connect(url, pool).await?)
    } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        Arc::new(postgres::connect(url, read_url, pool).await?)
    } else if mysql {
        Arc::new(mysql::connect(url, pool).await?)
    } else {
        anyhow::bail!(
            "unsupported DATABASE_URL: expected sqlite:PATH, postgres://... or mysql://... (MariaDB too)"
        )
    };
    Ok(store)
}

/// The current time at the database's precision (microseconds).
pub(crate) fn now_micros() -> DateTime<Utc> {
    let now = Utc::now();
    DateTime::from_timestamp_micros(now.timestamp_micros()).unwrap_or(now)
}

/// The changes a batch of new expenses makes to `categories` and `daily_totals`.
#[derive(Default)]
pub(crate) struct Rollup {
    /// Category key -> the first spelling seen.
    pub names: BTreeMap<CategoryKey, String>,
    /// (day, category key) -> (total, count).
    pub days: BTreeMap<(NaiveDate, CategoryKey), (i64, i64)>,
    /// (first day of the month, category key) -> (total, count).
    pub months: BTreeMap<(NaiveDate, CategoryKey), (i64, i64)>,
}

impl Rollup {
    /// The rollup of new expenses.
    pub fn of<'a>(expenses: impl IntoIterator<Item = &'a Expense>) -> Self {
        let mut rollup = Rollup::default();
        for e in expenses {
            rollup.add(e, 1);
        }
        rollup
    }

    /// The rollup of one expense turning from `old` into `new` (either absent).
    pub fn change(old: Option<&Expense>, new: Option<&Expense>) -> Self {
        let mut rollup = Rollup::default();
        if let Some(old) = old {
            rollup.add(old, -1);
        }
        if let Some(new) = new {
            rollup.add(new, 1);
        }
        rollup
    }

    fn add(&mut self, e: &Expense, sign: i64) {
        let key = finance_shared::validate::category_key(&e.category);
        if sign > 0 {
            self.names
                .entry(key.clone())
                .or_insert_with(|| e.category.clone());
        }
        for (period, totals) in [
            (e.spent_on, &mut self.days),
            (first_of_month(e.spent_on), &mut self.months),
        ] {
            let row = totals.entry((period, key.clone())).or_default();
            row.0 += sign * e.amount.minor();
            row.1 += sign;
        }
    }

    /// Days and categories that lost expenses: their rows may have reached zero.
    pub fn shrunk(&self) -> impl Iterator<Item = &(NaiveDate, CategoryKey)> {
        shrunk(&self.days)
    }

    /// Months and categories that lost expenses.
    pub fn shrunk_months(&self) -> impl Iterator<Item = &(NaiveDate, CategoryKey)> {
        shrunk(&self.months)
    }
}

fn shrunk(
    totals: &BTreeMap<(NaiveDate, CategoryKey), (i64, i64)>,
) -> impl Iterator<Item = &(NaiveDate, CategoryKey)> {
    totals
        .iter()
        .filter(|(_, (_, count))| *count < 0)
        .map(|(k, _)| k)
}

pub(crate) fn first_of_month(day: NaiveDate) -> NaiveDate {
    day.with_day(1).unwrap_or(day)
}

/// How a summary over `from..=to` reads the rollups: whole months from
/// `monthly_totals` (`months`, end exclusive), and the days before and after
/// them from `daily_totals` (`head` and `tail`, inclusive). Its cost follows
/// the number of months and categories, whatever the length of the history.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SummarySpans {
    pub head: (NaiveDate, NaiveDate),
    pub months: (NaiveDate, NaiveDate),
    pub tail: (NaiveDate, NaiveDate),
}

impl SummarySpans {
    pub fn new(from: Option<NaiveDate>, to: Option<NaiveDate>) -> Self {
        let earliest = NaiveDate::from_ymd_opt(1, 1, 1).unwrap_or(NaiveDate::MIN);
        let latest = NaiveDate::from_ymd_opt(9999, 12, 31).unwrap_or(NaiveDate::MAX);
        let next_month = |d: NaiveDate| {
            first_of_month(d)
                .checked_add_months(chrono::Months::new(1))
                .unwrap_or(latest)
        };
        let (lo, hi) = (from.unwrap_or(earliest), to.unwrap_or(latest));
        // Whole months: from the first month starting on or after `lo`, up to
        // the month after the last one ending on or before `hi`.
        let start = if first_of_month(lo) == lo {
            lo
        } else {
            next_month(lo)
        };
        // (Dates stay within years 1 to 9999: SQLite compares them as text.)
        let end = if hi == latest {
            latest
        } else if next_month(hi).pred_opt() == Some(hi) {
            next_month(hi)
        } else {
            first_of_month(hi)
        };
        let empty = (latest, earliest);
        if start >= end {
            return SummarySpans {
                head: (lo, hi),
                months: (earliest, earliest),
                tail: empty,
            };
        }
        SummarySpans {
            head: start.pred_opt().map_or(empty, |last| (lo, last)),
            months: (start, end),
            tail: if end > hi || hi == latest {
                empty
            } else {
                (end, hi)
            },
        }
    }
}

/// The months of a trend from per-month, per-category rows sorted by month
/// and then by total, largest first; `months` lists every month shown.
pub fn months_from_rows(
    months: &[String],
    rows: Vec<(String, String, i64, i64)>,
) -> Vec<MonthTotal> {
    let mut by_month: BTreeMap<String, Vec<(String, i64, i64)>> = BTreeMap::new();
    for (month, category, total, count) in rows {
        by_month
            .entry(month)
            .or_default()
            .push((category, total, count));
    }
    months
        .iter()
        .map(|month| {
            let rows = by_month.remove(month).unwrap_or_default();
            let total = rows.iter().map(|r| r.1).sum();
            let count = rows.iter().map(|r| u64::try_from(r.2).unwrap_or(0)).sum();
            MonthTotal {
                month: month.clone(),
                total: Money::from_minor(total),
                count,
                categories: rows
                    .into_iter()
                    .map(|(category, total, count)| CategoryTotal {
                        category,
                        total: Money::from_minor(total),
                        count: u64::try_from(count).unwrap_or(0),
                    })
                    .collect(),
            }
        })
        .collect()
}

/// The body a mock import answers with.
pub fn import_body(outcome: &ImportOutcome) -> String {
    serde_json::to_string(&finance_shared::ImportResult {
        imported: outcome.imported_total,
        skipped: outcome.skipped,
        expenses: outcome.imported.clone(),
    })
    .unwrap_or_default()
}

/// A row of `categories()`: name, count, total and latest day.
pub(crate) fn category_info(
    (category, count, total, last_used): (String, i64, i64, NaiveDate),
) -> CategoryInfo {
    CategoryInfo {
        category,
        count: u64::try_from(count).unwrap_or(0),
        total: Money::from_minor(total),
        last_used,
    }
}

/// Builds the summary from per-category rows already sorted by total, largest first.
pub(crate) fn summary_from_rows(
    rows: impl IntoIterator<Item = (String, i64, i64)>,
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
) -> Summary {
    let mut total = Money::ZERO;
    let mut count = 0u64;
    let categories = rows
        .into_iter()
        .map(|(category, minor, n)| {
            let n = u64::try_from(n).unwrap_or(0);
            total = Money::from_minor(total.minor().saturating_add(minor));
            count += n;
            finance_shared::CategoryTotal {
                category,
                total: Money::from_minor(minor),
                count: n,
            }
        })
        .collect();
    Summary {
        total,
        count,
        categories,
        from,
        to,
    }
}

/// The columns an [`Expense`] is read from, in the order the row readers expect.
macro_rules! expense_columns {
    () => {
        "id, category, description, amount_minor, spent_on, created_at, source"
    };
}
pub(crate) use expense_columns;

#[cfg(test)]
mod tests {
    use super::*;

    fn day(s: &str) -> NaiveDate {
        s.parse().expect("date")
    }

    /// Every day of 2023..2027 lands in exactly one span for a range.
    fn covers_once(from: Option<NaiveDate>, to: Option<NaiveDate>) {
        let spans = SummarySpans::new(from, to);
        let mut d = day("2023-01-01");
        while d < day("2027-01-01") {
            let wanted = from.is_none_or(|f| d >= f) && to.is_none_or(|t| d <= t);
            let hits = [spans.head, spans.tail]
                .iter()
                .filter(|(lo, hi)| d >= *lo && d <= *hi)
                .count()
                + usize::from(
                    first_of_month(d) >= spans.months.0 && first_of_month(d) < spans.months.1,
                );
            let month_whole =
                first_of_month(d) >= spans.months.0 && first_of_month(d) < spans.months.1;
            assert_eq!(
                hits,
                usize::from(wanted),
                "{d} for {from:?}..{to:?}: {spans:?}"
            );
            if month_whole {
                assert!(
                    from.is_none_or(|f| first_of_month(d) >= f),
                    "{d}: a month starting before from"
                );
            }
            d = d.succ_opt().expect("next day");
        }
    }

    #[test]
    fn summary_spans_cover_every_day_of_a_range_once() {
        let dates = [
            None,
            Some(day("2024-01-01")),
            Some(day("2024-01-15")),
            Some(day("2024-01-31")),
            Some(day("2024-02-29")),
            Some(day("2024-03-01")),
            Some(day("2025-06-30")),
        ];
        for from in dates {
            for to in dates {
                covers_once(from, to);
            }
        }
    }
}
