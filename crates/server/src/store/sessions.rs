//! What decides a token's validity, kept in memory by a store whose process
//! is the database's only writer (SQLite: the file is locked to one server).
//!
//! Every request checks its token; reading the user's token generation and
//! data version from the database each time would cost more than serving a
//! cached summary. The revoked tokens are all held (they are few: a
//! revocation is dropped once its token expires), and each user's state is
//! read once and then forgotten whenever a write of theirs ends.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use sqlx::SqlitePool;
use uuid::Uuid;

/// Users whose state is held at most; past it, the map starts over.
const USERS_CAPACITY: usize = 100_000;

/// A user's token generation and data version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UserState {
    pub token_generation: i64,
    pub data_version: i64,
}

#[derive(Default)]
pub struct Sessions {
    users: RwLock<HashMap<Uuid, UserState>>,
    /// Revoked token ids with their expiry (seconds since the epoch).
    revoked: Mutex<HashMap<Uuid, i64>>,
    /// Ends of writes so far: a state read from the database is only kept
    /// when no write ended while it was being read.
    writes: AtomicU64,
}

impl Sessions {
    pub fn new(revoked: impl IntoIterator<Item = (Uuid, i64)>) -> Arc<Self> {
        Arc::new(Sessions {
            revoked: Mutex::new(revoked.into_iter().collect()),
            ..Sessions::default()
        })
    }

    pub fn is_revoked(&self, jti: Uuid) -> bool {
        lock(&self.revoked).contains_key(&jti)
    }

    /// Refuses `jti` from now on, dropping revocations of expired tokens.
    pub fn revoke(&self, jti: Uuid, expires_at: i64) {
        let mut revoked = lock(&self.revoked);
        revoked.insert(jti, expires_at);
        if revoked.len().is_power_of_two() {
            let now = chrono::Utc::now().timestamp();
            revoked.retain(|_, expires| *expires >= now);
        }
    }

    /// The user's state, if held.
    pub fn user(&self, id: Uuid) -> Option<UserState> {
        self.users
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id)
            .copied()
    }

    /// A mark to take before reading a user's state from the database.
    pub fn mark(&self) -> u64 {
        self.writes.load(Ordering::SeqCst)
    }

    /// Holds a state read from the database since `mark`, unless a write
    /// ended meanwhile (the read may predate it).
    pub fn remember(&self, id: Uuid, state: UserState, mark: u64) {
        let mut users = self.users.write().unwrap_or_else(|e| e.into_inner());
        if self.writes.load(Ordering::SeqCst) != mark {
            return;
        }
        if users.len() >= USERS_CAPACITY {
            users.clear();
        }
        users.insert(id, state);
    }

    /// Forgets the user's state: a write of theirs has ended.
    pub fn forget(&self, id: Uuid) {
        let mut users = self.users.write().unwrap_or_else(|e| e.into_inner());
        self.writes.fetch_add(1, Ordering::SeqCst);
        users.remove(&id);
    }

    /// To hold for the whole of a write of the user's (see [`WriteGuard`]).
    pub fn write_guard(self: &Arc<Self>, user: Uuid, writer: &SqlitePool) -> WriteGuard {
        WriteGuard {
            sessions: Arc::clone(self),
            writer: writer.clone(),
            user,
            ended: false,
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Forgets the user's state when their write ends, before its response.
///
/// A write cancelled mid-way (its client went away) may still commit on the
/// writer connection after the cancellation: the state is then forgotten at
/// once and again once the writer has finished what it was sent.
pub struct WriteGuard {
    sessions: Arc<Sessions>,
    writer: SqlitePool,
    user: Uuid,
    ended: bool,
}

impl WriteGuard {
    /// The write ran to its end (committed, rolled back or failed).
    pub fn end(mut self) {
        self.ended = true;
    }
}

impl Drop for WriteGuard {
    fn drop(&mut self) {
        self.sessions.forget(self.user);
        if self.ended {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (sessions, writer, user) = (Arc::clone(&self.sessions), self.writer.clone(), self.user);
        runtime.spawn(async move {
            if let Ok(mut conn) = writer.acquire().await {
                let _ = sqlx::query("SELECT 1").execute(&mut *conn).await;
            }
            sessions.forget(user);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: UserState = UserState {
        token_generation: 0,
        data_version: 1,
    };

    #[test]
    fn a_state_read_across_a_write_is_not_kept() {
        let sessions = Sessions::new([]);
        let user = Uuid::now_v7();
        let mark = sessions.mark();
        sessions.forget(user);
        sessions.remember(user, A, mark);
        assert_eq!(sessions.user(user), None);
        let mark = sessions.mark();
        sessions.remember(user, A, mark);
        assert_eq!(sessions.user(user), Some(A));
        sessions.forget(user);
        assert_eq!(sessions.user(user), None);
    }

    #[test]
    fn revocations_of_expired_tokens_are_dropped() {
        let now = chrono::Utc::now().timestamp();
        let sessions = Sessions::new([(Uuid::now_v7(), now - 10)]);
        let live = Uuid::now_v7();
        sessions.revoke(live, now + 600);
        assert!(sessions.is_revoked(live));
        assert_eq!(lock(&sessions.revoked).len(), 1);
    }
}
