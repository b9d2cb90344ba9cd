//! Transactions that lose to another are run again: a deadlock (MariaDB
//! 1213, PostgreSQL 40P01), a serialization failure (40001), a lock wait
//! timeout (MariaDB 1205) or a busy SQLite file. Each was rolled back whole,
//! so running it again is safe. After a few tries the caller gets
//! [`StoreError::Contended`], which the API answers with 503.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use finance_shared::{CategoryInfo, Expense, Summary, User};
use uuid::Uuid;

use super::{
    ExpenseInput, ExpensePatch, IdempotencyKey, ImportOutcome, ImportRequest, JobEnd, JobRecord,
    ListFilter, NewJob, PoolStats, SessionState, Store, StoreError, StoredResponse,
    UserCredentials,
};

/// Runs after the first, at most.
pub const RETRIES: u32 = 4;

/// Whether a database error says the transaction lost to another and was
/// rolled back.
pub fn is_contention(e: &dyn sqlx::error::DatabaseError) -> bool {
    if let Some(mysql) = e.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>() {
        return matches!(mysql.number(), 1213 | 1205);
    }
    if e.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
        // SQLITE_BUSY, SQLITE_LOCKED and their extended codes.
        return e
            .code()
            .and_then(|c| c.parse::<i32>().ok())
            .is_some_and(|code| matches!(code & 0xff, 5 | 6));
    }
    matches!(e.code().as_deref(), Some("40001" | "40P01"))
}

/// Runs `op` until it does not fail with [`StoreError::Contended`], at most
/// [`RETRIES`] more times, waiting a little longer (with jitter) each time.
pub async fn retry_contended<T, F, Fut>(mut op: F) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, StoreError>>,
{
    let mut attempt = 0;
    loop {
        match op().await {
            Err(StoreError::Contended(e)) if attempt < RETRIES => {
                attempt += 1;
                metrics::counter!("db_transaction_retries_total").increment(1);
                tracing::debug!(error = %e, attempt, "transaction lost to another; running it again");
                let base = 5u64 << attempt;
                let jitter = rand::random_range(0..=base);
                tokio::time::sleep(Duration::from_millis(base + jitter)).await;
            }
            other => return other,
        }
    }
}

/// A store whose every operation is run again when its transaction loses to
/// another (see [`retry_contended`]); [`super::connect`] hands out this.
pub struct Retrying(pub Arc<dyn Store>);

#[async_trait]
impl Store for Retrying {
    fn backend(&self) -> &'static str {
        self.0.backend()
    }

    fn pool_stats(&self) -> PoolStats {
        self.0.pool_stats()
    }

    fn statement_limit(&self) -> Option<usize> {
        self.0.statement_limit()
    }

    async fn ping(&self) -> Result<(), StoreError> {
        retry_contended(|| self.0.ping()).await
    }

    async fn create_user(&self, email: &str, password_hash: &str) -> Result<User, StoreError> {
        retry_contended(|| self.0.create_user(email, password_hash)).await
    }

    async fn user_credentials(&self, email: &str) -> Result<Option<UserCredentials>, StoreError> {
        retry_contended(|| self.0.user_credentials(email)).await
    }

    async fn user(&self, id: Uuid) -> Result<Option<User>, StoreError> {
        retry_contended(|| self.0.user(id)).await
    }

    async fn user_credentials_by_id(
        &self,
        id: Uuid,
    ) -> Result<Option<UserCredentials>, StoreError> {
        retry_contended(|| self.0.user_credentials_by_id(id)).await
    }

    async fn session_state(
        &self,
        user_id: Uuid,
        jti: Uuid,
    ) -> Result<Option<SessionState>, StoreError> {
        retry_contended(|| self.0.session_state(user_id, jti)).await
    }

    async fn revoke_token(
        &self,
        user_id: Uuid,
        jti: Uuid,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        retry_contended(|| self.0.revoke_token(user_id, jti, expires_at)).await
    }

    async fn change_password(&self, user_id: Uuid, password_hash: &str) -> Result<i64, StoreError> {
        retry_contended(|| self.0.change_password(user_id, password_hash)).await
    }

    async fn create_expense(
        &self,
        user_id: Uuid,
        input: ExpenseInput,
        idempotency: Option<&IdempotencyKey>,
    ) -> Result<Expense, StoreError> {
        retry_contended(|| self.0.create_expense(user_id, input.clone(), idempotency)).await
    }

    async fn idempotent_response(
        &self,
        user_id: Uuid,
        key: &str,
    ) -> Result<Option<StoredResponse>, StoreError> {
        retry_contended(|| self.0.idempotent_response(user_id, key)).await
    }

    async fn expense(&self, user_id: Uuid, id: Uuid) -> Result<Option<Expense>, StoreError> {
        retry_contended(|| self.0.expense(user_id, id)).await
    }

    async fn list_expenses(
        &self,
        user_id: Uuid,
        filter: &ListFilter,
    ) -> Result<Vec<Expense>, StoreError> {
        retry_contended(|| self.0.list_expenses(user_id, filter)).await
    }

    async fn summary(
        &self,
        user_id: Uuid,
        seen_version: i64,
        from: Option<NaiveDate>,
        to: Option<NaiveDate>,
    ) -> Result<Summary, StoreError> {
        retry_contended(|| self.0.summary(user_id, seen_version, from, to)).await
    }

    async fn import(
        &self,
        user_id: Uuid,
        request: ImportRequest<'_>,
    ) -> Result<ImportOutcome, StoreError> {
        retry_contended(|| self.0.import(user_id, request)).await
    }

    async fn update_expense(
        &self,
        user_id: Uuid,
        id: Uuid,
        patch: &ExpensePatch,
    ) -> Result<Option<Expense>, StoreError> {
        retry_contended(|| self.0.update_expense(user_id, id, patch)).await
    }

    async fn delete_expense(&self, user_id: Uuid, id: Uuid) -> Result<bool, StoreError> {
        retry_contended(|| self.0.delete_expense(user_id, id)).await
    }

    async fn categories(
        &self,
        user_id: Uuid,
        seen_version: i64,
    ) -> Result<Vec<CategoryInfo>, StoreError> {
        retry_contended(|| self.0.categories(user_id, seen_version)).await
    }

    async fn rename_category(
        &self,
        user_id: Uuid,
        from: &str,
        to: &str,
    ) -> Result<Option<u64>, StoreError> {
        retry_contended(|| self.0.rename_category(user_id, from, to)).await
    }

    async fn create_job(
        &self,
        user_id: Uuid,
        job: &NewJob,
        idempotency: Option<&IdempotencyKey>,
        response: &str,
    ) -> Result<(), StoreError> {
        retry_contended(|| self.0.create_job(user_id, job, idempotency, response)).await
    }

    async fn job(&self, id: Uuid) -> Result<Option<JobRecord>, StoreError> {
        retry_contended(|| self.0.job(id)).await
    }

    async fn start_job(&self, id: Uuid) -> Result<Option<(JobRecord, Vec<u8>)>, StoreError> {
        retry_contended(|| self.0.start_job(id)).await
    }

    async fn finish_job(&self, id: Uuid, end: &JobEnd) -> Result<bool, StoreError> {
        retry_contended(|| self.0.finish_job(id, end)).await
    }

    async fn mark_enqueued(&self, id: Uuid) -> Result<(), StoreError> {
        retry_contended(|| self.0.mark_enqueued(id)).await
    }

    async fn unfinished_jobs(
        &self,
        before: DateTime<Utc>,
        only_unqueued: bool,
    ) -> Result<Vec<Uuid>, StoreError> {
        retry_contended(|| self.0.unfinished_jobs(before, only_unqueued)).await
    }

    async fn monthly_totals(
        &self,
        user_id: Uuid,
        seen_version: i64,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<(String, String, i64, i64)>, StoreError> {
        retry_contended(|| self.0.monthly_totals(user_id, seen_version, from, to)).await
    }
}
