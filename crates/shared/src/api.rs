//! Request and response bodies of `API.md`.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::money::Money;

/// Default page size of `GET /api/expenses`.
pub const LIST_LIMIT_DEFAULT: u32 = 50;
/// Largest page size of `GET /api/expenses`.
pub const LIST_LIMIT_MAX: u32 = 200;
/// Default number of transactions of a mock import.
pub const IMPORT_COUNT_DEFAULT: u32 = 20;
/// Largest number of transactions of one mock import.
pub const IMPORT_COUNT_MAX: u32 = 1000;

/// Body of `POST /api/auth/register` and `POST /api/auth/login`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Credentials {
    /// Trimmed and lower-cased by the server; one `@` and a dot in the domain.
    #[cfg_attr(
        feature = "openapi",
        schema(
            max_length = 254,
            example = "ann@example.com",
            pattern = r"^[^@\s\x00-\x1f\x7f-\x9f]+@[^@.\s\x00-\x1f\x7f-\x9f]+(\.[^@.\s\x00-\x1f\x7f-\x9f]+)+$"
        )
    )]
    pub email: String,
    #[cfg_attr(
        feature = "openapi",
        schema(min_length = 8, max_length = 128, example = "correct horse")
    )]
    pub password: String,
}

/// Body of `POST /api/auth/password`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PasswordChange {
    pub current_password: String,
    #[cfg_attr(feature = "openapi", schema(min_length = 8, max_length = 128))]
    pub new_password: String,
}

/// A user as the API shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct User {
    pub id: Uuid,
    pub email: String,
    #[serde(with = "crate::timefmt")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime, example = "2026-11-24T07:04:39Z"))]
    pub created_at: DateTime<Utc>,
}

/// Answer of register and login.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuthResponse {
    pub access_token: String,
    /// Always `"Bearer"`.
    #[cfg_attr(feature = "openapi", schema(example = "Bearer"))]
    pub token_type: String,
    /// Seconds until the token expires.
    pub expires_in: u64,
    pub user: User,
}

/// Body of `POST /api/expenses`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewExpense {
    /// Trimmed; 1 to 64 characters; grouped case-insensitively.
    #[cfg_attr(
        feature = "openapi",
        schema(
            min_length = 1,
            max_length = 64,
            example = "Groceries",
            pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
        )
    )]
    pub category: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "openapi",
        schema(
            max_length = 500,
            example = "Weekly shop",
            pattern = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]*$"
        )
    )]
    pub description: Option<String>,
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::money::amount_input_schema))]
    pub amount: Money,
    /// Defaults to today (UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = Date, example = "2026-11-24"))]
    pub spent_on: Option<NaiveDate>,
}

/// An expense as the API shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Expense {
    pub id: Uuid,
    pub category: String,
    pub description: Option<String>,
    pub amount: Money,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Date, example = "2026-11-24"))]
    pub spent_on: NaiveDate,
    #[serde(with = "crate::timefmt")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime, example = "2026-11-24T07:04:39Z"))]
    pub created_at: DateTime<Utc>,
    /// `"manual"`, or the importer that made it (`"mock_bank"`).
    pub source: String,
}

/// One page of `GET /api/expenses`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ExpensePage {
    pub expenses: Vec<Expense>,
    /// Pass as `cursor` to get the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// Query of `GET /api/expenses`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams), into_params(parameter_in = Query))]
pub struct ListQuery {
    /// Page size, 1 to 200 (default 50).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", param(minimum = 1, maximum = 200))]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    /// Only this category (case-insensitive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// First day, inclusive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", param(value_type = Option<String>, format = Date))]
    pub from: Option<NaiveDate>,
    /// Last day, inclusive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", param(value_type = Option<String>, format = Date))]
    pub to: Option<NaiveDate>,
}

/// Query of `GET /api/expenses/summary`: an inclusive date range, both ends optional.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams), into_params(parameter_in = Query))]
pub struct SummaryQuery {
    /// First day, inclusive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", param(value_type = Option<String>, format = Date))]
    pub from: Option<NaiveDate>,
    /// Last day, inclusive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", param(value_type = Option<String>, format = Date))]
    pub to: Option<NaiveDate>,
}

/// Total and count of one category.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CategoryTotal {
    pub category: String,
    pub total: Money,
    pub count: u64,
}

/// Answer of `GET /api/expenses/summary`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Summary {
    pub total: Money,
    pub count: u64,
    /// Largest total first.
    pub categories: Vec<CategoryTotal>,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = Date))]
    pub from: Option<NaiveDate>,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = Date))]
    pub to: Option<NaiveDate>,
}

/// Body of `POST /api/imports/mock`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MockImportRequest {
    /// Transactions to fetch, 1 to 1000 (default 20).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 1000))]
    pub count: Option<u32>,
    /// The same seed yields the same transactions (random when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(minimum = -9223372036854775808i64, maximum = 9223372036854775807i64))]
    pub seed: Option<i64>,
}

/// Answer of an import.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ImportResult {
    pub imported: u64,
    pub skipped: u64,
    /// The expenses this import created.
    pub expenses: Vec<Expense>,
}

/// Answer of `GET /healthz`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Health {
    pub status: String,
}

/// Answer of `GET /readyz`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Readiness {
    /// `"ready"` or `"unavailable"`.
    pub status: String,
    /// `"up"` or `"down"`.
    pub database: String,
    /// `"memory"`, `"up"` or `"down"` (a down Redis degrades, it does not make the instance unready).
    pub cache: String,
}
