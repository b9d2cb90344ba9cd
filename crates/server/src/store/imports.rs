//! Imports and background jobs as the store takes and gives them.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use finance_shared::{Expense, ImportJobStatus};
use uuid::Uuid;

use super::{IMPORT_BATCH, IdempotencyKey, now_micros};
use crate::bank::BankTransaction;

/// The response body an import remembers with its idempotency key, from
/// what it wrote.
pub type ImportBody<'a> = dyn Fn(&ImportOutcome) -> String + Send + Sync + 'a;

/// Transactions a background import writes per transaction of the
/// database: each commit lets other writers in (SQLite has one writer), and
/// moves the job's cursor with it.
pub const JOB_CHUNK: usize = 10_000;

/// An import about to be written.
#[derive(Clone, Copy)]
pub struct ImportRequest<'a> {
    /// The `source` of the expenses it creates; ids are unique per source.
    pub source: &'a str,
    pub transactions: &'a [BankTransaction],
    /// Corrections of transactions imported before (OFX `CORRECTACTION`),
    /// applied after `transactions`, in order.
    pub corrections: &'a [BankTransaction],
    pub idempotency: Option<&'a IdempotencyKey>,
    /// Roll back instead of committing.
    pub dry_run: bool,
    pub body: &'a ImportBody<'a>,
    /// Told how many transactions have been written so far, after each batch.
    pub progress: Option<&'a (dyn Fn(usize) + Send + Sync)>,
    /// A background job's import: written [`JOB_CHUNK`] transactions per
    /// commit, each with the job's cursor, and, run again, from the cursor
    /// on. Its outcome lists no expenses, only counts.
    pub job: Option<Uuid>,
}

impl ImportRequest<'_> {
    /// Whether any of its transactions had another id on an older server.
    pub fn looks_for_legacy_ids(&self) -> bool {
        self.transactions.iter().any(|t| t.legacy_id.is_some())
    }
}

/// The old ids of a batch's transactions, when the user has any to match.
pub(crate) fn legacy_ids<'a>(
    rows: &'a [(Expense, &BankTransaction)],
    legacy: bool,
) -> Vec<&'a str> {
    match legacy {
        true => rows
            .iter()
            .filter_map(|(_, t)| t.legacy_id.as_deref())
            .collect(),
        false => Vec::new(),
    }
}

/// What an import wrote.
#[derive(Clone, Debug)]
pub struct ImportOutcome {
    /// The expenses it made (none for a job's import: see `imported_total`).
    pub imported: Vec<Expense>,
    pub imported_total: u64,
    pub skipped: u64,
    /// Expenses a correction changed.
    pub replaced: u64,
    /// Expenses a correction deleted.
    pub deleted: u64,
}

/// An import's transactions, batch by batch, as the expenses to insert (each
/// backend inserts a batch in one statement); keeps what each batch wrote and
/// reports progress after it.
pub(crate) struct ImportBatches<'a> {
    source: &'a str,
    chunks: std::slice::Chunks<'a, BankTransaction>,
    created_at: DateTime<Utc>,
    progress: Option<&'a (dyn Fn(usize) + Send + Sync)>,
    total: usize,
    done: usize,
    imported: Vec<Expense>,
}

impl<'a> ImportBatches<'a> {
    pub fn new(request: &ImportRequest<'a>) -> Self {
        ImportBatches {
            source: request.source,
            chunks: request.transactions.chunks(IMPORT_BATCH),
            created_at: now_micros(),
            progress: request.progress,
            total: request.transactions.len(),
            done: 0,
            imported: Vec::new(),
        }
    }

    /// The next batch, each transaction with the expense it would become.
    pub fn next_batch(&mut self) -> Option<Vec<(Expense, &'a BankTransaction)>> {
        let chunk = self.chunks.next()?;
        Some(
            chunk
                .iter()
                .map(|t| (t.to_expense(self.source, self.created_at), t))
                .collect(),
        )
    }

    /// Keeps the expenses of `rows` whose ids are `written`.
    pub fn keep(&mut self, rows: Vec<(Expense, &BankTransaction)>, written: &HashSet<Uuid>) {
        self.done += rows.len();
        self.imported.extend(
            rows.into_iter()
                .map(|(e, _)| e)
                .filter(|e| written.contains(&e.id)),
        );
        if let Some(progress) = self.progress {
            progress(self.done);
        }
    }

    /// What was written, and how many transactions were not.
    pub fn finish(self) -> ImportOutcome {
        let skipped = (self.total - self.imported.len()) as u64;
        ImportOutcome {
            imported_total: self.imported.len() as u64,
            imported: self.imported,
            skipped,
            replaced: 0,
            deleted: 0,
        }
    }
}

/// A background import about to be queued.
#[derive(Clone, Debug)]
pub struct NewJob {
    pub id: Uuid,
    pub source: String,
    /// The transactions to write, as JSON.
    pub payload: Vec<u8>,
    /// What reading the file found, as JSON (see `jobs::Report`).
    pub report: String,
    /// Transactions to write.
    pub total: u64,
    pub created_at: DateTime<Utc>,
}

/// A background import as stored (without its transactions).
#[derive(Clone, Debug)]
pub struct JobRecord {
    pub id: Uuid,
    pub user_id: Uuid,
    pub source: String,
    pub status: ImportJobStatus,
    pub report: String,
    pub total: u64,
    pub imported: Option<u64>,
    pub skipped: Option<u64>,
    pub replaced: Option<u64>,
    pub deleted: Option<u64>,
    pub error: Option<String>,
    pub attempts: u32,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// What a background import wrote.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct JobCounts {
    pub imported: u64,
    pub skipped: u64,
    #[serde(default)]
    pub replaced: u64,
    #[serde(default)]
    pub deleted: u64,
}

impl From<&ImportOutcome> for JobCounts {
    fn from(outcome: &ImportOutcome) -> Self {
        JobCounts {
            imported: outcome.imported_total,
            skipped: outcome.skipped,
            replaced: outcome.replaced,
            deleted: outcome.deleted,
        }
    }
}

/// How a background import ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JobEnd {
    Succeeded(JobCounts),
    Failed(String),
}

impl JobEnd {
    /// The `status`, the counts (`imported`, `skipped`, `replaced`,
    /// `deleted`) and `error` columns of the ended job.
    pub(crate) fn columns(&self) -> (&'static str, [Option<i64>; 4], Option<&str>) {
        let count = |n: u64| Some(i64::try_from(n).unwrap_or(i64::MAX));
        match self {
            JobEnd::Succeeded(c) => (
                "succeeded",
                [c.imported, c.skipped, c.replaced, c.deleted].map(count),
                None,
            ),
            JobEnd::Failed(why) => ("failed", [None; 4], Some(why.as_str())),
        }
    }
}

/// The columns a [`JobRecord`] is read from, in the order of [`JobRow`].
macro_rules! job_columns {
    () => {
        "id, user_id, source, status, report, total, imported, skipped, error, attempts, \
         created_at, started_at, finished_at, replaced, deleted"
    };
}
pub(crate) use job_columns;

/// A row of `import_jobs` as [`job_columns`] reads it.
pub(crate) type JobRow = (
    Uuid,
    Uuid,
    String,
    String,
    String,
    i64,
    Option<i64>,
    Option<i64>,
    Option<String>,
    i32,
    i64,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
);

pub(crate) fn job_from_row(row: JobRow) -> Result<JobRecord, sqlx::Error> {
    let (id, user_id, source, status, report, total, imported, skipped, error, attempts) = (
        row.0, row.1, row.2, row.3, row.4, row.5, row.6, row.7, row.8, row.9,
    );
    let time = |micros: i64| {
        DateTime::from_timestamp_micros(micros)
            .ok_or_else(|| sqlx::Error::Decode(format!("timestamp out of range: {micros}").into()))
    };
    let count = |n: i64| u64::try_from(n).unwrap_or(0);
    Ok(JobRecord {
        id,
        user_id,
        source,
        status: ImportJobStatus::parse(&status)
            .ok_or_else(|| sqlx::Error::Decode(format!("unknown job status {status:?}").into()))?,
        report,
        total: count(total),
        imported: imported.map(count),
        skipped: skipped.map(count),
        replaced: row.13.map(count),
        deleted: row.14.map(count),
        error,
        attempts: u32::try_from(attempts).unwrap_or(0),
        created_at: time(row.10)?,
        started_at: row.11.map(time).transpose()?,
        finished_at: row.12.map(time).transpose()?,
    })
}

/// The body a mock import answers with.
pub fn import_body(outcome: &ImportOutcome) -> String {
    serde_json::to_string(&finance_shared::ImportResult {
        imported: outcome.imported_total,
        skipped: outcome.skipped,
        expenses: outcome.imported.clone(),
    })
    .unwrap_or_default()
}
