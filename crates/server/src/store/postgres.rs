//! PostgreSQL: for deployments with several server instances.

use std::collections::{HashMap, HashSet};
use std::str::FromStr;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use finance_shared::{CategoryInfo, Expense, Money, Summary, User};
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions, PgRow};
use sqlx::query_builder::Separated;
use sqlx::{Connection, Executor, QueryBuilder, Row};
use uuid::Uuid;

use crate::bank::{BankTransaction, LEGACY_FINGERPRINTS};

use super::group_commit::{BatchWriter, GroupCommit, NewExpense, by_user};
use super::session_batch::{SessionBatches, SessionKey, SessionLookup};
use super::{
    ExpenseInput, ExpensePatch, IDEMPOTENCY_WINDOW_SECS, IdempotencyKey, ImportBatches,
    ImportOutcome, ImportRequest, JobEnd, JobRecord, JobRow, ListFilter, NewJob, PoolSettings,
    Rollup, SessionState, Store, StoreError, StoredResponse, SummarySpans, UserCredentials,
    expense_columns, job_columns, job_from_row, now_micros, summary_from_rows,
};

/// The PostgreSQL store.
pub struct PgStore {
    pool: PgPool,
    /// A read replica for lists, summaries, trends and exports.
    replica: Option<PgPool>,
    new_expenses: GroupCommit,
    sessions: SessionBatches,
}

/// Token-state queries running at once (see `session_batch`): few, so that
/// under load each answers many requests.
const SESSION_QUERIES_IN_FLIGHT: usize = 1;

/// How long a read waits for a replica connection before using the primary.
const REPLICA_ACQUIRE_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(250);

impl PgStore {
    /// Connects and applies the migrations (on the primary); the replica,
    /// if any, is connected on first use.
    pub async fn connect(
        url: &str,
        read_url: Option<&str>,
        pool: &PoolSettings,
    ) -> anyhow::Result<Self> {
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
        let new_expenses = GroupCommit::start(ExpenseWriter { pool: pool.clone() });
        let sessions = SessionBatches::start(sessions, SESSION_QUERIES_IN_FLIGHT);
        Ok(PgStore {
            pool,
            replica,
            new_expenses,
            sessions,
        })
    }

    /// A connection to read the user's data on: the replica once it has
    /// replayed the user's writes up to `seen_version` (it only moves on from
    /// there, so what is read next is at least that fresh), else the primary.
    /// A replica that is down or refuses is skipped, never an error.
    async fn reader(
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

fn expense_from_row(row: &PgRow) -> Result<Expense, sqlx::Error> {
    Ok(Expense {
        id: row.try_get(0)?,
        category: row.try_get(1)?,
        description: row.try_get(2)?,
        amount: Money::from_minor(row.try_get(3)?),
        spent_on: row.try_get(4)?,
        created_at: row.try_get(5)?,
        source: row.try_get(6)?,
    })
}

fn user_from_row(row: &PgRow) -> Result<User, sqlx::Error> {
    Ok(User {
        id: row.try_get("id")?,
        email: row.try_get("email")?,
        created_at: row.try_get("created_at")?,
    })
}

fn credentials_from_row(row: &PgRow) -> Result<UserCredentials, sqlx::Error> {
    Ok(UserCredentials {
        user: user_from_row(row)?,
        password_hash: row.try_get("password_hash")?,
        token_generation: row.try_get("token_generation")?,
    })
}

/// Binds an expense's columns from `id` to `source`, in the order every
/// insert of expenses here lists them.
fn bind_expense<'r, 'qb>(
    row: &'r mut Separated<'qb, sqlx::Postgres, &'static str>,
    e: &Expense,
) -> &'r mut Separated<'qb, sqlx::Postgres, &'static str> {
    row.push_bind(e.id)
        .push_bind(&e.category)
        .push_bind(finance_shared::validate::category_key(&e.category))
        .push_bind(&e.description)
        .push_bind(e.description.as_deref().map(super::search_key))
        .push_bind(e.amount.minor())
        .push_bind(e.spent_on)
        .push_bind(e.created_at)
        .push_bind(&e.source)
}

/// Inserts new expenses, of any users, in one statement.
async fn insert_expenses(conn: &mut PgConnection, batch: &[NewExpense]) -> Result<(), sqlx::Error> {
    let mut query = QueryBuilder::<sqlx::Postgres>::new(
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

/// Writes batches of new expenses (see `group_commit`).
struct ExpenseWriter {
    pool: PgPool,
}

impl BatchWriter for ExpenseWriter {
    async fn write(&self, batch: &[NewExpense]) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
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

/// Inserts a batch of imported transactions in one statement, skipping those
/// already imported, deleted after an import, or exported from an expense the
/// user still has, and, with `legacy`, those an older server imported under
/// their old ids; returns the ids of the rows written.
async fn insert_imported(
    conn: &mut PgConnection,
    user_id: Uuid,
    source: &str,
    rows: &[(Expense, &BankTransaction)],
    legacy: bool,
) -> Result<HashSet<Uuid>, sqlx::Error> {
    // Rows re-imported from this server's export name the expense they came
    // from; those still there are skipped. Looked up by primary key here: an
    // anti-join in the INSERT is planned as a hash of all the user's expenses,
    // which made every batch cost as much as the user's whole history.
    let origins: Vec<Uuid> = rows.iter().filter_map(|(_, t)| t.origin).collect();
    let present: HashSet<Uuid> = if origins.is_empty() {
        HashSet::new()
    } else {
        sqlx::query_scalar("SELECT id FROM expenses WHERE user_id = $1 AND id = ANY($2)")
            .bind(user_id)
            .bind(&origins)
            .fetch_all(&mut *conn)
            .await?
            .into_iter()
            .collect()
    };
    // Old ids are looked up the same way, by key.
    let legacy_ids = super::legacy_ids(rows, legacy);
    let known: HashSet<String> = if legacy_ids.is_empty() {
        HashSet::new()
    } else {
        sqlx::query_scalar(
            "SELECT external_id FROM expenses WHERE user_id = $1 AND source = $2 \
             AND external_id = ANY($3) \
             UNION ALL SELECT external_id FROM deleted_imports WHERE user_id = $1 \
             AND source = $2 AND external_id = ANY($3)",
        )
        .bind(user_id)
        .bind(source)
        .bind(&legacy_ids)
        .fetch_all(&mut *conn)
        .await?
        .into_iter()
        .collect()
    };
    let rows: Vec<_> = rows
        .iter()
        .filter(|(_, t)| t.origin.is_none_or(|o| !present.contains(&o)))
        .filter(|(_, t)| t.legacy_id.as_ref().is_none_or(|l| !known.contains(l)))
        .collect();
    if rows.is_empty() {
        return Ok(HashSet::new());
    }
    let mut query = QueryBuilder::<sqlx::Postgres>::new(
        "INSERT INTO expenses (id, user_id, category, category_key, description, description_key, \
         amount_minor, spent_on, created_at, source, external_id) \
         SELECT v.id, ",
    );
    query.push_bind(user_id).push(
        ", v.category, v.category_key, v.description, v.description_key, v.amount_minor, \
         v.spent_on, v.created_at, v.source, v.external_id FROM (",
    );
    query.push_values(rows, |mut row, (e, t)| {
        bind_expense(&mut row, e).push_bind(&t.external_id);
    });
    query
        .push(
            ") AS v (id, category, category_key, description, description_key, amount_minor, \
             spent_on, created_at, source, external_id) \
             WHERE NOT EXISTS (SELECT 1 FROM deleted_imports d WHERE d.user_id = ",
        )
        .push_bind(user_id)
        .push(
            " AND d.source = v.source AND d.external_id = v.external_id) \
             ON CONFLICT (user_id, source, external_id) DO NOTHING RETURNING id",
        );
    let ids: Vec<Uuid> = query.build_query_scalar().fetch_all(&mut *conn).await?;
    Ok(ids.into_iter().collect())
}

/// Whether the user has ids from [`LEGACY_FINGERPRINTS`] under `source`,
/// imported or deleted: a look at either index's edge (the ids compare as
/// bytes), not a scan.
async fn has_legacy_ids(
    conn: &mut PgConnection,
    user_id: Uuid,
    source: &str,
) -> Result<bool, sqlx::Error> {
    let (from, to) = LEGACY_FINGERPRINTS;
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM expenses WHERE user_id = $1 AND source = $2 \
         AND external_id >= $3 AND external_id < $4) \
         OR EXISTS (SELECT 1 FROM deleted_imports WHERE user_id = $1 AND source = $2 \
         AND external_id >= $3 AND external_id < $4)",
    )
    .bind(user_id)
    .bind(source)
    .bind(from)
    .bind(to)
    .fetch_one(&mut *conn)
    .await
}

/// One of the user's expenses, locked for the rest of the transaction.
async fn expense_for_update(
    conn: &mut PgConnection,
    user_id: Uuid,
    id: Uuid,
) -> Result<Option<(Expense, Option<String>)>, sqlx::Error> {
    let row = sqlx::query(concat!(
        "SELECT ",
        expense_columns!(),
        ", external_id FROM expenses WHERE id = $1 AND user_id = $2 FOR UPDATE"
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
    conn: &mut PgConnection,
    user_id: Uuid,
    rollup: &Rollup,
) -> Result<(), sqlx::Error> {
    let names: Vec<_> = rollup.names.iter().collect();
    for chunk in names.chunks(super::ROLLUP_BATCH) {
        let mut query = QueryBuilder::<sqlx::Postgres>::new(
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
            let mut query = QueryBuilder::<sqlx::Postgres>::new(if monthly {
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
            "DELETE FROM daily_totals WHERE user_id = $1 AND spent_on = $2 AND category_key = $3 AND count = 0",
        )
        .bind(user_id)
        .bind(day)
        .bind(key)
        .execute(&mut *conn)
        .await?;
    }
    for (month, key) in rollup.shrunk_months() {
        sqlx::query(
            "DELETE FROM monthly_totals WHERE user_id = $1 AND month = $2 AND category_key = $3 AND count = 0",
        )
        .bind(user_id)
        .bind(month)
        .bind(key)
        .execute(&mut *conn)
        .await?;
    }
    sqlx::query("UPDATE users SET data_version = data_version + 1 WHERE id = $1")
        .bind(user_id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Remembers the response to a request with an idempotency key (and forgets
/// the user's keys older than the window).
async fn remember(
    conn: &mut PgConnection,
    user_id: Uuid,
    idempotency: Option<&IdempotencyKey>,
    status: u16,
    body: String,
) -> Result<(), sqlx::Error> {
    let Some(idempotency) = idempotency else {
        return Ok(());
    };
    let now = chrono::Utc::now().timestamp();
    sqlx::query("DELETE FROM idempotency_keys WHERE user_id = $1 AND created_at < $2")
        .bind(user_id)
        .bind(now - IDEMPOTENCY_WINDOW_SECS)
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "INSERT INTO idempotency_keys (user_id, key, request_hash, status, body, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
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
impl Store for PgStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    fn pool_stats(&self) -> super::PoolStats {
        super::PoolStats {
            open: self.pool.size(),
            idle: self.pool.num_idle(),
        }
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.pool.execute("SELECT 1").await?;
        Ok(())
    }

    async fn create_user(&self, email: &str, password_hash: &str) -> Result<User, StoreError> {
        let user = User {
            id: Uuid::now_v7(),
            email: email.to_owned(),
            created_at: now_micros(),
        };
        sqlx::query(
            "INSERT INTO users (id, email, password_hash, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(user.id)
        .bind(&user.email)
        .bind(password_hash)
        .bind(user.created_at)
        .execute(&self.pool)
        .await?;
        Ok(user)
    }

    async fn user_credentials(&self, email: &str) -> Result<Option<UserCredentials>, StoreError> {
        let row =
            sqlx::query("SELECT id, email, created_at, password_hash, token_generation FROM users WHERE email = $1")
                .bind(email)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.as_ref().map(credentials_from_row).transpose()?)
    }

    async fn user(&self, id: Uuid) -> Result<Option<User>, StoreError> {
        let row = sqlx::query("SELECT id, email, created_at FROM users WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(user_from_row).transpose()?)
    }

    async fn user_credentials_by_id(
        &self,
        id: Uuid,
    ) -> Result<Option<UserCredentials>, StoreError> {
        let row = sqlx::query(
            "SELECT id, email, created_at, password_hash, token_generation FROM users WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(credentials_from_row).transpose()?)
    }

    async fn session_state(
        &self,
        user_id: Uuid,
        jti: Uuid,
    ) -> Result<Option<SessionState>, StoreError> {
        self.sessions.get(user_id, jti).await
    }

    async fn revoke_token(
        &self,
        user_id: Uuid,
        jti: Uuid,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO revoked_tokens (jti, user_id, expires_at) VALUES ($1, $2, $3) ON CONFLICT (jti) DO NOTHING",
        )
        .bind(jti)
        .bind(user_id)
        .bind(expires_at)
        .execute(&mut *tx)
        .await?;
        // Expired tokens are refused anyway: their revocations can go.
        sqlx::query("DELETE FROM revoked_tokens WHERE expires_at < $1")
            .bind(chrono::Utc::now().timestamp())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn change_password(&self, user_id: Uuid, password_hash: &str) -> Result<i64, StoreError> {
        let mut tx = self.pool.begin().await?;
        let generation: i64 = sqlx::query_scalar(
            "UPDATE users SET password_hash = $1, token_generation = token_generation + 1 WHERE id = $2 RETURNING token_generation",
        )
        .bind(password_hash)
        .bind(user_id)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(generation)
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
            "SELECT request_hash, status, body FROM idempotency_keys WHERE user_id = $1 AND key = $2 AND created_at >= $3",
        )
        .bind(user_id)
        .bind(key)
        .bind(since)
        .fetch_optional(&self.pool)
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
            " FROM expenses WHERE id = $1 AND user_id = $2"
        ))
        .bind(id)
        .bind(user_id)
        .fetch_optional(&self.pool)
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
        let mut query = QueryBuilder::<sqlx::Postgres>::new(concat!(
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
                .push(" AND (strpos(category_key, ")
                .push_bind(q)
                .push(") > 0 OR strpos(description_key, ")
                .push_bind(q)
                .push(") > 0)");
        }
        if let Some(after) = filter.after {
            let created_at: DateTime<Utc> =
                DateTime::from_timestamp_micros(after.created_at_micros)
                    .ok_or_else(|| StoreError::Other(sqlx::Error::Decode("bad cursor".into())))?;
            query
                .push(" AND (spent_on, created_at, id) < (")
                .push_bind(after.spent_on)
                .push(", ")
                .push_bind(created_at)
                .push(", ")
                .push_bind(after.id)
                .push(")");
        }
        query
            .push(" ORDER BY spent_on DESC, created_at DESC, id DESC LIMIT ")
            .push_bind(i64::from(filter.limit));
        let mut conn = self.reader(user_id, filter.seen_version).await?;
        let rows = query.build().fetch_all(&mut *conn).await?;
        Ok(rows
            .iter()
            .map(expense_from_row)
            .collect::<Result<_, _>>()?)
    }

    async fn summary(
        &self,
        user_id: Uuid,
        seen_version: i64,
        from: Option<NaiveDate>,
        to: Option<NaiveDate>,
    ) -> Result<Summary, StoreError> {
        let spans = SummarySpans::new(from, to);
        let mut conn = self.reader(user_id, seen_version).await?;
        let rows: Vec<(String, i64, i64)> = sqlx::query_as(
            "SELECT c.name, SUM(r.total_minor)::BIGINT AS total, SUM(r.count)::BIGINT AS n FROM ( \
               SELECT category_key, total_minor, count FROM monthly_totals \
                WHERE user_id = $1 AND month >= $4 AND month < $5 \
               UNION ALL \
               SELECT category_key, total_minor, count FROM daily_totals \
                WHERE user_id = $1 AND spent_on >= $2 AND spent_on <= $3 \
               UNION ALL \
               SELECT category_key, total_minor, count FROM daily_totals \
                WHERE user_id = $1 AND spent_on >= $6 AND spent_on <= $7 \
             ) r JOIN categories c ON c.user_id = $1 AND c.category_key = r.category_key \
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
        .fetch_all(&mut *conn)
        .await?;
        Ok(summary_from_rows(rows, from, to))
    }

    async fn import(
        &self,
        user_id: Uuid,
        request: ImportRequest<'_>,
    ) -> Result<ImportOutcome, StoreError> {
        let mut tx = self.pool.begin().await?;
        let legacy = request.looks_for_legacy_ids()
            && has_legacy_ids(&mut tx, user_id, request.source).await?;
        let mut batches = ImportBatches::new(&request);
        while let Some(rows) = batches.next_batch() {
            let written = insert_imported(&mut tx, user_id, request.source, &rows, legacy).await?;
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
    }

    async fn update_expense(
        &self,
        user_id: Uuid,
        id: Uuid,
        patch: &ExpensePatch,
    ) -> Result<Option<Expense>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let Some((old, _)) = expense_for_update(&mut tx, user_id, id).await? else {
            return Ok(None);
        };
        let new = patch.apply(&old);
        sqlx::query(
            "UPDATE expenses SET category = $1, category_key = $2, description = $3, description_key = $4, \
             amount_minor = $5, spent_on = $6 WHERE id = $7 AND user_id = $8",
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
    }

    async fn delete_expense(&self, user_id: Uuid, id: Uuid) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let Some((old, external_id)) = expense_for_update(&mut tx, user_id, id).await? else {
            return Ok(false);
        };
        sqlx::query("DELETE FROM expenses WHERE id = $1 AND user_id = $2")
            .bind(id)
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        if let Some(external_id) = external_id {
            sqlx::query(
                "INSERT INTO deleted_imports (user_id, source, external_id, deleted_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT DO NOTHING",
            )
            .bind(user_id)
            .bind(&old.source)
            .bind(external_id)
            .bind(now_micros())
            .execute(&mut *tx)
            .await?;
        }
        apply_rollup(&mut tx, user_id, &Rollup::change(Some(&old), None)).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn categories(
        &self,
        user_id: Uuid,
        seen_version: i64,
    ) -> Result<Vec<CategoryInfo>, StoreError> {
        let mut conn = self.reader(user_id, seen_version).await?;
        let rows: Vec<(String, i64, i64, NaiveDate)> = sqlx::query_as(
            "SELECT c.name, SUM(d.count)::BIGINT AS n, SUM(d.total_minor)::BIGINT, MAX(d.spent_on) \
             FROM daily_totals d JOIN categories c \
               ON c.user_id = d.user_id AND c.category_key = d.category_key \
             WHERE d.user_id = $1 AND d.count > 0 \
             GROUP BY d.category_key, c.name ORDER BY n DESC, c.name ASC",
        )
        .bind(user_id)
        .fetch_all(&mut *conn)
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
        let mut tx = self.pool.begin().await?;
        // Serialises with other writes of this user, which bump the same row.
        sqlx::query("SELECT 1 FROM users WHERE id = $1 FOR UPDATE")
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        let moved = sqlx::query(
            "UPDATE expenses SET category = $1, category_key = $2 WHERE user_id = $3 AND category_key = $4",
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
                 SELECT user_id, spent_on, $1, total_minor, count FROM daily_totals \
                 WHERE user_id = $2 AND category_key = $3 \
                 ON CONFLICT (user_id, spent_on, category_key) DO UPDATE SET \
                 total_minor = daily_totals.total_minor + excluded.total_minor, \
                 count = daily_totals.count + excluded.count",
                    "DELETE FROM daily_totals WHERE user_id = $1 AND category_key = $2",
                ),
                (
                    "INSERT INTO monthly_totals (user_id, month, category_key, total_minor, count) \
                 SELECT user_id, month, $1, total_minor, count FROM monthly_totals \
                 WHERE user_id = $2 AND category_key = $3 \
                 ON CONFLICT (user_id, month, category_key) DO UPDATE SET \
                 total_minor = monthly_totals.total_minor + excluded.total_minor, \
                 count = monthly_totals.count + excluded.count",
                    "DELETE FROM monthly_totals WHERE user_id = $1 AND category_key = $2",
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
            sqlx::query("DELETE FROM categories WHERE user_id = $1 AND category_key = $2")
                .bind(user_id)
                .bind(&from_key)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query(
            "INSERT INTO categories (user_id, category_key, name) VALUES ($1, $2, $3) \
             ON CONFLICT (user_id, category_key) DO UPDATE SET name = excluded.name",
        )
        .bind(user_id)
        .bind(&to_key)
        .bind(to)
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE users SET data_version = data_version + 1 WHERE id = $1")
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Some(moved))
    }

    async fn create_job(
        &self,
        user_id: Uuid,
        job: &NewJob,
        idempotency: Option<&IdempotencyKey>,
        response: &str,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO import_jobs (id, user_id, source, status, payload, report, total, created_at) \
             VALUES ($1, $2, $3, 'queued', $4, $5, $6, $7)",
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
            " FROM import_jobs WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(job_from_row).transpose()?)
    }

    async fn start_job(&self, id: Uuid) -> Result<Option<(JobRecord, Vec<u8>)>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let row: Option<JobRow> = sqlx::query_as(concat!(
            "UPDATE import_jobs SET status = 'running', attempts = attempts + 1, started_at = $1 \
             WHERE id = $2 AND status IN ('queued', 'running') AND payload IS NOT NULL RETURNING ",
            job_columns!()
        ))
        .bind(now_micros().timestamp_micros())
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let payload: Vec<u8> = sqlx::query_scalar("SELECT payload FROM import_jobs WHERE id = $1")
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Some((job_from_row(row)?, payload)))
    }

    async fn finish_job(&self, id: Uuid, end: &JobEnd) -> Result<bool, StoreError> {
        let (status, imported, skipped, error) = end.columns();
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "UPDATE import_jobs SET status = $1, imported = $2, skipped = $3, error = $4, \
             finished_at = $5, payload = NULL WHERE id = $6 AND status IN ('queued', 'running')",
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
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE import_jobs SET enqueued = TRUE WHERE id = $1")
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
            "SELECT id FROM import_jobs WHERE status IN ('queued', 'running') AND created_at < $1 \
             AND (enqueued = FALSE OR NOT $2) ORDER BY created_at",
        )
        .bind(before.timestamp_micros())
        .bind(only_unqueued)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn monthly_totals(
        &self,
        user_id: Uuid,
        seen_version: i64,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<(String, String, i64, i64)>, StoreError> {
        let mut conn = self.reader(user_id, seen_version).await?;
        Ok(sqlx::query_as(
            "SELECT to_char(d.spent_on, 'YYYY-MM') AS month, c.name, SUM(d.total_minor)::BIGINT AS total, \
             SUM(d.count)::BIGINT \
             FROM daily_totals d JOIN categories c \
               ON c.user_id = d.user_id AND c.category_key = d.category_key \
             WHERE d.user_id = $1 AND d.spent_on >= $2 AND d.spent_on <= $3 \
             GROUP BY month, d.category_key, c.name HAVING SUM(d.count) > 0 \
             ORDER BY month ASC, total DESC, c.name ASC",
        )
        .bind(user_id)
        .bind(from)
        .bind(to)
        .fetch_all(&mut *conn)
        .await?)
    }
}
