//! Argon2id password hashes (PHC strings), computed off the async runtime.

use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Mutex};

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

/// Why hashing or verifying failed (never "wrong password": that is `Ok(false)`).
#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("password hashing failed: {0}")]
    Hash(String),
    #[error("password worker failed")]
    Worker,
}

/// The niceness of the hashing threads: under a full CPU, request handling
/// (niceness 0) gets about ten times their share.
#[cfg(target_os = "linux")]
const HASHING_NICENESS: i32 = 10;

type Job = Box<dyn FnOnce() + Send>;

/// Hashes and verifies passwords on threads of its own, a bounded number at
/// a time. The threads run at a lower priority than the rest of the server:
/// a flood of logins then queues behind itself instead of slowing every other
/// request, and on an idle machine a hash takes as long as ever.
#[derive(Clone)]
pub struct Passwords {
    /// Each hash takes ~19 MiB and tens of milliseconds of one core; the
    /// number of threads keeps a flood of logins from taking every core and
    /// all the memory.
    jobs: Sender<Job>,
    /// A hash of a random password, verified when the email is unknown so an
    /// unknown email costs the same time as a wrong password.
    dummy_hash: Arc<String>,
}

/// OWASP's argon2id parameters: 19 MiB, 2 iterations, 1 lane.
fn argon2() -> Argon2<'static> {
    let params = Params::new(19 * 1024, 2, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

fn hash_blocking(password: &str) -> Result<String, PasswordError> {
    let salt = SaltString::generate(&mut OsRng);
    argon2()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| PasswordError::Hash(e.to_string()))
}

fn verify_blocking(password: &str, phc: &str) -> Result<bool, PasswordError> {
    let parsed = PasswordHash::new(phc).map_err(|e| PasswordError::Hash(e.to_string()))?;
    match argon2().verify_password(password.as_bytes(), &parsed) {
        Ok(()) => Ok(true),
        Err(argon2::password_hash::Error::Password) => Ok(false),
        Err(e) => Err(PasswordError::Hash(e.to_string())),
    }
}

#[cfg(target_os = "linux")]
fn lower_priority() {
    let thread = rustix::thread::gettid();
    if let Err(e) = rustix::process::setpriority_process(Some(thread), HASHING_NICENESS) {
        tracing::warn!(error = %e, "cannot lower the priority of a password-hashing thread");
    }
}

#[cfg(not(target_os = "linux"))]
fn lower_priority() {}

/// A hashing thread: runs jobs until every `Passwords` is gone.
fn work(queue: &Mutex<Receiver<Job>>) {
    lower_priority();
    loop {
        let job = match queue.lock() {
            Ok(queue) => queue.recv(),
            Err(_) => return,
        };
        match job {
            // A panicking hash drops its reply (the caller gets `Worker`);
            // the thread lives on for the next.
            Ok(job) => drop(std::panic::catch_unwind(std::panic::AssertUnwindSafe(job))),
            Err(_) => return,
        }
    }
}

impl Passwords {
    /// At most `concurrency` hashes run at once.
    pub fn new(concurrency: usize) -> Result<Self, PasswordError> {
        let (jobs, queue) = std::sync::mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        for n in 0..concurrency.max(1) {
            let queue = Arc::clone(&queue);
            std::thread::Builder::new()
                .name(format!("password-{n}"))
                .spawn(move || work(&queue))
                .map_err(|e| PasswordError::Hash(format!("cannot start a hashing thread: {e}")))?;
        }
        let dummy: String = uuid::Uuid::new_v4().to_string();
        Ok(Passwords {
            jobs,
            dummy_hash: Arc::new(hash_blocking(&dummy)?),
        })
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T, PasswordError> + Send + 'static,
    ) -> Result<T, PasswordError> {
        let in_flight = metrics::gauge!("password_hashes_in_flight");
        in_flight.increment(1.0);
        let (reply, result) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            // The request gave up (its client left) while the job queued.
            if !reply.is_closed() {
                let _ = reply.send(work());
            }
        });
        let result = match self.jobs.send(job) {
            Ok(()) => result.await.unwrap_or(Err(PasswordError::Worker)),
            Err(_) => Err(PasswordError::Worker),
        };
        in_flight.decrement(1.0);
        result
    }

    /// A PHC string for a new password.
    pub async fn hash(&self, password: String) -> Result<String, PasswordError> {
        self.run(move || hash_blocking(&password)).await
    }

    /// Whether the password matches the hash; `None` stands for an unknown
    /// user and is checked against the dummy hash, always answering `false`.
    pub async fn verify(
        &self,
        password: String,
        phc: Option<String>,
    ) -> Result<bool, PasswordError> {
        let known = phc.is_some();
        let phc = phc.unwrap_or_else(|| self.dummy_hash.as_str().to_owned());
        let matches = self.run(move || verify_blocking(&password, &phc)).await?;
        Ok(known && matches)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hash_then_verify() -> Result<(), PasswordError> {
        let passwords = Passwords::new(2)?;
        let phc = passwords.hash("correct horse".into()).await?;
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(
            passwords
                .verify("correct horse".into(), Some(phc.clone()))
                .await?
        );
        assert!(!passwords.verify("wrong horse".into(), Some(phc)).await?);
        assert!(!passwords.verify("anything".into(), None).await?);
        Ok(())
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn hashes_run_below_the_servers_priority() -> Result<(), PasswordError> {
        let passwords = Passwords::new(2)?;
        let own = rustix::process::getpriority_process(None).map_err(|_| PasswordError::Worker)?;
        let hashing = passwords
            .run(|| {
                rustix::process::getpriority_process(Some(rustix::thread::gettid()))
                    .map_err(|_| PasswordError::Worker)
            })
            .await?;
        assert_eq!(hashing, own.max(HASHING_NICENESS));
        // The requesting thread keeps its own.
        assert_eq!(
            rustix::process::getpriority_process(Some(rustix::thread::gettid())).ok(),
            Some(own)
        );
        Ok(())
    }
}
