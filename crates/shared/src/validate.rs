//! Validation rules of the API, as pure functions both sides run.
//!
//! Each returns the normalised value or a reason phrased to follow the field's
//! name ("email must look like name@example.com").

use chrono::{Datelike, NaiveDate};

use crate::money::Money;

/// Longest accepted email address.
pub const EMAIL_MAX_CHARS: usize = 254;
/// Shortest accepted password.
pub const PASSWORD_MIN_CHARS: usize = 8;
/// Longest accepted password.
pub const PASSWORD_MAX_CHARS: usize = 128;
/// Longest category name.
pub const CATEGORY_MAX_CHARS: usize = 64;
/// Longest description.
pub const DESCRIPTION_MAX_CHARS: usize = 500;
/// Largest amount of one expense: 1,000,000,000.00.
pub const AMOUNT_MAX: Money = Money::from_minor(100_000_000_000);

/// Earliest year of a date the API accepts.
pub const YEAR_MIN: i32 = 1900;
/// Latest year of a date the API accepts.
pub const YEAR_MAX: i32 = 2999;

/// A date within years 1900 to 2999: the one range every store, index and
/// summary agrees on (SQLite compares dates as text, MariaDB's DATE ends at
/// 9999, PostgreSQL's begins at 4713 BC).
pub fn date(day: NaiveDate) -> Result<NaiveDate, &'static str> {
    if (YEAR_MIN..=YEAR_MAX).contains(&day.year()) {
        Ok(day)
    } else {
        Err("must be a date between 1900-01-01 and 2999-12-31")
    }
}

/// Reads an optional date of a query string, refusing one outside
/// [`date`]'s range (for `#[serde(deserialize_with)]`).
pub fn optional_date<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<NaiveDate>, D::Error> {
    let day: Option<NaiveDate> = serde::Deserialize::deserialize(deserializer)?;
    day.map(|d| {
        date(d).map_err(|_| {
            serde::de::Error::custom("dates must lie between 1900-01-01 and 2999-12-31")
        })
    })
    .transpose()
}

/// An email as accounts are keyed by: trimmed, lower-cased, and looking
/// like an address (see [`email`]).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl std::fmt::Display for Email {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Trims and lower-cases an email, then checks it looks like an address.
pub fn email(raw: &str) -> Result<Email, &'static str> {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Err("is required");
    }
    if trimmed.chars().count() > EMAIL_MAX_CHARS {
        return Err("must be at most 254 characters");
    }
    let email = trimmed.to_lowercase();
    let Some((local, domain)) = email.split_once('@') else {
        return Err("must look like name@example.com");
    };
    let well_formed = !local.is_empty()
        && !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains("..")
        && !email.chars().any(|c| c.is_whitespace() || c.is_control());
    if well_formed {
        Ok(Email(email))
    } else {
        Err("must look like name@example.com")
    }
}

/// A password of 8 to 128 characters.
pub fn password(raw: &str) -> Result<(), &'static str> {
    let n = raw.chars().count();
    if n < PASSWORD_MIN_CHARS {
        Err("must be at least 8 characters")
    } else if n > PASSWORD_MAX_CHARS {
        Err("must be at most 128 characters")
    } else {
        Ok(())
    }
}

/// Characters that change how text looks or reads without being seen:
/// zero-width spaces and marks, bidirectional embeddings, overrides and
/// isolates, invisible operators, the byte-order mark and the soft hyphen. Two
/// categories that differ only by them would look the same. (The zero-width
/// joiner is kept: emoji sequences are made with it.)
fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{061C}' | '\u{180E}' | '\u{200B}' | '\u{200C}' | '\u{200E}' | '\u{200F}'
        | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}')
}

/// A trimmed category of 1 to 64 characters in Unicode's composed form (NFC),
/// so "café" typed either way is one category, without control or invisible
/// characters.
pub fn category(raw: &str) -> Result<String, &'static str> {
    use unicode_normalization::UnicodeNormalization;
    let category: String = raw.trim().nfc().collect();
    if category.is_empty() {
        Err("must not be empty")
    } else if category.chars().count() > CATEGORY_MAX_CHARS {
        Err("must be at most 64 characters")
    } else if category.chars().any(char::is_control) {
        Err("must not contain control characters")
    } else if category.chars().any(is_invisible) {
        Err("must not contain invisible or text-direction characters")
    } else {
        Ok(category)
    }
}

/// The key categories are grouped by: case-insensitive, in composed form,
/// so "Café" and "café" (typed either way) are one category.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CategoryKey(String);

impl CategoryKey {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The key a category is grouped by (see [`CategoryKey`]).
pub fn category_key(category: &str) -> CategoryKey {
    use unicode_normalization::{UnicodeNormalization, is_nfc_quick};
    let trimmed = category.trim();
    CategoryKey(match is_nfc_quick(trimmed.chars()) {
        unicode_normalization::IsNormalized::Yes => trimmed.to_lowercase(),
        _ => trimmed.nfc().collect::<String>().to_lowercase(),
    })
}

/// A description of at most 500 characters, kept exactly as written.
pub fn description(raw: &str) -> Result<(), &'static str> {
    if raw.chars().count() > DESCRIPTION_MAX_CHARS {
        Err("must be at most 500 characters")
    } else if raw
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\t' | '\r'))
    {
        Err("must not contain control characters other than tab and newline")
    } else {
        Ok(())
    }
}

/// An amount greater than 0 and at most 1,000,000,000.
pub fn amount(amount: Money) -> Result<Money, &'static str> {
    if amount <= Money::ZERO {
        Err("must be greater than 0")
    } else if amount > AMOUNT_MAX {
        Err("must be at most 1000000000")
    } else {
        Ok(amount)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_is_trimmed_and_lowercased() {
        assert_eq!(
            email("  Ann@Example.COM ").map(Email::into_string),
            Ok("ann@example.com".to_owned())
        );
        assert!(email("ann@example").is_err());
        assert!(email("a@b@c.com").is_err());
        assert!(email("@example.com").is_err());
        assert!(email("ann @example.com").is_err());
        assert!(email(&format!("{}@example.com", "a".repeat(250))).is_err());
    }

    #[test]
    fn password_length_counts_characters() {
        assert!(password("1234567").is_err());
        assert!(password("12345678").is_ok());
        assert!(password(&"é".repeat(128)).is_ok());
        assert!(password(&"x".repeat(129)).is_err());
    }

    #[test]
    fn category_is_trimmed_and_bounded() {
        assert_eq!(category("  Food "), Ok("Food".into()));
        assert!(category("   ").is_err());
        assert!(category(&"x".repeat(65)).is_err());
        assert!(category(&"ü".repeat(64)).is_ok());
        assert!(category("a\u{0}b").is_err());
        assert_eq!(category_key(" FöÖd ").as_str(), "fööd");
    }

    #[test]
    fn categories_are_composed_and_refuse_invisible_characters() {
        let composed = category("caf\u{e9}").expect("composed");
        let decomposed = category("cafe\u{301}").expect("decomposed");
        assert_eq!(composed, decomposed);
        assert_eq!(category_key("CAFE\u{301}"), category_key("caf\u{e9}"));
        for sneaky in [
            "Food\u{200B}",
            "\u{202E}dooF",
            "a\u{2066}b\u{2069}",
            "\u{FEFF}Food",
            "Fo\u{00AD}od",
        ] {
            assert!(category(sneaky).is_err(), "{sneaky:?}");
        }
        assert!(category("\u{1F468}\u{200D}\u{1F469}\u{200D}\u{1F467} Family").is_ok());
    }

    #[test]
    fn dates_stay_within_years_1900_to_2999() {
        let day = |y, m, d| NaiveDate::from_ymd_opt(y, m, d).expect("valid date");
        assert!(date(day(1900, 1, 1)).is_ok());
        assert!(date(day(2999, 12, 31)).is_ok());
        assert!(date(day(1899, 12, 31)).is_err());
        assert!(date(day(3000, 1, 1)).is_err());
        assert!(date(day(0, 1, 1)).is_err());
        assert!(date(day(-1, 1, 1)).is_err());
        assert!(date(day(10000, 1, 1)).is_err());
    }

    #[test]
    fn description_and_amount_bounds() {
        assert!(description(&"x".repeat(500)).is_ok());
        assert!(description(&"x".repeat(501)).is_err());
        assert!(description("line\nbreak").is_ok());
        assert!(description("nul\u{0}").is_err());
        assert!(amount(Money::from_minor(0)).is_err());
        assert!(amount(Money::from_minor(-1)).is_err());
        assert!(amount(Money::from_minor(1)).is_ok());
        assert!(amount(AMOUNT_MAX).is_ok());
        assert!(amount(Money::from_minor(100_000_000_001)).is_err());
    }
}
