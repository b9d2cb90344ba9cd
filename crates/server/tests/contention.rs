//! Transactions that lose to another (a deadlock, a serialization failure, a
//! busy SQLite file) are recognised on every engine and run again.

mod common;

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use finance_server::store::StoreError;
use finance_server::store::retry::retry_contended;
use sqlx::{Connection, Executor};

/// Two transactions that lock two rows in opposite orders: the database
/// picks one to fail. Returns that failure.
async fn deadlock<C>(mut a: C, mut b: C, create: &str, lock: [&str; 2]) -> sqlx::Error
where
    C: Connection + Send,
    for<'c> &'c mut C: Executor<'c>,
{
    sqlx::raw_sql(sqlx::AssertSqlSafe(create.to_owned()))
        .execute(&mut a)
        .await
        .expect("create table");
    let (first, second) = (lock[0], lock[1]);
    sqlx::raw_sql("BEGIN")
        .execute(&mut a)
        .await
        .expect("begin a");
    sqlx::raw_sql("BEGIN")
        .execute(&mut b)
        .await
        .expect("begin b");
    sqlx::raw_sql(sqlx::AssertSqlSafe(first.to_owned()))
        .execute(&mut a)
        .await
        .expect("a locks row 1");
    sqlx::raw_sql(sqlx::AssertSqlSafe(second.to_owned()))
        .execute(&mut b)
        .await
        .expect("b locks row 2");
    let a_second = sqlx::raw_sql(sqlx::AssertSqlSafe(second.to_owned())).execute(&mut a);
    let b_first = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        sqlx::raw_sql(sqlx::AssertSqlSafe(first.to_owned()))
            .execute(&mut b)
            .await
    };
    let (ra, rb) = tokio::join!(a_second, b_first);
    match (ra, rb) {
        (Err(e), _) | (_, Err(e)) => e,
        _ => panic!("no transaction was chosen to fail"),
    }
}

const ROWS: &str = "DROP TABLE IF EXISTS locks; CREATE TABLE locks (id INT PRIMARY KEY, n INT); \
                    INSERT INTO locks VALUES (1, 0), (2, 0)";
const LOCKS: [&str; 2] = [
    "UPDATE locks SET n = n + 1 WHERE id = 1",
    "UPDATE locks SET n = n + 1 WHERE id = 2",
];

fn assert_contended(e: sqlx::Error) {
    let e = StoreError::from(e);
    assert!(matches!(e, StoreError::Contended(_)), "{e:?}");
}

#[tokio::test]
async fn a_postgres_deadlock_is_contention() {
    let url = common::fresh_postgres_database().await;
    let a = sqlx::PgConnection::connect(&url).await.expect("connect");
    let b = sqlx::PgConnection::connect(&url).await.expect("connect");
    assert_contended(deadlock(a, b, ROWS, LOCKS).await);
}

#[tokio::test]
async fn a_postgres_serialization_failure_is_contention() {
    let url = common::fresh_postgres_database().await;
    let mut a = sqlx::PgConnection::connect(&url).await.expect("connect");
    let mut b = sqlx::PgConnection::connect(&url).await.expect("connect");
    sqlx::raw_sql(ROWS).execute(&mut a).await.expect("rows");
    let serializable = "BEGIN ISOLATION LEVEL SERIALIZABLE";
    sqlx::raw_sql(serializable)
        .execute(&mut a)
        .await
        .expect("begin");
    sqlx::raw_sql(serializable)
        .execute(&mut b)
        .await
        .expect("begin");
    sqlx::raw_sql("SELECT n FROM locks WHERE id = 1")
        .execute(&mut a)
        .await
        .expect("read");
    sqlx::raw_sql("SELECT n FROM locks WHERE id = 1")
        .execute(&mut b)
        .await
        .expect("read");
    sqlx::raw_sql(LOCKS[0])
        .execute(&mut a)
        .await
        .expect("a writes");
    sqlx::raw_sql("COMMIT")
        .execute(&mut a)
        .await
        .expect("a commits");
    let lost = sqlx::raw_sql(LOCKS[0])
        .execute(&mut b)
        .await
        .expect_err("b loses");
    assert_contended(lost);
}

#[tokio::test]
async fn a_mariadb_deadlock_is_contention() {
    let url = common::fresh_mysql_database().await;
    let a = sqlx::MySqlConnection::connect(&url).await.expect("connect");
    let b = sqlx::MySqlConnection::connect(&url).await.expect("connect");
    assert_contended(deadlock(a, b, ROWS, LOCKS).await);
}

#[tokio::test]
async fn a_busy_sqlite_file_is_contention() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let url = format!("sqlite:{}?mode=rwc", dir.path().join("busy.db").display());
    let mut a = sqlx::SqliteConnection::connect(&url)
        .await
        .expect("connect");
    let mut b = sqlx::SqliteConnection::connect(&url)
        .await
        .expect("connect");
    sqlx::raw_sql("PRAGMA busy_timeout = 0; CREATE TABLE t (v INT)")
        .execute(&mut a)
        .await
        .expect("table");
    sqlx::raw_sql("PRAGMA busy_timeout = 0")
        .execute(&mut b)
        .await
        .expect("pragma");
    sqlx::raw_sql("BEGIN IMMEDIATE")
        .execute(&mut a)
        .await
        .expect("a writes");
    let busy = sqlx::raw_sql("BEGIN IMMEDIATE")
        .execute(&mut b)
        .await
        .expect_err("busy");
    assert_contended(busy);
}

/// A transaction that loses to another is run again and then commits once.
#[tokio::test]
async fn a_lost_transaction_is_run_again_and_commits_once() {
    let url = common::fresh_postgres_database().await;
    let mut setup = sqlx::PgConnection::connect(&url).await.expect("connect");
    sqlx::raw_sql(ROWS).execute(&mut setup).await.expect("rows");
    let runs = AtomicU32::new(0);
    let result = retry_contended(|| async {
        let run = runs.fetch_add(1, Ordering::SeqCst) + 1;
        if run == 1 {
            // The first run is the loser of a real deadlock.
            let a = sqlx::PgConnection::connect(&url).await?;
            let b = sqlx::PgConnection::connect(&url).await?;
            let noop = "SELECT 1";
            return Err(StoreError::from(deadlock(a, b, noop, LOCKS).await));
        }
        let mut conn = sqlx::PgConnection::connect(&url).await?;
        sqlx::raw_sql("UPDATE locks SET n = 100 WHERE id = 1")
            .execute(&mut conn)
            .await?;
        Ok::<_, StoreError>(run)
    })
    .await;
    assert_eq!(result.ok(), Some(2));
    let n: i32 = sqlx::query_scalar("SELECT n FROM locks WHERE id = 1")
        .fetch_one(&mut setup)
        .await
        .expect("read");
    assert_eq!(n, 100);
}

/// One that keeps losing gives up after a few runs, as contention (a 503).
#[tokio::test]
async fn a_transaction_that_keeps_losing_gives_up() {
    let runs = AtomicU32::new(0);
    let result: Result<(), StoreError> = retry_contended(|| async {
        runs.fetch_add(1, Ordering::SeqCst);
        Err(StoreError::Contended(sqlx::Error::PoolTimedOut))
    })
    .await;
    assert!(matches!(result, Err(StoreError::Contended(_))));
    assert_eq!(
        runs.load(Ordering::SeqCst),
        1 + finance_server::store::retry::RETRIES
    );
}
