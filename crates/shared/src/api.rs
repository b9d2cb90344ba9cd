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
pub struct Credentials {
    pub email: String,
    pub password: String,
}

/// A user as the API shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub id: Uuid,
    pub email: String,
    #[serde(with = "crate::timefmt")]
    pub created_at: DateTime<Utc>,
}

/// Answer of register and login.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthResponse {
    pub access_token: String,
    /// Always `"Bearer"`.
    pub token_type: String,
    /// Seconds until the token expires.
    pub expires_in: u64,
    pub user: User,
}

/// Body of `POST /api/expenses`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewExpense {
    pub category: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub amount: Money,
    /// Defaults to today (UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spent_on: Option<NaiveDate>,
}

/// An expense as the API shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Expense {
    pub id: Uuid,
    pub category: String,
    pub description: Option<String>,
    pub amount: Money,
    pub spent_on: NaiveDate,
    #[serde(with = "crate::timefmt")]
    pub created_at: DateTime<Utc>,
    /// `"manual"`, or the importer that made it (`"mock_bank"`).
    pub source: String,
}

/// One page of `GET /api/expenses`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExpensePage {
    pub expenses: Vec<Expense>,
    /// Pass as `cursor` to get the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// Query of `GET /api/expenses`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListQuery {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<NaiveDate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<NaiveDate>,
}

/// Query of `GET /api/expenses/summary`: an inclusive date range, both ends optional.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SummaryQuery {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<NaiveDate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<NaiveDate>,
}

/// Total and count of one category.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CategoryTotal {
    pub category: String,
    pub total: Money,
    pub count: u64,
}

/// Answer of `GET /api/expenses/summary`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub total: Money,
    pub count: u64,
    /// Largest total first.
    pub categories: Vec<CategoryTotal>,
    pub from: Option<NaiveDate>,
    pub to: Option<NaiveDate>,
}

/// Body of `POST /api/imports/mock`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MockImportRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<i64>,
}

/// Answer of an import.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportResult {
    pub imported: u64,
    pub skipped: u64,
    /// The expenses this import created.
    pub expenses: Vec<Expense>,
}

/// Answer of `GET /healthz`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    pub status: String,
}

/// Answer of `GET /readyz`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Readiness {
    /// `"ready"` or `"unavailable"`.
    pub status: String,
    /// `"up"` or `"down"`.
    pub database: String,
    /// `"memory"`, `"up"` or `"down"` (a down Redis degrades, it does not make the instance unready).
    pub cache: String,
}
