//! JWT access tokens: HS256 only, with `sub`, `iat` and `exp`.

use std::time::Duration;

use chrono::Utc;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// What an access token says.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Claims {
    /// The user's id.
    pub sub: Uuid,
    /// Issued at, seconds since the Unix epoch.
    pub iat: i64,
    /// Expires at, seconds since the Unix epoch.
    pub exp: i64,
}

/// Why a token was refused.
#[derive(Debug, thiserror::Error)]
#[error("invalid token: {0}")]
pub struct TokenError(#[from] jsonwebtoken::errors::Error);

/// Issues and checks access tokens with one secret.
#[derive(Clone)]
pub struct Tokens {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    lifetime: Duration,
}

impl Tokens {
    /// Tokens signed with `secret` (at least 32 bytes), valid for `lifetime`.
    pub fn new(secret: &[u8], lifetime: Duration) -> Self {
        // Pinned to HS256: a token whose header names another algorithm
        // (including "none") is refused before its signature is looked at.
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_required_spec_claims(&["exp", "sub", "iat"]);
        validation.leeway = 5;
        Tokens {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            lifetime,
        }
    }

    /// Seconds a new token is valid for.
    pub fn lifetime_secs(&self) -> u64 {
        self.lifetime.as_secs()
    }

    /// A new token for the user.
    pub fn issue(&self, user_id: Uuid) -> Result<String, TokenError> {
        let now = Utc::now().timestamp();
        let claims = Claims {
            sub: user_id,
            iat: now,
            exp: now.saturating_add(i64::try_from(self.lifetime.as_secs()).unwrap_or(i64::MAX)),
        };
        Ok(jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &self.encoding,
        )?)
    }

    /// The claims of a valid, unexpired token signed with our secret.
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        Ok(jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)?.claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    #[test]
    fn issued_tokens_verify() -> Result<(), TokenError> {
        let tokens = Tokens::new(SECRET, Duration::from_secs(60));
        let id = Uuid::now_v7();
        assert_eq!(tokens.verify(&tokens.issue(id)?)?.sub, id);
        Ok(())
    }

    #[test]
    fn tampered_expired_and_foreign_tokens_are_refused() -> Result<(), TokenError> {
        let tokens = Tokens::new(SECRET, Duration::from_secs(60));
        let token = tokens.issue(Uuid::now_v7())?;
        let mut tampered = token.clone();
        tampered.pop();
        tampered.push(if token.ends_with('A') { 'B' } else { 'A' });
        assert!(tokens.verify(&tampered).is_err());

        let other = Tokens::new(b"another secret, also 32 bytes ok", Duration::from_secs(60));
        assert!(tokens.verify(&other.issue(Uuid::now_v7())?).is_err());

        let expired = Claims {
            sub: Uuid::now_v7(),
            iat: 1,
            exp: 2,
        };
        let expired = jsonwebtoken::encode(
            &Header::default(),
            &expired,
            &EncodingKey::from_secret(SECRET),
        )?;
        assert!(tokens.verify(&expired).is_err());

        let hs512 = jsonwebtoken::encode(
            &Header::new(Algorithm::HS512),
            &Claims {
                sub: Uuid::now_v7(),
                iat: Utc::now().timestamp(),
                exp: Utc::now().timestamp() + 60,
            },
            &EncodingKey::from_secret(SECRET),
        )?;
        assert!(tokens.verify(&hs512).is_err());
        Ok(())
    }
}
