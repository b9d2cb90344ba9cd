//! PostgreSQL: for deployments with several server instances.

use std::collections::{HashMap, HashSet};
use std::str::FromStr;

use chrono::{DateTime, Utc};
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions, PgQueryResult};
use sqlx::{Connection, Postgres, QueryBuilder};
use uuid::Uuid;

use super::session_batch::{SessionBatches, SessionKey, SessionLookup};
use super::sql::{Engine, SqlStore};
use super::{PoolSettings, SessionState, StoreError};

/// The PostgreSQL store.
pub(crate) type PgStore = SqlStore<PgEngine>;

/// PostgreSQL's pools, and the batches token checks share.
pub(crate) struct PgEngine {
    pool: PgPool,
    /// A read replica for lists, summaries, trends and exports.
    replica: Option<PgPool>,
    sessions: SessionBatches,
}

/// Token-state queries running at once (see `session_batch`): few, so that
/// under load each answers many requests.
const SESSION_QUERIES_IN_FLIGHT: usize = 1;

/// How long a read waits for a replica connection before using the primary.
const REPLICA_ACQUIRE_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(250);

/// Connects and applies the migrations (on the primary); the replica, if
/// any, is connected on first use.
pub(crate) async fn connect(
    url: &str,
    read_url: Option<&str>,
    pool: &PoolSettings,
) -> anyhow::Result<PgStore> {
    let replica = read_url
        .map(|read_url| {
            PgPoolOptions::new()
                .max_connections(pool.max_connections.max(1))
                .acquire_timeout(REPLICA_ACQUIRE_TIMEOUT)
                .connect_lazy(read_url)
        })
        .transpose()?;
    let options = PgConnectOptions::from_str(url)?;
    let sessions = SessionReader {
        options: options.clone(),
        timeout: pool.acquire_timeout,
        conn: tokio::sync::Mutex::new(None),
    };
    let pool = PgPoolOptions::new()
        .max_connections(pool.max_connections.max(1))
        .acquire_timeout(pool.acquire_timeout)
        .connect_with(options)
        .await?;
    sqlx::migrate!("../../migrations/postgres")
        .run(&pool)
        .await?;
    let sessions = SessionBatches::start(sessions, SESSION_QUERIES_IN_FLIGHT);
    Ok(SqlStore::new(PgEngine {
        pool,
        replica,
        sessions,
    }))
}

impl PgEngine {
    /// A connection to read the user's data on: the replica once it has
    /// replayed the user's writes up to `seen_version` (it only moves on from
    /// there, so what is read next is at least that fresh), else the primary.
    /// A replica that is down or refuses is skipped, never an error.
    async fn routed_reader(
        &self,
        user_id: Uuid,
        seen_version: i64,
    ) -> Result<PoolConnection<sqlx::Postgres>, StoreError> {
        if let Some(replica) = &self.replica {
            match replica_connection(replica, user_id, seen_version).await {
                Ok(Some(conn)) => {
                    metrics::counter!("db_reads_total", "target" => "replica").increment(1);
                    return Ok(conn);
                }
                Ok(None) => {
                    metrics::counter!("db_reads_total", "target" => "primary", "why" => "replica_behind")
                        .increment(1);
                }
                Err(e) => {
                    tracing::debug!(error = %e, "replica unavailable; reading from the primary");
                    metrics::counter!("db_reads_total", "target" => "primary", "why" => "replica_unavailable")
                        .increment(1);
                }
            }
        }
        Ok(self.pool.acquire().await?)
    }
}

/// Reads the state of many tokens in one query (see `session_batch`).
///
/// Both are plain index lookups. The one-token query, the usual batch, has
/// scalar arguments, so PostgreSQL plans it once per connection and reuses
/// the plan: planning a query costs several times what running these does.
///
/// The queries run on a connection of the reader's own, one at a time (see
/// [`SESSION_QUERIES_IN_FLIGHT`]), not on the pool's: the pool pings a
/// connection before handing it out and again when it comes back, two round
/// trips on top of each query, and these queries are most of what the
/// database is asked under load. A connection that fails is dropped and the
/// lookup, which only reads, is made once more on a new one.
struct SessionReader {
    options: PgConnectOptions,
    /// How long one attempt may take, connecting included.
    timeout: std::time::Duration,
    conn: tokio::sync::Mutex<Option<PgConnection>>,
}

/// A row of the several-token query: a user's (id, token generation, data
/// version), or a revoked token's id.
type UserOrRevoked = (Option<Uuid>, Option<i64>, Option<i64>, Option<Uuid>);

impl SessionLookup for SessionReader {
    async fn lookup(&self, keys: &[SessionKey]) -> Result<Vec<Option<SessionState>>, StoreError> {
        let mut held = self.conn.lock().await;
        loop {
            let reused = held.is_some();
            let attempt = tokio::time::timeout(self.timeout, async {
                let conn = match &mut *held {
                    Some(conn) => conn,
                    None => held.insert(PgConnection::connect_with(&self.options).await?),
                };
                session_states(conn, keys).await
            })
            .await;
            match attempt {
                Ok(Ok(states)) => return Ok(states),
                // A connection that has been closed on either side fails at
                // once: the lookup is made again on a new one.
                Ok(Err(_)) if reused => *held = None,
                Ok(Err(e)) => {
                    *held = None;
                    return Err(e);
                }
                // A stalled database: no second wait, and the connection is
                // left in the middle of a query, so it goes.
                Err(_) => {
                    *held = None;
                    return Err(StoreError::Unavailable(sqlx::Error::Io(
                        std::io::ErrorKind::TimedOut.into(),
                    )));
                }
            }
        }
    }
}

/// The state of each token of `keys`, in their order (see [`SessionReader`]).
async fn session_states(
    conn: &mut PgConnection,
    keys: &[SessionKey],
) -> Result<Vec<Option<SessionState>>, StoreError> {
    if let [(user_id, jti)] = keys {
        let row: Option<(i64, i64, bool)> = sqlx::query_as(
            "SELECT token_generation, data_version, \
             EXISTS (SELECT 1 FROM revoked_tokens WHERE jti = $2) \
             FROM users WHERE id = $1",
        )
        .bind(user_id)
        .bind(jti)
        .fetch_optional(&mut *conn)
        .await?;
        return Ok(vec![row.map(
            |(token_generation, data_version, revoked)| SessionState {
                token_generation,
                revoked,
                data_version,
            },
        )]);
    }
    let (users, jtis): (Vec<Uuid>, Vec<Uuid>) = keys.iter().copied().unzip();
    // The users' rows, then the revoked ones among the tokens.
    let rows: Vec<UserOrRevoked> = sqlx::query_as(
        "SELECT id, token_generation, data_version, NULL::uuid FROM users WHERE id = ANY($1) \
         UNION ALL SELECT NULL, NULL, NULL, jti FROM revoked_tokens WHERE jti = ANY($2)",
    )
    .bind(&users)
    .bind(&jtis)
    .fetch_all(&mut *conn)
    .await?;
    let mut found = HashMap::new();
    let mut revoked = HashSet::new();
    for row in rows {
        match row {
            (Some(id), Some(token_generation), Some(data_version), _) => {
                found.insert(id, (token_generation, data_version));
            }
            (_, _, _, Some(jti)) => {
                revoked.insert(jti);
            }
            _ => {}
        }
    }
    Ok(keys
        .iter()
        .map(|(user_id, jti)| {
            found
                .get(user_id)
                .map(|&(token_generation, data_version)| SessionState {
                    token_generation,
                    revoked: revoked.contains(jti),
                    data_version,
                })
        })
        .collect())
}

/// A replica connection that has caught up with `seen_version` for the user.
async fn replica_connection(
    replica: &PgPool,
    user_id: Uuid,
    seen_version: i64,
) -> Result<Option<PoolConnection<sqlx::Postgres>>, sqlx::Error> {
    let mut conn = replica.acquire().await?;
    let version: Option<i64> = sqlx::query_scalar("SELECT data_version FROM users WHERE id = $1")
        .bind(user_id)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(version.is_some_and(|v| v >= seen_version).then_some(conn))
}

impl Engine for PgEngine {
    type DB = Postgres;
    type Time = DateTime<Utc>;

    const NAME: &'static str = "postgres";
    const INDEX: usize = 1;
    const NUMBERED: bool = true;
    const INT64: &'static str = "BIGINT";
    const FOR_UPDATE: &'static str = " FOR UPDATE";
    const LOCKS_USERS_FIRST: bool = false;
    const ROW_COMPARISON: bool = true;
    const RETURNING: bool = true;
    const KEY: &'static str = "key";

    fn pool(&self) -> &PgPool {
        &self.pool
    }

    async fn reader(
        &self,
        user_id: Uuid,
        seen_version: i64,
    ) -> Result<PoolConnection<Postgres>, StoreError> {
        self.routed_reader(user_id, seen_version).await
    }

    async fn session_state(
        &self,
        user_id: Uuid,
        jti: Uuid,
    ) -> Result<Option<SessionState>, StoreError> {
        self.sessions.get(user_id, jti).await
    }

    fn rows_affected(result: &PgQueryResult) -> u64 {
        result.rows_affected()
    }

    fn month_of(column: &str) -> String {
        format!("to_char({column}, 'YYYY-MM')")
    }

    fn push_contains(query: &mut QueryBuilder<Postgres>, column: &str, needle: &str) {
        query
            .push(format!("strpos({column}, "))
            .push_bind(needle.to_owned())
            .push(") > 0");
    }

    // Arrays rather than lists: one statement, planned once per connection,
    // whatever the number of values.
    fn push_any_id(query: &mut QueryBuilder<Postgres>, column: &str, values: &[Uuid]) {
        query
            .push(format!("{column} = ANY("))
            .push_bind(values.to_vec())
            .push(")");
    }

    fn push_any_text(query: &mut QueryBuilder<Postgres>, column: &str, values: &[&str]) {
        let values: Vec<String> = values.iter().map(|v| (*v).to_owned()).collect();
        query
            .push(format!("{column} = ANY("))
            .push_bind(values)
            .push(")");
    }
}
