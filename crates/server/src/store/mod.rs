//! Storage: one trait, implemented once over every database (see `sql`).

mod cursor;
mod group_commit;
mod imports;
mod mysql;
mod postgres;
pub mod retry;
mod rollup;
mod session_batch;
mod sessions;
mod sql;
mod sqlite;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use finance_shared::validate::{CategoryKey, Email};
use finance_shared::{CategoryInfo, Expense, Money, Summary, User};
use uuid::Uuid;

pub use cursor::Cursor;
pub(crate) use imports::{ImportBatches, JobRow, job_columns, job_from_row, legacy_ids};
pub use imports::{
    ImportBody, ImportOutcome, ImportRequest, JOB_CHUNK, JobCounts, JobEnd, JobRecord, NewJob,
    import_body,
};
pub use rollup::months_from_rows;
pub(crate) use rollup::{Rollup, SummarySpans, category_info, summary_from_rows};

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

/// The columns an [`Expense`] is read from, in the order the row readers expect.
macro_rules! expense_columns {
    () => {
        "id, category, description, amount_minor, spent_on, created_at, source"
    };
}
pub(crate) use expense_columns;
