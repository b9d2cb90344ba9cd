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
            pattern = r"^[^\x00-\x1f\x7f-\x9f\u00ad\u061c\u180e\u200b\u200c\u200e\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]*[^\s\x00-\x1f\x7f-\x9f\u00ad\u061c\u180e\u200b\u200c\u200e\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff][^\x00-\x1f\x7f-\x9f\u00ad\u061c\u180e\u200b\u200c\u200e\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]*$"
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
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = Date, pattern = r"^(19[0-9]{2}|2[0-9]{3})-[0-9]{2}-[0-9]{2}$", example = "2026-11-24"))]
    pub spent_on: Option<NaiveDate>,
}

/// Body of `PATCH /api/expenses/{id}`: the fields to change, validated as on
/// create; absent fields stay as they are, a null description clears it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ExpenseUpdate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "openapi",
        schema(
            nullable = false,
            min_length = 1,
            max_length = 64,
            example = "Groceries",
            pattern = r"^[^\x00-\x1f\x7f-\x9f\u00ad\u061c\u180e\u200b\u200c\u200e\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]*[^\s\x00-\x1f\x7f-\x9f\u00ad\u061c\u180e\u200b\u200c\u200e\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff][^\x00-\x1f\x7f-\x9f\u00ad\u061c\u180e\u200b\u200c\u200e\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]*$"
        )
    )]
    pub category: Option<String>,
    /// `null` clears it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "openapi",
        schema(
            value_type = Option<String>,
            max_length = 500,
            pattern = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]*$"
        )
    )]
    pub description: Option<Option<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::money::amount_input_schema))]
    pub amount: Option<Money>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Date, required = false, pattern = r"^(19[0-9]{2}|2[0-9]{3})-[0-9]{2}-[0-9]{2}$", example = "2026-11-24"))]
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
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::validate::optional_date"
    )]
    #[cfg_attr(feature = "openapi", param(value_type = Option<String>, format = Date, pattern = r"^(19[0-9]{2}|2[0-9]{3})-[0-9]{2}-[0-9]{2}$"))]
    pub from: Option<NaiveDate>,
    /// Last day, inclusive.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::validate::optional_date"
    )]
    #[cfg_attr(feature = "openapi", param(value_type = Option<String>, format = Date, pattern = r"^(19[0-9]{2}|2[0-9]{3})-[0-9]{2}-[0-9]{2}$"))]
    pub to: Option<NaiveDate>,
    /// Text found in the description or the category, case-insensitively.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", param(max_length = 200))]
    pub q: Option<String>,
}

/// Query of `GET /api/expenses/summary`: an inclusive date range, both ends optional.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams), into_params(parameter_in = Query))]
pub struct SummaryQuery {
    /// First day, inclusive.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::validate::optional_date"
    )]
    #[cfg_attr(feature = "openapi", param(value_type = Option<String>, format = Date, pattern = r"^(19[0-9]{2}|2[0-9]{3})-[0-9]{2}-[0-9]{2}$"))]
    pub from: Option<NaiveDate>,
    /// Last day, inclusive.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::validate::optional_date"
    )]
    #[cfg_attr(feature = "openapi", param(value_type = Option<String>, format = Date, pattern = r"^(19[0-9]{2}|2[0-9]{3})-[0-9]{2}-[0-9]{2}$"))]
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

/// Largest `months` of `GET /api/expenses/trend`.
pub const TREND_MONTHS_MAX: u32 = 36;
/// Default `months` of `GET /api/expenses/trend`.
pub const TREND_MONTHS_DEFAULT: u32 = 12;

/// One of a user's categories, as `GET /api/categories` lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CategoryInfo {
    pub category: String,
    pub count: u64,
    pub total: Money,
    /// The latest `spent_on` of its expenses.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Date))]
    pub last_used: NaiveDate,
}

/// Answer of `GET /api/categories`: most used first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CategoryList {
    pub categories: Vec<CategoryInfo>,
}

/// Body of `POST /api/categories/rename`: every expense in `from` moves to
/// `to` (merging into `to` when that category exists already).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CategoryRename {
    #[cfg_attr(
        feature = "openapi",
        schema(min_length = 1, max_length = 64, example = "coffee")
    )]
    pub from: String,
    #[cfg_attr(
        feature = "openapi",
        schema(
            min_length = 1,
            max_length = 64,
            example = "Coffee",
            pattern = r"^[^\x00-\x1f\x7f-\x9f\u00ad\u061c\u180e\u200b\u200c\u200e\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]*[^\s\x00-\x1f\x7f-\x9f\u00ad\u061c\u180e\u200b\u200c\u200e\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff][^\x00-\x1f\x7f-\x9f\u00ad\u061c\u180e\u200b\u200c\u200e\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]*$"
        )
    )]
    pub to: String,
}

/// Answer of `POST /api/categories/rename`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RenameResult {
    /// The name the expenses carry now.
    pub category: String,
    /// How many expenses were moved.
    pub moved: u64,
}

/// Query of `GET /api/expenses/trend`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams), into_params(parameter_in = Query))]
pub struct TrendQuery {
    /// How many months, 1 to 36 (default 12), ending with `end`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", param(minimum = 1, maximum = 36))]
    pub months: Option<u32>,
    /// Any day of the last month shown (default: today, UTC).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::validate::optional_date"
    )]
    #[cfg_attr(feature = "openapi", param(value_type = Option<String>, format = Date, pattern = r"^(19[0-9]{2}|2[0-9]{3})-[0-9]{2}-[0-9]{2}$"))]
    pub end: Option<NaiveDate>,
}

/// One month of a trend.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MonthTotal {
    /// `YYYY-MM`.
    #[cfg_attr(
        feature = "openapi",
        schema(pattern = r"^[0-9]{4}-[0-9]{2}$", example = "2026-11")
    )]
    pub month: String,
    pub total: Money,
    pub count: u64,
    /// Largest total first.
    pub categories: Vec<CategoryTotal>,
}

/// Answer of `GET /api/expenses/trend`: every month of the window, oldest
/// first, months without expenses included.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Trend {
    /// First day of the first month.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Date))]
    pub from: NaiveDate,
    /// Last day of the last month.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Date))]
    pub to: NaiveDate,
    pub months: Vec<MonthTotal>,
}

/// Format of `GET /api/expenses/export`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum ExportFormat {
    /// `id,spent_on,category,description,amount,source`, with a header; what `POST /api/imports/csv` reads back.
    #[default]
    Csv,
    /// A JSON array of expenses.
    Json,
}

/// Query of `GET /api/expenses/export`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams), into_params(parameter_in = Query))]
pub struct ExportQuery {
    /// `csv` (default) or `json`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<ExportFormat>,
    /// First day, inclusive.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::validate::optional_date"
    )]
    #[cfg_attr(feature = "openapi", param(value_type = Option<String>, format = Date, pattern = r"^(19[0-9]{2}|2[0-9]{3})-[0-9]{2}-[0-9]{2}$"))]
    pub from: Option<NaiveDate>,
    /// Last day, inclusive.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::validate::optional_date"
    )]
    #[cfg_attr(feature = "openapi", param(value_type = Option<String>, format = Date, pattern = r"^(19[0-9]{2}|2[0-9]{3})-[0-9]{2}-[0-9]{2}$"))]
    pub to: Option<NaiveDate>,
}

/// The columns of the CSV export, in order.
pub const EXPORT_CSV_HEADER: [&str; 6] = [
    "id",
    "spent_on",
    "category",
    "description",
    "amount",
    "source",
];
