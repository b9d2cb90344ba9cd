//! MariaDB (10.5 and later): for deployments standardised on it. The same
//! contract as PostgreSQL: sessions read committed (as PostgreSQL's default,
//! so upserts of the rollups take no gap locks), rows a write reads locked
//! with `FOR UPDATE`, text compared byte for byte.
//!
//! Every write locks its users' rows first, in id order: InnoDB's locks on
//! unique keys (two imports of one bank's transactions) and on the rollups'
//! rows would otherwise be taken in different orders by concurrent writes
//! and deadlock; PostgreSQL waits instead, MariaDB kills one of them.

use chrono::{DateTime, Utc};
use sqlx::mysql::{MySqlConnectOptions, MySqlPool, MySqlPoolOptions, MySqlQueryResult};
use sqlx::{ConnectOptions, Executor, MySql, QueryBuilder};
use uuid::Uuid;

use super::sql::{Engine, SqlStore, push_in};
use super::{PoolSettings, SessionState, StoreError};

/// The MariaDB store.
pub(crate) type MySqlStore = SqlStore<MySqlEngine>;

/// MariaDB's pool.
pub(crate) struct MySqlEngine {
    pool: MySqlPool,
    /// The server's `max_allowed_packet`.
    max_packet: usize,
}

/// Connects and applies the migrations. `mariadb://` URLs are read as `mysql://`.
pub(crate) async fn connect(url: &str, pool: &PoolSettings) -> anyhow::Result<MySqlStore> {
    let url = match url.strip_prefix("mariadb:") {
        Some(rest) => format!("mysql:{rest}"),
        None => url.to_owned(),
    };
    let options: MySqlConnectOptions = url.parse()?;
    let options = options
        .charset("utf8mb4")
        .collation("utf8mb4_nopad_bin")
        .timezone(Some("+00:00".to_owned()))
        .log_statements(tracing::log::LevelFilter::Debug);
    let pool = MySqlPoolOptions::new()
        .max_connections(pool.max_connections.max(1))
        .acquire_timeout(pool.acquire_timeout)
        .after_connect(|conn, _| {
            Box::pin(async move {
                conn.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
                    .await?;
                Ok(())
            })
        })
        .connect_with(options)
        .await?;
    sqlx::migrate!("../../migrations/mysql").run(&pool).await?;
    let max_packet: u64 = sqlx::query_scalar("SELECT CAST(@@max_allowed_packet AS UNSIGNED)")
        .fetch_one(&pool)
        .await?;
    Ok(SqlStore::new(MySqlEngine {
        pool,
        max_packet: usize::try_from(max_packet).unwrap_or(usize::MAX),
    }))
}

impl Engine for MySqlEngine {
    type DB = MySql;
    type Time = DateTime<Utc>;

    const NAME: &'static str = "mysql";
    const INDEX: usize = 2;
    const NUMBERED: bool = false;
    const INT64: &'static str = "SIGNED";
    const FOR_UPDATE: &'static str = " FOR UPDATE";
    const LOCKS_USERS_FIRST: bool = true;
    // MariaDB does not use the index for a row comparison.
    const ROW_COMPARISON: bool = false;
    // With `ON DUPLICATE KEY UPDATE`, a kept row's existing id is returned:
    // never one of the batch's new ids, so it counts as skipped.
    const RETURNING: bool = true;
    const KEY: &'static str = "`key`";

    fn pool(&self) -> &MySqlPool {
        &self.pool
    }

    fn statement_limit(&self) -> Option<usize> {
        Some(self.max_packet)
    }

    async fn session_state(
        &self,
        user_id: Uuid,
        jti: Uuid,
    ) -> Result<Option<SessionState>, StoreError> {
        let row: Option<(i64, i64, i64)> = sqlx::query_as(
            "SELECT token_generation, data_version, \
             CAST(EXISTS (SELECT 1 FROM revoked_tokens WHERE jti = ?) AS SIGNED) \
             FROM users WHERE id = ?",
        )
        .bind(jti)
        .bind(user_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(
            row.map(|(token_generation, data_version, revoked)| SessionState {
                token_generation,
                revoked: revoked != 0,
                data_version,
            }),
        )
    }

    fn rows_affected(result: &MySqlQueryResult) -> u64 {
        result.rows_affected()
    }

    fn upsert_add(table: &str, _keys: &str, columns: &[&str]) -> String {
        let sets: Vec<String> = columns
            .iter()
            .map(|c| format!("{c} = {table}.{c} + VALUES({c})"))
            .collect();
        format!(" ON DUPLICATE KEY UPDATE {}", sets.join(", "))
    }

    // Not `INSERT IGNORE`, which also turns every conversion error of the
    // statement (a value too long, a bad date) into a warning.
    fn ignore_duplicates(_keys: &str, column: &str) -> String {
        format!(" ON DUPLICATE KEY UPDATE {column} = {column}")
    }

    fn upsert_replace(_keys: &str, column: &str) -> String {
        format!(" ON DUPLICATE KEY UPDATE {column} = VALUES({column})")
    }

    fn month_of(column: &str) -> String {
        format!("DATE_FORMAT({column}, '%Y-%m')")
    }

    fn push_contains(query: &mut QueryBuilder<MySql>, column: &str, needle: &str) {
        query
            .push("LOCATE(")
            .push_bind(needle.to_owned())
            .push(format!(", {column}) > 0"));
    }

    fn push_any_id(query: &mut QueryBuilder<MySql>, column: &str, values: &[Uuid]) {
        push_in(query, column, values);
    }

    fn push_any_text(query: &mut QueryBuilder<MySql>, column: &str, values: &[&str]) {
        push_in(query, column, values);
    }
}
