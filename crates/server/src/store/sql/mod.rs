//! The store, written once for every database.
//!
//! [`SqlStore`] holds each operation of [`super::Store`] once: its SQL where
//! the engines agree, its row mapping, its transaction shape, its use of the
//! rollups, idempotency keys and cursors. It is generic over an [`Engine`],
//! which names what truly differs: the placeholders, how a point in time is
//! stored, upsert spellings, row locks, a few functions, where reads go and
//! how token state is kept. Each engine's file (`sqlite.rs`, `postgres.rs`,
//! `mysql.rs`) implements it, and connects.
//!
//! Statements with static text are spelled once per engine and call site by
//! [`sql!`]; statements whose shape depends on the request are built with
//! `QueryBuilder`, whose `push_bind` writes the engine's placeholder.

mod imports;
mod ops;
mod writes;

use std::sync::OnceLock;

use chrono::{DateTime, NaiveDate, Utc};
use finance_shared::{Expense, Money, User};
use sqlx::pool::PoolConnection;
use sqlx::{Database, Decode, Encode, Pool, QueryBuilder, Transaction, Type};
use uuid::Uuid;

use super::group_commit::GroupCommit;
use super::sessions::WriteGuard;
use super::{PoolStats, SessionState, StoreError, UserCredentials};

/// A type a column is read as and bound from, on database `DB`.
pub(crate) trait Column<DB: Database>:
    for<'q> Encode<'q, DB> + for<'r> Decode<'r, DB> + Type<DB> + Send + Sync
{
}

impl<DB: Database, T> Column<DB> for T where
    T: for<'q> Encode<'q, DB> + for<'r> Decode<'r, DB> + Type<DB> + Send + Sync
{
}

/// What differs between the databases. Everything else is [`SqlStore`]'s.
pub(crate) trait Engine: Send + Sync + Sized + 'static {
    type DB: Database;
    /// How `users.created_at`, `expenses.created_at` and
    /// `deleted_imports.deleted_at` are stored (SQLite: microseconds).
    type Time: Stamp;

    /// `"sqlite"`, `"postgres"` or `"mysql"`.
    const NAME: &'static str;
    /// 0, 1 or 2: the engine's slot in each statement's spellings.
    const INDEX: usize;
    /// Placeholders are `$1, $2, ...` rather than `?`.
    const NUMBERED: bool;
    /// The type `CAST(... AS ...)` makes a 64-bit integer of (`SUM` is a
    /// decimal on PostgreSQL and MariaDB).
    const INT64: &'static str;
    /// Appended to a read inside a write that locks its rows; empty where
    /// writes are serialised anyway (SQLite's one writer).
    const FOR_UPDATE: &'static str;
    /// Every write locks its users' rows first, in id order (see `mysql.rs`).
    const LOCKS_USERS_FIRST: bool;
    /// `(a, b, c) < (x, y, z)` walks the index (MariaDB's planner does not
    /// use it for a row comparison).
    const ROW_COMPARISON: bool;
    /// `INSERT ... RETURNING id` says which rows went in (SQLite counts them:
    /// see `imports`).
    const RETURNING: bool;
    /// The `key` column of `idempotency_keys`, quoted where it is reserved.
    const KEY: &'static str;

    /// The pool writes go to.
    fn pool(&self) -> &Pool<Self::DB>;

    /// The pool reads that need no replica go to.
    fn read_pool(&self) -> &Pool<Self::DB> {
        self.pool()
    }

    fn pool_stats(&self) -> PoolStats {
        PoolStats {
            open: self.pool().size(),
            idle: self.pool().num_idle(),
        }
    }

    /// See [`super::Store::statement_limit`].
    fn statement_limit(&self) -> Option<usize> {
        None
    }

    /// Opens a write transaction.
    fn begin_write(
        &self,
    ) -> impl Future<Output = Result<Transaction<'static, Self::DB>, sqlx::Error>> + Send {
        self.pool().begin()
    }

    /// A connection to read the user's data on, at least as fresh as
    /// `seen_version` (see `postgres.rs`'s replica).
    fn reader(
        &self,
        _user_id: Uuid,
        _seen_version: i64,
    ) -> impl Future<Output = Result<PoolConnection<Self::DB>, StoreError>> + Send {
        let acquire = self.read_pool().acquire();
        async move { Ok(acquire.await?) }
    }

    /// See [`super::Store::session_state`].
    fn session_state(
        &self,
        user_id: Uuid,
        jti: Uuid,
    ) -> impl Future<Output = Result<Option<SessionState>, StoreError>> + Send;

    /// A token is being revoked (before the write).
    fn revoking(&self, _jti: Uuid, _expires_at: i64) {}

    /// Held across a write of the user's, where token state is kept in memory.
    fn write_guard(&self, _user_id: Uuid) -> Option<WriteGuard> {
        None
    }

    /// A write of the user's ended (a group commit's batch).
    fn wrote(&self, _user_id: Uuid) {}

    fn time(t: DateTime<Utc>) -> Self::Time {
        Self::Time::of(t)
    }
    fn rows_affected(result: &<Self::DB as Database>::QueryResult) -> u64;

    /// The end of an insert into `table` that adds `columns` to the row
    /// with the same `keys` when there is one (`ON CONFLICT` by default, as
    /// SQLite and PostgreSQL spell it).
    fn upsert_add(table: &str, keys: &str, columns: &[&str]) -> String {
        let sets: Vec<String> = columns
            .iter()
            .map(|c| format!("{c} = {table}.{c} + excluded.{c}"))
            .collect();
        format!(" ON CONFLICT ({keys}) DO UPDATE SET {}", sets.join(", "))
    }
    /// The end of an insert that keeps the row with the same `keys`
    /// (`column` is any of its columns).
    fn ignore_duplicates(keys: &str, _column: &str) -> String {
        format!(" ON CONFLICT ({keys}) DO NOTHING")
    }
    /// The end of an insert that sets `column` of the row with the same `keys`.
    fn upsert_replace(keys: &str, column: &str) -> String {
        format!(" ON CONFLICT ({keys}) DO UPDATE SET {column} = excluded.{column}")
    }
    /// `YYYY-MM` of a date column.
    fn month_of(column: &str) -> String;

    /// Pushes "`column` contains the bound `needle`".
    fn push_contains(query: &mut QueryBuilder<Self::DB>, column: &str, needle: &str);
    /// Pushes "`column` is one of `values`".
    fn push_any_id(query: &mut QueryBuilder<Self::DB>, column: &str, values: &[Uuid]);
    /// Pushes "`column` is one of `values`".
    fn push_any_text(query: &mut QueryBuilder<Self::DB>, column: &str, values: &[&str]);
}

/// Pushes `column IN (values...)`, for engines without array parameters.
pub(crate) fn push_in<DB: Database, T>(query: &mut QueryBuilder<DB>, column: &str, values: &[T])
where
    for<'a> &'a T: Encode<'a, DB> + Type<DB>,
{
    query.push(column).push(" IN (");
    let mut list = query.separated(", ");
    for value in values {
        list.push_bind(value);
    }
    query.push(")");
}

/// The spellings of one statement, one per engine, made on first use.
pub(crate) struct Spelled([OnceLock<String>; 3]);

impl Spelled {
    pub const fn new() -> Self {
        Spelled([const { OnceLock::new() }; 3])
    }

    pub fn get<E: Engine, S: Into<String>>(
        &'static self,
        text: impl FnOnce() -> S,
    ) -> &'static str {
        self.0[E::INDEX].get_or_init(|| numbered(E::NUMBERED, text().into()))
    }
}

/// `?` placeholders as `$1, $2, ...` where the engine wants those.
fn numbered(numbered: bool, text: String) -> String {
    if !numbered {
        return text;
    }
    let mut out = String::with_capacity(text.len() + 16);
    let mut n = 0;
    for c in text.chars() {
        if c == '?' {
            n += 1;
            out.push('$');
            out.push_str(&n.to_string());
        } else {
            out.push(c);
        }
    }
    out
}

/// A statement's text for engine `$e`: static text with `?` placeholders,
/// or an expression that builds it from the engine's fragments (evaluated
/// once per engine).
macro_rules! sql {
    ($e:ty, $text:expr) => {{
        static SPELLED: $crate::store::sql::Spelled = $crate::store::sql::Spelled::new();
        SPELLED.get::<$e, _>(|| $text)
    }};
}
pub(crate) use sql;

/// The store over engine `E`.
pub(crate) struct SqlStore<E: Engine> {
    engine: std::sync::Arc<E>,
    new_expenses: GroupCommit,
}

/// An expense as [`super::expense_columns`] reads it.
pub(crate) type ExpenseRow<T> = (Uuid, String, Option<String>, i64, NaiveDate, T, String);

/// A user with their password hash and token generation.
pub(crate) type CredentialsRow<T> = (Uuid, String, T, String, i64);

pub(crate) fn expense_from_row<E: Engine>(
    row: ExpenseRow<E::Time>,
) -> Result<Expense, sqlx::Error> {
    let (id, category, description, amount, spent_on, created_at, source) = row;
    Ok(Expense {
        id,
        category,
        description,
        amount: Money::from_minor(amount),
        spent_on,
        created_at: created_at.time()?,
        source,
    })
}

pub(crate) fn credentials_from_row<E: Engine>(
    (id, email, created_at, password_hash, token_generation): CredentialsRow<E::Time>,
) -> Result<UserCredentials, sqlx::Error> {
    Ok(UserCredentials {
        user: User {
            id,
            email,
            created_at: created_at.time()?,
        },
        password_hash,
        token_generation,
    })
}

/// A point in time as a column holds it.
pub(crate) trait Stamp: Send + Sync + Unpin + Sized + 'static {
    fn of(t: DateTime<Utc>) -> Self;
    fn time(self) -> Result<DateTime<Utc>, sqlx::Error>;
}

/// A timestamp column.
impl Stamp for DateTime<Utc> {
    fn of(t: DateTime<Utc>) -> Self {
        t
    }

    fn time(self) -> Result<DateTime<Utc>, sqlx::Error> {
        Ok(self)
    }
}

/// Microseconds since the epoch in an integer column (SQLite).
impl Stamp for i64 {
    fn of(t: DateTime<Utc>) -> Self {
        t.timestamp_micros()
    }

    fn time(self) -> Result<DateTime<Utc>, sqlx::Error> {
        DateTime::from_timestamp_micros(self)
            .ok_or_else(|| sqlx::Error::Decode(format!("timestamp out of range: {self}").into()))
    }
}

#[cfg(test)]
mod tests {
    use super::numbered;

    #[test]
    fn placeholders_are_numbered_in_order() {
        let text = "SELECT a FROM t WHERE b = ? AND c IN (?, ?)".to_owned();
        assert_eq!(
            numbered(true, text.clone()),
            "SELECT a FROM t WHERE b = $1 AND c IN ($2, $3)"
        );
        assert_eq!(numbered(false, text.clone()), text);
    }
}
