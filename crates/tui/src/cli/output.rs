//! What the subcommands print for people: reports and tables.

use finance_shared::{FileImportResult, ImportJob, LineError, Money};

pub fn job_report(job: &ImportJob) -> String {
    let mut out = format!(
        "Read {} transactions. Imported {}, skipped {} already imported, ignored {} money-in",
        job.transactions,
        job.imported.unwrap_or(0),
        job.skipped.unwrap_or(0),
        job.ignored,
    );
    push_line_errors(&mut out, &job.errors, job.errors_total);
    out
}

/// The lines of a file that could not be read, one a line (the server
/// sends the first ones and the count of all).
fn push_line_errors(out: &mut String, errors: &[LineError], total: u64) {
    if !errors.is_empty() {
        let total = total.max(errors.len() as u64);
        out.push_str(&format!("\n{total} lines could not be read:"));
        for e in errors {
            out.push_str(&format!("\n  line {}: {}", e.line, e.message));
        }
        if total > errors.len() as u64 {
            out.push_str(&format!("\n  ... and {} more", total - errors.len() as u64));
        }
    }
}

/// What a file import did, for people.
pub fn import_report(r: &FileImportResult) -> String {
    let verb = if r.dry_run {
        "Would import"
    } else {
        "Imported"
    };
    let mut out = format!(
        "Read {} transactions. {verb} {} ({} out), skipped {} already imported, ignored {} money-in ({})",
        r.transactions,
        r.imported,
        Money::from_minor(r.expenses.iter().map(|e| e.amount.minor()).sum()),
        r.skipped,
        r.ignored,
        r.money_in,
    );
    push_line_errors(&mut out, &r.errors, r.errors_total);
    out
}

pub(super) fn table<const N: usize>(header: [&str; N], rows: &[[String; N]]) -> String {
    let mut widths = header.map(|h| h.chars().count());
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        cells
            .iter()
            .enumerate()
            .map(|(i, c)| {
                if i + 1 == N {
                    format!("{c:>w$}", w = widths[i])
                } else {
                    format!("{c:<w$}", w = widths[i])
                }
            })
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_owned()
    };
    let mut out = vec![line(header.to_vec())];
    out.extend(
        rows.iter()
            .map(|r| line(r.iter().map(String::as_str).collect())),
    );
    out.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_amounts_right() {
        let t = table(
            ["A", "AMOUNT"],
            &[
                ["x".into(), "1.00".into()],
                ["long".into(), "100.00".into()],
            ],
        );
        assert_eq!(t, "A     AMOUNT\nx       1.00\nlong  100.00");
    }
}
