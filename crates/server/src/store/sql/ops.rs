//! [`Store`] over any [`Engine`].

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use finance_shared::validate::Email;
use finance_shared::{CategoryInfo, Expense, Summary, User};
use sqlx::{ColumnIndex, Database, Encode, Executor, IntoArguments, QueryBuilder, Type};
use uuid::Uuid;

use super::super::group_commit::NewExpense;
use super::super::retry::retry_contended;
use super::super::{
    ExpenseInput, ExpensePatch, IDEMPOTENCY_WINDOW_SECS, IdempotencyKey, ImportOutcome,
    ImportRequest, JobEnd, JobRecord, JobRow, ListFilter, NewJob, PoolStats, SessionState, Store,
    StoreError, StoredResponse, SummarySpans, Unique, UserCredentials, category_info,
    expense_columns, job_columns, job_from_row, now_micros, summary_from_rows,
};
use super::writes::Conn;
use super::{Column, Engine, ExpenseRow, SqlStore, expense_from_row, sql};

#[async_trait]
impl<E: Engine> Store for SqlStore<E>
where
    for<'c> &'c mut Conn<E>: Executor<'c, Database = E::DB>,
    <E::DB as Database>::Arguments: IntoArguments<E::DB>,
    usize: ColumnIndex<<E::DB as Database>::Row>,
    E::Time: Column<E::DB>,
    Uuid: Column<E::DB>,
    String: Column<E::DB>,
    Option<String>: Column<E::DB>,
    i64: Column<E::DB>,
    Option<i64>: Column<E::DB>,
    i32: Column<E::DB>,
    bool: Column<E::DB>,
    NaiveDate: Column<E::DB>,
    Vec<u8>: Column<E::DB>,
    for<'a> &'a str: Encode<'a, E::DB> + Type<E::DB>,
{
    fn backend(&self) -> &'static str {
        E::NAME
    }

    fn pool_stats(&self) -> PoolStats {
        self.engine.pool_stats()
    }

    fn statement_limit(&self) -> Option<usize> {
        self.engine.statement_limit()
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let mut conn = self.engine.read_pool().acquire().await?;
        sqlx::query("SELECT 1").execute(&mut *conn).await?;
        Ok(())
    }

    async fn create_user(&self, email: &Email, password_hash: &str) -> Result<User, StoreError> {
        let user = User {
            id: Uuid::now_v7(),
            email: email.to_string(),
            created_at: now_micros(),
        };
        let text = sql!(
            E,
            "INSERT INTO users (id, email, password_hash, created_at) VALUES (?, ?, ?, ?)"
        );
        self.write_one(|| {
            sqlx::query(text)
                .bind(user.id)
                .bind(user.email.clone())
                .bind(password_hash.to_owned())
                .bind(E::time(user.created_at))
        })
        .await
        .map_err(|e| e.on(Unique::Email))?;
        Ok(user)
    }

    async fn user_credentials(&self, email: &Email) -> Result<Option<UserCredentials>, StoreError> {
        let text = sql!(
            E,
            "SELECT id, email, created_at, password_hash, token_generation \
             FROM users WHERE email = ?"
        );
        self.credentials(text, email.to_string()).await
    }

    async fn user(&self, id: Uuid) -> Result<Option<User>, StoreError> {
        Ok(self.user_credentials_by_id(id).await?.map(|c| c.user))
    }

    async fn user_credentials_by_id(
        &self,
        id: Uuid,
    ) -> Result<Option<UserCredentials>, StoreError> {
        let text = sql!(
            E,
            "SELECT id, email, created_at, password_hash, token_generation FROM users WHERE id = ?"
        );
        self.credentials(text, id).await
    }

    async fn session_state(
        &self,
        user_id: Uuid,
        jti: Uuid,
    ) -> Result<Option<SessionState>, StoreError> {
        self.engine.session_state(user_id, jti).await
    }

    async fn revoke_token(
        &self,
        user_id: Uuid,
        jti: Uuid,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        // Refused before the commit: a logout cut short still holds.
        self.engine.revoking(jti, expires_at);
        retry_contended(|| async {
            let mut tx = self.engine.begin_write().await?;
            let text = sql!(
                E,
                format!(
                    "INSERT INTO revoked_tokens (jti, user_id, expires_at) VALUES (?, ?, ?){}",
                    E::ignore_duplicates("jti", "jti")
                )
            );
            sqlx::query(text)
                .bind(jti)
                .bind(user_id)
                .bind(expires_at)
                .execute(&mut *tx)
                .await?;
            // Expired tokens are refused anyway: their revocations can go.
            let text = sql!(E, "DELETE FROM revoked_tokens WHERE expires_at < ?");
            sqlx::query(text)
                .bind(chrono::Utc::now().timestamp())
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    async fn change_password(&self, user_id: Uuid, password_hash: &str) -> Result<i64, StoreError> {
        self.write(user_id, || async {
            let mut tx = self.engine.begin_write().await?;
            let text = sql!(
                E,
                "UPDATE users SET password_hash = ?, token_generation = token_generation + 1 \
                 WHERE id = ?"
            );
            sqlx::query(text)
                .bind(password_hash)
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
            let text = sql!(E, "SELECT token_generation FROM users WHERE id = ?");
            let generation: i64 = sqlx::query_scalar(text)
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
        let text = sql!(
            E,
            format!(
                "SELECT request_hash, status, body FROM idempotency_keys \
                 WHERE user_id = ? AND {} = ? AND created_at >= ?",
                E::KEY
            )
        );
        let mut conn = self.engine.read_pool().acquire().await?;
        let row: Option<(String, i32, String)> = sqlx::query_as(text)
            .bind(user_id)
            .bind(key)
            .bind(since)
            .fetch_optional(&mut *conn)
            .await?;
        Ok(row.map(|(request_hash, status, body)| StoredResponse {
            request_hash,
            status: u16::try_from(status).unwrap_or(500),
            body,
        }))
    }

    async fn expense(&self, user_id: Uuid, id: Uuid) -> Result<Option<Expense>, StoreError> {
        let text = sql!(
            E,
            concat!(
                "SELECT ",
                expense_columns!(),
                " FROM expenses WHERE id = ? AND user_id = ?"
            )
        );
        let mut conn = self.engine.read_pool().acquire().await?;
        let row: Option<ExpenseRow<E::Time>> = sqlx::query_as(text)
            .bind(id)
            .bind(user_id)
            .fetch_optional(&mut *conn)
            .await?;
        Ok(row.map(expense_from_row::<E>).transpose()?)
    }

    async fn list_expenses(
        &self,
        user_id: Uuid,
        filter: &ListFilter,
    ) -> Result<Vec<Expense>, StoreError> {
        // Only the filters given go into the statement: a catch-all
        // `($n IS NULL OR ...)` form would make the planner read every row of
        // the user and sort them, instead of walking the index in order.
        let mut query = QueryBuilder::<E::DB>::new(concat!(
            "SELECT ",
            expense_columns!(),
            " FROM expenses WHERE user_id = "
        ));
        query.push_bind(user_id);
        if let Some(key) = &filter.category_key {
            query.push(" AND category_key = ").push_bind(key.as_str());
        }
        if let Some(from) = filter.from {
            query.push(" AND spent_on >= ").push_bind(from);
        }
        if let Some(to) = filter.to {
            query.push(" AND spent_on <= ").push_bind(to);
        }
        if let Some(q) = &filter.search {
            query.push(" AND (");
            E::push_contains(&mut query, "category_key", q);
            query.push(" OR ");
            E::push_contains(&mut query, "description_key", q);
            query.push(")");
        }
        if let Some(after) = filter.after {
            let created_at = DateTime::from_timestamp_micros(after.created_at_micros)
                .ok_or_else(|| StoreError::Other(sqlx::Error::Decode("bad cursor".into())))?;
            let created_at = || E::time(created_at);
            if E::ROW_COMPARISON {
                query
                    .push(" AND (spent_on, created_at, id) < (")
                    .push_bind(after.spent_on)
                    .push(", ")
                    .push_bind(created_at())
                    .push(", ")
                    .push_bind(after.id)
                    .push(")");
            } else {
                query
                    .push(" AND (spent_on < ")
                    .push_bind(after.spent_on)
                    .push(" OR (spent_on = ")
                    .push_bind(after.spent_on)
                    .push(" AND (created_at < ")
                    .push_bind(created_at())
                    .push(" OR (created_at = ")
                    .push_bind(created_at())
                    .push(" AND id < ")
                    .push_bind(after.id)
                    .push("))))");
            }
        }
        query
            .push(" ORDER BY spent_on DESC, created_at DESC, id DESC LIMIT ")
            .push_bind(i64::from(filter.limit));
        let mut conn = self.engine.reader(user_id, filter.seen_version).await?;
        let rows: Vec<ExpenseRow<E::Time>> = query.build_query_as().fetch_all(&mut *conn).await?;
        Ok(rows
            .into_iter()
            .map(expense_from_row::<E>)
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
        let text = sql!(
            E,
            format!(
                "SELECT c.name, CAST(SUM(r.total_minor) AS {int}) AS total, \
                 CAST(SUM(r.count) AS {int}) AS n FROM ( \
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
                int = E::INT64
            )
        );
        let mut conn = self.engine.reader(user_id, seen_version).await?;
        let mut query = sqlx::query_as::<_, (String, i64, i64)>(text);
        for (lo, hi) in [spans.months, spans.head, spans.tail] {
            query = query.bind(user_id).bind(lo).bind(hi);
        }
        let rows = query.bind(user_id).fetch_all(&mut *conn).await?;
        Ok(summary_from_rows(rows, from, to))
    }

    async fn import(
        &self,
        user_id: Uuid,
        request: ImportRequest<'_>,
    ) -> Result<ImportOutcome, StoreError> {
        self.write(user_id, || self.import_in(user_id, request))
            .await
    }

    async fn update_expense(
        &self,
        user_id: Uuid,
        id: Uuid,
        patch: &ExpensePatch,
    ) -> Result<Option<Expense>, StoreError> {
        self.write(user_id, || self.update_in(user_id, id, patch))
            .await
    }

    async fn delete_expense(&self, user_id: Uuid, id: Uuid) -> Result<bool, StoreError> {
        self.write(user_id, || self.delete_in(user_id, id)).await
    }

    async fn categories(
        &self,
        user_id: Uuid,
        seen_version: i64,
    ) -> Result<Vec<CategoryInfo>, StoreError> {
        let text = sql!(
            E,
            format!(
                "SELECT c.name, CAST(SUM(d.count) AS {int}) AS n, \
                 CAST(SUM(d.total_minor) AS {int}), MAX(d.spent_on) \
                 FROM daily_totals d JOIN categories c \
                   ON c.user_id = d.user_id AND c.category_key = d.category_key \
                 WHERE d.user_id = ? AND d.count > 0 \
                 GROUP BY d.category_key, c.name ORDER BY n DESC, c.name ASC",
                int = E::INT64
            )
        );
        let mut conn = self.engine.reader(user_id, seen_version).await?;
        let rows: Vec<(String, i64, i64, NaiveDate)> = sqlx::query_as(text)
            .bind(user_id)
            .fetch_all(&mut *conn)
            .await?;
        Ok(rows.into_iter().map(category_info).collect())
    }

    async fn rename_category(
        &self,
        user_id: Uuid,
        from: &str,
        to: &str,
    ) -> Result<Option<u64>, StoreError> {
        self.write(user_id, || self.rename_in(user_id, from, to))
            .await
    }

    async fn create_job(
        &self,
        user_id: Uuid,
        job: &NewJob,
        idempotency: Option<&IdempotencyKey>,
        response: &str,
    ) -> Result<(), StoreError> {
        retry_contended(|| async {
            let mut tx = self.engine.begin_write().await?;
            let text = sql!(
                E,
                "INSERT INTO import_jobs \
                 (id, user_id, source, status, payload, report, total, created_at) \
                 VALUES (?, ?, ?, 'queued', ?, ?, ?, ?)"
            );
            sqlx::query(text)
                .bind(job.id)
                .bind(user_id)
                .bind(&job.source)
                .bind(&job.payload)
                .bind(&job.report)
                .bind(i64::try_from(job.total).unwrap_or(i64::MAX))
                .bind(job.created_at.timestamp_micros())
                .execute(&mut *tx)
                .await?;
            Self::remember(&mut tx, user_id, idempotency, 202, response.to_owned()).await?;
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    async fn job(&self, id: Uuid) -> Result<Option<JobRecord>, StoreError> {
        let text = sql!(
            E,
            concat!("SELECT ", job_columns!(), " FROM import_jobs WHERE id = ?")
        );
        let mut conn = self.engine.read_pool().acquire().await?;
        let row: Option<JobRow> = sqlx::query_as(text)
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?;
        Ok(row.map(job_from_row).transpose()?)
    }

    async fn start_job(&self, id: Uuid) -> Result<Option<(JobRecord, Vec<u8>)>, StoreError> {
        retry_contended(|| async {
let mut tx = self.engine.begin_write().await?;
            let text = sql!(
                E,
                "UPDATE import_jobs SET status = 'running', attempts = attempts + 1, started_at = ? \
                 WHERE id = ? AND status IN ('queued', 'running') AND payload IS NOT NULL"
            );
            let started = sqlx::query(text)
                .bind(now_micros().timestamp_micros())
                .bind(id)
                .execute(&mut *tx)
                .await?;
            if E::rows_affected(&started) == 0 {
                return Ok(None);
            }
            let text = sql!(
                E,
                concat!(
                    "SELECT ",
                    job_columns!(),
                    ", payload FROM import_jobs WHERE id = ?"
                )
            );
            let row = sqlx::query(text).bind(id).fetch_one(&mut *tx).await?;
            tx.commit().await?;
            let job: JobRow = sqlx::FromRow::from_row(&row)?;
            // The payload follows the job's own columns.
            let payload_at = job_columns!().split(',').count();
            let payload: Vec<u8> = sqlx::Row::try_get(&row, payload_at)?;
            Ok(Some((job_from_row(job)?, payload)))
        })
        .await
    }

    async fn finish_job(&self, id: Uuid, end: &JobEnd) -> Result<bool, StoreError> {
        let (status, [imported, skipped, replaced, deleted], error) = end.columns();
        let text = sql!(
            E,
            "UPDATE import_jobs SET status = ?, imported = ?, skipped = ?, replaced = ?, \
             deleted = ?, error = ?, finished_at = ?, payload = NULL \
             WHERE id = ? AND status IN ('queued', 'running')"
        );
        let finished_at = now_micros().timestamp_micros();
        let query = || {
            sqlx::query(text)
                .bind(status)
                .bind(imported)
                .bind(skipped)
                .bind(replaced)
                .bind(deleted)
                .bind(error.map(str::to_owned))
                .bind(finished_at)
                .bind(id)
        };
        Ok(self.write_one(query).await? == 1)
    }

    async fn mark_enqueued(&self, id: Uuid) -> Result<(), StoreError> {
        let text = sql!(E, "UPDATE import_jobs SET enqueued = TRUE WHERE id = ?");
        self.write_one(|| sqlx::query(text).bind(id)).await?;
        Ok(())
    }

    async fn unfinished_jobs(
        &self,
        before: DateTime<Utc>,
        only_unqueued: bool,
    ) -> Result<Vec<Uuid>, StoreError> {
        let text = sql!(
            E,
            "SELECT id FROM import_jobs WHERE status IN ('queued', 'running') AND created_at < ? \
             AND (enqueued = FALSE OR NOT ?) ORDER BY created_at"
        );
        let mut conn = self.engine.read_pool().acquire().await?;
        Ok(sqlx::query_scalar(text)
            .bind(before.timestamp_micros())
            .bind(only_unqueued)
            .fetch_all(&mut *conn)
            .await?)
    }

    async fn monthly_totals(
        &self,
        user_id: Uuid,
        seen_version: i64,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<(String, String, i64, i64)>, StoreError> {
        let text = sql!(
            E,
            format!(
                "SELECT {month} AS month, c.name, CAST(SUM(d.total_minor) AS {int}) AS total, \
                 CAST(SUM(d.count) AS {int}) \
                 FROM daily_totals d JOIN categories c \
                   ON c.user_id = d.user_id AND c.category_key = d.category_key \
                 WHERE d.user_id = ? AND d.spent_on >= ? AND d.spent_on <= ? \
                 GROUP BY month, d.category_key, c.name HAVING SUM(d.count) > 0 \
                 ORDER BY month ASC, total DESC, c.name ASC",
                month = E::month_of("d.spent_on"),
                int = E::INT64
            )
        );
        let mut conn = self.engine.reader(user_id, seen_version).await?;
        Ok(sqlx::query_as(text)
            .bind(user_id)
            .bind(from)
            .bind(to)
            .fetch_all(&mut *conn)
            .await?)
    }
}
