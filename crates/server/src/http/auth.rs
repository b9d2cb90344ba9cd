//! `/api/auth/*`: register, login, me.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use finance_shared::{AuthResponse, Credentials, ErrorBody, PasswordChange, User, validate};

use super::client::ClientAddr;
use super::error::ApiError;
use super::extract::{AuthUser, JsonObject};
use crate::state::AppState;
use crate::store::{StoreError, Unique};

/// The one answer for an unknown email and a wrong password.
const BAD_CREDENTIALS: &str = "email or password is incorrect";

fn token_response(state: &AppState, user: User, generation: i64) -> Result<AuthResponse, ApiError> {
    let access_token = state
        .tokens
        .issue(user.id, generation)
        .map_err(|e| ApiError::Internal(e.into()))?;
    Ok(AuthResponse {
        access_token,
        token_type: "Bearer".to_owned(),
        expires_in: state.tokens.lifetime_secs(),
        user,
    })
}

/// `POST /api/auth/register`
#[utoipa::path(
    post, path = "/api/auth/register", tag = "auth",
    request_body = Credentials,
    responses(
        (status = 201, description = "Account created; a token for it", body = AuthResponse),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 409, description = "The email is taken (in any case)", body = ErrorBody),
        (status = 413, description = "Body over 1 MiB", body = ErrorBody),
        (status = 415, description = "Not application/json", body = ErrorBody),
        (status = 422, description = "Invalid email or password", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn register(
    State(state): State<AppState>,
    JsonObject(mut body): JsonObject,
) -> Result<(StatusCode, Json<AuthResponse>), ApiError> {
    let email: Option<String> = body.required("email", "a string");
    let email = body.check("email", email, |e| validate::email(&e));
    let password: Option<String> = body.required("password", "a string");
    let password = body.check("password", password, |p| validate::password(&p).map(|()| p));
    body.finish()?;
    let (Some(email), Some(password)) = (email, password) else {
        return Err(ApiError::BadRequest(
            "email and password are required".into(),
        ));
    };
    let hash = state.passwords.hash(password).await?;
    let user = match state.store.create_user(&email, &hash).await {
        Err(StoreError::Conflict(Unique::Email)) => {
            return Err(ApiError::Conflict(
                "an account with this email already exists",
            ));
        }
        other => other?,
    };
    tracing::info!(user = %user.id, "user registered");
    Ok((StatusCode::CREATED, Json(token_response(&state, user, 0)?)))
}

/// `POST /api/auth/login`
#[utoipa::path(
    post, path = "/api/auth/login", tag = "auth",
    request_body = Credentials,
    responses(
        (status = 200, description = "Logged in", body = AuthResponse),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "Unknown email or wrong password (one answer for both)", body = ErrorBody),
        (status = 429, description = "Too many failed attempts for this email or from this address", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds until another attempt is allowed"))),
        (status = 413, description = "Body over 1 MiB", body = ErrorBody),
        (status = 415, description = "Not application/json", body = ErrorBody),
        (status = 422, description = "Missing or mistyped fields", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn login(
    State(state): State<AppState>,
    ClientAddr(address): ClientAddr,
    JsonObject(mut body): JsonObject,
) -> Result<Json<AuthResponse>, ApiError> {
    let email: Option<String> = body.required("email", "a string");
    let password: Option<String> = body.required("password", "a string");
    body.finish()?;
    let (Some(email), Some(password)) = (email, password) else {
        return Err(ApiError::BadRequest(
            "email and password are required".into(),
        ));
    };
    let email = email.trim().to_lowercase();
    let address = address.to_string();
    // Counted before the hash is checked, so a parallel burst checks at most the limit.
    let attempt = state
        .limiter
        .reserve_login(&email, &address)
        .await
        .map_err(ApiError::RateLimited)?;
    let checked = async {
        // An address registration would refuse cannot have an account: no lookup.
        let credentials = match validate::email(&email) {
            Ok(email) => state.store.user_credentials(&email).await?,
            Err(_) => None,
        };
        let hash = credentials.as_ref().map(|c| c.password_hash.clone());
        // An unknown email is checked against a dummy hash: same work, same time.
        let matches = state.passwords.verify(password, hash).await?;
        Ok::<_, ApiError>(credentials.filter(|_| matches))
    }
    .await;
    match checked {
        Ok(Some(c)) => {
            state.limiter.succeeded(attempt).await;
            Ok(Json(token_response(&state, c.user, c.token_generation)?))
        }
        // The reserved attempt stays counted as the failure.
        Ok(None) => Err(ApiError::Unauthorized(BAD_CREDENTIALS)),
        Err(e) => {
            state.limiter.give_back(attempt).await;
            Err(e)
        }
    }
}

/// `POST /api/auth/logout`
#[utoipa::path(
    post, path = "/api/auth/logout", tag = "auth",
    security(("bearer" = [])),
    responses(
        (status = 204, description = "The presented token is refused from now on, on every instance"),
        (status = 401, description = "Missing, malformed, tampered, expired or revoked token", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn logout(State(state): State<AppState>, auth: AuthUser) -> Result<StatusCode, ApiError> {
    state
        .store
        .revoke_token(auth.id, auth.jti, auth.expires_at)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/auth/password`
#[utoipa::path(
    post, path = "/api/auth/password", tag = "auth",
    security(("bearer" = [])),
    request_body = PasswordChange,
    responses(
        (status = 204, description = "Changed; every token issued before is refused from now on"),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "Invalid token, or current_password is wrong", body = ErrorBody),
        (status = 413, description = "Body over 1 MiB", body = ErrorBody),
        (status = 415, description = "Not application/json", body = ErrorBody),
        (status = 422, description = "new_password is invalid", body = ErrorBody),
        (status = 429, description = "Too many wrong current passwords for this user or from this address", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds until another attempt is allowed"))),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn change_password(
    State(state): State<AppState>,
    ClientAddr(address): ClientAddr,
    auth: AuthUser,
    JsonObject(mut body): JsonObject,
) -> Result<StatusCode, ApiError> {
    let current: Option<String> = body.required("current_password", "a string");
    let new: Option<String> = body.required("new_password", "a string");
    let new = body.check("new_password", new, |p| validate::password(&p).map(|()| p));
    body.finish()?;
    let (Some(current), Some(new)) = (current, new) else {
        return Err(ApiError::BadRequest(
            "current_password and new_password are required".into(),
        ));
    };
    // Guesses at the current password count like failed logins, so a leaked
    // token cannot be used to find it.
    let attempt = state
        .limiter
        .reserve_password_check(auth.id, &address.to_string())
        .await
        .map_err(ApiError::RateLimited)?;
    let checked =
        async {
            let credentials = state.store.user_credentials_by_id(auth.id).await?.ok_or(
                ApiError::Unauthorized("access token is invalid, expired or revoked"),
            )?;
            let matches = state
                .passwords
                .verify(current, Some(credentials.password_hash))
                .await?;
            Ok::<_, ApiError>(matches)
        }
        .await;
    match checked {
        Ok(true) => state.limiter.succeeded(attempt).await,
        Ok(false) => return Err(ApiError::Unauthorized("current password is incorrect")),
        Err(e) => {
            state.limiter.give_back(attempt).await;
            return Err(e);
        }
    }
    let hash = state.passwords.hash(new).await?;
    state.store.change_password(auth.id, &hash).await?;
    tracing::info!(user = %auth.id, "password changed; earlier tokens revoked");
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/auth/me`
#[utoipa::path(
    get, path = "/api/auth/me", tag = "auth",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The token's user", body = User),
        (status = 401, description = "Missing, malformed, tampered or expired token", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn me(State(state): State<AppState>, auth: AuthUser) -> Result<Json<User>, ApiError> {
    state
        .store
        .user(auth.id)
        .await?
        .map(Json)
        .ok_or(ApiError::Unauthorized(
            "access token is invalid, expired or revoked",
        ))
}
