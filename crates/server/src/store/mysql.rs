//! MySQL and MariaDB: for deployments standardised on them. The same
//! contract as PostgreSQL: sessions read committed (as PostgreSQL's default,
//! so upserts of the rollups take no gap locks), rows a write reads locked
//! with `FOR UPDATE`, text compared byte for byte.

use std::collections::HashSet;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use finance_shared::{CategoryInfo, Expense, Money, Summary, User};
use sqlx::mysql::{MySqlConnectOptions, MySqlConnection, MySqlPool, MySqlPoolOptions, MySqlRow};
use sqlx::query_builder::Separated;
use sqlx::{ConnectOptions, Executor, QueryBuilder, Row};
use uuid::Uuid;

use crate::bank::{BankTransaction, LEGACY_FINGERPRINTS};

use super::group_commit::{BatchWriter, GroupCommit, NewExpense, by_user};
use super::{
    ExpenseInput, ExpensePatch, IDEMPOTENCY_WINDOW_SECS, IdempotencyKey, ImportBatches,
    ImportOutcome, ImportRequest, JobEnd, JobRecord, JobRow, ListFilter, NewJob, PoolSettings,
    Rollup, SessionState, Store, StoreError, StoredResponse, SummarySpans, UserCredentials,
    expense_columns, job_columns, job_from_row, now_micros, summary_from_rows,
};

/// The MySQL / MariaDB store.
pub struct MySqlStore {
    pool: MySqlPool,
    new_expenses: GroupCommit,
    /// The server's `max_allowed_packet`.
    max_packet: usize,
}

impl MySqlStore {
    /// Connects and applies the migrations. `mariadb://` URLs are read as `mysql://`.
    pub async fn connect(url: &str, pool: &PoolSettings) -> anyhow::Result<Self> {
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
        let new_expenses = GroupCommit::start(ExpenseWriter { pool: pool.clone() });
        Ok(MySqlStore {
            pool,
            new_expenses,
            max_packet: usize::try_from(max_packet).unwrap_or(usize::MAX),
        })
    }
}

fn expense_from_row(row: &MySqlRow) -> Result<Expense, sqlx::Error> {
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

fn user_from_row(row: &MySqlRow) -> Result<User, sqlx::Error> {
    Ok(User {
        id: row.try_get("id")?,
        email: row.try_get("email")?,
        created_at: row.try_get("created_at")?,
    })
}

fn credentials_from_row(row: &MySqlRow) -> Result<UserCredentials, sqlx::Error> {
    Ok(UserCredentials {
        user: user_from_row(row)?,
        password_hash: row.try_get("password_hash")?,
        token_generation: row.try_get("token_generation")?,
    })
}

/// Binds an expense's columns from `id` to `source`, in the order every
/// insert of expenses here lists them.
fn bind_expense<'r, 'qb>(
    row: &'r mut Separated<'qb, sqlx::MySql, &'static str>,
    e: &Expense,
) -> &'r mut Separated<'qb, sqlx::MySql, &'static str> {
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

/// Locks the users' rows, in id order, for the rest of the transaction.
/// Every write of a user's data takes this lock first: InnoDB's locks on
/// unique keys (two imports of one bank's transactions) and on the rollups'
/// rows would otherwise be taken in different orders by concurrent writes
/// and deadlock; PostgreSQL waits instead, MySQL kills one of them.
async fn lock_users(
    conn: &mut MySqlConnection,
    users: impl IntoIterator<Item = Uuid>,
) -> Result<(), sqlx::Error> {
    let mut users: Vec<Uuid> = users.into_iter().collect();
    users.sort_unstable();
    users.dedup();
    if users.is_empty() {
        return Ok(());
    }
    let mut query = QueryBuilder::<sqlx::MySql>::new("SELECT id FROM users WHERE id IN (");
    let mut list = query.separated(", ");
    for user in &users {
        list.push_bind(*user);
    }
    query.push(") ORDER BY id FOR UPDATE");
    query.build().execute(&mut *conn).await?;
    Ok(())
}

/// Inserts new expenses, of any users, in one statement.
async fn insert_expenses(
    conn: &mut MySqlConnection,
    batch: &[NewExpense],
) -> Result<(), sqlx::Error> {
    let mut query = QueryBuilder::<sqlx::MySql>::new(
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
    pool: MySqlPool,
}

impl BatchWriter for ExpenseWriter {
    async fn write(&self, batch: &[NewExpense]) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        lock_users(&mut tx, batch.iter().map(|n| n.user_id)).await?;
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
    conn: &mut MySqlConnection,
    user_id: Uuid,
    source: &str,
    rows: &[(Expense, &BankTransaction)],
    legacy: bool,
) -> Result<HashSet<Uuid>, sqlx::Error> {
    if rows.is_empty() {
        return Ok(HashSet::new());
    }
    // Rows re-imported from this server's export name the expense they came
    // from: those still there are skipped, as are the ones deleted after an
    // import; both looked up by key.
    let origins: Vec<Uuid> = rows.iter().filter_map(|(_, t)| t.origin).collect();
    let mut present: HashSet<Uuid> = HashSet::new();
    if !origins.is_empty() {
        let mut query =
            QueryBuilder::<sqlx::MySql>::new("SELECT id FROM expenses WHERE user_id = ");
        query.push_bind(user_id).push(" AND id IN (");
        let mut list = query.separated(", ");
        for origin in &origins {
            list.push_bind(*origin);
        }
        query.push(")");
        present.extend(
            query
                .build_query_scalar::<Uuid>()
                .fetch_all(&mut *conn)
                .await?,
        );
    }
    let mut query = QueryBuilder::<sqlx::MySql>::new(
        "SELECT external_id FROM deleted_imports WHERE user_id = ",
    );
    query
        .push_bind(user_id)
        .push(" AND source = ")
        .push_bind(source)
        .push(" AND external_id IN (");
    let legacy_ids = super::legacy_ids(rows, legacy);
    let mut list = query.separated(", ");
    for id in rows
        .iter()
        .map(|(_, t)| t.external_id.as_str())
        .chain(legacy_ids.iter().copied())
    {
        list.push_bind(id);
    }
    query.push(")");
    // Old ids count as imported when an expense still has one.
    if !legacy_ids.is_empty() {
        query
            .push(" UNION ALL SELECT external_id FROM expenses WHERE user_id = ")
            .push_bind(user_id)
            .push(" AND source = ")
            .push_bind(source)
            .push(" AND external_id IN (");
        let mut list = query.separated(", ");
        for id in &legacy_ids {
            list.push_bind(*id);
        }
        query.push(")");
    }
    let known: HashSet<String> = query
        .build_query_scalar::<String>()
        .fetch_all(&mut *conn)
        .await?
        .into_iter()
        .collect();
    let rows: Vec<_> = rows
        .iter()
        .filter(|(_, t)| t.origin.is_none_or(|o| !present.contains(&o)))
        .filter(|(_, t)| !known.contains(&t.external_id))
        .filter(|(_, t)| t.legacy_id.as_ref().is_none_or(|l| !known.contains(l)))
        .collect();
    if rows.is_empty() {
        return Ok(HashSet::new());
    }
    // IGNORE skips a transaction already imported (the unique key), and
    // RETURNING lists only the rows inserted.
    let mut query = QueryBuilder::<sqlx::MySql>::new(
        "INSERT IGNORE INTO expenses (id, category, category_key, description, description_key, \
         amount_minor, spent_on, created_at, source, external_id, user_id) ",
    );
    query.push_values(rows, |mut row, (e, t)| {
        bind_expense(&mut row, e)
            .push_bind(&t.external_id)
            .push_bind(user_id);
    });
    query.push(" RETURNING id");
    let ids: Vec<Uuid> = query.build_query_scalar().fetch_all(&mut *conn).await?;
    Ok(ids.into_iter().collect())
}

/// Whether the user has ids from [`LEGACY_FINGERPRINTS`] under `source`,
/// imported or deleted: a look at either index's edge (the ids compare as
/// bytes), not a scan.
async fn has_legacy_ids(
    conn: &mut MySqlConnection,
    user_id: Uuid,
    source: &str,
) -> Result<bool, sqlx::Error> {
    let (from, to) = LEGACY_FINGERPRINTS;
    let found: i64 = sqlx::query_scalar(
        "SELECT CAST(EXISTS (SELECT 1 FROM expenses WHERE user_id = ? AND source = ? \
         AND external_id >= ? AND external_id < ?) \
         OR EXISTS (SELECT 1 FROM deleted_imports WHERE user_id = ? AND source = ? \
         AND external_id >= ? AND external_id < ?) AS SIGNED)",
    )
    .bind(user_id)
    .bind(source)
    .bind(from)
    .bind(to)
    .bind(user_id)
    .bind(source)
    .bind(from)
    .bind(to)
    .fetch_one(&mut *conn)
    .await?;
    Ok(found != 0)
}

/// One of the user's expenses, locked for the rest of the transaction.
async fn expense_for_update(
    conn: &mut MySqlConnection,
    user_id: Uuid,
    id: Uuid,
) -> Result<Option<(Expense, Option<String>)>, sqlx::Error> {
    let row = sqlx::query(concat!(
        "SELECT ",
        expense_columns!(),
        ", external_id FROM expenses WHERE id = ? AND user_id = ? FOR UPDATE"
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
    conn: &mut MySqlConnection,
    user_id: Uuid,
    rollup: &Rollup,
) -> Result<(), sqlx::Error> {
    let names: Vec<_> = rollup.names.iter().collect();
    for chunk in names.chunks(super::ROLLUP_BATCH) {
        let mut query = QueryBuilder::<sqlx::MySql>::new(
            "INSERT INTO categories (user_id, category_key, name) ",
        );
        query.push_values(chunk, |mut row, (key, name)| {
            row.push_bind(user_id).push_bind(*key).push_bind(*name);
        });
        query.push(" ON DUPLICATE KEY UPDATE name = name");
        query.build().execute(&mut *conn).await?;
    }
    for (totals, monthly) in [(&rollup.days, false), (&rollup.months, true)] {
        let rows: Vec<_> = totals.iter().collect();
        for chunk in rows.chunks(super::ROLLUP_BATCH) {
            let mut query = QueryBuilder::<sqlx::MySql>::new(if monthly {
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
            query.push(
                " ON DUPLICATE KEY UPDATE total_minor = total_minor + VALUES(total_minor), \
                 count = count + VALUES(count)",
            );
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
    conn: &mut MySqlConnection,
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
        "INSERT INTO idempotency_keys (user_id, `key`, request_hash, status, body, created_at) VALUES (?, ?, ?, ?, ?, ?)",
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
impl Store for MySqlStore {
    fn backend(&self) -> &'static str {
        "mysql"
    }

    fn pool_stats(&self) -> super::PoolStats {
        super::PoolStats {
            open: self.pool.size(),
            idle: self.pool.num_idle(),
        }
    }

    fn statement_limit(&self) -> Option<usize> {
        Some(self.max_packet)
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
        sqlx::query("INSERT INTO users (id, email, password_hash, created_at) VALUES (?, ?, ?, ?)")
            .bind(user.id)
            .bind(&user.email)
            .bind(password_hash)
            .bind(user.created_at)
            .execute(&self.pool)
            .await?;
        Ok(user)
    }

    async fn user_credentials(&self, email: &str) -> Result<Option<UserCredentials>, StoreError> {
        let row = sqlx::query(
            "SELECT id, email, created_at, password_hash, token_generation FROM users WHERE email = ?",
        )
        .bind(email)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(credentials_from_row).transpose()?)
    }

    async fn user(&self, id: Uuid) -> Result<Option<User>, StoreError> {
        let row = sqlx::query("SELECT id, email, created_at FROM users WHERE id = ?")
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
            "SELECT id, email, created_at, password_hash, token_generation FROM users WHERE id = ?",
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
        let row: Option<(i64, i64, i64)> = sqlx::query_as(
            "SELECT token_generation, data_version, \
             CAST(EXISTS (SELECT 1 FROM revoked_tokens WHERE jti = ?) AS SIGNED) FROM users WHERE id = ?",
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

    async fn revoke_token(
        &self,
        user_id: Uuid,
        jti: Uuid,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO revoked_tokens (jti, user_id, expires_at) VALUES (?, ?, ?) \
             ON DUPLICATE KEY UPDATE jti = jti",
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
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "UPDATE users SET password_hash = ?, token_generation = token_generation + 1 WHERE id = ?",
        )
        .bind(password_hash)
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
        let generation: i64 = sqlx::query_scalar("SELECT token_generation FROM users WHERE id = ?")
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
            "SELECT request_hash, status, body FROM idempotency_keys WHERE user_id = ? AND `key` = ? AND created_at >= ?",
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
            " FROM expenses WHERE id = ? AND user_id = ?"
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
        // Only the filters given go into the statement, so the index is walked in order.
        let mut query = QueryBuilder::<sqlx::MySql>::new(concat!(
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
                .push(" AND (LOCATE(")
                .push_bind(q)
                .push(", category_key) > 0 OR LOCATE(")
                .push_bind(q)
                .push(", description_key) > 0)");
        }
        if let Some(after) = filter.after {
            let created_at: DateTime<Utc> =
                DateTime::from_timestamp_micros(after.created_at_micros)
                    .ok_or_else(|| StoreError::Other(sqlx::Error::Decode("bad cursor".into())))?;
            // Spelled out rather than as a row comparison, which MySQL does
            // not use the index for.
            query
                .push(" AND (spent_on < ")
                .push_bind(after.spent_on)
                .push(" OR (spent_on = ")
                .push_bind(after.spent_on)
                .push(" AND (created_at < ")
                .push_bind(created_at)
                .push(" OR (created_at = ")
                .push_bind(created_at)
                .push(" AND id < ")
                .push_bind(after.id)
                .push("))))");
        }
        query
            .push(" ORDER BY spent_on DESC, created_at DESC, id DESC LIMIT ")
            .push_bind(i64::from(filter.limit));
        let rows = query.build().fetch_all(&self.pool).await?;
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
            "SELECT c.name, CAST(SUM(r.total_minor) AS SIGNED) AS total, CAST(SUM(r.count) AS SIGNED) AS n FROM ( \
               SELECT category_key, total_minor, count FROM monthly_totals \
                WHERE user_id = ? AND month >= ? AND month < ? \
               UNION ALL \
               SELECT category_key, total_minor, count FROM daily_totals \
                WHERE user_id = ? AND spent_on >= ? AND spent_on <= ? \
               UNION ALL \
               SELECT category_key, total_minor, count FROM daily_totals \
                WHERE user_id = ? AND spent_on >= ? AND spent_on <= ? \
             ) r JOIN categories c ON c.user_id = ? AND c.category_key = r.category_key \
             GROUP BY r.category_key, c.name HAVING SUM(r.count) > 0 \
             ORDER BY total DESC, c.name ASC",
        )
        .bind(user_id)
        .bind(spans.months.0)
        .bind(spans.months.1)
        .bind(user_id)
        .bind(spans.head.0)
        .bind(spans.head.1)
        .bind(user_id)
        .bind(spans.tail.0)
        .bind(spans.tail.1)
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(summary_from_rows(rows, from, to))
    }

    async fn import(
        &self,
        user_id: Uuid,
        request: ImportRequest<'_>,
    ) -> Result<ImportOutcome, StoreError> {
        let mut tx = self.pool.begin().await?;
        lock_users(&mut tx, [user_id]).await?;
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
        lock_users(&mut tx, [user_id]).await?;
        let Some((old, _)) = expense_for_update(&mut tx, user_id, id).await? else {
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
    }

    async fn delete_expense(&self, user_id: Uuid, id: Uuid) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        lock_users(&mut tx, [user_id]).await?;
        let Some((old, external_id)) = expense_for_update(&mut tx, user_id, id).await? else {
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
                 ON DUPLICATE KEY UPDATE deleted_at = deleted_at",
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
        _seen_version: i64,
    ) -> Result<Vec<CategoryInfo>, StoreError> {
        let rows: Vec<(String, i64, i64, NaiveDate)> = sqlx::query_as(
            "SELECT c.name, CAST(SUM(d.count) AS SIGNED) AS n, CAST(SUM(d.total_minor) AS SIGNED), MAX(d.spent_on) \
             FROM daily_totals d JOIN categories c \
               ON c.user_id = d.user_id AND c.category_key = d.category_key \
             WHERE d.user_id = ? AND d.count > 0 \
             GROUP BY d.category_key, c.name ORDER BY n DESC, c.name ASC",
        )
        .bind(user_id)
        .fetch_all(&self.pool)
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
        lock_users(&mut tx, [user_id]).await?;
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
                     SELECT user_id, spent_on, ?, total_minor, count FROM daily_totals d \
                     WHERE d.user_id = ? AND d.category_key = ? \
                     ON DUPLICATE KEY UPDATE total_minor = daily_totals.total_minor + VALUES(total_minor), \
                     count = daily_totals.count + VALUES(count)",
                    "DELETE FROM daily_totals WHERE user_id = ? AND category_key = ?",
                ),
                (
                    "INSERT INTO monthly_totals (user_id, month, category_key, total_minor, count) \
                     SELECT user_id, month, ?, total_minor, count FROM monthly_totals m \
                     WHERE m.user_id = ? AND m.category_key = ? \
                     ON DUPLICATE KEY UPDATE total_minor = monthly_totals.total_minor + VALUES(total_minor), \
                     count = monthly_totals.count + VALUES(count)",
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
             ON DUPLICATE KEY UPDATE name = VALUES(name)",
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
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(job_from_row).transpose()?)
    }

    async fn start_job(&self, id: Uuid) -> Result<Option<(JobRecord, Vec<u8>)>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let started = sqlx::query(
            "UPDATE import_jobs SET status = 'running', attempts = attempts + 1, started_at = ? \
             WHERE id = ? AND status IN ('queued', 'running') AND payload IS NOT NULL",
        )
        .bind(now_micros().timestamp_micros())
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if started == 0 {
            return Ok(None);
        }
        let row: JobRow = sqlx::query_as(concat!(
            "SELECT ",
            job_columns!(),
            " FROM import_jobs WHERE id = ?"
        ))
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
        let payload: Vec<u8> = sqlx::query_scalar("SELECT payload FROM import_jobs WHERE id = ?")
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Some((job_from_row(row)?, payload)))
    }

    async fn finish_job(&self, id: Uuid, end: &JobEnd) -> Result<bool, StoreError> {
        let (status, imported, skipped, error) = end.columns();
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
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(done == 1)
    }

    async fn mark_enqueued(&self, id: Uuid) -> Result<(), StoreError> {
        sqlx::query("UPDATE import_jobs SET enqueued = TRUE WHERE id = ?")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn unfinished_jobs(
        &self,
        before: DateTime<Utc>,
        only_unqueued: bool,
    ) -> Result<Vec<Uuid>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT id FROM import_jobs WHERE status IN ('queued', 'running') AND created_at < ? \
             AND (enqueued = FALSE OR NOT ?) ORDER BY created_at",
        )
        .bind(before.timestamp_micros())
        .bind(only_unqueued)
        .fetch_all(&self.pool)
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
            "SELECT DATE_FORMAT(d.spent_on, '%Y-%m') AS month, c.name, \
             CAST(SUM(d.total_minor) AS SIGNED) AS total, CAST(SUM(d.count) AS SIGNED) \
             FROM daily_totals d JOIN categories c \
               ON c.user_id = d.user_id AND c.category_key = d.category_key \
             WHERE d.user_id = ? AND d.spent_on >= ? AND d.spent_on <= ? \
             GROUP BY month, d.category_key, c.name HAVING SUM(d.count) > 0 \
             ORDER BY month ASC, total DESC, c.name ASC",
        )
        .bind(user_id)
        .bind(from)
        .bind(to)
        .fetch_all(&self.pool)
        .await?)
    }
}
