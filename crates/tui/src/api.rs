//! The HTTP client of the finance API, with timeouts.

use std::time::Duration;

use finance_shared::{
    AuthResponse, Credentials, ErrorBody, ErrorCode, Expense, ExpensePage, ImportResult, ListQuery,
    MockImportRequest, NewExpense, Summary, SummaryQuery, User,
};
use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Why a call failed.
#[derive(Clone, Debug, thiserror::Error)]
pub enum ApiError {
    /// The server answered with an error.
    #[error("{}", .body.message)]
    Refused { status: u16, body: ErrorBody },
    /// The server could not be reached, or did not answer in time.
    #[error("cannot reach the server at {server}: {reason}")]
    Unreachable { server: String, reason: String },
    /// The server answered something that is not the API.
    #[error("unexpected answer from the server: {0}")]
    Protocol(String),
}

impl ApiError {
    /// Whether the token was refused (the session is over).
    pub fn is_unauthorized(&self) -> bool {
        matches!(self, ApiError::Refused { status: 401, .. })
    }
}

/// A successful answer: the parsed value and the exact JSON the server sent.
#[derive(Clone, Debug)]
pub struct Answer<T> {
    pub value: T,
    pub raw: String,
}

/// A client for one server, optionally authenticated.
#[derive(Clone, Debug)]
pub struct Client {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

impl Client {
    pub fn new(base: &str, token: Option<String>) -> Self {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(3))
            .timeout(Duration::from_secs(15))
            .build()
            .unwrap_or_default();
        Client {
            base: base.trim_end_matches('/').to_owned(),
            token,
            http,
        }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    pub fn with_token(&self, token: String) -> Self {
        Client {
            token: Some(token),
            ..self.clone()
        }
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        query: Option<&(impl Serialize + ?Sized)>,
        body: Option<&(impl Serialize + ?Sized)>,
    ) -> Result<Answer<T>, ApiError> {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = &self.token {
            req = req.bearer_auth(token);
        }
        if let Some(query) = query {
            req = req.query(query);
        }
        if let Some(body) = body {
            req = req.json(body);
        }
        let unreachable = |e: reqwest::Error| ApiError::Unreachable {
            server: self.base.clone(),
            reason: if e.is_timeout() {
                "timed out".into()
            } else {
                root_cause(&e)
            },
        };
        let res = req.send().await.map_err(unreachable)?;
        let status = res.status();
        let raw = res.text().await.map_err(unreachable)?;
        if status.is_success() {
            let value = serde_json::from_str(if raw.is_empty() { "null" } else { &raw })
                .map_err(|e| ApiError::Protocol(e.to_string()))?;
            Ok(Answer { value, raw })
        } else {
            let body = serde_json::from_str(&raw).unwrap_or_else(|_| ErrorBody {
                error: if status == StatusCode::UNAUTHORIZED {
                    ErrorCode::Unauthorized
                } else {
                    ErrorCode::Unknown
                },
                message: format!("the server answered {status}"),
                fields: None,
            });
            Err(ApiError::Refused {
                status: status.as_u16(),
                body,
            })
        }
    }

    pub async fn register(
        &self,
        credentials: &Credentials,
    ) -> Result<Answer<AuthResponse>, ApiError> {
        self.call(
            Method::POST,
            "/api/auth/register",
            None::<&()>,
            Some(credentials),
        )
        .await
    }

    pub async fn login(&self, credentials: &Credentials) -> Result<Answer<AuthResponse>, ApiError> {
        self.call(
            Method::POST,
            "/api/auth/login",
            None::<&()>,
            Some(credentials),
        )
        .await
    }

    pub async fn me(&self) -> Result<Answer<User>, ApiError> {
        self.call(Method::GET, "/api/auth/me", None::<&()>, None::<&()>)
            .await
    }

    /// Revokes this client's token on the server.
    pub async fn logout(&self) -> Result<Answer<()>, ApiError> {
        self.call(Method::POST, "/api/auth/logout", None::<&()>, None::<&()>)
            .await
    }

    pub async fn add_expense(&self, expense: &NewExpense) -> Result<Answer<Expense>, ApiError> {
        self.call(Method::POST, "/api/expenses", None::<&()>, Some(expense))
            .await
    }

    pub async fn list(&self, query: &ListQuery) -> Result<Answer<ExpensePage>, ApiError> {
        self.call(Method::GET, "/api/expenses", Some(query), None::<&()>)
            .await
    }

    pub async fn summary(&self, query: &SummaryQuery) -> Result<Answer<Summary>, ApiError> {
        self.call(
            Method::GET,
            "/api/expenses/summary",
            Some(query),
            None::<&()>,
        )
        .await
    }

    pub async fn import_mock(
        &self,
        request: &MockImportRequest,
    ) -> Result<Answer<ImportResult>, ApiError> {
        self.call(
            Method::POST,
            "/api/imports/mock",
            None::<&()>,
            Some(request),
        )
        .await
    }
}

/// The innermost error, which says what actually went wrong ("Connection refused").
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}
