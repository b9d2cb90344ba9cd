//! OFX and QFX statements: 1.x (SGML, leaf elements unclosed) and 2.x (XML),
//! read with one SGML parser.

use chrono::NaiveDate;
use finance_shared::{Decimal, Money};
use sgmlish::SgmlEvent;

use super::Correction;
use super::file::{FileError, FileTransaction, ParsedFile, clean_description};

/// The statement's transactions (`<STMTTRN>`), with the account they belong to.
pub struct Statement {
    pub parsed: ParsedFile,
    /// `ACCTID` of the (first) account, part of each transaction's id.
    pub account: Option<String>,
}

/// The fields of one `<STMTTRN>` as written.
#[derive(Default)]
struct Raw {
    line: u64,
    fitid: String,
    posted: String,
    amount: String,
    name: String,
    memo: String,
    correct_fitid: String,
    correct_action: String,
}

/// Reads an OFX or QFX document.
pub fn read(text: &str) -> Result<Statement, FileError> {
    let start = find_ascii_ci(text, "<OFX>", 0)
        .ok_or_else(|| FileError("not an OFX file: no <OFX> element".into()))?;
    let body = escape_bare_ampersands(&text[start..]);
    let parser = sgmlish::Parser::builder()
        .uppercase_names()
        .expand_marked_sections()
        .expand_entities(|entity| match entity {
            "amp" => Some("&"),
            "lt" => Some("<"),
            "gt" => Some(">"),
            "quot" => Some("\""),
            "apos" => Some("'"),
            "nbsp" => Some("\u{a0}"),
            _ => None,
        })
        .build();
    let events = parser
        .parse(&body)
        .map_err(|e| FileError(format!("cannot read the OFX document: {e}")))?;
    let lines = transaction_lines(text);
    let mut statement = Statement {
        parsed: ParsedFile::default(),
        account: None,
    };
    let mut current: Option<Raw> = None;
    let mut leaf: Option<String> = None;
    let mut seen = 0usize;
    for event in events.iter() {
        match event {
            SgmlEvent::OpenStartTag { name } if name == "STMTTRN" => {
                current = Some(Raw {
                    line: lines.get(seen).copied().unwrap_or(0),
                    ..Raw::default()
                });
                seen += 1;
                leaf = None;
            }
            SgmlEvent::OpenStartTag { name } => leaf = Some(name.to_string()),
            SgmlEvent::EndTag { name } if name == "STMTTRN" => {
                if let Some(raw) = current.take() {
                    finish(raw, &mut statement.parsed);
                }
                leaf = None;
            }
            SgmlEvent::EndTag { .. } => leaf = None,
            SgmlEvent::Character(value) => {
                let value = value.trim();
                match (current.as_mut(), leaf.as_deref()) {
                    (Some(raw), Some(field)) => {
                        let slot = match field {
                            "FITID" => &mut raw.fitid,
                            "DTPOSTED" => &mut raw.posted,
                            "TRNAMT" => &mut raw.amount,
                            "NAME" => &mut raw.name,
                            "MEMO" => &mut raw.memo,
                            "CORRECTFITID" => &mut raw.correct_fitid,
                            "CORRECTACTION" => &mut raw.correct_action,
                            _ => continue,
                        };
                        value.clone_into(slot);
                    }
                    (None, Some("ACCTID")) if statement.account.is_none() && !value.is_empty() => {
                        statement.account = Some(value.to_owned());
                    }
                    _ => {}
                }
            }
            _ => {}
        }
    }
    if seen == 0 && find_ascii_ci(text, "<BANKTRANLIST>", 0).is_none() {
        return Err(FileError(
            "the OFX document holds no statement (no <BANKTRANLIST>)".into(),
        ));
    }
    Ok(statement)
}

/// Checks one transaction and adds it, or the reason it cannot be read.
fn finish(raw: Raw, parsed: &mut ParsedFile) {
    let correction = match (
        raw.correct_action.to_ascii_uppercase().as_str(),
        raw.correct_fitid.is_empty(),
    ) {
        ("", true) => None,
        ("REPLACE", false) => Some(Correction::Replace),
        ("DELETE", false) => Some(Correction::Delete),
        (_, true) => {
            parsed.error(raw.line, "CORRECTACTION needs the CORRECTFITID it corrects");
            return;
        }
        (action, false) => {
            parsed.error(
                raw.line,
                format!("CORRECTACTION {action:?} is not REPLACE or DELETE"),
            );
            return;
        }
    };
    if correction == Some(Correction::Delete) {
        // A deletion names its transaction; its other fields may be absent.
        parsed.transactions.push(FileTransaction {
            line: raw.line,
            date: posted_date(&raw.posted).unwrap_or_default(),
            amount: 0,
            description: None,
            category: None,
            provider_id: None,
            origin: None,
            correction: Some((Correction::Delete, raw.correct_fitid)),
        });
        return;
    }
    let Some(date) = posted_date(&raw.posted) else {
        parsed.error(
            raw.line,
            format!("DTPOSTED {:?} is not a date (YYYYMMDD...)", raw.posted),
        );
        return;
    };
    let amount = match Money::parse_localized(&raw.amount, Decimal::Auto) {
        Ok(a) => a.minor(),
        Err(why) => {
            parsed.error(raw.line, format!("TRNAMT {:?} {why}", raw.amount));
            return;
        }
    };
    let description = match (clean_description(&raw.name), clean_description(&raw.memo)) {
        (Some(name), Some(memo)) if memo.starts_with(&name) => Some(memo),
        (Some(name), Some(memo)) if name.starts_with(&memo) => Some(name),
        (Some(name), Some(memo)) => clean_description(&format!("{name} - {memo}")),
        (name, memo) => name.or(memo),
    };
    parsed.transactions.push(FileTransaction {
        line: raw.line,
        date,
        amount,
        description,
        category: None,
        provider_id: (!raw.fitid.is_empty()).then_some(raw.fitid),
        origin: None,
        correction: correction.map(|c| (c, raw.correct_fitid)),
    });
}

/// The date of an OFX date-time (`20090401122017.000[-5:EST]`, `20100723`).
fn posted_date(raw: &str) -> Option<NaiveDate> {
    let digits = raw.get(..8)?;
    NaiveDate::parse_from_str(digits, "%Y%m%d").ok()
}

/// Byte offset of `needle` (ASCII) in `text` at or after `from`, ignoring case.
fn find_ascii_ci(text: &str, needle: &str, from: usize) -> Option<usize> {
    let hay = text.as_bytes();
    let needle = needle.as_bytes();
    (from..hay.len().saturating_sub(needle.len() - 1))
        .find(|&i| hay[i..i + needle.len()].eq_ignore_ascii_case(needle))
}

/// The 1-based line of each `<STMTTRN>`, in order.
fn transaction_lines(text: &str) -> Vec<u64> {
    let mut lines = Vec::new();
    let mut from = 0;
    while let Some(at) = find_ascii_ci(text, "<STMTTRN>", from) {
        lines.push(text[..at].bytes().filter(|&b| b == b'\n').count() as u64 + 1);
        from = at + 1;
    }
    lines
}

/// Escapes each `&` that does not start an entity (`PG&E`): banks write them
/// raw although neither SGML nor XML allows it.
fn escape_bare_ampersands(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for (i, c) in text.char_indices() {
        if c == '&' && !starts_entity(&text[i + 1..]) {
            out.push_str("&amp;");
        } else {
            out.push(c);
        }
    }
    out
}

fn starts_entity(rest: &str) -> bool {
    let name: String = rest
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '#')
        .collect();
    !name.is_empty() && rest[name.len()..].starts_with(';')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sgml_with_unclosed_leaves_and_raw_ampersand() {
        let doc = "OFXHEADER:100\nDATA:OFXSGML\n\n<OFX><BANKMSGSRSV1><STMTTRNRS><STMTRS>\
                   <BANKACCTFROM><ACCTID>42</BANKACCTFROM><BANKTRANLIST>\n\
                   <STMTTRN><TRNTYPE>DEBIT<DTPOSTED>20240102120000[-5:EST]<TRNAMT>-12,50<FITID>A1<NAME>PG&E</STMTTRN>\n\
                   <STMTTRN><DTPOSTED>garbage<TRNAMT>1<FITID>A2</STMTTRN>\n\
                   </BANKTRANLIST></STMTRS></STMTTRNRS></BANKMSGSRSV1></OFX>";
        let statement = read(doc).expect("reads");
        assert_eq!(statement.account.as_deref(), Some("42"));
        let t = &statement.parsed.transactions;
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].amount, -1250);
        assert_eq!(t[0].description.as_deref(), Some("PG&E"));
        assert_eq!(t[0].line, 5);
        assert_eq!(statement.parsed.errors.len(), 1);
        assert_eq!(statement.parsed.errors[0].line, 6);
    }

    #[test]
    fn not_ofx_is_refused() {
        assert!(read("date,amount\n2024-01-01,5").is_err());
    }
}
