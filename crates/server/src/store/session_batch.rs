//! Concurrent token checks share one query.
//!
//! Every authenticated request reads its token's state (the user's token
//! generation and data version, whether the token was logged out) from the
//! database. Alone, each is a round trip and a query; under load the database
//! spends more on those than on the requests themselves. Here the lookups
//! that arrive while earlier ones run wait for the next query, which answers
//! all of them (each distinct user and token once).
//!
//! A lookup is only ever answered by a query that started after it was
//! asked, so it sees every write committed before it: a logout or a new
//! expense on any instance is seen exactly as without batching.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::{Semaphore, mpsc, oneshot};
use uuid::Uuid;

use super::{SessionState, StoreError};

/// A token to check: its user and its id.
pub(crate) type SessionKey = (Uuid, Uuid);

/// Lookups answered by one query at most.
const MAX_BATCH: usize = 512;
/// Lookups waiting at most; past it, callers wait for room.
const QUEUE: usize = 4096;

/// Reads the state of distinct tokens in one query.
pub(crate) trait SessionLookup: Send + Sync + 'static {
    /// The state of each key, in the keys' order; `None` where the user does
    /// not exist.
    fn lookup(
        &self,
        keys: &[SessionKey],
    ) -> impl Future<Output = Result<Vec<Option<SessionState>>, StoreError>> + Send;
}

type Reply = oneshot::Sender<Result<Option<SessionState>, StoreError>>;

/// The queue in front of a [`SessionLookup`].
pub(crate) struct SessionBatches {
    queue: mpsc::Sender<(SessionKey, Reply)>,
}

impl SessionBatches {
    /// Starts the task that runs the queries, at most `in_flight` at a time;
    /// it ends once the `SessionBatches` is dropped.
    pub fn start(lookup: impl SessionLookup, in_flight: usize) -> Self {
        let (queue, mut incoming) = mpsc::channel::<(SessionKey, Reply)>(QUEUE);
        let lookup = Arc::new(lookup);
        let permits = Arc::new(Semaphore::new(in_flight.max(1)));
        tokio::spawn(async move {
            loop {
                // A free query slot first, then whatever has arrived by then:
                // while every slot is busy, lookups gather for the next query.
                let Ok(permit) = Arc::clone(&permits).acquire_owned().await else {
                    break;
                };
                let mut batch = Vec::new();
                if incoming.recv_many(&mut batch, MAX_BATCH).await == 0 {
                    break;
                }
                let lookup = Arc::clone(&lookup);
                tokio::spawn(async move {
                    answer(&*lookup, batch).await;
                    drop(permit);
                });
            }
        });
        SessionBatches { queue }
    }

    /// The state of token `jti` of `user_id`, read after this call began.
    pub async fn get(&self, user_id: Uuid, jti: Uuid) -> Result<Option<SessionState>, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(((user_id, jti), reply))
            .await
            .map_err(|_| StoreError::Unavailable(sqlx::Error::PoolClosed))?;
        answer
            .await
            .unwrap_or(Err(StoreError::Unavailable(sqlx::Error::WorkerCrashed)))
    }
}

async fn answer(lookup: &impl SessionLookup, mut batch: Vec<(SessionKey, Reply)>) {
    batch.retain(|(_, reply)| !reply.is_closed());
    if batch.is_empty() {
        return;
    }
    let mut keys = Vec::new();
    let mut index: HashMap<SessionKey, usize> = HashMap::new();
    for (key, _) in &batch {
        index.entry(*key).or_insert_with(|| {
            keys.push(*key);
            keys.len() - 1
        });
    }
    match lookup.lookup(&keys).await {
        Ok(states) => {
            for (key, reply) in batch {
                let state = states.get(index[&key]).copied().flatten();
                let _ = reply.send(Ok(state));
            }
        }
        Err(e) => {
            for (_, reply) in batch {
                let _ = reply.send(Err(e.for_another_waiter()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use tokio::sync::Notify;

    /// Answers from a fixed table, records each query's keys, and holds its
    /// first query until released.
    struct Table {
        known: HashMap<Uuid, i64>,
        queries: Arc<Mutex<Vec<Vec<SessionKey>>>>,
        release: Arc<Notify>,
    }

    impl SessionLookup for Table {
        async fn lookup(
            &self,
            keys: &[SessionKey],
        ) -> Result<Vec<Option<SessionState>>, StoreError> {
            let first = {
                let mut queries = self.queries.lock().unwrap_or_else(|e| e.into_inner());
                queries.push(keys.to_vec());
                queries.len() == 1
            };
            if first {
                self.release.notified().await;
            }
            Ok(keys
                .iter()
                .map(|(user, jti)| {
                    self.known.get(user).map(|version| SessionState {
                        token_generation: 0,
                        revoked: jti.is_nil(),
                        data_version: *version,
                    })
                })
                .collect())
        }
    }

    #[tokio::test]
    async fn lookups_made_while_a_query_runs_share_the_next_one() {
        let (alice, bob, nobody) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let queries = Arc::new(Mutex::new(Vec::new()));
        let release = Arc::new(Notify::new());
        let batches = Arc::new(SessionBatches::start(
            Table {
                known: HashMap::from([(alice, 7), (bob, 9)]),
                queries: Arc::clone(&queries),
                release: Arc::clone(&release),
            },
            1,
        ));
        let token = Uuid::new_v4();
        let first = tokio::spawn({
            let batches = Arc::clone(&batches);
            async move { batches.get(alice, token).await }
        });
        while queries.lock().unwrap_or_else(|e| e.into_inner()).is_empty() {
            tokio::task::yield_now().await;
        }
        // The only query slot is taken: these wait, then go in one query.
        let mut waiting = Vec::new();
        for (user, jti) in [
            (bob, token),
            (bob, token),
            (alice, Uuid::nil()),
            (nobody, token),
        ] {
            let batches = Arc::clone(&batches);
            let (sent, enqueued) = oneshot::channel();
            waiting.push(tokio::spawn(async move {
                let get = batches.get(user, jti);
                tokio::pin!(get);
                // Polled once: the lookup is in the queue before the release.
                let polled = futures::poll!(&mut get);
                let _ = sent.send(());
                match polled {
                    std::task::Poll::Ready(state) => state,
                    std::task::Poll::Pending => get.await,
                }
            }));
            let _ = enqueued.await;
        }
        release.notify_one();
        let first = first.await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(first.ok().flatten().map(|s| s.data_version), Some(7));
        let mut answers = Vec::new();
        for w in waiting {
            answers.push(w.await.unwrap_or_else(|e| panic!("{e}")).ok().flatten());
        }
        let versions: Vec<_> = answers.iter().map(|s| s.map(|s| s.data_version)).collect();
        assert_eq!(versions, [Some(9), Some(9), Some(7), None]);
        assert_eq!(answers[2].map(|s| s.revoked), Some(true));
        assert_eq!(answers[0].map(|s| s.revoked), Some(false));
        let queries = queries.lock().unwrap_or_else(|e| e.into_inner()).clone();
        assert_eq!(queries.len(), 2, "{queries:?}");
        // Bob's token once, though asked twice.
        assert_eq!(
            queries[1],
            vec![(bob, token), (alice, Uuid::nil()), (nobody, token)]
        );
    }
}
