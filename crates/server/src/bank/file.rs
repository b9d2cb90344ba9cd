//! What CSV and OFX files have in common: decoding their bytes, and turning
//! the transactions read from them into expenses with stable ids.

use std::collections::HashMap;

use chrono::NaiveDate;
use finance_shared::{LineError, Money, validate};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::dates::DateRange;
use super::{BankTransaction, Correction, LEGACY_FINGERPRINTS};

/// What the id of a transaction without the bank's id starts with; the
/// transaction's date follows, so one statement's ids sit together in the
/// dedupe index instead of one page apiece across a user's whole history.
pub const FINGERPRINT: &str = "fp2:";

/// Longest bank id of a transaction: OFX's FITID is at most 255 characters,
/// and every database indexes an id of this length whole.
pub const PROVIDER_ID_MAX_CHARS: usize = 255;

/// A transaction as a file states it, before it becomes an expense.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileTransaction {
    /// 1-based line of the file it starts on.
    pub line: u64,
    pub date: NaiveDate,
    /// Signed, in minor units: money out is negative.
    pub amount: i64,
    pub description: Option<String>,
    pub category: Option<String>,
    /// The bank's id of the transaction, when the file has one.
    pub provider_id: Option<String>,
    /// The expense it was exported from (this server's own CSV export).
    pub origin: Option<Uuid>,
    /// An OFX correction of the transaction with this bank id.
    pub correction: Option<(Correction, String)>,
}

/// Line errors kept of one file: the earliest lines; the rest are counted.
/// A file of junk lines must not answer with (or store) one error per line.
pub const LINE_ERRORS_MAX: usize = 100;

/// Everything read from a file: its transactions and the lines that failed.
#[derive(Clone, Debug, Default)]
pub struct ParsedFile {
    pub transactions: Vec<FileTransaction>,
    /// The first [`LINE_ERRORS_MAX`] lines that failed, in file order.
    pub errors: Vec<LineError>,
    /// Every line that failed.
    pub errors_total: u64,
    /// Pending rows, left out.
    pub pending: u64,
    /// The latest line among `errors`.
    latest_kept: u64,
}

impl ParsedFile {
    /// Records a line that could not be read.
    pub fn error(&mut self, line: u64, message: impl Into<String>) {
        self.errors_total += 1;
        // Once the list is full, a later line than all kept ones is only counted.
        if self.errors.len() >= LINE_ERRORS_MAX && line >= self.latest_kept {
            return;
        }
        self.latest_kept = self.latest_kept.max(line);
        self.errors.push(LineError {
            line,
            message: message.into(),
        });
        if self.errors.len() >= 2 * LINE_ERRORS_MAX {
            self.keep_first_errors();
        }
    }

    /// Sorts the kept errors by line and drops all but the first ones.
    fn keep_first_errors(&mut self) {
        self.errors.sort_by_key(|e| e.line);
        self.errors.truncate(LINE_ERRORS_MAX);
        self.latest_kept = self.errors.last().map_or(0, |e| e.line);
    }
}

/// Why a whole file was refused.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct FileError(pub String);

/// Text encodings bank files come in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Encoding {
    /// UTF-8 when the bytes are valid UTF-8, Windows-1252 otherwise.
    #[default]
    Auto,
    /// One named by a WHATWG label (`utf-8`, `windows-1252`, `latin1`,
    /// `iso-8859-15`, `utf-16le`...).
    Named(&'static encoding_rs::Encoding),
}

impl Encoding {
    /// The encoding an option names: `auto` or any WHATWG label.
    pub fn from_label(label: &str) -> Result<Encoding, String> {
        let label = label.trim();
        if label.eq_ignore_ascii_case("auto") {
            return Ok(Encoding::Auto);
        }
        // Older servers took these spellings, which WHATWG does not list.
        let label = match label.to_ascii_lowercase().as_str() {
            "utf8" => "utf-8".to_owned(),
            "cp1252" => "windows-1252".to_owned(),
            other => other.to_owned(),
        };
        encoding_rs::Encoding::for_label(label.as_bytes())
            .map(Encoding::Named)
            .ok_or_else(|| {
                format!(
                    "{label:?} is not an encoding label: use auto, utf-8, windows-1252, \
                     iso-8859-15, utf-16le or another WHATWG label"
                )
            })
    }
}

/// The file as text, without a byte-order mark.
pub fn decode(bytes: &[u8], encoding: Encoding) -> Result<String, FileError> {
    let strict = |encoding: &'static encoding_rs::Encoding| {
        let (encoding, bom) = encoding_rs::Encoding::for_bom(bytes).unwrap_or((encoding, 0));
        encoding
            .decode_without_bom_handling_and_without_replacement(&bytes[bom..])
            .map(|t| t.into_owned())
            .ok_or_else(|| FileError(format!("the file is not valid {}", encoding.name())))
    };
    match encoding {
        Encoding::Named(e) => strict(e),
        Encoding::Auto => strict(encoding_rs::UTF_8).or_else(|_| strict(encoding_rs::WINDOWS_1252)),
    }
}

/// A description as the API stores it: control characters as spaces, runs of
/// spaces as one, at most 500 characters; `None` when nothing is left.
pub fn clean_description(raw: &str) -> Option<String> {
    let spaced: String = raw
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let words: Vec<&str> = spaced.split_whitespace().collect();
    let joined = words.join(" ");
    let cut: String = joined.chars().take(500).collect();
    (!cut.is_empty()).then_some(cut)
}

/// What a file's transactions amount to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FileTotals {
    pub transactions: u64,
    /// Money-in transactions.
    pub money_in_count: u64,
    pub zero_amount: u64,
    pub pending: u64,
    pub money_out: Money,
    pub money_in: Money,
    /// The line of the first transaction that was read whole.
    pub first_good_line: Option<u64>,
}

impl FileTotals {
    /// Transactions that are not expenses: money in and zero.
    pub fn ignored(&self) -> u64 {
        self.money_in_count + self.zero_amount
    }

    fn saw_good_line(&mut self, line: u64) {
        self.first_good_line = Some(self.first_good_line.map_or(line, |l| l.min(line)));
    }

    /// Why nothing of the file can be imported: no line was a transaction,
    /// or the first [`LINE_ERRORS_MAX`] lines all failed (it is not the
    /// format it was read as).
    pub fn unreadable(&self, parsed: &ParsedFile) -> Option<String> {
        let first_error = parsed.errors.first()?;
        let all_failed = self.first_good_line.is_none();
        let first_lines_failed = parsed.errors.len() >= LINE_ERRORS_MAX
            && parsed
                .errors
                .last()
                .zip(self.first_good_line)
                .is_some_and(|(last, good)| last.line < good);
        (all_failed || first_lines_failed).then(|| {
            format!(
                "{} lines could not be read{}; line {}: {}",
                parsed.errors_total,
                if all_failed {
                    " and none could"
                } else {
                    ", the first of them before any that could"
                },
                first_error.line,
                first_error.message
            )
        })
    }
}

/// The money-out transactions of a file as bank transactions, each with an
/// id that is the same every time the file is imported: the bank's id when
/// the file has one, otherwise a fingerprint of (date, amount, description)
/// with its occurrence in the file (its date first, see [`FINGERPRINT`]), so
/// two identical coffees on one day stay two expenses and a second import of
/// the file adds neither. Money-in and zero transactions are not expenses:
/// they are counted in the totals only.
pub fn to_bank_transactions(
    parsed: &mut ParsedFile,
    id_prefix: &str,
    default_category: &str,
    range: DateRange,
) -> (Vec<BankTransaction>, FileTotals) {
    let mut totals = FileTotals {
        pending: parsed.pending,
        ..FileTotals::default()
    };
    let mut seen: HashMap<String, u32> = HashMap::new();
    let mut out = Vec::new();
    let transactions = std::mem::take(&mut parsed.transactions);
    for t in transactions {
        totals.transactions += 1;
        let deletes = matches!(t.correction, Some((Correction::Delete, _)));
        if !deletes && !(range.first..=range.last).contains(&t.date) {
            parsed.error(
                t.line,
                format!(
                    "date {} is outside {} to {}",
                    t.date, range.first, range.last
                ),
            );
            continue;
        }
        let too_long = |id: &String| id.chars().count() > PROVIDER_ID_MAX_CHARS;
        if t.provider_id.as_ref().is_some_and(too_long)
            || t.correction.as_ref().is_some_and(|(_, id)| too_long(id))
        {
            parsed.error(
                t.line,
                format!("the bank's id must be at most {PROVIDER_ID_MAX_CHARS} characters"),
            );
            continue;
        }
        // A correction to money in (or to zero) leaves no expense behind.
        let correction = t.correction.as_ref().map(|(kind, target)| {
            let kind = match kind {
                Correction::Replace if t.amount < 0 => Correction::Replace,
                _ => Correction::Delete,
            };
            (kind, format!("{id_prefix}id:{target}"))
        });
        if let Some((Correction::Delete, external_id)) = correction {
            totals.saw_good_line(t.line);
            out.push(BankTransaction {
                external_id,
                legacy_id: None,
                category: default_category.to_owned(),
                description: None,
                amount: Money::ZERO,
                spent_on: t.date,
                origin: None,
                correction: Some(Correction::Delete),
            });
            continue;
        }
        if t.amount >= 0 {
            totals.money_in = Money::from_minor(totals.money_in.minor().saturating_add(t.amount));
            match t.amount {
                0 => totals.zero_amount += 1,
                _ => totals.money_in_count += 1,
            }
            totals.saw_good_line(t.line);
            continue;
        }
        let magnitude = Money::from_minor(t.amount.saturating_neg());
        totals.money_out = Money::from_minor(totals.money_out.minor().saturating_add(t.amount));
        let amount = match validate::amount(magnitude) {
            Ok(a) => a,
            Err(why) => {
                parsed.error(t.line, format!("amount {why}"));
                continue;
            }
        };
        let category = match t.category.as_deref().map(str::trim) {
            Some(c) if !c.is_empty() => match validate::category(c) {
                Ok(c) => c,
                Err(why) => {
                    parsed.error(t.line, format!("category {why}"));
                    continue;
                }
            },
            _ => default_category.to_owned(),
        };
        let correction_kind = correction.as_ref().map(|(kind, _)| *kind);
        let (external_id, legacy_id) = match (correction, &t.provider_id) {
            (Some((_, target)), _) => (target, None),
            (None, Some(id)) => (format!("{id_prefix}id:{id}"), None),
            (None, None) => {
                let print = fingerprint(t.date, t.amount, t.description.as_deref());
                let n = seen.entry(print.clone()).or_default();
                *n += 1;
                (
                    format!("{FINGERPRINT}{}:{}:{n}", t.date, &print[..32]),
                    Some(format!("{}{print}:{n}", LEGACY_FINGERPRINTS.0)),
                )
            }
        };
        totals.saw_good_line(t.line);
        out.push(BankTransaction {
            external_id,
            legacy_id,
            category,
            description: t.description,
            amount,
            spent_on: t.date,
            origin: t.origin,
            correction: correction_kind,
        });
    }
    parsed.keep_first_errors();
    (out, totals)
}

/// SHA-256 of the date, the amount and the description (case and spacing
/// ignored), hex.
fn fingerprint(date: NaiveDate, amount: i64, description: Option<&str>) -> String {
    let description = description
        .unwrap_or("")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase();
    let digest = Sha256::digest(format!("{date}|{amount}|{description}").as_bytes());
    format!("{digest:x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range() -> DateRange {
        DateRange::around(NaiveDate::from_ymd_opt(2026, 12, 4).unwrap_or_default())
    }

    fn txn(line: u64, amount: i64, description: &str) -> FileTransaction {
        FileTransaction {
            line,
            date: NaiveDate::from_ymd_opt(2026, 11, 2).unwrap_or_default(),
            amount,
            description: Some(description.to_owned()),
            category: None,
            provider_id: None,
            origin: None,
            correction: None,
        }
    }

    #[test]
    fn identical_rows_get_distinct_stable_ids() {
        let mut file = ParsedFile {
            transactions: vec![
                txn(2, -380, "Coffee"),
                txn(3, -380, "coffee "),
                txn(4, 5000, "Salary"),
            ],
            ..ParsedFile::default()
        };
        let (first, totals) = to_bank_transactions(&mut file.clone(), "", "Uncategorized", range());
        assert_eq!(first.len(), 2);
        assert_ne!(first[0].external_id, first[1].external_id);
        assert_eq!(totals.ignored(), 1);
        assert_eq!(totals.money_in_count, 1);
        assert_eq!(totals.money_out.minor(), -760);
        assert_eq!(totals.money_in.minor(), 5000);
        let (again, _) = to_bank_transactions(&mut file, "", "Uncategorized", range());
        assert_eq!(
            first.iter().map(|t| &t.external_id).collect::<Vec<_>>(),
            again.iter().map(|t| &t.external_id).collect::<Vec<_>>()
        );
    }

    /// Imported rows keep these ids: a change of form would import a file
    /// again in full. The legacy id is what servers before the dated form
    /// stored, which an import still recognises.
    #[test]
    fn fingerprints_keep_their_form() {
        let mut file = ParsedFile {
            transactions: vec![txn(2, -1234, "  Coffee   SHOP ")],
            ..ParsedFile::default()
        };
        let (ids, _) = to_bank_transactions(&mut file, "", "Uncategorized", range());
        assert_eq!(
            ids[0].external_id,
            "fp2:2026-11-02:aeec5fa44873c4afbd345666d5a8f0dc:1"
        );
        assert_eq!(
            ids[0].legacy_id.as_deref(),
            Some("fp:aeec5fa44873c4afbd345666d5a8f0dcb8ddff61c32dfbbed168c8e8eaadc258:1")
        );
        let legacy = ids[0].legacy_id.as_deref().unwrap_or_default();
        assert!((LEGACY_FINGERPRINTS.0..LEGACY_FINGERPRINTS.1).contains(&legacy));
        assert!(!(LEGACY_FINGERPRINTS.0..LEGACY_FINGERPRINTS.1).contains(&&*ids[0].external_id));
    }

    #[test]
    fn out_of_range_dates_and_long_ids_are_line_errors() {
        let far = FileTransaction {
            date: NaiveDate::from_ymd_opt(10000, 1, 1).unwrap_or_default(),
            ..txn(2, -100, "Far future")
        };
        let long = FileTransaction {
            provider_id: Some("x".repeat(PROVIDER_ID_MAX_CHARS + 1)),
            ..txn(3, -100, "Long id")
        };
        let fine = FileTransaction {
            provider_id: Some("x".repeat(PROVIDER_ID_MAX_CHARS)),
            ..txn(4, -100, "Longest id")
        };
        let mut file = ParsedFile {
            transactions: vec![far, long, fine],
            ..ParsedFile::default()
        };
        let (ids, _) = to_bank_transactions(&mut file, "", "Uncategorized", range());
        assert_eq!(ids.len(), 1);
        assert_eq!(
            file.errors.iter().map(|e| e.line).collect::<Vec<_>>(),
            [2, 3]
        );
        assert!(
            file.errors[0].message.contains("outside 1900-01-01"),
            "{:?}",
            file.errors
        );
    }

    #[test]
    fn line_errors_keep_the_first_lines_and_count_the_rest() {
        let mut file = ParsedFile::default();
        for line in (1..=10_000u64).rev() {
            file.error(line, "junk");
        }
        let (ids, totals) = to_bank_transactions(&mut file, "", "Uncategorized", range());
        assert!(ids.is_empty());
        assert_eq!(file.errors_total, 10_000);
        assert_eq!(
            file.errors.iter().map(|e| e.line).collect::<Vec<_>>(),
            (1..=LINE_ERRORS_MAX as u64).collect::<Vec<_>>()
        );
        assert!(
            totals
                .unreadable(&file)
                .is_some_and(|why| why.starts_with("10000 lines"))
        );
    }

    #[test]
    fn a_file_is_unreadable_only_when_its_first_lines_all_fail() {
        let mut mostly_good = ParsedFile {
            transactions: vec![txn(2, -100, "Coffee")],
            ..ParsedFile::default()
        };
        for line in 3..500 {
            mostly_good.error(line, "junk");
        }
        let (_, totals) = to_bank_transactions(&mut mostly_good, "", "Uncategorized", range());
        assert_eq!(totals.unreadable(&mostly_good), None);
        let mut junk_first = ParsedFile {
            transactions: vec![txn(500, -100, "Coffee")],
            ..ParsedFile::default()
        };
        for line in 2..500 {
            junk_first.error(line, "junk");
        }
        let (_, totals) = to_bank_transactions(&mut junk_first, "", "Uncategorized", range());
        assert!(totals.unreadable(&junk_first).is_some());
        let mut clean = ParsedFile {
            transactions: vec![txn(2, -100, "Coffee")],
            ..ParsedFile::default()
        };
        let (_, totals) = to_bank_transactions(&mut clean, "", "Uncategorized", range());
        assert_eq!(totals.unreadable(&clean), None);
    }

    #[test]
    fn legacy_bytes_and_bom_decode() {
        assert_eq!(
            decode(b"\xEF\xBB\xBFa;b", Encoding::Auto).ok().as_deref(),
            Some("a;b")
        );
        assert_eq!(
            decode(b"5 \x80", Encoding::Auto).ok().as_deref(),
            Some("5 €")
        );
        let utf8 = Encoding::from_label("UTF-8").expect("a label");
        assert!(decode(b"\x80", utf8).is_err());
        let latin9 = Encoding::from_label("iso-8859-15").expect("a label");
        assert_eq!(decode(b"5 \xA4", latin9).ok().as_deref(), Some("5 €"));
        let utf16 = Encoding::from_label("utf-16le").expect("a label");
        assert_eq!(decode(b"a\0;\0b\0", utf16).ok().as_deref(), Some("a;b"));
        for label in ["windows-1252", "cp1252", "latin1", "utf8", "auto"] {
            assert!(Encoding::from_label(label).is_ok(), "{label}");
        }
        let why = Encoding::from_label("klingon").expect_err("unknown");
        assert!(why.contains("windows-1252"), "{why}");
    }

    #[test]
    fn descriptions_are_cleaned() {
        assert_eq!(
            clean_description("  A\tB   C \u{7}").as_deref(),
            Some("A B C")
        );
        assert_eq!(clean_description("   "), None);
    }
}
