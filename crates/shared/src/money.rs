//! Exact money: integer minor units, parsed from and formatted as decimals.

use std::fmt;
use std::str::FromStr;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An amount of money in minor units (cents). Never a float.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Money(i64);

/// Why a decimal could not be read as money.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MoneyError {
    /// Not a decimal number such as `12.50`.
    Invalid,
    /// More than two digits after the decimal point.
    TooManyDecimals,
    /// Too large to represent.
    Overflow,
    /// Written with the other decimal separator than the one asked for
    /// (`-5,50` read with a decimal point): the separator it has.
    OtherDecimal(Decimal),
}

impl fmt::Display for MoneyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MoneyError::Invalid => "must be a decimal number such as 12.50",
            MoneyError::TooManyDecimals => "must have at most 2 decimal places",
            MoneyError::Overflow => "must be at most 1000000000",
            MoneyError::OtherDecimal(Decimal::Comma) => {
                "has a decimal comma, but the decimal style is point (decimal=point)"
            }
            MoneyError::OtherDecimal(_) => {
                "has a decimal point, but the decimal style is comma (decimal=comma)"
            }
        })
    }
}

impl std::error::Error for MoneyError {}

impl Money {
    /// Zero.
    pub const ZERO: Money = Money(0);

    /// An amount from minor units (cents).
    pub const fn from_minor(minor: i64) -> Self {
        Money(minor)
    }

    /// The amount in minor units (cents).
    pub const fn minor(self) -> i64 {
        self.0
    }

    /// Sum of two amounts, or `None` on overflow.
    pub fn checked_add(self, other: Money) -> Option<Money> {
        self.0.checked_add(other.0).map(Money)
    }

    /// Reads an amount as banks write it: a sign before or after the number
    /// (`-5.50`, `5.50-`, `+5.50`), grouping (`1,234.56`, `1.234,56`, `1 234,56`)
    /// and a decimal comma or point. [`Decimal::Auto`] takes the last `,` or `.`
    /// as the decimal separator when one to two digits follow it.
    pub fn parse_localized(raw: &str, decimal: Decimal) -> Result<Money, MoneyError> {
        let s = raw.trim();
        let (negative, s) = if let Some(rest) = s.strip_prefix('-') {
            (true, rest)
        } else if let Some(rest) = s.strip_suffix('-') {
            (true, rest)
        } else {
            (false, s.strip_prefix('+').unwrap_or(s))
        };
        let s = s.trim();
        let separator = match decimal {
            Decimal::Point => {
                check_grouping(s, '.', ',')?;
                Some('.')
            }
            Decimal::Comma => {
                check_grouping(s, ',', '.')?;
                Some(',')
            }
            Decimal::Auto => s.rfind([',', '.']).and_then(|i| {
                let digits = s.len() - i - 1;
                let sep = s[i..].chars().next()?;
                // "1,234" is a thousand, "1,23" and "1.5" are decimals.
                (digits <= 2 || sep == '.' && !s[..i].contains('.')).then_some(sep)
            }),
        };
        let mut plain = String::with_capacity(s.len());
        for c in s.chars() {
            if Some(c) == separator {
                plain.push('.');
            } else if c.is_ascii_digit() {
                plain.push(c);
            } else if !matches!(c, ',' | '.' | ' ' | '\'' | '\u{a0}' | '\u{202f}') {
                return Err(MoneyError::Invalid);
            }
        }
        if !plain.bytes().any(|b| b.is_ascii_digit()) {
            return Err(MoneyError::Invalid);
        }
        let trimmed = plain.trim_start_matches('0');
        let plain = if trimmed.is_empty() || trimmed.starts_with('.') {
            format!("0{trimmed}")
        } else {
            trimmed.to_owned()
        };
        let money: Money = plain.parse()?;
        Ok(if negative { Money(-money.0) } else { money })
    }
}

/// Checks that `other` appears in `s` only as a thousands separator before
/// the `decimal` separator: each one followed by three digits.
fn check_grouping(s: &str, decimal: char, other: char) -> Result<(), MoneyError> {
    let whole = s.split(decimal).next().unwrap_or(s);
    let fraction_has_other = s.split(decimal).skip(1).any(|f| f.contains(other));
    let bad_group = whole
        .split(other)
        .skip(1)
        .any(|group| group.len() != 3 || !group.bytes().all(|b| b.is_ascii_digit()));
    if fraction_has_other || bad_group {
        return Err(MoneyError::OtherDecimal(match other {
            ',' => Decimal::Comma,
            _ => Decimal::Point,
        }));
    }
    if s.matches(decimal).count() > 1 {
        return Err(MoneyError::Invalid);
    }
    Ok(())
}

impl Decimal {
    /// The separator an amount as written shows to be its decimal one: the
    /// last `,` or `.` when one or two digits follow it, or when the other
    /// comes before it (`1.234,5`); `None` when the text cannot tell
    /// (`12`, `1,234`).
    pub fn shown_by(raw: &str) -> Option<Decimal> {
        let s = raw.trim().trim_end_matches('-');
        let i = s.rfind([',', '.'])?;
        let sep = s[i..].chars().next()?;
        let other = if sep == ',' { '.' } else { ',' };
        let digits = s[i + 1..].trim();
        let shown = (1..=2).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit())
            || s[..i].contains(other);
        shown.then_some(if sep == ',' {
            Decimal::Comma
        } else {
            Decimal::Point
        })
    }
}

/// Which character separates the decimals of an amount in a bank file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Decimal {
    /// Judged per value (see [`Money::parse_localized`]).
    #[default]
    Auto,
    /// `1,234.56`
    Point,
    /// `1.234,56`
    Comma,
}

impl FromStr for Money {
    type Err = MoneyError;

    /// Reads `12`, `12.5` or `12.50` (an optional leading `-`); rejects a third decimal.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (negative, digits) = match s.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, s),
        };
        let (whole, frac) = match digits.split_once('.') {
            Some((w, f)) => (w, Some(f)),
            None => (digits, None),
        };
        let all_digits = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
        if !all_digits(whole) || frac.is_some_and(|f| !all_digits(f)) {
            return Err(MoneyError::Invalid);
        }
        // "012.50" is not how anyone writes money (and not what the schema allows).
        if whole.len() > 1 && whole.starts_with('0') {
            return Err(MoneyError::Invalid);
        }
        let frac = frac.unwrap_or("");
        if frac.len() > 2 {
            return Err(MoneyError::TooManyDecimals);
        }
        let units: i64 = whole.parse().map_err(|_| MoneyError::Overflow)?;
        let cents: i64 = match frac.len() {
            0 => 0,
            1 => i64::from(frac.as_bytes()[0] - b'0') * 10,
            _ => frac.parse().map_err(|_| MoneyError::Invalid)?,
        };
        let minor = units
            .checked_mul(100)
            .and_then(|m| m.checked_add(cents))
            .ok_or(MoneyError::Overflow)?;
        Ok(Money(if negative { -minor } else { minor }))
    }
}

impl fmt::Display for Money {
    /// Always two decimals: `12.50`, `-0.05`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        write!(f, "{sign}{}.{:02}", abs / 100, abs % 100)
    }
}

impl Serialize for Money {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Money {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(MoneyVisitor)
    }
}

struct MoneyVisitor;

impl Visitor<'_> for MoneyVisitor {
    type Value = Money;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a number or a decimal string with at most 2 decimal places")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Money, E> {
        v.parse().map_err(E::custom)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Money, E> {
        v.checked_mul(100)
            .map(Money)
            .ok_or_else(|| E::custom(MoneyError::Overflow))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Money, E> {
        i64::try_from(v)
            .map_err(|_| E::custom(MoneyError::Overflow))
            .and_then(|v| self.visit_i64(v))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Money, E> {
        // Rust prints the shortest decimal that reads back as the same f64, and
        // never in exponent form, so `12.5` prints "12.5" and `0.1` prints "0.1":
        // the decimal the client wrote, which is then parsed exactly.
        if !v.is_finite() {
            return Err(E::custom(MoneyError::Invalid));
        }
        format!("{v}").parse().map_err(E::custom)
    }
}

/// Response form: a decimal string with exactly two decimals.
#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for Money {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some(r"^-?[0-9]+\.[0-9]{2}$"))
            .description(Some("Exact amount: a decimal string with two decimals"))
            .examples([serde_json::json!("12.50")])
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for Money {}

/// Request form of an amount: a number or a decimal string, more than 0,
/// at most 1,000,000,000, with at most two decimals.
#[cfg(feature = "openapi")]
pub fn amount_input_schema() -> utoipa::openapi::schema::Schema {
    use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Schema, Type};
    let number = ObjectBuilder::new()
        .schema_type(Type::Number)
        .exclusive_minimum(Some(0))
        .maximum(Some(1_000_000_000))
        .multiple_of(Some(0.01))
        .examples([serde_json::json!(12.5)]);
    let string = ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(
            r"^(1000000000(\.0{1,2})?|[1-9][0-9]{0,8}(\.[0-9]{1,2})?|0\.(0[1-9]|[1-9][0-9]?))$",
        ))
        .examples([serde_json::json!("12.50")]);
    Schema::OneOf(
        OneOfBuilder::new()
            .item(number)
            .item(string)
            .description(Some(
                "A number or a decimal string with at most 2 decimal places",
            ))
            .build(),
    )
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_given_decimal_style_never_multiplies_an_amount() {
        let read = |s, d| Money::parse_localized(s, d).map(|m| m.minor());
        let comma = Err(MoneyError::OtherDecimal(Decimal::Comma));
        assert_eq!(read("-5,50", Decimal::Point), comma);
        assert_eq!(read("1.060,22", Decimal::Point), comma);
        assert_eq!(read("1,5", Decimal::Point), comma);
        assert_eq!(read("1,234.50", Decimal::Point), Ok(123_450));
        assert_eq!(
            read("12.50", Decimal::Comma),
            Err(MoneyError::OtherDecimal(Decimal::Point))
        );
        assert_eq!(read("1.060,22", Decimal::Comma), Ok(106_022));
        assert_eq!(read("1,2,3", Decimal::Comma), Err(MoneyError::Invalid));
    }

    #[test]
    fn the_decimal_style_an_amount_shows() {
        assert_eq!(Decimal::shown_by("-5,50"), Some(Decimal::Comma));
        assert_eq!(Decimal::shown_by("1.234,5"), Some(Decimal::Comma));
        assert_eq!(Decimal::shown_by("1,234.56"), Some(Decimal::Point));
        assert_eq!(Decimal::shown_by("12.5-"), Some(Decimal::Point));
        assert_eq!(Decimal::shown_by("1,234"), None);
        assert_eq!(Decimal::shown_by("2500"), None);
    }

    #[test]
    fn bank_amounts_are_read_in_every_local_form() {
        let read = |s, d| Money::parse_localized(s, d).map(|m| m.minor());
        assert_eq!(read("-5,50", Decimal::Auto), Ok(-550));
        assert_eq!(read("1.234,56", Decimal::Auto), Ok(123_456));
        assert_eq!(read("1,234.56", Decimal::Auto), Ok(123_456));
        assert_eq!(read("1,234", Decimal::Auto), Ok(123_400));
        assert_eq!(read("2500", Decimal::Comma), Ok(250_000));
        assert_eq!(read("155,5", Decimal::Auto), Ok(15_550));
        assert_eq!(read(" -836.30 ", Decimal::Auto), Ok(-83_630));
        assert_eq!(read("12.50-", Decimal::Auto), Ok(-1250));
        assert_eq!(read("0,00", Decimal::Auto), Ok(0));
        assert_eq!(read("1 234,5", Decimal::Comma), Ok(123_450));
        assert_eq!(read("1.500", Decimal::Comma), Ok(150_000));
        assert_eq!(
            read("1.005", Decimal::Point),
            Err(MoneyError::TooManyDecimals)
        );
        assert_eq!(read("12 EUR", Decimal::Auto), Err(MoneyError::Invalid));
        assert_eq!(read("", Decimal::Auto), Err(MoneyError::Invalid));
    }
    use super::*;

    fn parse_json(s: &str) -> Result<Money, String> {
        serde_json::from_str::<Money>(s).map_err(|e| e.to_string())
    }

    #[test]
    fn parses_numbers_and_strings_exactly() {
        assert_eq!(parse_json("12.5"), Ok(Money(1250)));
        assert_eq!(parse_json("\"12.50\""), Ok(Money(1250)));
        assert_eq!(parse_json("12"), Ok(Money(1200)));
        assert_eq!(parse_json("0.1"), Ok(Money(10)));
        assert_eq!(parse_json("0.29"), Ok(Money(29)));
        assert_eq!(parse_json("1000000000"), Ok(Money(100_000_000_000)));
        assert_eq!(parse_json("999999999.99"), Ok(Money(99_999_999_999)));
        assert_eq!(parse_json("1e2"), Ok(Money(10_000)));
    }

    #[test]
    fn rejects_a_third_decimal_and_junk() {
        assert!(parse_json("12.345").is_err());
        assert!(parse_json("\"12.345\"").is_err());
        assert!(parse_json("\"12.\"").is_err());
        assert!(parse_json("\".5\"").is_err());
        assert!(parse_json("\"1,50\"").is_err());
        assert!(parse_json("\" 1.50\"").is_err());
        assert!(parse_json("\"\"").is_err());
        assert!(parse_json("true").is_err());
        assert!(parse_json("\"99999999999999999999\"").is_err());
        assert!(parse_json("\"012.50\"").is_err());
        assert_eq!(parse_json("\"0.50\""), Ok(Money(50)));
    }

    #[test]
    fn formats_with_two_decimals() {
        assert_eq!(Money(1250).to_string(), "12.50");
        assert_eq!(Money(5).to_string(), "0.05");
        assert_eq!(Money(-5).to_string(), "-0.05");
        assert_eq!(Money(0).to_string(), "0.00");
        assert_eq!(
            serde_json::to_string(&Money(100)).ok().as_deref(),
            Some("\"1.00\"")
        );
    }

    #[test]
    fn ten_dimes_make_a_unit() {
        let dime = parse_json("0.1").expect("0.1 parses");
        let total = (0..10).try_fold(Money::ZERO, |acc, _| acc.checked_add(dime));
        assert_eq!(total.map(|m| m.to_string()).as_deref(), Some("1.00"));
    }
}
