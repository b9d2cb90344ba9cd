//! A bank that makes up plausible card transactions.

use async_trait::async_trait;
use chrono::Days;
use finance_shared::Money;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::{BankClient, BankError, BankTransaction, FetchRequest};

/// Merchants with their category and a typical price range in cents.
const MERCHANTS: &[(&str, &str, i64, i64)] = &[
    ("Whole Foods Market", "Groceries", 1_500, 18_000),
    ("Trader Joe's", "Groceries", 1_200, 12_000),
    ("Lidl", "Groceries", 800, 9_000),
    ("Starbucks", "Coffee", 350, 1_400),
    ("Blue Bottle Coffee", "Coffee", 450, 1_600),
    ("Shell", "Transport", 2_500, 9_000),
    ("Uber", "Transport", 900, 4_500),
    ("Metro Transit", "Transport", 275, 12_000),
    ("Netflix", "Subscriptions", 1_549, 2_299),
    ("Spotify", "Subscriptions", 1_099, 1_699),
    ("Chipotle", "Restaurants", 1_100, 3_500),
    ("Olive Garden", "Restaurants", 2_800, 11_000),
    ("Amazon", "Shopping", 799, 25_000),
    ("IKEA", "Home", 1_999, 45_000),
    ("CVS Pharmacy", "Health", 499, 6_500),
    ("City Power & Light", "Utilities", 4_500, 21_000),
    ("AMC Theatres", "Entertainment", 1_200, 4_800),
];

/// The mock bank. The same seed always yields the same transactions with
/// the same provider ids, so re-importing a seed imports nothing new.
#[derive(Clone, Copy, Debug, Default)]
pub struct MockBank;

impl MockBank {
    /// The transactions for a seed, without the async wrapper.
    pub fn transactions(request: FetchRequest) -> Vec<BankTransaction> {
        let mut rng = ChaCha8Rng::seed_from_u64(request.seed as u64);
        (0..request.count)
            .map(|i| {
                let (merchant, category, low, high) =
                    MERCHANTS[rng.random_range(0..MERCHANTS.len())];
                let days_ago = rng.random_range(0..30u64);
                let spent_on = request
                    .today
                    .checked_sub_days(Days::new(days_ago))
                    .unwrap_or(request.today);
                BankTransaction {
                    external_id: format!("mock-{}-{i}", request.seed),
                    legacy_id: None,
                    category: category.to_owned(),
                    description: Some(merchant.to_owned()),
                    amount: Money::from_minor(rng.random_range(low..=high)),
                    spent_on,
                    origin: None,
                    correction: None,
                }
            })
            .collect()
    }
}

#[async_trait]
impl BankClient for MockBank {
    fn source(&self) -> &'static str {
        "mock_bank"
    }

    async fn fetch(&self, request: FetchRequest) -> Result<Vec<BankTransaction>, BankError> {
        Ok(Self::transactions(request))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    fn request(seed: i64, count: u32) -> FetchRequest {
        FetchRequest {
            count,
            seed,
            today: NaiveDate::from_ymd_opt(2026, 11, 24).expect("valid date"),
        }
    }

    #[test]
    fn same_seed_same_transactions() {
        assert_eq!(
            MockBank::transactions(request(7, 50)),
            MockBank::transactions(request(7, 50))
        );
        assert_ne!(
            MockBank::transactions(request(7, 5)),
            MockBank::transactions(request(8, 5))
        );
    }

    #[test]
    fn transactions_are_plausible() {
        let today = request(1, 0).today;
        for t in MockBank::transactions(request(1, 500)) {
            assert!(t.amount > Money::ZERO);
            assert!(t.spent_on <= today);
            assert!((today - t.spent_on).num_days() < 30);
            assert!(t.external_id.starts_with("mock-1-"));
        }
    }
}
