//! SQLite: the embedded default.
//!
//! One writer connection that opens every write transaction with
//! `BEGIN IMMEDIATE` (a deferred transaction that reads and then writes fails
//! with `SQLITE_BUSY` under load), and a pool of read-only connections; WAL
//! lets the readers run while the writer writes.

use std::collections::HashSet;
use std::str::FromStr;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use finance_shared::{CategoryInfo, Expense, Money, Summary, User};
use sqlx::query_builder::Separated;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteRow, SqliteSynchronous,
};
use sqlx::{ConnectOptions, QueryBuilder, Row, Transaction};
use uuid::Uuid;

use crate::bank::{BankTransaction, LEGACY_FINGERPRINTS};

use super::group_commit::{BatchWriter, GroupCommit, NewExpense, by_user};
use super::sessions::{Sessions, UserState};
use super::{
    ExpenseInput, ExpensePatch, IDEMPOTENCY_WINDOW_SECS, IdempotencyKey, ImportBatches,
    ImportOutcome, ImportRequest, JobEnd, JobRecord, JobRow, ListFilter, NewJob, PoolSettings,
    Rollup, SessionState, Store, StoreError, StoredResponse, SummarySpans, UserCredentials,
    expense_columns, job_columns, job_from_row, now_micros, summary_from_rows,
};

/// The page size of a new database file: 8 KiB instead of SQLite's 4 KiB
/// halves the page splits and the WAL frames of a large import (an existing
/// file keeps the page size it was made with).
const PAGE_SIZE: u32 = 8192;
/// The writer's page cache: 16 MiB (negative: KiB, as SQLite takes it).
const WRITER_CACHE_KIB: &str = "-16384";
/// WAL pages past which the writer checkpoints a commit itself: a backstop
/// for when the background checkpoints fall behind (they cannot finish the
/// WAL while writes keep coming; the writer's, holding the write lock, can).
const WRITER_AUTOCHECKPOINT_PAGES: &str = "8192";
/// How often the WAL is copied back into the database file, off the writer.
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_millis(100);
/// Each reader's page cache: 1 MiB. A reader's cache is dropped whenever
/// another connection has written, so under writes a larger one holds memory
/// without saving reads (the file's pages stay in the OS's cache anyway).
const READER_CACHE_KIB: &str = "-1024";

/// The SQLite store.
pub struct SqliteStore {
    writer: SqlitePool,
    readers: SqlitePool,
    sessions: Arc<Sessions>,
    new_expenses: GroupCommit,
    /// Held locked while the store is open: one server per database file.
    _lock: Option<std::fs::File>,
    /// Dropped with the store, which ends the checkpoints.
    _checkpoints: Option<tokio::sync::oneshot::Sender<()>>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file and applies the migrations.
    pub async fn connect(url: &str, pool: &PoolSettings) -> anyhow::Result<Self> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .page_size(PAGE_SIZE)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(std::time::Duration::from_secs(5));
        // The writer gets a larger page cache, and statement journals in
        // memory: a large import then neither spills pages to the WAL
        // mid-transaction nor writes a temporary file per statement. Its
        // commits leave checkpoints to a connection of their own (below),
        // unless the WAL has grown past the backstop.
        // The file, and the journal files SQLite gives its mode, are the
        // owner's alone: a personal-finance database on a shared machine.
        let path = options.get_filename();
        let in_memory = path.as_os_str().is_empty() || path == std::path::Path::new(":memory:");
        if !in_memory {
            make_private(path)?;
        }
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(pool.acquire_timeout)
            .connect_with(
                options
                    .clone()
                    .pragma("cache_size", WRITER_CACHE_KIB)
                    .pragma("temp_store", "memory")
                    .pragma("wal_autocheckpoint", WRITER_AUTOCHECKPOINT_PAGES),
            )
            .await?;
        // Token state is kept in memory (see `sessions`), which is only
        // right while this process is the file's one writer.
        let lock = match in_memory {
            true => None,
            false => Some(lock_file(path)?),
        };
        sqlx::migrate!("../../migrations/sqlite")
            .run(&writer)
            .await?;
        let readers = SqlitePoolOptions::new()
            .max_connections(pool.max_connections.max(1))
            .acquire_timeout(pool.acquire_timeout)
            .connect_with(
                options
                    .clone()
                    .read_only(true)
                    .pragma("cache_size", READER_CACHE_KIB),
            )
            .await?;
        let now = chrono::Utc::now().timestamp();
        let revoked: Vec<(Uuid, i64)> =
            sqlx::query_as("SELECT jti, expires_at FROM revoked_tokens WHERE expires_at >= ?")
                .bind(now)
                .fetch_all(&readers)
                .await?;
        let sessions = Sessions::new(revoked);
        let new_expenses = GroupCommit::start(ExpenseWriter {
            writer: writer.clone(),
            sessions: Arc::clone(&sessions),
        });
        let checkpoints = match in_memory {
            true => None,
            false => Some(start_checkpoints(options.connect().await?)),
        };
        Ok(SqliteStore {
            writer,
            readers,
            sessions,
            new_expenses,
            _lock: lock,
            _checkpoints: checkpoints,
        })
    }

    /// Runs a write of the user's, forgetting their token state when it ends.
    async fn write<T>(
        &self,
        user_id: Uuid,
        write: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let guard = self.sessions.write_guard(user_id, &self.writer);
        let result = write.await;
        guard.end();
        result
    }

    async fn begin_write(&self) -> Result<Transaction<'static, sqlx::Sqlite>, StoreError> {
        Ok(self.writer.begin_with("BEGIN IMMEDIATE").await?)
    }
}

/// Copies committed pages from the WAL back into the database file on a
/// connection of its own, whenever another connection has committed since
/// the last time: a large commit (an import) then does not wait for its
/// pages to be copied and synced, and the other core does the copying. A
/// failed checkpoint is logged and tried again; the data stays in the WAL
/// meanwhile, as safe as after any commit. Ends when `stop`'s sender is dropped.
fn start_checkpoints(mut conn: SqliteConnection) -> tokio::sync::oneshot::Sender<()> {
    let (stop_tx, mut stop) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(CHECKPOINT_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut seen = None;
        loop {
            tokio::select! {
                _ = &mut stop => break,
                _ = every.tick() => {}
            }
            let version: Result<i64, _> = sqlx::query_scalar("PRAGMA data_version")
                .fetch_one(&mut conn)
                .await;
            let version = match version {
                Ok(v) if seen == Some(v) => continue,
                Ok(v) => v,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the database's version");
                    continue;
                }
            };
            match sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                .execute(&mut conn)
                .await
            {
                Ok(_) => seen = Some(version),
                Err(e) => tracing::warn!(error = %e, "WAL checkpoint failed"),
            }
        }
        let _ = sqlx::Connection::close(conn).await;
    });
    stop_tx
}

/// Creates the database file with mode 0600 if it is missing, and makes an
/// existing one and its `-wal` and `-shm` files 0600 (SQLite creates those
/// with the database file's mode).
fn make_private(path: &std::path::Path) -> anyhow::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| anyhow::anyhow!("cannot open {}: {e}", path.display()))?;
    for suffix in ["", "-wal", "-shm"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        let file = std::path::PathBuf::from(name);
        if file.exists() {
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))
                .map_err(|e| anyhow::anyhow!("cannot make {} private: {e}", file.display()))?;
        }
    }
    Ok(())
}

/// Locks the database file for this process, or says who holds it.
fn lock_file(path: &std::path::Path) -> anyhow::Result<std::fs::File> {
    let file = std::fs::OpenOptions::new().read(true).open(path)?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => anyhow::bail!(
            "{} is in use by another finance-server process: a SQLite database has one server \
             (run several instances on PostgreSQL)",
            path.display()
        ),
        Err(std::fs::TryLockError::Error(e)) => Err(e.into()),
    }
}

fn micros_to_time(micros: i64) -> Result<DateTime<chrono::Utc>, sqlx::Error> {
    DateTime::from_timestamp_micros(micros)
        .ok_or_else(|| sqlx::Error::Decode(format!("timestamp out of range: {micros}").into()))
}

fn expense_from_row(row: &SqliteRow) -> Result<Expense, sqlx::Error> {
    Ok(Expense {
        id: row.try_get(0)?,
        category: row.try_get(1)?,
        description: row.try_get(2)?,
        amount: Money::from_minor(row.try_get(3)?),
        spent_on: row.try_get(4)?,
        created_at: micros_to_time(row.try_get(5)?)?,
        source: row.try_get(6)?,
    })
}

fn user_from_row(row: &SqliteRow) -> Result<User, sqlx::Error> {
    Ok(User {
        id: row.try_get("id")?,
        email: row.try_get("email")?,
        created_at: micros_to_time(row.try_get("created_at")?)?,
    })
}

fn credentials_from_row(row: &SqliteRow) -> Result<UserCredentials, sqlx::Error> {
    Ok(UserCredentials {
        user: user_from_row(row)?,
        password_hash: row.try_get("password_hash")?,
        token_generation: row.try_get("token_generation")?,
    })
}

/// Binds an expense's columns from `id` to `source`, in the order the insert
/// of new expenses lists them.
fn bind_expense<'r, 'qb>(
    row: &'r mut Separated<'qb, sqlx::Sqlite, &'static str>,
    e: &Expense,
) -> &'r mut Separated<'qb, sqlx::Sqlite, &'static str> {
    bind_expense_fields(row, e)
        .push_bind(e.created_at.timestamp_micros())
        .push_bind(&e.source)
}

/// Binds an expense's columns from `id` to `spent_on`: those an import does
/// not share among its rows.
fn bind_expense_fields<'r, 'qb>(
    row: &'r mut Separated<'qb, sqlx::Sqlite, &'static str>,
    e: &Expense,
) -> &'r mut Separated<'qb, sqlx::Sqlite, &'static str> {
    row.push_bind(e.id)
        .push_bind(&e.category)
        .push_bind(finance_shared::validate::category_key(&e.category))
        .push_bind(&e.description)
        .push_bind(e.description.as_deref().map(super::search_key))
        .push_bind(e.amount.minor())
        .push_bind(e.spent_on)
}

/// Inserts new expenses, of any users, in one statement.
async fn insert_expenses(
    conn: &mut SqliteConnection,
    batch: &[NewExpense],
) -> Result<(), sqlx::Error> {
    let mut query = QueryBuilder::<sqlx::Sqlite>::new(
        "INSERT INTO expenses (id, category, category_key, description, description_key, \
         amount_minor, spent_on, created_at, source, user_id) ",
    );
    query.push_values(batch, |mut row, n| {
        let e = &n.expense;
        bind_expense(&mut row, e).push_bind(n.user_id);
    });
    query.build().execute(&mut *conn).await?;
    Ok(())
}

/// Writes batches of new expenses on the writer connection (see `group_commit`).
struct ExpenseWriter {
    writer: SqlitePool,
    sessions: Arc<Sessions>,
}

impl ExpenseWriter {
    async fn write_all(&self, batch: &[NewExpense]) -> Result<(), StoreError> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        insert_expenses(&mut tx, batch).await?;
        for (user_id, expenses) in by_user(batch) {
            apply_rollup(&mut tx, user_id, &Rollup::of(expenses)).await?;
        }
        // A response is only kept (and so only built) for a key.
        for n in batch.iter().filter(|n| n.idempotency.is_some()) {
            let body = n.response_body();
            remember(&mut tx, n.user_id, n.idempotency.as_ref(), 201, body).await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

impl BatchWriter for ExpenseWriter {
    async fn write(&self, batch: &[NewExpense]) -> Result<(), StoreError> {
        let result = self.write_all(batch).await;
        // Committed or not, the users' held token state may be behind.
        for n in batch {
            self.sessions.forget(n.user_id);
        }
        result
    }
}

/// What an import's rows are checked against besides their ids, beyond
/// what every user needs: each check is an index lookup per row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct ImportChecks {
    /// The user has deleted imported expenses of this source.
    deleted: bool,
    /// The user has ids from [`LEGACY_FINGERPRINTS`] under this source,
    /// imported or deleted, and the import has old ids to look for.
    legacy: bool,
}

/// What `source`'s import for the user has to check (a look at the edges of
/// two indexes, not a scan).
async fn import_checks<'c>(
    conn: impl sqlx::SqliteExecutor<'c>,
    user_id: Uuid,
    request: &ImportRequest<'_>,
) -> Result<ImportChecks, sqlx::Error> {
    let (from, to) = LEGACY_FINGERPRINTS;
    let (deleted, legacy): (bool, bool) = sqlx::query_as(
        "SELECT EXISTS (SELECT 1 FROM deleted_imports WHERE user_id = ?1 AND source = ?2), \
         EXISTS (SELECT 1 FROM expenses WHERE user_id = ?1 AND source = ?2 \
         AND external_id >= ?3 AND external_id < ?4) \
         OR EXISTS (SELECT 1 FROM deleted_imports WHERE user_id = ?1 AND source = ?2 \
         AND external_id >= ?3 AND external_id < ?4)",
    )
    .bind(user_id)
    .bind(request.source)
    .bind(from)
    .bind(to)
    .fetch_one(conn)
    .await?;
    Ok(ImportChecks {
        deleted,
        legacy: legacy && request.looks_for_legacy_ids(),
    })
}

/// The statement that inserts a batch of imported transactions, skipping
/// those already imported, deleted after an import, exported from an
/// expense the user still has, or imported by an older server under their
/// old ids. The values every row shares are bound once.
fn insert_imported(
    user_id: Uuid,
    rows: &[(Expense, &BankTransaction)],
    checks: ImportChecks,
) -> QueryBuilder<sqlx::Sqlite> {
    let origins = rows.iter().any(|(_, t)| t.origin.is_some());
    let (source, created_at) = rows
        .first()
        .map(|(e, _)| (e.source.clone(), e.created_at.timestamp_micros()))
        .unwrap_or_default();
    let mut query = QueryBuilder::<sqlx::Sqlite>::new(
        "INSERT INTO expenses (id, user_id, category, category_key, description, description_key, \
         amount_minor, spent_on, created_at, source, external_id) \
         SELECT v.column1, ",
    );
    query
        .push_bind(user_id)
        .push(", v.column2, v.column3, v.column4, v.column5, v.column6, v.column7, ");
    query
        .push_bind(created_at)
        .push(", ")
        .push_bind(source.clone())
        .push(", v.column8 FROM (");
    query.push_values(rows, |mut row, (e, t)| {
        bind_expense_fields(&mut row, e).push_bind(&t.external_id);
        if origins {
            row.push_bind(t.origin);
        }
        if checks.legacy {
            row.push_bind(&t.legacy_id);
        }
    });
    query.push(") AS v WHERE true");
    if checks.deleted {
        query
            .push(" AND NOT EXISTS (SELECT 1 FROM deleted_imports d WHERE d.user_id = ")
            .push_bind(user_id)
            .push(" AND d.source = ")
            .push_bind(source.clone())
            .push(" AND d.external_id = v.column8)");
    }
    if origins {
        query
            .push(" AND NOT EXISTS (SELECT 1 FROM expenses o WHERE o.user_id = ")
            .push_bind(user_id)
            .push(" AND o.id = v.column9)");
    }
    if checks.legacy {
        let old = if origins { "v.column10" } else { "v.column9" };
        for table in ["expenses", "deleted_imports"] {
            query
                .push(format!(
                    " AND NOT EXISTS (SELECT 1 FROM {table} l WHERE l.user_id = "
                ))
                .push_bind(user_id)
                .push(" AND l.source = ")
                .push_bind(source.clone())
                .push(format!(" AND l.external_id = {old})"));
        }
    }
    query.push(" ON CONFLICT (user_id, source, external_id) DO NOTHING");
    query
}

/// Runs a batch's [`insert_imported`] and says which of its rows it wrote.
/// Not with `RETURNING id`: those rows come back from the connection's
/// thread one message (and one wake-up) apiece. A batch is usually written
/// whole or not at all, which the count of changes says.
async fn write_imported(
    conn: &mut SqliteConnection,
    mut insert: QueryBuilder<sqlx::Sqlite>,
    rows: &[(Expense, &BankTransaction)],
) -> Result<HashSet<Uuid>, sqlx::Error> {
    let written = insert.build().execute(&mut *conn).await?.rows_affected();
    if written == rows.len() as u64 {
        return Ok(rows.iter().map(|(e, _)| e.id).collect());
    }
    if written == 0 {
        return Ok(HashSet::new());
    }
    // The batch's ids are new: those there now are the ones it wrote.
    let mut query = QueryBuilder::<sqlx::Sqlite>::new("SELECT id FROM expenses WHERE id IN (");
    let mut ids = query.separated(", ");
    for (e, _) in rows {
        ids.push_bind(e.id);
    }
    query.push(")");
    let ids: Vec<Uuid> = query.build_query_scalar().fetch_all(&mut *conn).await?;
    Ok(ids.into_iter().collect())
}

/// One of the user's expenses, read inside a write transaction.
async fn expense_in(
    conn: &mut SqliteConnection,
    user_id: Uuid,
    id: Uuid,
) -> Result<Option<(Expense, Option<String>)>, sqlx::Error> {
    let row = sqlx::query(concat!(
        "SELECT ",
        expense_columns!(),
        ", external_id FROM expenses WHERE id = ? AND user_id = ?"
    ))
    .bind(id)
    .bind(user_id)
    .fetch_optional(&mut *conn)
    .await?;
    row.map(|r| Ok((expense_from_row(&r)?, r.try_get(7)?)))
        .transpose()
}

/// Adds new expenses to the rollups and bumps the user's data version.
async fn apply_rollup(
    conn: &mut SqliteConnection,
    user_id: Uuid,
    rollup: &Rollup,
) -> Result<(), sqlx::Error> {
    let names: Vec<_> = rollup.names.iter().collect();
    for chunk in names.chunks(super::ROLLUP_BATCH) {
        let mut query = QueryBuilder::<sqlx::Sqlite>::new(
            "INSERT INTO categories (user_id, category_key, name) ",
        );
        query.push_values(chunk, |mut row, (key, name)| {
            row.push_bind(user_id).push_bind(*key).push_bind(*name);
        });
        query.push(" ON CONFLICT (user_id, category_key) DO NOTHING");
        query.build().execute(&mut *conn).await?;
    }
    for (totals, monthly) in [(&rollup.days, false), (&rollup.months, true)] {
        let rows: Vec<_> = totals.iter().collect();
        for chunk in rows.chunks(super::ROLLUP_BATCH) {
            let mut query = QueryBuilder::<sqlx::Sqlite>::new(if monthly {
                "INSERT INTO monthly_totals (user_id, month, category_key, total_minor, count) "
            } else {
                "INSERT INTO daily_totals (user_id, spent_on, category_key, total_minor, count) "
            });
            query.push_values(chunk, |mut row, ((period, key), (total, count))| {
                row.push_bind(user_id)
                    .push_bind(*period)
                    .push_bind(key)
                    .push_bind(*total)
                    .push_bind(*count);
            });
            query.push(if monthly {
                " ON CONFLICT (user_id, month, category_key) DO UPDATE SET \
                 total_minor = monthly_totals.total_minor + excluded.total_minor, \
                 count = monthly_totals.count + excluded.count"
            } else {
                " ON CONFLICT (user_id, spent_on, category_key) DO UPDATE SET \
                 total_minor = daily_totals.total_minor + excluded.total_minor, \
                 count = daily_totals.count + excluded.count"
            });
            query.build().execute(&mut *conn).await?;
        }
    }
    for (day, key) in rollup.shrunk() {
        sqlx::query(
            "DELETE FROM daily_totals WHERE user_id = ? AND spent_on = ? AND category_key = ? AND count = 0",
        )
        .bind(user_id)
        .bind(day)
        .bind(key)
        .execute(&mut *conn)
        .await?;
    }
    for (month, key) in rollup.shrunk_months() {
        sqlx::query(
            "DELETE FROM monthly_totals WHERE user_id = ? AND month = ? AND category_key = ? AND count = 0",
        )
        .bind(user_id)
        .bind(month)
        .bind(key)
        .execute(&mut *conn)
        .await?;
    }
    sqlx::query("UPDATE users SET data_version = data_version + 1 WHERE id = ?")
        .bind(user_id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Remembers the response to a request with an idempotency key (and forgets
/// the user's keys older than the window).
async fn remember(
    conn: &mut SqliteConnection,
    user_id: Uuid,
    idempotency: Option<&IdempotencyKey>,
    status: u16,
    body: String,
) -> Result<(), sqlx::Error> {
    let Some(idempotency) = idempotency else {
        return Ok(());
    };
    let now = chrono::Utc::now().timestamp();
    sqlx::query("DELETE FROM idempotency_keys WHERE user_id = ? AND created_at < ?")
        .bind(user_id)
        .bind(now - IDEMPOTENCY_WINDOW_SECS)
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "INSERT INTO idempotency_keys (user_id, key, request_hash, status, body, created_at) VALUES (?, ?, ?, ?, ?, ?)",
    )
    .bind(user_id)
    .bind(&idempotency.key)
    .bind(&idempotency.request_hash)
    .bind(i32::from(status))
    .bind(body)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    fn pool_stats(&self) -> super::PoolStats {
        super::PoolStats {
            open: self.writer.size() + self.readers.size(),
            idle: self.writer.num_idle() + self.readers.num_idle(),
        }
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.readers).await?;
        Ok(())
    }

    async fn create_user(&self, email: &str, password_hash: &str) -> Result<User, StoreError> {
        let user = User {
            id: Uuid::now_v7(),
            email: email.to_owned(),
            created_at: now_micros(),
        };
        let mut tx = self.begin_write().await?;
        sqlx::query("INSERT INTO users (id, email, password_hash, created_at) VALUES (?, ?, ?, ?)")
            .bind(user.id)
            .bind(&user.email)
            .bind(password_hash)
            .bind(user.created_at.timestamp_micros())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(user)
    }

    async fn user_credentials(&self, email: &str) -> Result<Option<UserCredentials>, StoreError> {
        let row =
            sqlx::query("SELECT id, email, created_at, password_hash, token_generation FROM users WHERE email = ?")
                .bind(email)
                .fetch_optional(&self.readers)
                .await?;
        Ok(row.as_ref().map(credentials_from_row).transpose()?)
    }

    async fn user(&self, id: Uuid) -> Result<Option<User>, StoreError> {
        let row = sqlx::query("SELECT id, email, created_at FROM users WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.readers)
            .await?;
        Ok(row.as_ref().map(user_from_row).transpose()?)
    }

    async fn user_credentials_by_id(
        &self,
        id: Uuid,
    ) -> Result<Option<UserCredentials>, StoreError> {
        let row = sqlx::query(
            "SELECT id, email, created_at, password_hash, token_generation FROM users WHERE id = ?",
        )
        .bind(id)
        .fetch_optional(&self.readers)
        .await?;
        Ok(row.as_ref().map(credentials_from_row).transpose()?)
    }

    async fn session_state(
        &self,
        user_id: Uuid,
        jti: Uuid,
    ) -> Result<Option<SessionState>, StoreError> {
        let revoked = self.sessions.is_revoked(jti);
        let state = match self.sessions.user(user_id) {
            Some(state) => state,
            None => {
                let mark = self.sessions.mark();
                let row: Option<(i64, i64)> =
                    sqlx::query_as("SELECT token_generation, data_version FROM users WHERE id = ?")
                        .bind(user_id)
                        .fetch_optional(&self.readers)
                        .await?;
                let Some((token_generation, data_version)) = row else {
                    return Ok(None);
                };
                let state = UserState {
                    token_generation,
                    data_version,
                };
                self.sessions.remember(user_id, state, mark);
                state
            }
        };
        Ok(Some(SessionState {
            token_generation: state.token_generation,
            revoked,
            data_version: state.data_version,
        }))
    }

    async fn revoke_token(
        &self,
        user_id: Uuid,
        jti: Uuid,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        // Refused here before the commit: a logout cut short still holds.
        self.sessions.revoke(jti, expires_at);
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO revoked_tokens (jti, user_id, expires_at) VALUES (?, ?, ?) ON CONFLICT (jti) DO NOTHING",
        )
        .bind(jti)
        .bind(user_id)
        .bind(expires_at)
        .execute(&mut *tx)
        .await?;
        // Expired tokens are refused anyway: their revocations can go.
        sqlx::query("DELETE FROM revoked_tokens WHERE expires_at < ?")
            .bind(chrono::Utc::now().timestamp())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn change_password(&self, user_id: Uuid, password_hash: &str) -> Result<i64, StoreError> {
        self.write(user_id, async {
        let mut tx = self.begin_write().await?;
        let generation: i64 = sqlx::query_scalar(
            "UPDATE users SET password_hash = ?, token_generation = token_generation + 1 WHERE id = ? RETURNING token_generation",
        )
        .bind(password_hash)
        .bind(user_id)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(generation)
        })
        .await
    }

    async fn create_expense(
        &self,
        user_id: Uuid,
        input: ExpenseInput,
        idempotency: Option<&IdempotencyKey>,
    ) -> Result<Expense, StoreError> {
        let expense = Expense {
            id: Uuid::now_v7(),
            category: input.category,
            description: input.description,
            amount: input.amount,
            spent_on: input.spent_on,
            created_at: now_micros(),
            source: "manual".to_owned(),
        };
        self.new_expenses
            .submit(NewExpense {
                user_id,
                expense,
                idempotency: idempotency.cloned(),
            })
            .await
    }

    async fn idempotent_response(
        &self,
        user_id: Uuid,
        key: &str,
    ) -> Result<Option<StoredResponse>, StoreError> {
        let since = chrono::Utc::now().timestamp() - IDEMPOTENCY_WINDOW_SECS;
        let row: Option<(String, i32, String)> = sqlx::query_as(
            "SELECT request_hash, status, body FROM idempotency_keys WHERE user_id = ? AND key = ? AND created_at >= ?",
        )
        .bind(user_id)
        .bind(key)
        .bind(since)
        .fetch_optional(&self.readers)
        .await?;
        Ok(row.map(|(request_hash, status, body)| StoredResponse {
            request_hash,
            status: u16::try_from(status).unwrap_or(500),
            body,
        }))
    }

    async fn expense(&self, user_id: Uuid, id: Uuid) -> Result<Option<Expense>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            expense_columns!(),
            " FROM expenses WHERE id = ? AND user_id = ?"
        ))
        .bind(id)
        .bind(user_id)
        .fetch_optional(&self.readers)
        .await?;
        Ok(row.as_ref().map(expense_from_row).transpose()?)
    }

    async fn list_expenses(
        &self,
        user_id: Uuid,
        filter: &ListFilter,
    ) -> Result<Vec<Expense>, StoreError> {
        // Only the filters given go into the statement: a catch-all
        // `($n IS NULL OR ...)` form would make the planner read every row of
        // the user and sort them, instead of walking the index in order.
        let mut query = QueryBuilder::<sqlx::Sqlite>::new(concat!(
            "SELECT ",
            expense_columns!(),
            " FROM expenses WHERE user_id = "
        ));
        query.push_bind(user_id);
        if let Some(key) = &filter.category_key {
            query.push(" AND category_key = ").push_bind(key);
        }
        if let Some(from) = filter.from {
            query.push(" AND spent_on >= ").push_bind(from);
        }
        if let Some(to) = filter.to {
            query.push(" AND spent_on <= ").push_bind(to);
        }
        if let Some(q) = &filter.search {
            query
                .push(" AND (instr(category_key, ")
                .push_bind(q)
                .push(") > 0 OR instr(description_key, ")
                .push_bind(q)
                .push(") > 0)");
        }
        if let Some(after) = filter.after {
            query
                .push(" AND (spent_on, created_at, id) < (")
                .push_bind(after.spent_on)
                .push(", ")
                .push_bind(after.created_at_micros)
                .push(", ")
                .push_bind(after.id)
                .push(")");
        }
        query
            .push(" ORDER BY spent_on DESC, created_at DESC, id DESC LIMIT ")
            .push_bind(i64::from(filter.limit));
        let rows = query.build().fetch_all(&self.readers).await?;
        Ok(rows
            .iter()
            .map(expense_from_row)
            .collect::<Result<_, _>>()?)
    }

    async fn summary(
        &self,
        user_id: Uuid,
        _seen_version: i64,
        from: Option<NaiveDate>,
        to: Option<NaiveDate>,
    ) -> Result<Summary, StoreError> {
        let spans = SummarySpans::new(from, to);
        let rows: Vec<(String, i64, i64)> = sqlx::query_as(
            "SELECT c.name, SUM(r.total_minor) AS total, SUM(r.count) AS n FROM ( \
               SELECT category_key, total_minor, count FROM monthly_totals \
                WHERE user_id = ?1 AND month >= ?4 AND month < ?5 \
               UNION ALL \
               SELECT category_key, total_minor, count FROM daily_totals \
                WHERE user_id = ?1 AND spent_on >= ?2 AND spent_on <= ?3 \
               UNION ALL \
               SELECT category_key, total_minor, count FROM daily_totals \
                WHERE user_id = ?1 AND spent_on >= ?6 AND spent_on <= ?7 \
             ) r JOIN categories c ON c.user_id = ?1 AND c.category_key = r.category_key \
             GROUP BY r.category_key, c.name HAVING SUM(r.count) > 0 \
             ORDER BY total DESC, c.name ASC",
        )
        .bind(user_id)
        .bind(spans.head.0)
        .bind(spans.head.1)
        .bind(spans.months.0)
        .bind(spans.months.1)
        .bind(spans.tail.0)
        .bind(spans.tail.1)
        .fetch_all(&self.readers)
        .await?;
        Ok(summary_from_rows(rows, from, to))
    }

    async fn import(
        &self,
        user_id: Uuid,
        request: ImportRequest<'_>,
    ) -> Result<ImportOutcome, StoreError> {
        self.write(user_id, async {
            // The statements are built before the write lock is taken, for
            // the checks a read says the user needs; should a write have
            // changed that meanwhile, they are built again under the lock.
            let build = |checks: ImportChecks| {
                let mut batches = ImportBatches::new(&request);
                let mut statements = Vec::new();
                while let Some(rows) = batches.next_batch() {
                    statements.push((insert_imported(user_id, &rows, checks), rows));
                }
                (batches, statements)
            };
            let checks = import_checks(&self.readers, user_id, &request).await?;
            let (mut batches, mut statements) = build(checks);
            let mut tx = self.begin_write().await?;
            let now = import_checks(&mut *tx, user_id, &request).await?;
            if now != checks {
                (batches, statements) = build(now);
            }
            for (insert, rows) in statements {
                let written = write_imported(&mut tx, insert, &rows).await?;
                batches.keep(rows, &written);
            }
            let ImportOutcome { imported, skipped } = batches.finish();
            if request.dry_run {
                tx.rollback().await?;
                return Ok(ImportOutcome { imported, skipped });
            }
            if !imported.is_empty() {
                apply_rollup(&mut tx, user_id, &Rollup::of(&imported)).await?;
            }
            // The response is only kept (and so only built here) for a key.
            if request.idempotency.is_some() {
                let body = (request.body)(&imported, skipped);
                remember(&mut tx, user_id, request.idempotency, 201, body).await?;
            }
            tx.commit().await?;
            Ok(ImportOutcome { imported, skipped })
        })
        .await
    }

    async fn update_expense(
        &self,
        user_id: Uuid,
        id: Uuid,
        patch: &ExpensePatch,
    ) -> Result<Option<Expense>, StoreError> {
        self.write(user_id, async {
        let mut tx = self.begin_write().await?;
        let Some((old, _)) = expense_in(&mut tx, user_id, id).await? else {
            return Ok(None);
        };
        let new = patch.apply(&old);
        sqlx::query(
            "UPDATE expenses SET category = ?, category_key = ?, description = ?, description_key = ?, \
             amount_minor = ?, spent_on = ? WHERE id = ? AND user_id = ?",
        )
        .bind(&new.category)
        .bind(finance_shared::validate::category_key(&new.category))
        .bind(&new.description)
        .bind(new.description.as_deref().map(super::search_key))
        .bind(new.amount.minor())
        .bind(new.spent_on)
        .bind(id)
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
        apply_rollup(&mut tx, user_id, &Rollup::change(Some(&old), Some(&new))).await?;
        tx.commit().await?;
        Ok(Some(new))
        })
        .await
    }

    async fn delete_expense(&self, user_id: Uuid, id: Uuid) -> Result<bool, StoreError> {
        self.write(user_id, async {
        let mut tx = self.begin_write().await?;
        let Some((old, external_id)) = expense_in(&mut tx, user_id, id).await? else {
            return Ok(false);
        };
        sqlx::query("DELETE FROM expenses WHERE id = ? AND user_id = ?")
            .bind(id)
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        if let Some(external_id) = external_id {
            sqlx::query(
                "INSERT INTO deleted_imports (user_id, source, external_id, deleted_at) VALUES (?, ?, ?, ?) \
                 ON CONFLICT DO NOTHING",
            )
            .bind(user_id)
            .bind(&old.source)
            .bind(external_id)
            .bind(now_micros().timestamp_micros())
            .execute(&mut *tx)
            .await?;
        }
        apply_rollup(&mut tx, user_id, &Rollup::change(Some(&old), None)).await?;
        tx.commit().await?;
        Ok(true)
        })
        .await
    }

    async fn categories(
        &self,
        user_id: Uuid,
        _seen_version: i64,
    ) -> Result<Vec<CategoryInfo>, StoreError> {
        let rows: Vec<(String, i64, i64, NaiveDate)> = sqlx::query_as(
            "SELECT c.name, SUM(d.count) AS n, SUM(d.total_minor), MAX(d.spent_on) \
             FROM daily_totals d JOIN categories c \
               ON c.user_id = d.user_id AND c.category_key = d.category_key \
             WHERE d.user_id = ? AND d.count > 0 \
             GROUP BY d.category_key, c.name ORDER BY n DESC, c.name ASC",
        )
        .bind(user_id)
        .fetch_all(&self.readers)
        .await?;
        Ok(rows.into_iter().map(super::category_info).collect())
    }

    async fn rename_category(
        &self,
        user_id: Uuid,
        from: &str,
        to: &str,
    ) -> Result<Option<u64>, StoreError> {
        let from_key = finance_shared::validate::category_key(from);
        let to_key = finance_shared::validate::category_key(to);
        self.write(user_id, async {
        let mut tx = self.begin_write().await?;
        let moved = sqlx::query(
            "UPDATE expenses SET category = ?, category_key = ? WHERE user_id = ? AND category_key = ?",
        )
        .bind(to)
        .bind(&to_key)
        .bind(user_id)
        .bind(&from_key)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if moved == 0 {
            return Ok(None);
        }
        if from_key != to_key {
            for (merge, clear) in [
                (
                    "INSERT INTO daily_totals (user_id, spent_on, category_key, total_minor, count) \
                 SELECT user_id, spent_on, ?1, total_minor, count FROM daily_totals \
                 WHERE user_id = ?2 AND category_key = ?3 AND true \
                 ON CONFLICT (user_id, spent_on, category_key) DO UPDATE SET \
                 total_minor = daily_totals.total_minor + excluded.total_minor, \
                 count = daily_totals.count + excluded.count",
                    "DELETE FROM daily_totals WHERE user_id = ? AND category_key = ?",
                ),
                (
                    "INSERT INTO monthly_totals (user_id, month, category_key, total_minor, count) \
                 SELECT user_id, month, ?1, total_minor, count FROM monthly_totals \
                 WHERE user_id = ?2 AND category_key = ?3 AND true \
                 ON CONFLICT (user_id, month, category_key) DO UPDATE SET \
                 total_minor = monthly_totals.total_minor + excluded.total_minor, \
                 count = monthly_totals.count + excluded.count",
                    "DELETE FROM monthly_totals WHERE user_id = ? AND category_key = ?",
                ),
            ] {
                sqlx::query(merge)
                    .bind(&to_key)
                    .bind(user_id)
                    .bind(&from_key)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(clear)
                    .bind(user_id)
                    .bind(&from_key)
                    .execute(&mut *tx)
                    .await?;
            }
            sqlx::query("DELETE FROM categories WHERE user_id = ? AND category_key = ?")
                .bind(user_id)
                .bind(&from_key)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query(
            "INSERT INTO categories (user_id, category_key, name) VALUES (?, ?, ?) \
             ON CONFLICT (user_id, category_key) DO UPDATE SET name = excluded.name",
        )
        .bind(user_id)
        .bind(&to_key)
        .bind(to)
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE users SET data_version = data_version + 1 WHERE id = ?")
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Some(moved))
        })
        .await
    }

    async fn create_job(
        &self,
        user_id: Uuid,
        job: &NewJob,
        idempotency: Option<&IdempotencyKey>,
        response: &str,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO import_jobs (id, user_id, source, status, payload, report, total, created_at) \
             VALUES (?, ?, ?, 'queued', ?, ?, ?, ?)",
        )
        .bind(job.id)
        .bind(user_id)
        .bind(&job.source)
        .bind(&job.payload)
        .bind(&job.report)
        .bind(i64::try_from(job.total).unwrap_or(i64::MAX))
        .bind(job.created_at.timestamp_micros())
        .execute(&mut *tx)
        .await?;
        remember(&mut tx, user_id, idempotency, 202, response.to_owned()).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn job(&self, id: Uuid) -> Result<Option<JobRecord>, StoreError> {
        let row: Option<JobRow> = sqlx::query_as(concat!(
            "SELECT ",
            job_columns!(),
            " FROM import_jobs WHERE id = ?"
        ))
        .bind(id)
        .fetch_optional(&self.readers)
        .await?;
        Ok(row.map(job_from_row).transpose()?)
    }

    async fn start_job(&self, id: Uuid) -> Result<Option<(JobRecord, Vec<u8>)>, StoreError> {
        let mut tx = self.begin_write().await?;
        let row: Option<JobRow> = sqlx::query_as(concat!(
            "UPDATE import_jobs SET status = 'running', attempts = attempts + 1, started_at = ? \
             WHERE id = ? AND status IN ('queued', 'running') AND payload IS NOT NULL RETURNING ",
            job_columns!()
        ))
        .bind(now_micros().timestamp_micros())
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let payload: Vec<u8> = sqlx::query_scalar("SELECT payload FROM import_jobs WHERE id = ?")
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Some((job_from_row(row)?, payload)))
    }

    async fn finish_job(&self, id: Uuid, end: &JobEnd) -> Result<bool, StoreError> {
        let (status, imported, skipped, error) = end.columns();
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(
            "UPDATE import_jobs SET status = ?, imported = ?, skipped = ?, error = ?, \
             finished_at = ?, payload = NULL WHERE id = ? AND status IN ('queued', 'running')",
        )
        .bind(status)
        .bind(imported)
        .bind(skipped)
        .bind(error)
        .bind(now_micros().timestamp_micros())
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(done == 1)
    }

    async fn mark_enqueued(&self, id: Uuid) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query("UPDATE import_jobs SET enqueued = 1 WHERE id = ?")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn unfinished_jobs(
        &self,
        before: DateTime<Utc>,
        only_unqueued: bool,
    ) -> Result<Vec<Uuid>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT id FROM import_jobs WHERE status IN ('queued', 'running') AND created_at < ? \
             AND (enqueued = 0 OR NOT ?) ORDER BY created_at",
        )
        .bind(before.timestamp_micros())
        .bind(only_unqueued)
        .fetch_all(&self.readers)
        .await?)
    }

    async fn monthly_totals(
        &self,
        user_id: Uuid,
        _seen_version: i64,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<(String, String, i64, i64)>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT substr(d.spent_on, 1, 7) AS month, c.name, SUM(d.total_minor) AS total, SUM(d.count) \
             FROM daily_totals d JOIN categories c \
               ON c.user_id = d.user_id AND c.category_key = d.category_key \
             WHERE d.user_id = ? AND d.spent_on >= ? AND d.spent_on <= ? \
             GROUP BY month, d.category_key, c.name HAVING SUM(d.count) > 0 \
             ORDER BY month ASC, total DESC, c.name ASC",
        )
        .bind(user_id)
        .bind(from)
        .bind(to)
        .fetch_all(&self.readers)
        .await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::Connection;

    async fn open(path: &std::path::Path) -> SqliteStore {
        let pool = PoolSettings {
            max_connections: 2,
            acquire_timeout: std::time::Duration::from_secs(5),
        };
        SqliteStore::connect(&format!("sqlite:{}", path.display()), &pool)
            .await
            .expect("store")
    }

    async fn page_size(store: &SqliteStore) -> i64 {
        sqlx::query_scalar("PRAGMA page_size")
            .fetch_one(&store.readers)
            .await
            .expect("page size")
    }

    /// A new file is made with the store's page size; a file made with
    /// SQLite's default keeps it, and its data, when the store opens it.
    #[tokio::test]
    async fn new_files_get_the_page_size_and_old_files_keep_theirs() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let store = open(&dir.path().join("fresh.db")).await;
        assert_eq!(page_size(&store).await, i64::from(PAGE_SIZE));

        let old = dir.path().join("old.db");
        let url = format!("sqlite:{}", old.display());
        {
            let options = SqliteConnectOptions::from_str(&url)
                .expect("url")
                .create_if_missing(true);
            let mut conn = sqlx::SqliteConnection::connect_with(&options)
                .await
                .expect("old file");
            sqlx::query("CREATE TABLE kept (v TEXT)")
                .execute(&mut conn)
                .await
                .expect("table");
            sqlx::query("INSERT INTO kept VALUES ('still here')")
                .execute(&mut conn)
                .await
                .expect("row");
            conn.close().await.expect("close");
        }
        let store = open(&old).await;
        assert_eq!(page_size(&store).await, 4096);
        let kept: String = sqlx::query_scalar("SELECT v FROM kept")
            .fetch_one(&store.readers)
            .await
            .expect("old row");
        assert_eq!(kept, "still here");
    }

    /// The database and its journal files are the owner's alone, new or old.
    #[tokio::test]
    async fn database_files_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("temporary directory");
        let mode = |p: &std::path::Path| {
            std::fs::metadata(p)
                .map(|m| m.permissions().mode() & 0o777)
                .expect("metadata")
        };
        let fresh = dir.path().join("fresh.db");
        let store = open(&fresh).await;
        let user = store.create_user("a@x.io", "hash").await.expect("user");
        assert!(!user.email.is_empty());
        for suffix in ["", "-wal", "-shm"] {
            let file = dir.path().join(format!("fresh.db{suffix}"));
            assert_eq!(mode(&file), 0o600, "{}", file.display());
        }
        drop(store);
        let old = dir.path().join("old.db");
        std::fs::write(&old, b"").expect("old file");
        std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let _store = open(&old).await;
        assert_eq!(mode(&old), 0o600);
    }

    /// A commit well under the writer's backstop reaches the database file
    /// anyway, copied there by the checkpoints off the writer.
    #[tokio::test]
    async fn commits_are_checkpointed_off_the_writer() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("finance.db");
        let store = open(&path).await;
        let file_len = || std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        tokio::time::sleep(CHECKPOINT_EVERY * 3).await;
        let before = file_len();
        let mut query = QueryBuilder::<sqlx::Sqlite>::new(
            "INSERT INTO users (id, email, password_hash, created_at) ",
        );
        query.push_values(0..2000, |mut row, i| {
            row.push_bind(Uuid::now_v7())
                .push_bind(format!("user-{i}@example.com"))
                .push_bind("x".repeat(100))
                .push_bind(0_i64);
        });
        query.build().execute(&store.writer).await.expect("insert");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while file_len() <= before {
            assert!(
                std::time::Instant::now() < deadline,
                "the database file stayed at {before} bytes: nothing was checkpointed"
            );
            tokio::time::sleep(CHECKPOINT_EVERY).await;
        }
    }
}
