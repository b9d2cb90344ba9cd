//! SQLite: the embedded default.
//!
//! One writer connection that opens every write transaction with
//! `BEGIN IMMEDIATE` (a deferred transaction that reads and then writes fails
//! with `SQLITE_BUSY` under load), and a pool of read-only connections; WAL
//! lets the readers run while the writer writes.

use std::str::FromStr;
use std::sync::Arc;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteQueryResult, SqliteSynchronous,
};
use sqlx::{ConnectOptions, QueryBuilder, Sqlite, Transaction};
use uuid::Uuid;

use super::sessions::{Sessions, UserState, WriteGuard};
use super::sql::{Engine, SqlStore, push_in};
use super::{PoolSettings, PoolStats, SessionState, StoreError};

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
pub(crate) type SqliteStore = SqlStore<SqliteEngine>;

/// SQLite's connections, and the token state held for its one writer.
pub(crate) struct SqliteEngine {
    writer: SqlitePool,
    readers: SqlitePool,
    sessions: Arc<Sessions>,
    /// Held locked while the store is open: one server per database file.
    _lock: Option<std::fs::File>,
    /// Dropped with the store, which ends the checkpoints.
    _checkpoints: Option<tokio::sync::oneshot::Sender<()>>,
}

/// Opens (creating if needed) the database file and applies the migrations.
pub(crate) async fn connect(url: &str, pool: &PoolSettings) -> anyhow::Result<SqliteStore> {
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
    let checkpoints = match in_memory {
        true => None,
        false => Some(start_checkpoints(options.connect().await?)),
    };
    Ok(SqlStore::new(SqliteEngine {
        writer,
        readers,
        sessions,
        _lock: lock,
        _checkpoints: checkpoints,
    }))
}

impl Engine for SqliteEngine {
    type DB = Sqlite;
    type Time = i64;

    const NAME: &'static str = "sqlite";
    const INDEX: usize = 0;
    const NUMBERED: bool = false;
    const INT64: &'static str = "BIGINT";
    const FOR_UPDATE: &'static str = "";
    const LOCKS_USERS_FIRST: bool = false;
    const ROW_COMPARISON: bool = true;
    const RETURNING: bool = false;
    const KEY: &'static str = "key";

    fn pool(&self) -> &SqlitePool {
        &self.writer
    }

    fn read_pool(&self) -> &SqlitePool {
        &self.readers
    }

    fn pool_stats(&self) -> PoolStats {
        PoolStats {
            open: self.writer.size() + self.readers.size(),
            idle: self.writer.num_idle() + self.readers.num_idle(),
        }
    }

    fn begin_write(
        &self,
    ) -> impl Future<Output = Result<Transaction<'static, Sqlite>, sqlx::Error>> + Send {
        self.writer.begin_with("BEGIN IMMEDIATE")
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

    fn revoking(&self, jti: Uuid, expires_at: i64) {
        self.sessions.revoke(jti, expires_at);
    }

    fn write_guard(&self, user_id: Uuid) -> Option<WriteGuard> {
        Some(self.sessions.write_guard(user_id, &self.writer))
    }

    fn wrote(&self, user_id: Uuid) {
        self.sessions.forget(user_id);
    }

    fn rows_affected(result: &SqliteQueryResult) -> u64 {
        result.rows_affected()
    }

    fn month_of(column: &str) -> String {
        // Dates are stored as `YYYY-MM-DD` text.
        format!("substr({column}, 1, 7)")
    }

    fn push_contains(query: &mut QueryBuilder<Sqlite>, column: &str, needle: &str) {
        query
            .push(format!("instr({column}, "))
            .push_bind(needle.to_owned())
            .push(") > 0");
    }

    fn push_any_id(query: &mut QueryBuilder<Sqlite>, column: &str, values: &[Uuid]) {
        push_in(query, column, values);
    }

    fn push_any_text(query: &mut QueryBuilder<Sqlite>, column: &str, values: &[&str]) {
        push_in(query, column, values);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;
    use sqlx::Connection;

    async fn open(path: &std::path::Path) -> SqliteStore {
        let pool = PoolSettings {
            max_connections: 2,
            acquire_timeout: std::time::Duration::from_secs(5),
        };
        connect(&format!("sqlite:{}", path.display()), &pool)
            .await
            .expect("store")
    }

    async fn page_size(store: &SqliteStore) -> i64 {
        sqlx::query_scalar("PRAGMA page_size")
            .fetch_one(&store.engine().readers)
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
            .fetch_one(&store.engine().readers)
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
        let email = finance_shared::validate::email("a@x.io").expect("email");
        let user = store.create_user(&email, "hash").await.expect("user");
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
        query
            .build()
            .execute(&store.engine().writer)
            .await
            .expect("insert");
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
