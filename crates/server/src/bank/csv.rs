//! CSV bank exports, read through a column mapping, and this server's own export.

use chrono::NaiveDate;
use finance_shared::{
    CsvImportQuery, Decimal, EXPORT_CSV_HEADER, Money, SignConvention, spreadsheet, validate,
};
use uuid::Uuid;

use super::file::{FileError, FileTransaction, ParsedFile, clean_description};

/// Date formats tried when none is given: those that cannot be misread.
const AUTO_DATE_FORMATS: [&str; 4] = ["%Y-%m-%d", "%d.%m.%Y", "%Y/%m/%d", "%Y%m%d"];

/// How far down a file its header may be (after a preamble).
const HEADER_SEARCH_ROWS: usize = 100;

/// Where each field of a transaction is in a row.
#[derive(Clone, Debug, Default)]
struct Columns {
    date: usize,
    amount: Option<usize>,
    debit: Option<usize>,
    credit: Option<usize>,
    direction: Option<usize>,
    description: Option<usize>,
    category: Option<usize>,
    id: Option<usize>,
}

/// The mapping resolved against the file: columns, formats, conventions.
struct Layout {
    delimiter: u8,
    /// Index of the header row among the records (`None`: no header).
    header_row: Option<usize>,
    columns: Columns,
    /// This server's export: the id column is the origin of each row.
    export: bool,
}

/// Reads the transactions of a CSV file with the given mapping.
pub fn read(text: &str, mapping: &CsvImportQuery) -> Result<ParsedFile, FileError> {
    let layout = layout(text, mapping)?;
    let decimal = mapping.decimal.unwrap_or(if layout.export {
        Decimal::Point
    } else {
        Decimal::Auto
    });
    let sign = mapping.sign.unwrap_or(if layout.export {
        SignConvention::PositiveOut
    } else {
        SignConvention::NegativeOut
    });
    let out_value = mapping.out_value.as_deref().unwrap_or("D").trim();
    let mut parsed = ParsedFile::default();
    let cols = &layout.columns;
    for (index, record) in records(text, layout.delimiter).enumerate() {
        let (line, fields) = match record {
            Ok(r) => r,
            Err((line, why)) => {
                parsed.error(line, why);
                continue;
            }
        };
        if layout.header_row.is_some_and(|h| index <= h)
            || fields.iter().all(|f| f.trim().is_empty())
        {
            continue;
        }
        let cell = |i: usize| fields.get(i).map_or("", |f| f.trim());
        let date = match parse_date(cell(cols.date), mapping.date_format.as_deref()) {
            Ok(d) => d,
            Err(why) => {
                parsed.error(line, why);
                continue;
            }
        };
        let amount = match row_amount(cols, &cell, decimal, sign, out_value) {
            Ok(a) => a,
            Err(why) => {
                parsed.error(line, why);
                continue;
            }
        };
        let id = cols
            .id
            .map(cell)
            .filter(|v| !v.is_empty())
            .map(str::to_owned);
        let origin = if layout.export {
            match id.as_deref().map(Uuid::parse_str) {
                Some(Ok(id)) => Some(id),
                _ => {
                    parsed.error(line, "id is not a UUID, as this server's export writes it");
                    continue;
                }
            }
        } else {
            None
        };
        // The export's text goes back exactly as it was; a bank's is tidied.
        let description = if layout.export {
            let raw = cols
                .description
                .and_then(|i| fields.get(i))
                .map_or("", |d| spreadsheet::unguard(d));
            if let Err(why) = validate::description(raw) {
                parsed.error(line, format!("description {why}"));
                continue;
            }
            (!raw.is_empty()).then(|| raw.to_owned())
        } else {
            cols.description.map(cell).and_then(clean_description)
        };
        parsed.transactions.push(FileTransaction {
            line,
            date,
            amount,
            description,
            category: cols
                .category
                .map(cell)
                .map(|c| match layout.export {
                    true => spreadsheet::unguard(c),
                    false => c,
                })
                .map(str::to_owned),
            provider_id: id,
            origin,
        });
    }
    Ok(parsed)
}

/// The signed amount of a row: money out negative.
fn row_amount<'a>(
    cols: &Columns,
    cell: &impl Fn(usize) -> &'a str,
    decimal: Decimal,
    sign: SignConvention,
    out_value: &str,
) -> Result<i64, String> {
    let read = |name: &str, i: usize| -> Result<Option<i64>, String> {
        let raw = cell(i);
        if raw.is_empty() {
            return Ok(None);
        }
        Money::parse_localized(raw, decimal)
            .map(|m| Some(m.minor()))
            .map_err(|why| format!("{name} {raw:?} {why}"))
    };
    if let Some(i) = cols.amount {
        let amount = read("amount", i)?.ok_or("amount is empty")?;
        return Ok(match (cols.direction, sign) {
            (Some(d), _) if cell(d).eq_ignore_ascii_case(out_value) => -amount.abs(),
            (Some(_), _) => amount.abs(),
            (None, SignConvention::NegativeOut) => amount,
            (None, SignConvention::PositiveOut) => -amount,
        });
    }
    let debit = cols.debit.map(|i| read("debit", i)).transpose()?.flatten();
    let credit = cols
        .credit
        .map(|i| read("credit", i))
        .transpose()?
        .flatten();
    if debit.is_none() && credit.is_none() {
        return Err("both debit and credit are empty".into());
    }
    Ok(credit.unwrap_or(0).abs() - debit.unwrap_or(0).abs())
}

fn parse_date(raw: &str, format: Option<&str>) -> Result<NaiveDate, String> {
    match format {
        Some(f) => NaiveDate::parse_from_str(raw, f)
            .map_err(|_| format!("date {raw:?} does not match the format {f:?}")),
        None => AUTO_DATE_FORMATS
            .iter()
            .find_map(|f| NaiveDate::parse_from_str(raw, f).ok())
            .ok_or_else(|| {
                format!("date {raw:?} is not YYYY-MM-DD; give date_format (for example %d/%m/%Y)")
            }),
    }
}

/// Every record of the file as (line, fields), or (line, why) when unreadable.
fn records(
    text: &str,
    delimiter: u8,
) -> impl Iterator<Item = Result<(u64, Vec<String>), (u64, String)>> + '_ {
    let reader = ::csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(delimiter)
        .from_reader(text.as_bytes());
    reader.into_records().map(|r| match r {
        Ok(record) => {
            let line = record.position().map_or(0, ::csv::Position::line);
            Ok((line, record.iter().map(str::to_owned).collect()))
        }
        Err(e) => {
            let line = e.position().map_or(0, ::csv::Position::line);
            Err((line, format!("unreadable CSV row: {e}")))
        }
    })
}

/// A column reference: a header name, or a 1-based position.
fn column(header: Option<&[String]>, reference: &str) -> Option<usize> {
    let wanted = reference.trim();
    if let Some(i) = header.and_then(|header| {
        header
            .iter()
            .position(|h| h.trim().eq_ignore_ascii_case(wanted))
    }) {
        return Some(i);
    }
    wanted
        .parse::<usize>()
        .ok()
        .filter(|n| *n >= 1)
        .map(|n| n - 1)
}

fn delimiters(mapping: &CsvImportQuery) -> Result<Vec<u8>, FileError> {
    match mapping.delimiter.as_deref() {
        None | Some("") => Ok(vec![b',', b';', b'\t', b'|']),
        Some("tab" | "\\t" | "\t") => Ok(vec![b'\t']),
        Some(d) if d.len() == 1 => Ok(vec![d.as_bytes()[0]]),
        Some(d) => Err(FileError(format!(
            "delimiter {d:?} must be one character, or \"tab\""
        ))),
    }
}

/// Finds the delimiter, the header and the columns the mapping names.
fn layout(text: &str, mapping: &CsvImportQuery) -> Result<Layout, FileError> {
    let mapped = mapping.date.is_some()
        || mapping.amount.is_some()
        || mapping.debit.is_some()
        || mapping.credit.is_some();
    let candidates = delimiters(mapping)?;
    for &delimiter in &candidates {
        let head: Vec<Vec<String>> = records(text, delimiter)
            .take(HEADER_SEARCH_ROWS)
            .filter_map(Result::ok)
            .map(|(_, fields)| fields)
            .collect();
        let found = if mapped {
            mapped_layout(&head, mapping)
        } else {
            named_layout(&head)
        };
        if let Some((header_row, columns, export)) = found {
            return Ok(Layout {
                delimiter,
                header_row,
                columns,
                export,
            });
        }
    }
    Err(FileError(if mapped {
        "no header row has every column the mapping names (check the names and the delimiter)"
            .into()
    } else {
        format!(
            "no column mapping given and the header is not this server's export ({}) \
             nor has date and amount columns: give date=, amount= (or debit=/credit=) and description=",
            EXPORT_CSV_HEADER.join(",")
        )
    }))
}

/// The layout the mapping describes, if some row among `head` is its header.
fn mapped_layout(
    head: &[Vec<String>],
    mapping: &CsvImportQuery,
) -> Option<(Option<usize>, Columns, bool)> {
    let refs = [
        &mapping.date,
        &mapping.amount,
        &mapping.debit,
        &mapping.credit,
        &mapping.direction,
        &mapping.description,
        &mapping.category,
        &mapping.id,
    ];
    let by_position = |r: &str| r.trim().parse::<usize>().is_ok();
    let named: Vec<&str> = refs
        .iter()
        .filter_map(|r| r.as_deref())
        .filter(|r| !by_position(r))
        .collect();
    let header_row = if named.is_empty() {
        // Columns by position: the first row is the header if it is not data.
        Some(0).filter(|_| {
            let first = head.first().map(Vec::as_slice).unwrap_or_default();
            let date = mapping.date.as_deref().and_then(|d| column(None, d));
            date.and_then(|i| first.get(i))
                .is_some_and(|v| parse_date(v.trim(), mapping.date_format.as_deref()).is_err())
        })
    } else {
        Some(head.iter().position(|row| {
            named
                .iter()
                .all(|n| row.iter().any(|h| h.trim().eq_ignore_ascii_case(n.trim())))
        })?)
    };
    let header = header_row.map(|i| head[i].as_slice());
    let col = |r: &Option<String>| r.as_deref().and_then(|r| column(header, r));
    let columns = Columns {
        date: col(&mapping.date)?,
        amount: col(&mapping.amount),
        debit: col(&mapping.debit),
        credit: col(&mapping.credit),
        direction: col(&mapping.direction),
        description: col(&mapping.description),
        category: col(&mapping.category),
        id: col(&mapping.id),
    };
    // Columns by position must exist: that is how the delimiter is told apart.
    let width = head.get(header_row.unwrap_or(0)).map_or(0, Vec::len);
    let widest = [
        Some(columns.date),
        columns.amount,
        columns.debit,
        columns.credit,
        columns.direction,
        columns.description,
        columns.category,
        columns.id,
    ]
    .into_iter()
    .flatten()
    .max()
    .unwrap_or(0);
    (widest < width
        && (columns.amount.is_some() || columns.debit.is_some() || columns.credit.is_some()))
    .then_some((header_row, columns, false))
}

/// With no mapping: this server's export, or columns found by their names.
fn named_layout(head: &[Vec<String>]) -> Option<(Option<usize>, Columns, bool)> {
    let first = head
        .iter()
        .position(|r| r.iter().any(|f| !f.trim().is_empty()))?;
    let header = &head[first];
    let find = |name: &str| {
        header
            .iter()
            .position(|h| h.trim().eq_ignore_ascii_case(name))
    };
    let export = header.len() == EXPORT_CSV_HEADER.len()
        && header
            .iter()
            .zip(EXPORT_CSV_HEADER)
            .all(|(h, e)| h.trim() == e);
    let columns = Columns {
        date: find(if export { "spent_on" } else { "date" })?,
        amount: Some(find("amount")?),
        description: find("description"),
        category: find("category"),
        id: if export { find("id") } else { None },
        ..Columns::default()
    };
    Some((Some(first), columns, export))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preamble_semicolons_and_decimal_commas() {
        let text = "Bank;Export\n\nDatum;Betrag;Text\n02.01.2024;-5,50;Kaffee\n03.01.2024;100,00;Lohn\nxx;1;y\n";
        let mapping = CsvImportQuery {
            date: Some("Datum".into()),
            amount: Some("Betrag".into()),
            description: Some("Text".into()),
            ..CsvImportQuery::default()
        };
        let parsed = read(text, &mapping).expect("reads");
        assert_eq!(parsed.transactions.len(), 2);
        assert_eq!(parsed.transactions[0].amount, -550);
        assert_eq!(parsed.transactions[0].line, 4);
        assert_eq!(parsed.errors.len(), 1);
        assert_eq!(parsed.errors[0].line, 6);
    }

    #[test]
    fn the_export_reads_back_without_a_mapping() {
        let id = Uuid::now_v7();
        let text = format!(
            "id,spent_on,category,description,amount,source\n{id},2024-01-02,Food,\"Lunch, with Bo\",12.50,manual\n"
        );
        let parsed = read(&text, &CsvImportQuery::default()).expect("reads");
        let t = &parsed.transactions[0];
        assert_eq!((t.amount, t.origin), (-1250, Some(id)));
        assert_eq!(t.description.as_deref(), Some("Lunch, with Bo"));
    }

    #[test]
    fn unknown_layout_without_mapping_is_refused() {
        assert!(read("a,b\n1,2\n", &CsvImportQuery::default()).is_err());
    }
}
