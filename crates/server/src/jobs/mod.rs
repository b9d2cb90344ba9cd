//! Background imports (`?async=true`).
//!
//! The request reads and checks the file, stores the transactions as a job
//! (with the 202 for its idempotency key, in the same transaction) and hands
//! the job's id to the queue. A worker takes it, writes the import in one
//! transaction that also records the job's result under a key of its own,
//! marks the job ended and acknowledges it. A worker that dies mid-job leaves
//! it to another (see [`queue`]); a re-run finds that result, or finds
//! nothing written and writes it all, so a job lands once whatever happens.
//! The database is the truth: a job the queue never received (Redis was
//! down) or lost (Redis restarted empty) is pushed again by the workers.

pub mod queue;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use finance_shared::{ImportJob, ImportJobStatus, LineError};
use futures::FutureExt;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::bank::BankTransaction;
use crate::state::AppState;
use crate::store::{
    IdempotencyKey, ImportRequest, JobCounts, JobEnd, JobRecord, NewJob, Store, StoreError, Unique,
};
pub use queue::{Delivery, LocalQueue, Queue, RedisQueue};

/// What reading a file found, kept with its job.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Report {
    /// Transactions read.
    pub transactions: u64,
    /// Money-in and zero transactions: not expenses.
    pub ignored: u64,
    #[serde(default)]
    pub pending: u64,
    #[serde(default)]
    pub zero_amount: u64,
    #[serde(default)]
    pub money_in_count: u64,
    /// The first lines that could not be read.
    pub errors: Vec<LineError>,
    /// How many lines could not be read, all told.
    #[serde(default)]
    pub errors_total: u64,
}

/// A job tried this many times (its workers died each time) fails.
pub const MAX_ATTEMPTS: u32 = 5;

/// How often the workers look for jobs the queue does not have.
const SWEEP_EVERY: Duration = Duration::from_secs(10);

/// A job submitted this recently may still be on its way to the queue.
const IN_FLIGHT: Duration = Duration::from_secs(5);

/// Why a background import was not queued.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The transactions are more than the database takes in one statement.
    #[error("{bytes} bytes of transactions; the database takes at most {limit} in one statement")]
    TooLarge { bytes: usize, limit: usize },
}

/// Room left in a statement for everything but the transactions.
const STATEMENT_OVERHEAD: usize = 64 * 1024;

/// The queue, and how long a silent worker keeps a job.
pub struct Jobs {
    queue: Arc<dyn Queue>,
    visibility: Duration,
}

impl Jobs {
    pub fn new(queue: Arc<dyn Queue>, visibility: Duration) -> Self {
        Jobs { queue, visibility }
    }

    /// Stores an import as a job and queues it. A queue that is down loses
    /// nothing: the job waits in the database for the next sweep.
    pub async fn submit(
        &self,
        store: &dyn Store,
        user_id: Uuid,
        source: &str,
        transactions: &[BankTransaction],
        report: Report,
        idempotency: Option<&IdempotencyKey>,
    ) -> Result<ImportJob, SubmitError> {
        let job = NewJob {
            id: Uuid::now_v7(),
            source: source.to_owned(),
            payload: serde_json::to_vec(transactions).unwrap_or_default(),
            report: serde_json::to_string(&report).unwrap_or_default(),
            total: transactions.len() as u64,
            created_at: crate::store::now_micros(),
        };
        let record = JobRecord {
            id: job.id,
            user_id,
            source: job.source.clone(),
            status: ImportJobStatus::Queued,
            report: job.report.clone(),
            total: job.total,
            imported: None,
            skipped: None,
            replaced: None,
            deleted: None,
            error: None,
            attempts: 0,
            created_at: job.created_at,
            started_at: None,
            finished_at: None,
        };
        if let Some(limit) = store.statement_limit() {
            let bytes = job.payload.len() + job.report.len();
            if bytes + STATEMENT_OVERHEAD > limit {
                return Err(SubmitError::TooLarge { bytes, limit });
            }
        }
        let view = view(&record, 0);
        let response = serde_json::to_string(&view).unwrap_or_default();
        store
            .create_job(user_id, &job, idempotency, &response)
            .await?;
        match self.queue.push(job.id).await {
            Ok(()) => {
                if let Err(e) = store.mark_enqueued(job.id).await {
                    tracing::warn!(job = %job.id, error = %e, "cannot note a job as queued");
                }
            }
            Err(e) => {
                tracing::warn!(job = %job.id, error = %e, "queue unavailable: the job waits in the database");
            }
        }
        metrics::counter!("import_jobs_total", "source" => source.to_owned()).increment(1);
        Ok(view)
    }

    /// A job as its owner sees it, with the running attempt's progress.
    pub async fn view(&self, record: &JobRecord) -> ImportJob {
        let done = match record.status {
            ImportJobStatus::Running => self.queue.progress(record.id).await.unwrap_or(0),
            _ => 0,
        };
        view(record, done)
    }
}

/// A stored job as the API shows it.
pub fn view(record: &JobRecord, done: u64) -> ImportJob {
    let report: Report = serde_json::from_str(&record.report).unwrap_or_default();
    let done = match record.status {
        ImportJobStatus::Succeeded => record.total,
        ImportJobStatus::Running => done.min(record.total),
        _ => 0,
    };
    ImportJob {
        job_id: record.id,
        status_url: format!("/api/imports/{}", record.id),
        status: record.status,
        source: record.source.clone(),
        transactions: report.transactions,
        total: record.total,
        done,
        imported: record.imported,
        skipped: record.skipped,
        replaced: record.replaced,
        deleted: record.deleted,
        pending: report.pending,
        zero_amount: report.zero_amount,
        money_in_count: report.money_in_count,
        ignored: report.ignored,
        errors_total: report.errors_total.max(report.errors.len() as u64),
        errors: report.errors,
        error: record.error.clone(),
        attempts: record.attempts,
        created_at: record.created_at,
        started_at: record.started_at,
        finished_at: record.finished_at,
    }
}

/// The key under which a job's import records its result. It starts with a
/// control character, which no client's `Idempotency-Key` may contain.
fn result_key(job: Uuid) -> IdempotencyKey {
    IdempotencyKey {
        key: format!("\u{1}import-job:{job}"),
        request_hash: "import-job".into(),
    }
}

fn counts_body(outcome: &crate::store::ImportOutcome) -> String {
    serde_json::to_string(&JobCounts::from(outcome)).unwrap_or_default()
}

/// The result a finished attempt recorded, if one did.
async fn recorded(store: &dyn Store, job: &JobRecord) -> Result<Option<JobEnd>, StoreError> {
    let stored = store
        .idempotent_response(job.user_id, &result_key(job.id).key)
        .await?;
    Ok(stored.and_then(|s| serde_json::from_str(&s.body).ok().map(JobEnd::Succeeded)))
}

/// A name for this worker that no other shares.
fn consumer_name() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "worker".into());
    let tag: u32 = rand::random();
    format!("{host}-{}-{tag:08x}", std::process::id())
}

/// Runs jobs until `shutdown` completes; a job under way is finished first.
pub async fn run_worker(state: AppState, shutdown: impl Future<Output = ()>) {
    let consumer = consumer_name();
    let queue = state.jobs.queue.clone();
    tracing::info!(consumer, shared = queue.shared(), "import worker started");
    let mut last_sweep: Option<Instant> = None;
    let mut queue_down = false;
    tokio::pin!(shutdown);
    loop {
        if last_sweep.is_none_or(|t| t.elapsed() >= SWEEP_EVERY) {
            sweep(&state, queue.lost_entries().await).await;
            last_sweep = Some(Instant::now());
        }
        let pulled = tokio::select! {
            () = &mut shutdown => break,
            pulled = queue.pull(&consumer, queue::READ_WAIT) => pulled,
        };
        let delivery = match pulled {
            Ok(Some(delivery)) => {
                if queue_down {
                    tracing::info!("job queue reachable again");
                    queue_down = false;
                }
                delivery
            }
            Ok(None) => continue,
            Err(e) => {
                if !queue_down {
                    tracing::warn!(error = %e, "job queue unavailable; retrying");
                    queue_down = true;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        match run_job(&state, &consumer, &delivery).await {
            Ok(()) => {
                if let Err(e) = queue.ack(&delivery).await {
                    // Delivered again later; the job has ended, so it is skipped.
                    tracing::warn!(job = %delivery.job, error = %e, "cannot acknowledge a job");
                }
            }
            Err(e) => {
                tracing::warn!(job = %delivery.job, error = %e, "job interrupted; it will be retried");
                if !queue.shared() {
                    let queue = queue.clone();
                    let pause = state.jobs.visibility;
                    tokio::spawn(async move {
                        tokio::time::sleep(pause).await;
                        let _ = queue.push(delivery.job).await;
                    });
                }
            }
        }
    }
    tracing::info!(consumer, "import worker stopped");
}

/// A worker running inside this process until stopped (or dropped).
pub struct InProcessWorker {
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl InProcessWorker {
    pub fn spawn(state: AppState) -> Self {
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(run_worker(state, async move {
            // A dropped handle stops the worker too.
            let _ = stopped.wait_for(|s| *s).await;
        }));
        InProcessWorker { stop, task }
    }

    /// Stops taking jobs and waits up to `grace` for one under way; `false`
    /// if it was still running (it is rolled back and run again later).
    pub async fn stop(self, grace: Duration) -> bool {
        let _ = self.stop.send(true);
        tokio::time::timeout(grace, self.task).await.is_ok()
    }
}

/// Pushes unfinished jobs the queue does not have: those it was never
/// given, or with `all`, every one (the queue lost its entries).
async fn sweep(state: &AppState, all: bool) {
    let before = if all {
        chrono::Utc::now()
    } else {
        chrono::Utc::now() - IN_FLIGHT
    };
    let jobs = match state.store.unfinished_jobs(before, !all).await {
        Ok(jobs) => jobs,
        Err(e) => {
            tracing::warn!(error = %e, "cannot look for unqueued jobs");
            return;
        }
    };
    for id in jobs {
        if state.jobs.queue.push(id).await.is_err() {
            return;
        }
        tracing::info!(job = %id, "queued a job again");
        let _ = state.store.mark_enqueued(id).await;
    }
}

/// Runs one delivery. `Ok` when the job has ended (now or before); an error
/// leaves it to be run again.
async fn run_job(state: &AppState, consumer: &str, delivery: &Delivery) -> anyhow::Result<()> {
    let store = state.store.as_ref();
    let Some((job, payload)) = store.start_job(delivery.job).await? else {
        return Ok(());
    };
    let started = Instant::now();
    let end = if job.attempts > MAX_ATTEMPTS {
        JobEnd::Failed(format!(
            "gave up after {MAX_ATTEMPTS} attempts: each one's worker stopped"
        ))
    } else if let Some(end) = recorded(store, &job).await? {
        end
    } else {
        let transactions = serde_json::from_slice::<Vec<BankTransaction>>(&payload);
        // The text is not needed once read: the import holds the rows alone.
        drop(payload);
        match transactions {
            Err(e) => JobEnd::Failed(format!("the job's transactions are unreadable: {e}")),
            Ok(transactions) => {
                let (corrections, transactions): (Vec<_>, Vec<_>) = transactions
                    .into_iter()
                    .partition(|t| t.correction.is_some());
                import(state, consumer, delivery, &job, &transactions, &corrections).await?
            }
        }
    };
    if store.finish_job(job.id, &end).await? {
        let status = match &end {
            JobEnd::Succeeded { .. } => "succeeded",
            JobEnd::Failed(_) => "failed",
        };
        metrics::counter!("import_jobs_finished_total", "status" => status).increment(1);
        match &end {
            JobEnd::Succeeded(counts) => tracing::info!(
                job = %job.id, user = %job.user_id, source = job.source,
                imported = counts.imported, skipped = counts.skipped,
                replaced = counts.replaced, deleted = counts.deleted,
                attempt = job.attempts, seconds = started.elapsed().as_secs_f64(), "import job succeeded"
            ),
            JobEnd::Failed(why) => tracing::warn!(
                job = %job.id, user = %job.user_id, attempt = job.attempts, reason = %why, "import job failed"
            ),
        }
    }
    Ok(())
}

/// A failed job's `error` when its rows could not be written.
const REFUSED: &str = "the import could not be written: what it wrote before the failure is kept, \
                       and importing the file again adds the rest";

/// Writes a job's import while telling the queue it is alive and how far it got.
async fn import(
    state: &AppState,
    consumer: &str,
    delivery: &Delivery,
    job: &JobRecord,
    transactions: &[BankTransaction],
    corrections: &[BankTransaction],
) -> anyhow::Result<JobEnd> {
    let store = state.store.as_ref();
    let queue = state.jobs.queue.as_ref();
    let done = AtomicU64::new(0);
    let progress = |n: usize| done.store(n as u64, Ordering::Relaxed);
    let key = result_key(job.id);
    let tick = (state.jobs.visibility / 3).min(Duration::from_millis(100));
    let heartbeat = async {
        loop {
            tokio::time::sleep(tick).await;
            queue
                .set_progress(job.id, done.load(Ordering::Relaxed))
                .await;
            if let Err(e) = queue.keep(consumer, delivery).await {
                tracing::debug!(job = %job.id, error = %e, "cannot renew a job's claim");
            }
        }
    };
    let written = store.import(
        job.user_id,
        ImportRequest {
            source: &job.source,
            transactions,
            corrections,
            idempotency: Some(&key),
            dry_run: false,
            body: &counts_body,
            progress: Some(&progress),
            job: Some(job.id),
        },
    );
    // A panic while writing ends this job as failed; the worker goes on.
    let written = std::panic::AssertUnwindSafe(written).catch_unwind();
    let result = tokio::select! {
        result = written => result,
        () = heartbeat => unreachable!("the heartbeat never ends"),
    };
    let Ok(result) = result else {
        tracing::error!(job = %job.id, "writing an import job panicked");
        return Ok(JobEnd::Failed(REFUSED.into()));
    };
    match result {
        Ok(outcome) => {
            metrics::counter!("imported_transactions_total", "source" => job.source.clone())
                .increment(outcome.imported_total);
            Ok(JobEnd::Succeeded(JobCounts::from(&outcome)))
        }
        // Another attempt (a worker thought dead) committed first.
        Err(StoreError::Conflict(Unique::IdempotencyKey)) => recorded(store, job)
            .await?
            .ok_or_else(|| anyhow::anyhow!("the job's result is taken but unreadable")),
        // Run again later, by this worker or another.
        Err(e @ (StoreError::Unavailable(_) | StoreError::Contended(_))) => Err(e.into()),
        // The database's own words stay in the log: a job's `error` is shown to its user.
        Err(e @ (StoreError::Other(_) | StoreError::Conflict(_))) => {
            tracing::error!(job = %job.id, error = %e, "the database refused an import job");
            Ok(JobEnd::Failed(REFUSED.into()))
        }
    }
}
