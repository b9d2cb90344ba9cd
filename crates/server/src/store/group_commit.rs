//! Group commit of new expenses: concurrent `POST /api/expenses` share one
//! transaction.
//!
//! Alone, each new expense costs a transaction of its own: a BEGIN, five
//! statements and a COMMIT, each a round trip (on SQLite to the connection's
//! thread), and on PostgreSQL a WAL flush, with the user's rollup rows locked
//! from the first upsert to the flush, so one user's writes go one at a time.
//! Here the expenses that arrive while a transaction runs wait for the next,
//! which writes them all: one multi-row insert, one rollup per user, one
//! commit. Every caller is answered only once that commit is done. Should the
//! shared transaction fail, each expense in it is written again on its own, so
//! a write that cannot be made (an idempotency key taken meanwhile) fails
//! alone, with its own error.
//!
//! The writes run on a task of their own, not in the requests': a request that
//! gives up (its deadline, its client gone) before its batch starts is dropped
//! from it and writes nothing; one that gives up later cannot cancel a
//! transaction it shares with others, which then commits as if its client had
//! gone away just after the answer.

use std::collections::BTreeMap;

use finance_shared::Expense;
use futures::FutureExt;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use super::{IdempotencyKey, StoreError};

/// Expenses written in one transaction at most.
const MAX_BATCH: usize = 256;
/// Expenses waiting at most; past it, callers wait for room.
const QUEUE: usize = 4096;

/// A new expense on its way to the database.
pub(crate) struct NewExpense {
    pub user_id: Uuid,
    pub expense: Expense,
    pub idempotency: Option<IdempotencyKey>,
}

impl NewExpense {
    /// The response a replay of this request returns.
    pub fn response_body(&self) -> String {
        serde_json::to_string(&self.expense).unwrap_or_default()
    }
}

/// The expenses of a batch by user, in user order (the order rows are locked in).
pub(crate) fn by_user(batch: &[NewExpense]) -> BTreeMap<Uuid, Vec<&Expense>> {
    let mut users: BTreeMap<Uuid, Vec<&Expense>> = BTreeMap::new();
    for n in batch {
        users.entry(n.user_id).or_default().push(&n.expense);
    }
    users
}

/// Writes a batch of new expenses in one transaction: all of them, or none.
pub(crate) trait BatchWriter: Send + Sync + 'static {
    fn write(&self, batch: &[NewExpense]) -> impl Future<Output = Result<(), StoreError>> + Send;
}

type Reply = oneshot::Sender<Result<Expense, StoreError>>;

/// The queue in front of a [`BatchWriter`].
pub(crate) struct GroupCommit {
    queue: mpsc::Sender<(NewExpense, Reply)>,
}

impl GroupCommit {
    /// Starts the writing task; it ends once the `GroupCommit` is dropped and
    /// the queue is empty.
    pub fn start(writer: impl BatchWriter) -> Self {
        let (queue, mut incoming) = mpsc::channel::<(NewExpense, Reply)>(QUEUE);
        tokio::spawn(async move {
            let mut jobs = Vec::with_capacity(MAX_BATCH);
            while incoming.recv_many(&mut jobs, MAX_BATCH).await > 0 {
                jobs.retain(|(_, reply): &(NewExpense, Reply)| !reply.is_closed());
                let (batch, replies): (Vec<NewExpense>, Vec<Reply>) = jobs.drain(..).unzip();
                write_batch(&writer, batch, replies).await;
            }
        });
        GroupCommit { queue }
    }

    /// Writes the expense with the next batch; returns once it is committed.
    pub async fn submit(&self, new: NewExpense) -> Result<Expense, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send((new, reply))
            .await
            .map_err(|_| StoreError::Unavailable(sqlx::Error::PoolClosed))?;
        answer
            .await
            .unwrap_or(Err(StoreError::Unavailable(sqlx::Error::WorkerCrashed)))
    }
}

/// Writes a batch, again if it lost to another transaction; a panic while
/// writing fails that batch, not the task every other request's writes go
/// through.
async fn write_guarded(writer: &impl BatchWriter, batch: &[NewExpense]) -> Result<(), StoreError> {
    super::retry::retry_contended(|| async {
        std::panic::AssertUnwindSafe(writer.write(batch))
            .catch_unwind()
            .await
            .unwrap_or_else(|_| {
                tracing::error!(size = batch.len(), "writing a batch of expenses panicked");
                Err(StoreError::Other(sqlx::Error::Protocol(
                    "writing the batch panicked".into(),
                )))
            })
    })
    .await
}

async fn write_batch(writer: &impl BatchWriter, batch: Vec<NewExpense>, replies: Vec<Reply>) {
    if batch.is_empty() {
        return;
    }
    match write_guarded(writer, &batch).await {
        Ok(()) => {
            for (new, reply) in batch.into_iter().zip(replies) {
                let _ = reply.send(Ok(new.expense));
            }
        }
        Err(e) if batch.len() == 1 => {
            let _ = replies.into_iter().next().map(|reply| reply.send(Err(e)));
        }
        // Alone, each would wait for the database in turn: all fail now.
        Err(e @ StoreError::Unavailable(_)) => {
            for reply in replies {
                let _ = reply.send(Err(e.for_another_waiter()));
            }
        }
        Err(e) => {
            tracing::debug!(error = %e, size = batch.len(), "batch failed; writing its expenses one by one");
            for (new, reply) in batch.into_iter().zip(replies) {
                let one = std::slice::from_ref(&new);
                let result = write_guarded(writer, one).await.map(|()| new.expense);
                let _ = reply.send(result);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use chrono::{DateTime, NaiveDate};
    use finance_shared::Money;

    use super::*;

    /// Records each transaction's size; fails any holding an expense of 0.13
    /// (a conflict) or of 0.99 (the database unreachable), and panics on one of 0.66.
    #[derive(Clone, Default)]
    struct Recorder(Arc<Mutex<Vec<usize>>>);

    impl BatchWriter for Recorder {
        async fn write(&self, batch: &[NewExpense]) -> Result<(), StoreError> {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            self.0.lock().expect("lock").push(batch.len());
            if batch.iter().any(|n| n.expense.amount.minor() == 13) {
                return Err(StoreError::Conflict(crate::store::Unique::IdempotencyKey));
            }
            if batch.iter().any(|n| n.expense.amount.minor() == 66) {
                panic!("a value the driver cannot bind");
            }
            if batch.iter().any(|n| n.expense.amount.minor() == 99) {
                return Err(StoreError::Unavailable(sqlx::Error::PoolTimedOut));
            }
            Ok(())
        }
    }

    fn new_expense(cents: i64) -> NewExpense {
        NewExpense {
            user_id: Uuid::now_v7(),
            expense: Expense {
                id: Uuid::now_v7(),
                category: "Food".into(),
                description: None,
                amount: Money::from_minor(cents),
                spent_on: NaiveDate::from_ymd_opt(2026, 11, 1).expect("date"),
                created_at: DateTime::UNIX_EPOCH,
                source: "manual".into(),
            },
            idempotency: None,
        }
    }

    /// Submits expenses of 1 to `n` cents at once; returns what each got.
    async fn submit_all(commits: GroupCommit, n: i64) -> Vec<Result<i64, String>> {
        let commits = Arc::new(commits);
        let tasks: Vec<_> = (1..=n)
            .map(|cents| {
                let commits = Arc::clone(&commits);
                tokio::spawn(async move { commits.submit(new_expense(cents)).await })
            })
            .collect();
        let mut results = Vec::new();
        for task in tasks {
            let result = task.await.expect("task");
            results.push(result.map(|e| e.amount.minor()).map_err(|e| e.to_string()));
        }
        results
    }

    #[tokio::test]
    async fn concurrent_writes_share_transactions() {
        let recorder = Recorder::default();
        let results = submit_all(GroupCommit::start(recorder.clone()), 12).await;
        assert_eq!(results, (1..=12).map(Ok).collect::<Vec<_>>());
        let sizes = recorder.0.lock().expect("lock").clone();
        assert_eq!(sizes.iter().sum::<usize>(), 12);
        assert!(sizes.len() < 12, "12 concurrent writes took {sizes:?}");
    }

    #[tokio::test]
    async fn a_write_that_fails_in_a_batch_fails_alone() {
        let recorder = Recorder::default();
        let results = submit_all(GroupCommit::start(recorder.clone()), 20).await;
        for (cents, result) in (1..=20).zip(results) {
            if cents == 13 {
                assert_eq!(result, Err("conflict on IdempotencyKey".to_owned()));
            } else {
                assert_eq!(result, Ok(cents));
            }
        }
    }

    #[tokio::test]
    async fn a_batch_that_panics_fails_alone_and_the_writer_keeps_serving() {
        let recorder = Recorder::default();
        let commits = GroupCommit::start(recorder.clone());
        let results = {
            let commits = Arc::new(commits);
            let mut tasks = Vec::new();
            for cents in [66, 1, 2] {
                let commits = Arc::clone(&commits);
                tasks.push(tokio::spawn(async move {
                    commits.submit(new_expense(cents)).await
                }));
            }
            let mut results = Vec::new();
            for task in tasks {
                results.push(task.await.expect("task").map(|e| e.amount.minor()));
            }
            let after = commits
                .submit(new_expense(7))
                .await
                .map(|e| e.amount.minor());
            assert_eq!(after.ok(), Some(7), "the writer stopped serving");
            results
        };
        assert!(
            matches!(results[0], Err(StoreError::Other(_))),
            "{results:?}"
        );
        assert_eq!(results[1].as_ref().ok(), Some(&1));
        assert_eq!(results[2].as_ref().ok(), Some(&2));
    }

    #[tokio::test]
    async fn an_unreachable_database_fails_the_whole_batch_at_once() {
        let recorder = Recorder::default();
        let commits = Arc::new(GroupCommit::start(recorder.clone()));
        let mut tasks = Vec::new();
        for cents in [99, 1, 2, 3] {
            let commits = Arc::clone(&commits);
            tasks.push(tokio::spawn(async move {
                commits.submit(new_expense(cents)).await
            }));
        }
        for task in tasks {
            let result = task.await.expect("task");
            assert!(
                matches!(result, Err(StoreError::Unavailable(_))),
                "{result:?}"
            );
        }
        assert_eq!(recorder.0.lock().expect("lock").clone(), vec![4]);
    }
}
