//! The HTTP client of the finance API, with timeouts.

use std::time::Duration;

use finance_shared::{
    AuthResponse, CategoryList, CategoryRename, Credentials, ErrorBody, ErrorCode, Expense,
    ExpensePage, ExpenseUpdate, ExportQuery, FileImportResult, ImportJob, ImportResult, ListQuery,
    MockImportRequest, NewExpense, RenameResult, Summary, SummaryQuery, Trend, TrendQuery, User,
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

    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let req = self.http.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(token) => req.bearer_auth(token),
            None => req,
        }
    }

    fn unreachable(&self, e: &reqwest::Error) -> ApiError {
        ApiError::Unreachable {
            server: self.base.clone(),
            reason: if e.is_timeout() {
                "timed out".into()
            } else {
                root_cause(e)
            },
        }
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        query: Option<&(impl Serialize + ?Sized)>,
        body: Option<&(impl Serialize + ?Sized)>,
    ) -> Result<Answer<T>, ApiError> {
        let mut req = self.request(method, path);
        if let Some(query) = query {
            req = req.query(query);
        }
        if let Some(body) = body {
            req = req.json(body);
        }
        self.answer(req).await
    }

    async fn answer<T: DeserializeOwned>(
        &self,
        req: reqwest::RequestBuilder,
    ) -> Result<Answer<T>, ApiError> {
        let res = req.send().await.map_err(|e| self.unreachable(&e))?;
        let status = res.status();
        let raw = res.text().await.map_err(|e| self.unreachable(&e))?;
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

impl Client {
    pub async fn update_expense(
        &self,
        id: &str,
        update: &ExpenseUpdate,
    ) -> Result<Answer<Expense>, ApiError> {
        self.call(
            Method::PATCH,
            &format!("/api/expenses/{id}"),
            None::<&()>,
            Some(update),
        )
        .await
    }

    pub async fn delete_expense(&self, id: &str) -> Result<Answer<()>, ApiError> {
        self.call(
            Method::DELETE,
            &format!("/api/expenses/{id}"),
            None::<&()>,
            None::<&()>,
        )
        .await
    }

    pub async fn categories(&self) -> Result<Answer<CategoryList>, ApiError> {
        self.call(Method::GET, "/api/categories", None::<&()>, None::<&()>)
            .await
    }

    pub async fn rename_category(
        &self,
        rename: &CategoryRename,
    ) -> Result<Answer<RenameResult>, ApiError> {
        self.call(
            Method::POST,
            "/api/categories/rename",
            None::<&()>,
            Some(rename),
        )
        .await
    }

    pub async fn trend(&self, query: &TrendQuery) -> Result<Answer<Trend>, ApiError> {
        self.call(Method::GET, "/api/expenses/trend", Some(query), None::<&()>)
            .await
    }

    /// Sends a bank file to `/api/imports/{kind}` with its options as the query.
    pub async fn import_file(
        &self,
        kind: &str,
        query: &[(String, String)],
        content_type: &str,
        bytes: Vec<u8>,
    ) -> Result<Answer<FileImportResult>, ApiError> {
        self.upload(kind, query, content_type, bytes).await
    }

    /// Sends a bank file to be imported in the background: the queued job.
    pub async fn import_file_in_background(
        &self,
        kind: &str,
        query: &[(String, String)],
        content_type: &str,
        bytes: Vec<u8>,
    ) -> Result<Answer<ImportJob>, ApiError> {
        let mut query = query.to_vec();
        query.push(("async".into(), "true".into()));
        self.upload(kind, &query, content_type, bytes).await
    }

    /// POSTs a bank file to `/api/imports/{kind}`, with the transfer's deadline.
    async fn upload<T: DeserializeOwned>(
        &self,
        kind: &str,
        query: &[(String, String)],
        content_type: &str,
        bytes: Vec<u8>,
    ) -> Result<Answer<T>, ApiError> {
        let req = self
            .request(Method::POST, &format!("/api/imports/{kind}"))
            .query(query)
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .timeout(TRANSFER_TIMEOUT)
            .body(bytes);
        self.answer(req).await
    }

    /// Where a background import is, from its `status_url`.
    pub async fn import_job(&self, status_url: &str) -> Result<Answer<ImportJob>, ApiError> {
        self.call(Method::GET, status_url, None::<&()>, None::<&()>)
            .await
    }

    /// Streams the export into `out` as it arrives; the number of bytes written.
    pub async fn export(
        &self,
        query: &ExportQuery,
        out: &mut (dyn std::io::Write + Send),
    ) -> Result<u64, ApiError> {
        let res = self
            .request(Method::GET, "/api/expenses/export")
            .query(query)
            .timeout(TRANSFER_TIMEOUT)
            .send()
            .await
            .map_err(|e| self.unreachable(&e))?;
        if !res.status().is_success() {
            let status = res.status().as_u16();
            let raw = res.text().await.unwrap_or_default();
            let body = serde_json::from_str(&raw).unwrap_or_else(|_| ErrorBody {
                error: ErrorCode::Unknown,
                message: format!("the server answered {status}"),
                fields: None,
            });
            return Err(ApiError::Refused { status, body });
        }
        let mut written = 0u64;
        let mut stream = res.bytes_stream();
        while let Some(chunk) = futures::StreamExt::next(&mut stream).await {
            let chunk = chunk.map_err(|e| {
                ApiError::Protocol(format!("the export was cut off: {}", root_cause(&e)))
            })?;
            match out.write_all(&chunk) {
                Ok(()) => {}
                // The reader has had enough (`finance export | head`).
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(written),
                Err(e) => {
                    return Err(ApiError::Protocol(format!("cannot write the export: {e}")));
                }
            }
            written += chunk.len() as u64;
        }
        Ok(written)
    }
}

/// How long a file upload or an export may take as a whole.
const TRANSFER_TIMEOUT: Duration = Duration::from_secs(600);

/// The innermost error, which says what actually went wrong ("Connection refused").
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}
