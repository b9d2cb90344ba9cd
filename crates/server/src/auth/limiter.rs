//! Login throttling: failed attempts per email and per client address in a
//! sliding window, in Redis when configured (shared by every instance), in
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
    memory: Mutex<HashMap<String, VecDeque<u64>>>,
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

    fn keys(&self, email: &str, address: &str) -> [(String, u32); 2] {
        [
            (format!("login:email:{email}"), self.limits.per_email),
            (format!("login:addr:{address}"), self.limits.per_address),
        ]
    }

    /// `Some(wait)` when either the email or the address has failed too often.
    pub async fn blocked(&self, email: &str, address: &str) -> Option<Duration> {
        let mut wait = None;
        for (key, limit) in self.keys(email, address) {
            let failures = self.failures(&key).await;
            if failures.len() >= limit as usize {
                // Free again when the oldest failure that keeps it at the limit leaves the window.
                let oldest = failures[failures.len() - limit as usize];
                let free_at = oldest + self.limits.window.as_millis() as u64;
                let this = Duration::from_millis(free_at.saturating_sub(now_ms()));
                wait = Some(wait.map_or(this, |w: Duration| w.max(this)));
            }
        }
        wait
    }

    /// Records a failed attempt against the email and the address.
    pub async fn failed(&self, email: &str, address: &str) {
        for (key, _) in self.keys(email, address) {
            self.record(&key).await;
        }
    }

    /// A successful login clears its email's failures (never another address's).
    pub async fn succeeded(&self, email: &str) {
        let key = format!("login:email:{email}");
        if let Some((manager, prefix, timeout)) = &self.redis {
            let mut conn = manager.clone();
            let cmd = redis::cmd("DEL").arg(format!("{prefix}{key}")).to_owned();
            let _ = tokio::time::timeout(*timeout, cmd.query_async::<()>(&mut conn)).await;
        }
        self.lock().remove(&key);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, VecDeque<u64>>> {
        self.memory.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Timestamps (ms) of the failures within the window, oldest first.
    async fn failures(&self, key: &str) -> Vec<u64> {
        let since = now_ms().saturating_sub(self.limits.window.as_millis() as u64);
        if let Some((manager, prefix, timeout)) = &self.redis {
            let mut conn = manager.clone();
            let full = format!("{prefix}{key}");
            let mut pipe = redis::pipe();
            pipe.atomic()
                .cmd("ZREMRANGEBYSCORE")
                .arg(&full)
                .arg("-inf")
                .arg(format!("({since}"))
                .ignore()
                .cmd("ZRANGE")
                .arg(&full)
                .arg(0)
                .arg(-1)
                .arg("WITHSCORES");
            let answer = tokio::time::timeout(
                *timeout,
                pipe.query_async::<(Vec<(String, f64)>,)>(&mut conn),
            )
            .await;
            if let Ok(Ok((entries,))) = answer {
                return entries.into_iter().map(|(_, score)| score as u64).collect();
            }
            tracing::debug!("login limiter: redis unavailable, counting in memory");
        }
        let mut memory = self.lock();
        let entry = memory.entry(key.to_owned()).or_default();
        while entry.front().is_some_and(|t| *t < since) {
            entry.pop_front();
        }
        entry.iter().copied().collect()
    }

    async fn record(&self, key: &str) {
        let now = now_ms();
        if let Some((manager, prefix, timeout)) = &self.redis {
            let mut conn = manager.clone();
            let full = format!("{prefix}{key}");
            let mut pipe = redis::pipe();
            pipe.atomic()
                .cmd("ZADD")
                .arg(&full)
                .arg(now)
                .arg(uuid::Uuid::new_v4().to_string())
                .ignore()
                .cmd("PEXPIRE")
                .arg(&full)
                .arg(self.limits.window.as_millis() as u64)
                .ignore();
            let answer = tokio::time::timeout(*timeout, pipe.query_async::<()>(&mut conn)).await;
            if let Ok(Ok(())) = answer {
                return;
            }
        }
        let mut memory = self.lock();
        // Bounded: a flood of distinct emails must not grow memory without end.
        if memory.len() > 100_000 {
            let since = now.saturating_sub(self.limits.window.as_millis() as u64);
            memory.retain(|_, times| times.back().is_some_and(|t| *t >= since));
        }
        memory.entry(key.to_owned()).or_default().push_back(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn blocks_after_the_limit_per_email_and_per_address() {
        let limits = LoginLimits {
            per_email: 2,
            per_address: 3,
            window: Duration::from_secs(60),
        };
        let limiter = LoginLimiter::new(limits, None).expect("limiter");
        assert!(limiter.blocked("a@x.io", "1.1.1.1").await.is_none());
        limiter.failed("a@x.io", "1.1.1.1").await;
        limiter.failed("a@x.io", "1.1.1.1").await;
        let wait = limiter
            .blocked("a@x.io", "2.2.2.2")
            .await
            .expect("email blocked everywhere");
        assert!(wait > Duration::from_secs(50) && wait <= Duration::from_secs(60));
        assert!(
            limiter.blocked("b@x.io", "1.1.1.1").await.is_none(),
            "address not at its limit yet"
        );
        limiter.failed("b@x.io", "1.1.1.1").await;
        assert!(
            limiter.blocked("c@x.io", "1.1.1.1").await.is_some(),
            "address at its limit"
        );
        assert!(limiter.blocked("c@x.io", "3.3.3.3").await.is_none());
        limiter.succeeded("a@x.io").await;
        assert!(
            limiter.blocked("a@x.io", "2.2.2.2").await.is_none(),
            "success clears the email"
        );
        assert!(
            limiter.blocked("a@x.io", "1.1.1.1").await.is_some(),
            "but not the address"
        );
    }
}
