//! How many file imports run at once: one per user (by default), and a few in all. A file
//! import holds its file and what is read from it in memory, so these bound
//! what uploads can cost the server, whoever sends them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use uuid::Uuid;

use super::error::ApiError;

/// What a refused import is told to wait.
const RETRY_AFTER: Duration = Duration::from_secs(2);

/// The slots of one server.
pub struct ImportSlots {
    per_user_limit: usize,
    overall: Arc<Semaphore>,
    per_user: Mutex<HashMap<Uuid, usize>>,
}

/// One import's slot, given back when dropped.
pub struct ImportSlot {
    _overall: OwnedSemaphorePermit,
    user: Uuid,
    slots: Arc<ImportSlots>,
}

impl ImportSlots {
    /// Slots for `overall` imports at once, `per_user` of them one user's.
    pub fn new(overall: usize, per_user: usize) -> Arc<Self> {
        Arc::new(ImportSlots {
            per_user_limit: per_user.max(1),
            overall: Arc::new(Semaphore::new(overall.max(1))),
            per_user: Mutex::new(HashMap::new()),
        })
    }

    /// A slot for this user's import, or 429 with `Retry-After`.
    pub fn take(self: &Arc<Self>, user: Uuid) -> Result<ImportSlot, ApiError> {
        {
            let mut users = self.lock();
            let mine = users.entry(user).or_default();
            if *mine >= self.per_user_limit {
                return Err(ApiError::Busy(
                    "one of your file imports is still under way; try again when it has ended",
                    RETRY_AFTER,
                ));
            }
            *mine += 1;
        }
        let Ok(overall) = Arc::clone(&self.overall).try_acquire_owned() else {
            self.give_back(user);
            return Err(ApiError::Busy(
                "the server is busy with other file imports; try again shortly",
                RETRY_AFTER,
            ));
        };
        Ok(ImportSlot {
            _overall: overall,
            user,
            slots: Arc::clone(self),
        })
    }

    fn give_back(&self, user: Uuid) {
        let mut users = self.lock();
        if let Some(n) = users.get_mut(&user) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                users.remove(&user);
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, usize>> {
        self.per_user.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for ImportSlot {
    fn drop(&mut self) {
        self.slots.give_back(self.user);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_import_per_user_and_a_few_in_all() {
        let slots = ImportSlots::new(2, 1);
        let (a, b, c) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let first = slots.take(a).expect("a's first");
        assert!(slots.take(a).is_err(), "a's second at once");
        let second = slots.take(b).expect("b's first");
        assert!(slots.take(c).is_err(), "past the overall limit");
        drop(first);
        let third = slots.take(c).expect("c once a's ended");
        assert!(slots.take(a).is_err(), "overall limit again");
        drop((second, third));
        assert!(slots.take(a).is_ok());
        assert!(slots.lock().len() <= 1, "ended users are forgotten");
    }
}
