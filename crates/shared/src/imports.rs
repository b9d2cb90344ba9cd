//! The file imports' types: the options a CSV or OFX file is read with,
//! what an import reports, and a background import's job.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::api::Expense;
use crate::money::Money;

/// A line of an imported file that could not be read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LineError {
    /// 1-based line of the file (for OFX, the line the transaction starts on).
    pub line: u64,
    pub message: String,
}

/// Answer of `POST /api/imports/csv` and `POST /api/imports/ofx`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FileImportResult {
    /// Nothing was written: this is what the import would do.
    pub dry_run: bool,
    /// Transactions read from the file.
    pub transactions: u64,
    /// Expenses created (or that would be, on a dry run).
    pub imported: u64,
    /// Money-out transactions already imported before (or deleted since).
    pub skipped: u64,
    /// Expenses an OFX correction (`CORRECTACTION` `REPLACE`) changed.
    #[serde(default)]
    pub replaced: u64,
    /// Expenses an OFX correction (`CORRECTACTION` `DELETE`) deleted.
    #[serde(default)]
    pub deleted: u64,
    /// Pending rows, left out: the booked row is imported when it comes.
    #[serde(default)]
    pub pending: u64,
    /// Transactions of zero: not expenses.
    #[serde(default)]
    pub zero_amount: u64,
    /// Money-in transactions: not expenses.
    #[serde(default)]
    pub money_in_count: u64,
    /// `money_in_count` and `zero_amount` together.
    pub ignored: u64,
    /// Sum of the money-out transactions read.
    pub money_out: Money,
    /// Sum of the money-in transactions read.
    pub money_in: Money,
    /// Lines that could not be read, in file order: the first 100.
    pub errors: Vec<LineError>,
    /// How many lines could not be read, all told.
    #[serde(default)]
    pub errors_total: u64,
    /// The expenses created (or that would be).
    pub expenses: Vec<Expense>,
    /// The import profile the file was read with, by name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
}

/// Which sign a bank file gives money going out.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum SignConvention {
    /// Money out is negative (`-5.50` is a purchase): most bank exports.
    #[default]
    NegativeOut,
    /// Money out is positive (`5.50` is a purchase): expense lists, card statements.
    PositiveOut,
}

/// Query of `POST /api/imports/csv`: how to read the file, and what to do.
/// Columns are named by their header or by their 1-based position. With no
/// columns given, the file's header decides: this server's own export is read
/// as it was written, and columns named `date`, `amount`, `description` and
/// `category` are found by name. (The same fields may instead be sent as
/// text parts of a multipart body.)
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams), into_params(parameter_in = Query))]
pub struct CsvImportQuery {
    /// The date column.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date: Option<String>,
    /// The amount column, signed or with a `direction` column.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount: Option<String>,
    /// Instead of `amount`: a column of money out ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub debit: Option<String>,
    /// ... and one of money in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credit: Option<String>,
    /// A column saying which way the (unsigned) amount went.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direction: Option<String>,
    /// The `direction` value that means money out (default `D`; case-insensitive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub out_value: Option<String>,
    /// The description column, or several separated by commas (a bank's
    /// counterparty and purpose text): their texts are joined with ` - ` in
    /// the order given, empty ones left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// A column saying whether the row is booked or pending: pending rows
    /// are left out and counted (see `pending`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// The `status` values that mean pending, separated by commas
    /// (case-insensitive; default `pending`, `Umsatz vorgemerkt`,
    /// `vorgemerkt`, `authorized`, `authorised`, `in progress`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<String>,
    /// The bank's transaction id, if the file has one: the key for deduplication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// A chrono format such as `%d/%m/%Y`; `%Y` is a four-digit year, `%y`
    /// a two-digit one (`00`–`69` are 2000–2069, `70`–`99` 1970–1999).
    /// Default: the one format that reads every date of the file, day- or
    /// month-first, with any separator; 422 listing the candidates when more
    /// than one does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date_format: Option<String>,
    /// `auto` (default: the style the file's amounts show), `point` or
    /// `comma`. An amount written in the other style is a line error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decimal: Option<crate::money::Decimal>,
    /// `negative_out` (default) or `positive_out`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sign: Option<SignConvention>,
    /// Default: found from the header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delimiter: Option<Delimiter>,
    /// `auto` (default: UTF-8, else Windows-1252) or any WHATWG encoding
    /// label: `utf-8`, `windows-1252`, `iso-8859-15`, `utf-16le`, `latin1`...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding: Option<String>,
    /// A saved import profile (`/api/import-profiles`) by name: its options,
    /// under those given here. Without options, the profile whose columns
    /// the file's header has is used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// Category of rows without one (default `Uncategorized`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_category: Option<String>,
    /// Report what would be imported and skipped, writing nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dry_run: Option<bool>,
    /// Import nothing if any line is bad (default: import the good lines, report the bad).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strict: Option<bool>,
    /// Answer 202 at once and import in the background (see `GET /api/imports/{job_id}`).
    #[serde(default, rename = "async", skip_serializing_if = "Option::is_none")]
    pub background: Option<bool>,
}

/// The character between a CSV file's fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Delimiter {
    #[serde(rename = ",")]
    Comma,
    #[serde(rename = ";")]
    Semicolon,
    #[serde(rename = "tab", alias = "\\t", alias = "\t")]
    Tab,
    #[serde(rename = "|")]
    Pipe,
}

impl Delimiter {
    pub const ALL: [Delimiter; 4] = [
        Delimiter::Comma,
        Delimiter::Semicolon,
        Delimiter::Tab,
        Delimiter::Pipe,
    ];

    pub fn byte(self) -> u8 {
        match self {
            Delimiter::Comma => b',',
            Delimiter::Semicolon => b';',
            Delimiter::Tab => b'\t',
            Delimiter::Pipe => b'|',
        }
    }

    /// The option's value naming it.
    pub fn name(self) -> &'static str {
        match self {
            Delimiter::Comma => ",",
            Delimiter::Semicolon => ";",
            Delimiter::Tab => "tab",
            Delimiter::Pipe => "|",
        }
    }
}

/// Query of `POST /api/imports/ofx` (OFX 1.x and 2.x, QFX).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams), into_params(parameter_in = Query))]
pub struct OfxImportQuery {
    /// Category of the imported expenses (default `Uncategorized`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_category: Option<String>,
    /// Report what would be imported and skipped, writing nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dry_run: Option<bool>,
    /// Import nothing if any transaction is bad.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strict: Option<bool>,
    /// Answer 202 at once and import in the background (see `GET /api/imports/{job_id}`).
    #[serde(default, rename = "async", skip_serializing_if = "Option::is_none")]
    pub background: Option<bool>,
}

/// Category of imported rows that name none.
pub const DEFAULT_IMPORT_CATEGORY: &str = "Uncategorized";

/// Query of `POST /api/imports/mock`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams), into_params(parameter_in = Query))]
pub struct MockImportQuery {
    /// Answer 202 at once and import in the background (see `GET /api/imports/{job_id}`).
    #[serde(default, rename = "async", skip_serializing_if = "Option::is_none")]
    pub background: Option<bool>,
}

/// Where a background import is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ImportJobStatus {
    /// Waiting for a worker.
    Queued,
    /// A worker is writing it (all of it lands at the end, or none).
    Running,
    /// Written: `imported` and `skipped` say what it did.
    Succeeded,
    /// Not written: `error` says why.
    Failed,
}

impl ImportJobStatus {
    /// Whether the job is over.
    pub fn is_finished(self) -> bool {
        matches!(self, ImportJobStatus::Succeeded | ImportJobStatus::Failed)
    }

    /// The name used on the wire and in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            ImportJobStatus::Queued => "queued",
            ImportJobStatus::Running => "running",
            ImportJobStatus::Succeeded => "succeeded",
            ImportJobStatus::Failed => "failed",
        }
    }

    /// The status a name stands for.
    pub fn parse(name: &str) -> Option<Self> {
        [
            ImportJobStatus::Queued,
            ImportJobStatus::Running,
            ImportJobStatus::Succeeded,
            ImportJobStatus::Failed,
        ]
        .into_iter()
        .find(|s| s.as_str() == name)
    }
}

/// A background import: the answer of an import sent with `async=true` (202)
/// and of `GET /api/imports/{job_id}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ImportJob {
    pub job_id: Uuid,
    /// Where to poll it: `/api/imports/{job_id}`.
    pub status_url: String,
    pub status: ImportJobStatus,
    /// `mock_bank`, `csv` or `ofx`.
    pub source: String,
    /// Transactions read from the file or fetched from the bank.
    pub transactions: u64,
    /// Money-out transactions to write (the rest are ignored or were refused).
    pub total: u64,
    /// Of `total`, how many the running attempt has written so far; they are
    /// committed together when it ends. Equal to `total` once succeeded.
    pub done: u64,
    /// Expenses created, once succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub imported: Option<u64>,
    /// Transactions already imported before (or deleted since), once succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped: Option<u64>,
    /// Expenses OFX corrections changed, once succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaced: Option<u64>,
    /// Expenses OFX corrections deleted, once succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted: Option<u64>,
    /// Pending rows, left out.
    #[serde(default)]
    pub pending: u64,
    /// Transactions of zero: not expenses.
    #[serde(default)]
    pub zero_amount: u64,
    /// Money-in transactions: not expenses.
    #[serde(default)]
    pub money_in_count: u64,
    /// `money_in_count` and `zero_amount` together.
    pub ignored: u64,
    /// Lines of the file that could not be read, in file order: the first 100.
    pub errors: Vec<LineError>,
    /// How many lines could not be read, all told.
    #[serde(default)]
    pub errors_total: u64,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Times a worker took it up (more than one after a worker was lost).
    pub attempts: u32,
    #[serde(with = "crate::timefmt")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: DateTime<Utc>,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    #[serde(
        default,
        with = "crate::timefmt::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub started_at: Option<DateTime<Utc>>,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    #[serde(
        default,
        with = "crate::timefmt::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub finished_at: Option<DateTime<Utc>>,
}
