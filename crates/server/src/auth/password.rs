//! Argon2id password hashes (PHC strings), computed off the async runtime.

use std::sync::Arc;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::Semaphore;

/// Why hashing or verifying failed (never "wrong password": that is `Ok(false)`).
#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("password hashing failed: {0}")]
    Hash(String),
    #[error("password worker failed: {0}")]
    Join(#[from] tokio::task::JoinError),
    #[error("password hashing shut down")]
    Closed,
}

/// Hashes and verifies passwords on the blocking pool, a bounded number at a time.
#[derive(Clone)]
pub struct Passwords {
    /// Each hash takes ~19 MiB and tens of milliseconds of one core; the bound
    /// keeps a flood of logins from taking every core and all the memory.
    permits: Arc<Semaphore>,
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

impl Passwords {
    /// At most `concurrency` hashes run at once.
    pub fn new(concurrency: usize) -> Result<Self, PasswordError> {
        let dummy: String = uuid::Uuid::new_v4().to_string();
        Ok(Passwords {
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            dummy_hash: Arc::new(hash_blocking(&dummy)?),
        })
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T, PasswordError> + Send + 'static,
    ) -> Result<T, PasswordError> {
        let in_flight = metrics::gauge!("password_hashes_in_flight");
        in_flight.increment(1.0);
        let result = async {
            let _permit = self
                .permits
                .acquire()
                .await
                .map_err(|_| PasswordError::Closed)?;
            tokio::task::spawn_blocking(work).await?
        }
        .await;
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
}
