//! Cells of an exported CSV that a spreadsheet would run as a formula.
//!
//! A cell starting with `=`, `+`, `-`, `@`, a tab or a carriage return is
//! prefixed with `'` (OWASP's advice against CSV injection), which spreadsheets
//! show as text. [`unguard`] undoes exactly what [`guard`] did, so this
//! server's export imported again gives back every text unchanged.

use std::borrow::Cow;

/// Whether a spreadsheet could read the cell as a formula, or the cell looks
/// like one this module guarded (so that text beginning with `'=` survives).
fn needs_guard(cell: &str) -> bool {
    match cell.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => true,
        Some('\'') => needs_guard(&cell[1..]),
        _ => false,
    }
}

/// The cell as it is written to a CSV export.
pub fn guard(cell: &str) -> Cow<'_, str> {
    if needs_guard(cell) {
        Cow::Owned(format!("'{cell}"))
    } else {
        Cow::Borrowed(cell)
    }
}

/// The text a cell of this server's CSV export holds.
pub fn unguard(cell: &str) -> &str {
    match cell.strip_prefix('\'') {
        Some(rest) if needs_guard(rest) => rest,
        _ => cell,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formulas_are_guarded_and_read_back_unchanged() {
        let cases = [
            "=HYPERLINK(\"http://x\",\"y\")",
            "+1+2",
            "-2+3",
            "@SUM(A1:A2)",
            "\tTab",
            "\rCR",
            "'=already quoted",
            "''=twice",
            "'plain quote",
            "Plain",
            "",
            "a=b",
        ];
        for text in cases {
            let written = guard(text);
            assert!(!matches!(
                written.chars().next(),
                Some('=' | '+' | '-' | '@' | '\t' | '\r')
            ));
            assert_eq!(unguard(&written), text, "{text:?} -> {written:?}");
        }
        assert_eq!(guard("=1"), "'=1");
        assert_eq!(guard("Plain"), "Plain");
        assert_eq!(guard("'plain quote"), "'plain quote");
    }
}
