//! Bank connections: where transactions come from on import.

pub mod csv;
pub mod dates;
pub mod file;
mod mock;
pub mod ofx;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use finance_shared::{Expense, Money};
use uuid::Uuid;

pub use mock::MockBank;

/// Where the undated fingerprint ids that files without the bank's ids got
/// before [`file::FINGERPRINT`] lie, as a range of `external_id`s: an import
/// looks for its transactions' old ids only for a user with ids in it.
pub const LEGACY_FINGERPRINTS: (&str, &str) = ("fp:", "fp;");

/// A transaction as a bank reports it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BankTransaction {
    /// The bank's own id: stable across syncs, the key for deduplication.
    pub external_id: String,
    /// The id an older server gave the same transaction (a fingerprint in
    /// [`LEGACY_FINGERPRINTS`]): the transaction was imported, or deleted
    /// after an import, if either id was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub legacy_id: Option<String>,
    pub category: String,
    pub description: Option<String>,
    pub amount: Money,
    pub spent_on: NaiveDate,
    /// The expense this transaction was exported from, when it comes from
    /// one of this server's exports: skipped if the user still has it.
    pub origin: Option<Uuid>,
    /// What this transaction does to the one imported under `external_id`
    /// (an OFX `CORRECTACTION`), rather than being one of its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correction: Option<Correction>,
}

/// An OFX correction of a transaction imported before.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Correction {
    /// Its amount, date and description are the new ones; it keeps its id
    /// and its category.
    Replace,
    /// It goes, as if the user deleted it.
    Delete,
}

impl BankTransaction {
    /// The expense this transaction becomes, with a fresh id.
    pub fn to_expense(&self, source: &str, created_at: DateTime<Utc>) -> Expense {
        Expense {
            id: Uuid::now_v7(),
            category: self.category.clone(),
            description: self.description.clone(),
            amount: self.amount,
            spent_on: self.spent_on,
            created_at,
            source: source.to_owned(),
        }
    }
}

/// What to fetch from a bank.
#[derive(Clone, Copy, Debug)]
pub struct FetchRequest {
    pub count: u32,
    pub seed: i64,
    /// The day the sync happens; transactions fall within the 30 days before it.
    pub today: NaiveDate,
}

/// Why a bank could not be read.
#[derive(Debug, thiserror::Error)]
#[error("bank unavailable: {0}")]
pub struct BankError(pub String);

/// A source of bank transactions; a real provider implements this.
#[async_trait]
pub trait BankClient: Send + Sync + 'static {
    /// The `source` recorded on the expenses it creates.
    fn source(&self) -> &'static str;

    /// The transactions the bank reports.
    async fn fetch(&self, request: FetchRequest) -> Result<Vec<BankTransaction>, BankError>;
}
