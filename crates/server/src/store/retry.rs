//! Transactions that lose to another are run again: a deadlock (MariaDB
//! 1213, PostgreSQL 40P01), a serialization failure (40001), a lock wait
//! timeout (MariaDB 1205) or a busy SQLite file. Each was rolled back whole,
//! so running it again is safe. After a few tries the caller gets
//! [`StoreError::Contended`], which the API answers with 503. Every write
//! transaction of the store runs inside [`retry_contended`]; reads do not
//! lose to writers on any of the engines (MVCC, or SQLite's WAL).

use std::future::Future;
use std::time::Duration;

use super::StoreError;

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
