//! Login throttling: failed attempts per email (or signed-in user) and per
//! client address in a sliding window, each attempt counted before its
//! password is checked, in Redis when configured (shared by every instance), in
//! memory otherwise, and in memory while a configured Redis is unreachable.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use redis::aio::ConnectionManager;

use crate::cache::RedisSettings;

/// How many failures are allowed, and over what window.
#[derive(Clone, Copy, Debug)]
pub struct LoginLimits {
    pub per_email: u32,
    pub per_address: u32,
    pub window: Duration,
}

impl Default for LoginLimits {
    fn default() -> Self {
        LoginLimits {
            per_email: 5,
            per_address: 20,
            window: Duration::from_secs(15 * 60),
        }
    }
}

/// Counts failed logins.
pub struct LoginLimiter {
    limits: LoginLimits,
    redis: Option<(ConnectionManager, String, Duration)>,
    /// Key -> (time in ms, attempt id) of each failure, oldest first.
    memory: Mutex<HashMap<String, VecDeque<(u64, String)>>>,
}

fn now_ms() -> u64 {
    u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap_or(0)
}

impl LoginLimiter {
    pub fn new(limits: LoginLimits, redis: Option<&RedisSettings>) -> anyhow::Result<Self> {
        let redis = match redis {
            Some(settings) => Some((
                crate::cache::redis_connection_manager(settings)?,
                settings.key_prefix.clone(),
                settings.timeout,
            )),
            None => None,
        };
        Ok(LoginLimiter {
            limits,
            redis,
            memory: Mutex::new(HashMap::new()),
        })
    }

    /// Reserves a login attempt for this email from this address, before
    /// the password is checked: `Err(wait)` when either has failed too often.
    /// A reserved attempt counts as a failure until given back, so a burst of
    /// parallel attempts never checks more passwords than the limit allows.
    pub async fn reserve_login(&self, email: &str, address: &str) -> Result<Attempt, Duration> {
        self.reserve([
            (format!("login:email:{email}"), self.limits.per_email),
            (format!("login:addr:{address}"), self.limits.per_address),
        ])
        .await
    }

    /// Reserves a check of a signed-in user's current password (a password
    /// change): per user, and per address in the same count as logins.
    pub async fn reserve_password_check(
        &self,
        user: uuid::Uuid,
        address: &str,
    ) -> Result<Attempt, Duration> {
        self.reserve([
            (format!("password:user:{user}"), self.limits.per_email),
            (format!("login:addr:{address}"), self.limits.per_address),
        ])
        .await
    }

    /// The attempt succeeded: its account's failures are cleared, and the
    /// address gets this attempt back (never another address's failures).
    pub async fn succeeded(&self, attempt: Attempt) {
        let [(account, _), (address, _)] = &attempt.keys;
        self.remove(account, None).await;
        self.remove(address, Some(&attempt.member)).await;
    }

    /// The attempt ended without checking a password (the database was
    /// unreachable): it does not count.
    pub async fn give_back(&self, attempt: Attempt) {
        for (key, _) in &attempt.keys {
            self.remove(key, Some(&attempt.member)).await;
        }
    }

    /// Counts an attempt against each key, then looks at the counts; the
    /// attempt is taken back at once where any key is over its limit.
    async fn reserve(&self, keys: [(String, u32); 2]) -> Result<Attempt, Duration> {
        let attempt = Attempt {
            member: uuid::Uuid::new_v4().to_string(),
            keys,
        };
        let now = now_ms();
        let counts = match self.reserve_in_redis(&attempt, now).await {
            Some(counts) => counts,
            None => self.reserve_in_memory(&attempt, now),
        };
        let over = attempt
            .keys
            .iter()
            .zip(counts)
            .any(|((_, limit), count)| count > u64::from(*limit));
        if !over {
            return Ok(attempt);
        }
        self.give_back(attempt.clone()).await;
        let mut wait = Duration::ZERO;
        for (key, limit) in &attempt.keys {
            let failures = self.failures(key).await;
            if failures.len() >= *limit as usize {
                // Free again when the oldest failure that keeps it at the limit leaves the window.
                let oldest = failures[failures.len() - *limit as usize];
                let free_at = oldest + self.limits.window.as_millis() as u64;
                wait = wait.max(Duration::from_millis(free_at.saturating_sub(now_ms())));
            }
        }
        // Attempts still being checked hold the count: try again in a moment.
        Err(wait.max(Duration::from_secs(1)))
    }

    /// The count of each key with the attempt added, in one atomic step.
    async fn reserve_in_redis(&self, attempt: &Attempt, now: u64) -> Option<[u64; 2]> {
        let (manager, prefix, timeout) = self.redis.as_ref()?;
        let since = now.saturating_sub(self.limits.window.as_millis() as u64);
        let mut conn = manager.clone();
        let mut pipe = redis::pipe();
        pipe.atomic();
        for (key, _) in &attempt.keys {
            let full = format!("{prefix}{key}");
            pipe.cmd("ZREMRANGEBYSCORE")
                .arg(&full)
                .arg("-inf")
                .arg(format!("({since}"))
                .ignore()
                .cmd("ZADD")
                .arg(&full)
                .arg(now)
                .arg(&attempt.member)
                .ignore()
                .cmd("PEXPIRE")
                .arg(&full)
                .arg(self.limits.window.as_millis() as u64)
                .ignore()
                .cmd("ZCARD")
                .arg(&full);
        }
        let answer =
            tokio::time::timeout(*timeout, pipe.query_async::<(u64, u64)>(&mut conn)).await;
        match answer {
            Ok(Ok((a, b))) => Some([a, b]),
            _ => {
                tracing::debug!("login limiter: redis unavailable, counting in memory");
                None
            }
        }
    }

    fn reserve_in_memory(&self, attempt: &Attempt, now: u64) -> [u64; 2] {
        let since = now.saturating_sub(self.limits.window.as_millis() as u64);
        let mut memory = self.lock();
        // Bounded: a flood of distinct emails must not grow memory without end.
        if memory.len() > 100_000 {
            memory.retain(|_, times| times.back().is_some_and(|(t, _)| *t >= since));
        }
        attempt.keys.each_ref().map(|(key, _)| {
            let entry = memory.entry(key.clone()).or_default();
            while entry.front().is_some_and(|(t, _)| *t < since) {
                entry.pop_front();
            }
            entry.push_back((now, attempt.member.clone()));
            entry.len() as u64
        })
    }

    /// Removes one attempt from a key, or with `None` every attempt.
    async fn remove(&self, key: &str, member: Option<&str>) {
        if let Some((manager, prefix, timeout)) = &self.redis {
            let mut conn = manager.clone();
            let full = format!("{prefix}{key}");
            let cmd = match member {
                Some(m) => redis::cmd("ZREM").arg(&full).arg(m).to_owned(),
                None => redis::cmd("DEL").arg(&full).to_owned(),
            };
            let _ = tokio::time::timeout(*timeout, cmd.query_async::<()>(&mut conn)).await;
        }
        let mut memory = self.lock();
        match member {
            Some(m) => {
                if let Some(entry) = memory.get_mut(key) {
                    entry.retain(|(_, id)| id != m);
                }
            }
            None => {
                memory.remove(key);
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, VecDeque<(u64, String)>>> {
        self.memory.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Timestamps (ms) of the failures within the window, oldest first.
    async fn failures(&self, key: &str) -> Vec<u64> {
        if let Some((manager, prefix, timeout)) = &self.redis {
            let mut conn = manager.clone();
            let cmd = redis::cmd("ZRANGE")
                .arg(format!("{prefix}{key}"))
                .arg(0)
                .arg(-1)
                .arg("WITHSCORES")
                .to_owned();
            let answer =
                tokio::time::timeout(*timeout, cmd.query_async::<Vec<(String, f64)>>(&mut conn))
                    .await;
            if let Ok(Ok(entries)) = answer {
                return entries.into_iter().map(|(_, score)| score as u64).collect();
            }
        }
        self.lock()
            .get(key)
            .map(|entry| entry.iter().map(|(t, _)| *t).collect())
            .unwrap_or_default()
    }
}

/// A reserved attempt: it counts as a failure until [`LoginLimiter::succeeded`]
/// or [`LoginLimiter::give_back`] says otherwise.
#[derive(Clone, Debug)]
#[must_use = "an attempt counts as a failure unless it is given back"]
pub struct Attempt {
    member: String,
    /// The account's key, then the address's, with their limits.
    keys: [(String, u32); 2],
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn limiter(per_email: u32, per_address: u32) -> LoginLimiter {
        let limits = LoginLimits {
            per_email,
            per_address,
            window: Duration::from_secs(60),
        };
        LoginLimiter::new(limits, None).expect("limiter")
    }

    #[tokio::test]
    async fn blocks_after_the_limit_per_email_and_per_address() {
        let limiter = limiter(2, 3);
        let _ = limiter
            .reserve_login("a@x.io", "1.1.1.1")
            .await
            .expect("first");
        let _ = limiter
            .reserve_login("a@x.io", "1.1.1.1")
            .await
            .expect("second");
        let wait = limiter
            .reserve_login("a@x.io", "2.2.2.2")
            .await
            .expect_err("email blocked everywhere");
        assert!(wait > Duration::from_secs(50) && wait <= Duration::from_secs(60));
        let _ = limiter
            .reserve_login("b@x.io", "1.1.1.1")
            .await
            .expect("address not at its limit yet");
        assert!(
            limiter.reserve_login("c@x.io", "1.1.1.1").await.is_err(),
            "address at its limit"
        );
        let ok = limiter
            .reserve_login("c@x.io", "3.3.3.3")
            .await
            .expect("other address");
        limiter.succeeded(ok).await;
        let ok = limiter
            .reserve_login("d@x.io", "3.3.3.3")
            .await
            .expect("given back");
        limiter.give_back(ok).await;
    }

    #[tokio::test]
    async fn a_success_clears_its_email_and_gives_its_attempt_back() {
        let limiter = limiter(2, 3);
        let _ = limiter
            .reserve_login("a@x.io", "1.1.1.1")
            .await
            .expect("fails");
        let ok = limiter
            .reserve_login("a@x.io", "1.1.1.1")
            .await
            .expect("succeeds");
        limiter.succeeded(ok).await;
        // The email starts afresh; the address keeps only the real failure.
        let _ = limiter
            .reserve_login("a@x.io", "1.1.1.1")
            .await
            .expect("fails");
        let _ = limiter
            .reserve_login("a@x.io", "1.1.1.1")
            .await
            .expect("fails");
        assert!(limiter.reserve_login("z@x.io", "1.1.1.1").await.is_err());
    }

    #[tokio::test]
    async fn parallel_attempts_never_pass_the_limit() {
        let limiter = Arc::new(limiter(5, 20));
        let tasks: Vec<_> = (0..60)
            .map(|_| {
                let limiter = Arc::clone(&limiter);
                tokio::spawn(
                    async move { limiter.reserve_login("a@x.io", "1.1.1.1").await.is_ok() },
                )
            })
            .collect();
        let mut passed = 0;
        for task in tasks {
            passed += usize::from(task.await.expect("task"));
        }
        assert_eq!(passed, 5);
    }
}
