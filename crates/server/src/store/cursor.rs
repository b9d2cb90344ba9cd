//! The opaque cursor of the expense list: the position of the last row shown.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::NaiveDate;
use finance_shared::Expense;
use uuid::Uuid;

/// Keyset position in the list's order `(spent_on, created_at, id)`, newest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cursor {
    pub spent_on: NaiveDate,
    /// `created_at` in microseconds since the Unix epoch.
    pub created_at_micros: i64,
    pub id: Uuid,
}

impl Cursor {
    /// The position just after this expense.
    pub fn after(expense: &Expense) -> Self {
        Cursor {
            spent_on: expense.spent_on,
            created_at_micros: expense.created_at.timestamp_micros(),
            id: expense.id,
        }
    }

    /// The string handed to clients.
    pub fn encode(&self) -> String {
        let raw = format!("{}|{}|{}", self.spent_on, self.created_at_micros, self.id);
        URL_SAFE_NO_PAD.encode(raw)
    }

    /// Reads a string made by [`Cursor::encode`]; `None` if it is not one.
    pub fn decode(s: &str) -> Option<Self> {
        let raw = String::from_utf8(URL_SAFE_NO_PAD.decode(s).ok()?).ok()?;
        let mut parts = raw.split('|');
        let cursor = Cursor {
            spent_on: finance_shared::validate::date(parts.next()?.parse().ok()?).ok()?,
            created_at_micros: parts.next()?.parse().ok()?,
            id: parts.next()?.parse().ok()?,
        };
        // Every field must be one a stored expense can have: each database
        // binds the timestamp in its own type, with its own range.
        let created_at = chrono::DateTime::from_timestamp_micros(cursor.created_at_micros)?;
        finance_shared::validate::date(created_at.date_naive()).ok()?;
        parts.next().is_none().then_some(cursor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_junk() {
        let c = Cursor {
            spent_on: NaiveDate::from_ymd_opt(2026, 11, 24).expect("valid date"),
            created_at_micros: 1_764_000_000_123_456,
            id: Uuid::now_v7(),
        };
        assert_eq!(Cursor::decode(&c.encode()), Some(c));
        assert_eq!(Cursor::decode("not a cursor"), None);
        assert_eq!(
            Cursor::decode(&URL_SAFE_NO_PAD.encode("2026-01-01|1|x")),
            None
        );
        let forged = |raw: String| Cursor::decode(&URL_SAFE_NO_PAD.encode(raw));
        let id = Uuid::now_v7();
        assert_eq!(forged(format!("2026-01-01|{}|{id}", i64::MAX)), None);
        assert_eq!(forged(format!("2026-01-01|{}|{id}", i64::MIN)), None);
        assert_eq!(forged(format!("+200000-01-01|1764000000123456|{id}")), None);
        assert_eq!(forged(format!("0999-12-31|1764000000123456|{id}")), None);
        assert!(forged(format!("2026-01-01|1764000000123456|{id}")).is_some());
    }
}
