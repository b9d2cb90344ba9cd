//! JWT access tokens: HS256 only, with `sub`, `iat`, `exp`, `iss`, `aud`,
//! a unique `jti` (what logout revokes) and `gen`, the user's token generation
//! (a password change moves to the next one, refusing every older token).

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
    /// Always [`ISSUER`].
    pub iss: String,
    /// Always [`AUDIENCE`].
    pub aud: String,
    /// This token's id.
    pub jti: Uuid,
    /// The user's token generation when the token was issued.
    #[serde(rename = "gen")]
    pub generation: i64,
}

/// Who issues access tokens.
pub const ISSUER: &str = "finance-server";
/// Who accepts them.
pub const AUDIENCE: &str = "finance-api";

/// What a valid token grants: the claims a request needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Verified {
    pub sub: Uuid,
    pub jti: Uuid,
    pub exp: i64,
    pub generation: i64,
}

/// Seconds a token is still accepted past its expiry (clock skew).
const LEEWAY_SECS: i64 = 5;
/// Verified tokens remembered at most.
const VERIFIED_CAPACITY: u64 = 10_000;
/// A verified token unused this long is forgotten (checked again if it comes back).
const VERIFIED_IDLE: Duration = Duration::from_secs(600);

/// Why a token was refused.
#[derive(Debug, thiserror::Error)]
#[error("invalid token: {0}")]
pub struct TokenError(#[from] jsonwebtoken::errors::Error);

/// Issues and checks access tokens with one secret. Cheap to clone (every
/// request clones the server's state).
#[derive(Clone)]
pub struct Tokens(std::sync::Arc<Keys>);

struct Keys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    lifetime: Duration,
    /// Tokens that passed the check, by their text. A token comes with every
    /// request, and checking it again (two base64 decodings, two JSON parses
    /// and an HMAC) costs more than the rest of serving a cached summary. Only
    /// the exact text that passed finds its entry, and the expiry is compared
    /// with the clock on every use.
    verified: moka::sync::Cache<Box<str>, Verified>,
}

impl Tokens {
    /// Tokens signed with `secret` (at least 32 bytes), valid for `lifetime`.
    pub fn new(secret: &[u8], lifetime: Duration) -> Self {
        // Pinned to HS256: a token whose header names another algorithm
        // (including "none") is refused before its signature is looked at.
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_required_spec_claims(&["exp", "sub", "iat", "iss", "aud"]);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.leeway = LEEWAY_SECS.unsigned_abs();
        Tokens(std::sync::Arc::new(Keys {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            lifetime,
            verified: moka::sync::Cache::builder()
                .max_capacity(VERIFIED_CAPACITY)
                .time_to_idle(VERIFIED_IDLE)
                .build(),
        }))
    }

    /// Seconds a new token is valid for.
    pub fn lifetime_secs(&self) -> u64 {
        self.0.lifetime.as_secs()
    }

    /// A new token for the user at their current token generation.
    pub fn issue(&self, user_id: Uuid, generation: i64) -> Result<String, TokenError> {
        let now = Utc::now().timestamp();
        let claims = Claims {
            sub: user_id,
            iat: now,
            exp: now.saturating_add(i64::try_from(self.0.lifetime.as_secs()).unwrap_or(i64::MAX)),
            iss: ISSUER.to_owned(),
            aud: AUDIENCE.to_owned(),
            jti: Uuid::new_v4(),
            generation,
        };
        Ok(jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &self.0.encoding,
        )?)
    }

    /// The claims of a valid, unexpired token signed with our secret.
    pub fn verify(&self, token: &str) -> Result<Verified, TokenError> {
        self.verify_at(token, Utc::now().timestamp())
    }

    /// [`Tokens::verify`] with the clock at `now` for a token checked before
    /// (a new token is checked against the system clock).
    fn verify_at(&self, token: &str, now: i64) -> Result<Verified, TokenError> {
        if let Some(known) = self.0.verified.get(token) {
            if known.exp < now - LEEWAY_SECS {
                self.0.verified.invalidate(token);
                return Err(TokenError(
                    jsonwebtoken::errors::ErrorKind::ExpiredSignature.into(),
                ));
            }
            return Ok(known);
        }
        let claims =
            jsonwebtoken::decode::<Claims>(token, &self.0.decoding, &self.0.validation)?.claims;
        let verified = Verified {
            sub: claims.sub,
            jti: claims.jti,
            exp: claims.exp,
            generation: claims.generation,
        };
        self.0.verified.insert(token.into(), verified);
        Ok(verified)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn base64_url(s: &str) -> String {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
    }

    #[test]
    fn issued_tokens_verify() -> Result<(), TokenError> {
        let tokens = Tokens::new(SECRET, Duration::from_secs(60));
        let id = Uuid::now_v7();
        assert_eq!(tokens.verify(&tokens.issue(id, 0)?)?.sub, id);
        Ok(())
    }

    #[test]
    fn a_remembered_token_still_expires_and_only_its_exact_text_is_remembered()
    -> Result<(), TokenError> {
        let tokens = Tokens::new(SECRET, Duration::from_secs(60));
        let token = tokens.issue(Uuid::now_v7(), 3)?;
        let first = tokens.verify(&token)?;
        assert_eq!(tokens.verify(&token)?, first);
        assert_eq!(first.generation, 3);

        let mut tampered = token.clone();
        tampered.pop();
        tampered.push(if token.ends_with('A') { 'B' } else { 'A' });
        assert!(tokens.verify(&tampered).is_err());
        assert!(tokens.verify(&format!("{token} ")).is_err());

        let now = Utc::now().timestamp();
        assert!(tokens.verify_at(&token, now + 60 + LEEWAY_SECS - 1).is_ok());
        assert!(
            tokens
                .verify_at(&token, now + 60 + LEEWAY_SECS + 2)
                .is_err(),
            "refused once expired, though checked before"
        );
        Ok(())
    }

    #[test]
    fn tampered_expired_and_foreign_tokens_are_refused() -> Result<(), TokenError> {
        let tokens = Tokens::new(SECRET, Duration::from_secs(60));
        let token = tokens.issue(Uuid::now_v7(), 0)?;
        let mut tampered = token.clone();
        tampered.pop();
        tampered.push(if token.ends_with('A') { 'B' } else { 'A' });
        assert!(tokens.verify(&tampered).is_err());

        let other = Tokens::new(b"another secret, also 32 bytes ok", Duration::from_secs(60));
        assert!(tokens.verify(&other.issue(Uuid::now_v7(), 0)?).is_err());

        let claims = |iat: i64, exp: i64, iss: &str, aud: &str| Claims {
            sub: Uuid::now_v7(),
            iat,
            exp,
            iss: iss.to_owned(),
            aud: aud.to_owned(),
            jti: Uuid::new_v4(),
            generation: 0,
        };
        let now = Utc::now().timestamp();
        let expired = claims(1, 2, ISSUER, AUDIENCE);
        let expired = jsonwebtoken::encode(
            &Header::default(),
            &expired,
            &EncodingKey::from_secret(SECRET),
        )?;
        assert!(tokens.verify(&expired).is_err());

        let hs512 = jsonwebtoken::encode(
            &Header::new(Algorithm::HS512),
            &claims(now, now + 60, ISSUER, AUDIENCE),
            &EncodingKey::from_secret(SECRET),
        )?;
        assert!(tokens.verify(&hs512).is_err());

        for (iss, aud) in [("someone-else", AUDIENCE), (ISSUER, "another-api")] {
            let foreign = jsonwebtoken::encode(
                &Header::new(Algorithm::HS256),
                &claims(now, now + 60, iss, aud),
                &EncodingKey::from_secret(SECRET),
            )?;
            assert!(
                tokens.verify(&foreign).is_err(),
                "iss {iss} aud {aud} refused"
            );
        }
        let unsigned = format!(
            "{}.{}.",
            base64_url(r#"{"alg":"none","typ":"JWT"}"#),
            base64_url(
                &serde_json::to_string(&claims(now, now + 60, ISSUER, AUDIENCE))
                    .unwrap_or_default()
            )
        );
        assert!(tokens.verify(&unsigned).is_err(), "alg none refused");
        Ok(())
    }
}
