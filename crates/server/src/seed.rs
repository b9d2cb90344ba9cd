//! `finance-server seed`: users with a realistic history, written in bulk.

use chrono::{Days, Utc};
use uuid::Uuid;

use crate::bank::{FetchRequest, MockBank};
use crate::state::AppState;
use crate::store::{ImportRequest, import_body};

/// The password of every seeded user.
pub const PASSWORD: &str = "seeded password";

/// Expenses written per transaction.
const BATCH: u64 = 5_000;

/// Creates `users` users with `expenses` expenses each, spread over three
/// years; returns their emails.
pub async fn seed(state: &AppState, users: u32, expenses: u64) -> anyhow::Result<Vec<String>> {
    let hash = state.passwords.hash(PASSWORD.to_owned()).await?;
    let run = Uuid::new_v4().simple().to_string();
    let today = Utc::now().date_naive();
    let mut emails = Vec::new();
    for u in 0..users {
        let email = finance_shared::validate::email(&format!("seed-{}-{u}@example.com", &run[..8]))
            .map_err(|why| anyhow::anyhow!("a seed email {why}"))?;
        let user = state.store.create_user(&email, &hash).await?;
        let mut written = 0u64;
        let mut batch_no = 0i64;
        while written < expenses {
            let count = (expenses - written).min(BATCH);
            let mut transactions = MockBank::transactions(FetchRequest {
                count: u32::try_from(count)?,
                seed: batch_no,
                today,
            });
            for (i, t) in transactions.iter_mut().enumerate() {
                let days_ago = (written + i as u64) % (3 * 365);
                t.spent_on = today.checked_sub_days(Days::new(days_ago)).unwrap_or(today);
            }
            state
                .store
                .import(
                    user.id,
                    ImportRequest {
                        source: "seed",
                        transactions: &transactions,
                        corrections: &[],
                        idempotency: None,
                        dry_run: false,
                        body: &import_body,
                        job: None,
                        progress: None,
                    },
                )
                .await?;
            written += count;
            batch_no += 1;
        }
        emails.push(email.into_string());
    }
    Ok(emails)
}
