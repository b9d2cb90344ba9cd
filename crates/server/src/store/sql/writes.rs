//! The pieces every write is made of: rollups, remembered responses, row
//! locks, and the group-commit writer of new expenses.

use std::sync::Arc;

use chrono::NaiveDate;
use finance_shared::Expense;
use sqlx::{ColumnIndex, Database, Encode, Executor, IntoArguments, QueryBuilder, Type};
use uuid::Uuid;

use super::super::group_commit::{BatchWriter, GroupCommit, NewExpense, by_user};
use super::super::retry::retry_contended;
use super::super::{
    ExpensePatch, IDEMPOTENCY_WINDOW_SECS, IdempotencyKey, ROLLUP_BATCH, Rollup, StoreError,
    Unique, UserCredentials, now_micros,
};
use super::{Column, CredentialsRow, Engine, ExpenseRow, SqlStore, expense_from_row, sql};

pub(crate) type Conn<E> = <<E as Engine>::DB as Database>::Connection;

/// How [`SqlStore::expense_in`] finds an expense.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Which<'a> {
    Id(Uuid),
    /// By the provider id it was imported under.
    Imported {
        source: &'a str,
        external_id: &'a str,
    },
}

impl<E: Engine> SqlStore<E>
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
    /// Inserts new expenses, of any users, in one statement.
    pub(crate) async fn insert_expenses(
        conn: &mut Conn<E>,
        batch: &[NewExpense],
    ) -> Result<(), sqlx::Error> {
        let mut query = QueryBuilder::<E::DB>::new(
            "INSERT INTO expenses (id, category, category_key, description, description_key, \
             amount_minor, spent_on, created_at, source, user_id) ",
        );
        query.push_values(batch, |mut row, n| {
            let e = &n.expense;
            row.push_bind(e.id)
                .push_bind(&e.category)
                .push_bind(finance_shared::validate::category_key(&e.category).as_str())
                .push_bind(&e.description)
                .push_bind(e.description.as_deref().map(super::super::search_key))
                .push_bind(e.amount.minor())
                .push_bind(e.spent_on)
                .push_bind(E::time(e.created_at))
                .push_bind(&e.source)
                .push_bind(n.user_id);
        });
        query.build().execute(&mut *conn).await?;
        Ok(())
    }

    /// Locks the users' rows, in id order, for the rest of the transaction
    /// (nothing where writes are serialised anyway).
    pub(crate) async fn lock_users(
        conn: &mut Conn<E>,
        users: impl IntoIterator<Item = Uuid>,
    ) -> Result<(), sqlx::Error> {
        let mut users: Vec<Uuid> = users.into_iter().collect();
        users.sort_unstable();
        users.dedup();
        if users.is_empty() || E::FOR_UPDATE.is_empty() {
            return Ok(());
        }
        let mut query = QueryBuilder::<E::DB>::new("SELECT id FROM users WHERE ");
        E::push_any_id(&mut query, "id", &users);
        query.push(" ORDER BY id").push(E::FOR_UPDATE);
        query.build().execute(&mut *conn).await?;
        Ok(())
    }

    /// Locks the users' rows first, on the engines whose every write does.
    pub(crate) async fn lock_users_first(
        conn: &mut Conn<E>,
        users: impl IntoIterator<Item = Uuid>,
    ) -> Result<(), sqlx::Error> {
        match E::LOCKS_USERS_FIRST {
            true => Self::lock_users(conn, users).await,
            false => Ok(()),
        }
    }

    /// One of the user's expenses with its provider id, read (and locked) inside
    /// a write transaction.
    pub(crate) async fn expense_in(
        conn: &mut Conn<E>,
        user_id: Uuid,
        which: Which<'_>,
    ) -> Result<Option<(Expense, Option<String>)>, sqlx::Error> {
        type Row<T> = (
            Uuid,
            String,
            Option<String>,
            i64,
            NaiveDate,
            T,
            String,
            Option<String>,
        );
        let by_id = sql!(
            E,
            format!(
                "SELECT {}, external_id FROM expenses WHERE id = ? AND user_id = ?{}",
                super::super::expense_columns!(),
                E::FOR_UPDATE
            )
        );
        let imported = sql!(
            E,
            format!(
                "SELECT {}, external_id FROM expenses \
                 WHERE user_id = ? AND source = ? AND external_id = ?{}",
                super::super::expense_columns!(),
                E::FOR_UPDATE
            )
        );
        let query = match which {
            Which::Id(id) => sqlx::query_as(by_id).bind(id).bind(user_id),
            Which::Imported {
                source,
                external_id,
            } => sqlx::query_as(imported)
                .bind(user_id)
                .bind(source)
                .bind(external_id),
        };
        let row: Option<Row<E::Time>> = query.fetch_optional(&mut *conn).await?;
        row.map(
            |(id, category, description, amount, spent_on, created, source, external)| {
                let row: ExpenseRow<E::Time> =
                    (id, category, description, amount, spent_on, created, source);
                Ok((expense_from_row::<E>(row)?, external))
            },
        )
        .transpose()
    }

    /// Adds a rollup to `categories`, `daily_totals` and `monthly_totals`, and
    /// bumps the user's data version.
    pub(crate) async fn apply_rollup(
        conn: &mut Conn<E>,
        user_id: Uuid,
        rollup: &Rollup,
    ) -> Result<(), sqlx::Error> {
        let names: Vec<_> = rollup.names.iter().collect();
        for chunk in names.chunks(ROLLUP_BATCH) {
            let mut query =
                QueryBuilder::<E::DB>::new("INSERT INTO categories (user_id, category_key, name) ");
            query.push_values(chunk, |mut row, (key, name)| {
                row.push_bind(user_id)
                    .push_bind(key.as_str())
                    .push_bind(*name);
            });
            query.push(E::ignore_duplicates("user_id, category_key", "name"));
            query.build().execute(&mut *conn).await?;
        }
        for (totals, table, period) in [
            (&rollup.days, "daily_totals", "spent_on"),
            (&rollup.months, "monthly_totals", "month"),
        ] {
            let rows: Vec<_> = totals.iter().collect();
            for chunk in rows.chunks(ROLLUP_BATCH) {
                let mut query = QueryBuilder::<E::DB>::new(format!(
                    "INSERT INTO {table} (user_id, {period}, category_key, total_minor, count) "
                ));
                query.push_values(chunk, |mut row, ((day, key), (total, count))| {
                    row.push_bind(user_id)
                        .push_bind(*day)
                        .push_bind(key.as_str())
                        .push_bind(*total)
                        .push_bind(*count);
                });
                query.push(E::upsert_add(
                    table,
                    &format!("user_id, {period}, category_key"),
                    &["total_minor", "count"],
                ));
                query.build().execute(&mut *conn).await?;
            }
        }
        let drop_day = sql!(
            E,
            "DELETE FROM daily_totals \
             WHERE user_id = ? AND spent_on = ? AND category_key = ? AND count = 0"
        );
        let drop_month = sql!(
            E,
            "DELETE FROM monthly_totals \
             WHERE user_id = ? AND month = ? AND category_key = ? AND count = 0"
        );
        for (text, (period, key)) in rollup
            .shrunk()
            .map(|k| (drop_day, k))
            .chain(rollup.shrunk_months().map(|k| (drop_month, k)))
        {
            sqlx::query(text)
                .bind(user_id)
                .bind(*period)
                .bind(key.as_str())
                .execute(&mut *conn)
                .await?;
        }
        Self::bump_version(conn, user_id).await
    }

    /// Moves the user to a new data version (see the summary cache).
    pub(crate) async fn bump_version(conn: &mut Conn<E>, user_id: Uuid) -> Result<(), sqlx::Error> {
        let text = sql!(
            E,
            "UPDATE users SET data_version = data_version + 1 WHERE id = ?"
        );
        sqlx::query(text).bind(user_id).execute(&mut *conn).await?;
        Ok(())
    }

    /// Remembers the response to a request with an idempotency key (and forgets
    /// the user's keys older than the window).
    pub(crate) async fn remember(
        conn: &mut Conn<E>,
        user_id: Uuid,
        idempotency: Option<&IdempotencyKey>,
        status: u16,
        body: String,
    ) -> Result<(), StoreError> {
        let Some(idempotency) = idempotency else {
            return Ok(());
        };
        let now = chrono::Utc::now().timestamp();
        let forget = sql!(
            E,
            "DELETE FROM idempotency_keys WHERE user_id = ? AND created_at < ?"
        );
        sqlx::query(forget)
            .bind(user_id)
            .bind(now - IDEMPOTENCY_WINDOW_SECS)
            .execute(&mut *conn)
            .await?;
        let keep = sql!(
            E,
            format!(
                "INSERT INTO idempotency_keys (user_id, {}, request_hash, status, body, created_at) \
                 VALUES (?, ?, ?, ?, ?, ?)",
                E::KEY
            )
        );
        sqlx::query(keep)
            .bind(user_id)
            .bind(&idempotency.key)
            .bind(&idempotency.request_hash)
            .bind(i32::from(status))
            .bind(body)
            .bind(now)
            .execute(&mut *conn)
            .await
            .map_err(|e| StoreError::from(e).on(Unique::IdempotencyKey))?;
        Ok(())
    }

    pub(crate) async fn update_in(
        &self,
        user_id: Uuid,
        id: Uuid,
        patch: &ExpensePatch,
    ) -> Result<Option<Expense>, StoreError> {
        let mut tx = self.engine.begin_write().await?;
        Self::lock_users_first(&mut tx, [user_id]).await?;
        let Some((old, _)) = Self::expense_in(&mut tx, user_id, Which::Id(id)).await? else {
            return Ok(None);
        };
        let new = patch.apply(&old);
        Self::rewrite_in(&mut tx, user_id, &old, &new).await?;
        tx.commit().await?;
        Ok(Some(new))
    }

    /// Writes `new` over `old` (the same expense), with the rollups.
    pub(crate) async fn rewrite_in(
        conn: &mut Conn<E>,
        user_id: Uuid,
        old: &Expense,
        new: &Expense,
    ) -> Result<(), StoreError> {
        let text = sql!(
            E,
            "UPDATE expenses SET category = ?, category_key = ?, description = ?, \
             description_key = ?, amount_minor = ?, spent_on = ? WHERE id = ? AND user_id = ?"
        );
        sqlx::query(text)
            .bind(&new.category)
            .bind(finance_shared::validate::category_key(&new.category).as_str())
            .bind(&new.description)
            .bind(new.description.as_deref().map(super::super::search_key))
            .bind(new.amount.minor())
            .bind(new.spent_on)
            .bind(old.id)
            .bind(user_id)
            .execute(&mut *conn)
            .await?;
        Self::apply_rollup(conn, user_id, &Rollup::change(Some(old), Some(new))).await?;
        Ok(())
    }

    pub(crate) async fn delete_in(&self, user_id: Uuid, id: Uuid) -> Result<bool, StoreError> {
        let mut tx = self.engine.begin_write().await?;
        Self::lock_users_first(&mut tx, [user_id]).await?;
        let Some((old, external_id)) = Self::expense_in(&mut tx, user_id, Which::Id(id)).await?
        else {
            return Ok(false);
        };
        Self::remove_in(
            &mut tx,
            user_id,
            Some(&old),
            &old.source,
            external_id.as_deref(),
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Deletes `old` (if any), keeping its provider id among the deleted
    /// imports so that no import brings it back, with the rollups.
    pub(crate) async fn remove_in(
        conn: &mut Conn<E>,
        user_id: Uuid,
        old: Option<&Expense>,
        source: &str,
        external_id: Option<&str>,
    ) -> Result<(), StoreError> {
        if let Some(old) = old {
            let text = sql!(E, "DELETE FROM expenses WHERE id = ? AND user_id = ?");
            sqlx::query(text)
                .bind(old.id)
                .bind(user_id)
                .execute(&mut *conn)
                .await?;
        }
        if let Some(external_id) = external_id {
            let text = sql!(
                E,
                format!(
                    "INSERT INTO deleted_imports (user_id, source, external_id, deleted_at) \
                     VALUES (?, ?, ?, ?){}",
                    E::ignore_duplicates("user_id, source, external_id", "deleted_at")
                )
            );
            sqlx::query(text)
                .bind(user_id)
                .bind(source)
                .bind(external_id)
                .bind(E::time(now_micros()))
                .execute(&mut *conn)
                .await?;
        }
        if let Some(old) = old {
            Self::apply_rollup(conn, user_id, &Rollup::change(Some(old), None)).await?;
        }
        Ok(())
    }

    pub(crate) async fn rename_in(
        &self,
        user_id: Uuid,
        from: &str,
        to: &str,
    ) -> Result<Option<u64>, StoreError> {
        let from_key = finance_shared::validate::category_key(from);
        let to_key = finance_shared::validate::category_key(to);
        let mut tx = self.engine.begin_write().await?;
        // Serialises with other writes of this user, which bump the same row.
        Self::lock_users(&mut tx, [user_id]).await?;
        let text = sql!(
            E,
            "UPDATE expenses SET category = ?, category_key = ? \
             WHERE user_id = ? AND category_key = ?"
        );
        let moved = sqlx::query(text)
            .bind(to)
            .bind(to_key.as_str())
            .bind(user_id)
            .bind(from_key.as_str())
            .execute(&mut *tx)
            .await?;
        let moved = E::rows_affected(&moved);
        if moved == 0 {
            return Ok(None);
        }
        if from_key != to_key {
            let merges = [
                sql!(E, merge_totals::<E>("daily_totals", "spent_on")),
                sql!(E, merge_totals::<E>("monthly_totals", "month")),
            ];
            let clears = [
                sql!(
                    E,
                    "DELETE FROM daily_totals WHERE user_id = ? AND category_key = ?"
                ),
                sql!(
                    E,
                    "DELETE FROM monthly_totals WHERE user_id = ? AND category_key = ?"
                ),
                sql!(
                    E,
                    "DELETE FROM categories WHERE user_id = ? AND category_key = ?"
                ),
            ];
            for merge in merges {
                sqlx::query(merge)
                    .bind(to_key.as_str())
                    .bind(user_id)
                    .bind(from_key.as_str())
                    .execute(&mut *tx)
                    .await?;
            }
            for clear in clears {
                sqlx::query(clear)
                    .bind(user_id)
                    .bind(from_key.as_str())
                    .execute(&mut *tx)
                    .await?;
            }
        }
        let text = sql!(
            E,
            format!(
                "INSERT INTO categories (user_id, category_key, name) VALUES (?, ?, ?){}",
                E::upsert_replace("user_id, category_key", "name")
            )
        );
        sqlx::query(text)
            .bind(user_id)
            .bind(to_key.as_str())
            .bind(to)
            .execute(&mut *tx)
            .await?;
        Self::bump_version(&mut tx, user_id).await?;
        tx.commit().await?;
        Ok(Some(moved))
    }

    /// The store over a connected engine, with its group-commit writer.
    pub(crate) fn new(engine: E) -> Self {
        let engine = Arc::new(engine);
        SqlStore {
            new_expenses: GroupCommit::start(ExpenseWriter(Arc::clone(&engine))),
            engine,
        }
    }

    #[cfg(test)]
    pub(crate) fn engine(&self) -> &E {
        &self.engine
    }

    /// Runs a write of the user's inside the engine's write guard, again
    /// when its transaction loses to another (see `retry`).
    pub(super) async fn write<T, Fut>(
        &self,
        user_id: Uuid,
        write: impl FnMut() -> Fut,
    ) -> Result<T, StoreError>
    where
        Fut: Future<Output = Result<T, StoreError>>,
    {
        let guard = self.engine.write_guard(user_id);
        let result = retry_contended(write).await;
        if let Some(guard) = guard {
            guard.end();
        }
        result
    }

    pub(super) async fn credentials(
        &self,
        text: &'static str,
        key: impl Column<E::DB> + 'static,
    ) -> Result<Option<UserCredentials>, StoreError> {
        let mut conn = self.engine.read_pool().acquire().await?;
        let row: Option<CredentialsRow<E::Time>> = sqlx::query_as(text)
            .bind(key)
            .fetch_optional(&mut *conn)
            .await?;
        Ok(row.map(super::credentials_from_row::<E>).transpose()?)
    }

    /// Runs the statement `query` builds in a write transaction of its own
    /// (again when it loses to another); rows changed.
    pub(super) async fn write_one<'q>(
        &self,
        query: impl Fn() -> sqlx::query::Query<'q, E::DB, <E::DB as Database>::Arguments>,
    ) -> Result<u64, StoreError> {
        retry_contended(|| async {
            let mut tx = self.engine.begin_write().await?;
            let result = query().execute(&mut *tx).await?;
            tx.commit().await?;
            Ok(E::rows_affected(&result))
        })
        .await
    }

    /// Writes a batch of new expenses, of any users, in one transaction.
    pub(crate) async fn write_new_expenses(
        engine: &E,
        batch: &[NewExpense],
    ) -> Result<(), StoreError> {
        let mut tx = engine.begin_write().await?;
        Self::lock_users_first(&mut tx, batch.iter().map(|n| n.user_id)).await?;
        Self::insert_expenses(&mut tx, batch).await?;
        for (user_id, expenses) in by_user(batch) {
            Self::apply_rollup(&mut tx, user_id, &Rollup::of(expenses)).await?;
        }
        // A response is only kept (and so only built) for a key.
        for n in batch.iter().filter(|n| n.idempotency.is_some()) {
            let body = n.response_body();
            Self::remember(&mut tx, n.user_id, n.idempotency.as_ref(), 201, body).await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

/// The statement that adds a category's rows of `table` to another's
/// (binds: the new key, the user, the old key).
fn merge_totals<E: Engine>(table: &str, period: &str) -> String {
    format!(
        "INSERT INTO {table} (user_id, {period}, category_key, total_minor, count) \
         SELECT src.user_id, src.{period}, ?, src.total_minor, src.count FROM {table} src \
         WHERE src.user_id = ? AND src.category_key = ?{}",
        E::upsert_add(
            table,
            &format!("user_id, {period}, category_key"),
            &["total_minor", "count"]
        )
    )
}

/// Writes batches of new expenses (see `group_commit`).
pub(crate) struct ExpenseWriter<E: Engine>(pub Arc<E>);

impl<E: Engine> BatchWriter for ExpenseWriter<E>
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
    async fn write(&self, batch: &[NewExpense]) -> Result<(), StoreError> {
        let result = SqlStore::write_new_expenses(&*self.0, batch).await;
        // Committed or not, the users' held token state may be behind.
        for n in batch {
            self.0.wrote(n.user_id);
        }
        result
    }
}
