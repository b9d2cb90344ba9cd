//! CSV bank exports, read through a column mapping, and this server's own export.
//!
//! A file is read twice: once to find what the mapping leaves open (the one
//! date format that reads every date, the decimal style the amounts show),
//! then row by row into transactions.

use chrono::NaiveDate;
use finance_shared::{
    CsvImportQuery, Decimal, Delimiter, EXPORT_CSV_HEADER, Money, SignConvention, spreadsheet,
    validate,
};
use uuid::Uuid;

use super::dates::{self, DateRange, Survey, SurveyError};
use super::file::{FileError, FileTransaction, ParsedFile, clean_description};

/// How far down a file its header may be (after a preamble).
const HEADER_SEARCH_ROWS: usize = 100;

/// `status` values that mean pending when `pending=` is not given.
pub const PENDING_VALUES: [&str; 6] = [
    "pending",
    "umsatz vorgemerkt",
    "vorgemerkt",
    "authorized",
    "authorised",
    "in progress",
];

/// What joins the texts of several description columns.
pub const DESCRIPTION_JOINER: &str = " - ";

/// Where each field of a transaction is in a row.
#[derive(Clone, Debug, Default)]
struct Columns {
    date: usize,
    amount: Option<usize>,
    debit: Option<usize>,
    credit: Option<usize>,
    direction: Option<usize>,
    description: Vec<usize>,
    category: Option<usize>,
    status: Option<usize>,
    id: Option<usize>,
}

impl Columns {
    fn amounts(&self) -> impl Iterator<Item = usize> + '_ {
        [self.amount, self.debit, self.credit].into_iter().flatten()
    }
}

/// The mapping resolved against the file: columns, formats, conventions.
pub struct Layout {
    pub delimiter: Delimiter,
    /// Index of the header row among the records (`None`: no header).
    header_row: Option<usize>,
    /// The header's cells.
    pub header: Vec<String>,
    columns: Columns,
    /// This server's export: the id column is the origin of each row.
    pub export: bool,
}

/// How the rows of a file are read, once the file has been looked at.
pub struct Reading {
    pub layout: Layout,
    pub date_format: String,
    pub decimal: Decimal,
    sign: SignConvention,
    out_value: String,
    pending: Vec<String>,
    range: DateRange,
}

/// Reads the transactions of a CSV file with the given mapping.
pub fn read(
    text: &str,
    mapping: &CsvImportQuery,
    today: NaiveDate,
) -> Result<ParsedFile, FileError> {
    let reading = prepare(text, mapping, today)?;
    let mut parsed = ParsedFile::default();
    for_each_row(text, &reading, |row| match row {
        Row::Transaction(t) => parsed.transactions.push(t),
        Row::Pending => parsed.pending += 1,
        Row::Error(line, why) => parsed.error(line, why),
    });
    Ok(parsed)
}

/// One data row of a file, as it is read.
pub enum Row {
    Transaction(FileTransaction),
    Pending,
    Error(u64, String),
}

/// Finds the layout, then what the mapping leaves open.
pub fn prepare(
    text: &str,
    mapping: &CsvImportQuery,
    today: NaiveDate,
) -> Result<Reading, FileError> {
    let range = DateRange::around(today);
    let layout = layout(text, mapping, range)?;
    let given_decimal = mapping.decimal.filter(|d| *d != Decimal::Auto);
    let (date_format, decimal) = if layout.export {
        ("%Y-%m-%d".to_owned(), Decimal::Point)
    } else {
        survey(
            text,
            &layout,
            mapping.date_format.as_deref(),
            given_decimal,
            range,
        )?
    };
    let sign = mapping.sign.unwrap_or(if layout.export {
        SignConvention::PositiveOut
    } else {
        SignConvention::NegativeOut
    });
    let pending = match mapping.pending.as_deref() {
        Some(values) => values.split(',').map(|v| v.trim().to_lowercase()).collect(),
        None => PENDING_VALUES.iter().map(|v| (*v).to_owned()).collect(),
    };
    Ok(Reading {
        layout,
        date_format,
        decimal,
        sign,
        out_value: mapping
            .out_value
            .as_deref()
            .unwrap_or("D")
            .trim()
            .to_owned(),
        pending,
        range,
    })
}

/// The date format and decimal style: as given, or as the file shows them.
fn survey(
    text: &str,
    layout: &Layout,
    date_format: Option<&str>,
    decimal: Option<Decimal>,
    range: DateRange,
) -> Result<(String, Decimal), FileError> {
    if let (Some(format), Some(decimal)) = (date_format, decimal) {
        return Ok((format.to_owned(), decimal));
    }
    let cols = &layout.columns;
    let mut dates = Survey::new(range);
    let (mut commas, mut points) = (0u64, 0u64);
    for (index, record) in records(text, layout.delimiter.byte()).enumerate() {
        let Ok((line, fields)) = record else { continue };
        if layout.header_row.is_some_and(|h| index <= h) {
            continue;
        }
        let cell = |i: usize| fields.get(i).map_or("", |f| f.trim());
        if date_format.is_none() {
            dates.see(line, cell(cols.date));
        }
        for i in cols.amounts() {
            match Decimal::shown_by(cell(i)) {
                Some(Decimal::Comma) => commas += 1,
                Some(Decimal::Point) => points += 1,
                _ => {}
            }
        }
    }
    let format = match date_format {
        Some(f) => f.to_owned(),
        // With no date readable at all, each line says why in the
        // default format's terms.
        None => match dates.format() {
            Ok(format) => format.to_owned(),
            Err(SurveyError::Unknown) => "%Y-%m-%d".to_owned(),
            Err(why) => return Err(FileError(why.to_string())),
        },
    };
    // A file shows one style; the few amounts in the other are line errors.
    let decimal = decimal.unwrap_or(if commas > points {
        Decimal::Comma
    } else {
        Decimal::Point
    });
    Ok((format, decimal))
}

/// Reads every data row of the file in order.
pub fn for_each_row(text: &str, reading: &Reading, mut each: impl FnMut(Row)) {
    let layout = &reading.layout;
    let cols = &layout.columns;
    for (index, record) in records(text, layout.delimiter.byte()).enumerate() {
        let (line, fields) = match record {
            Ok(r) => r,
            Err((line, why)) => {
                each(Row::Error(line, why));
                continue;
            }
        };
        if layout.header_row.is_some_and(|h| index <= h)
            || fields.iter().all(|f| f.trim().is_empty())
        {
            continue;
        }
        each(row(reading, line, &fields, cols));
    }
}

fn row(reading: &Reading, line: u64, fields: &[String], cols: &Columns) -> Row {
    let layout = &reading.layout;
    let cell = |i: usize| fields.get(i).map_or("", |f| f.trim());
    if cols.status.is_some_and(|i| {
        reading
            .pending
            .iter()
            .any(|p| cell(i).eq_ignore_ascii_case(p))
    }) {
        return Row::Pending;
    }
    let date = match dates::read(cell(cols.date), &reading.date_format, reading.range) {
        Ok(d) => d,
        Err(why) => return Row::Error(line, why),
    };
    let amount = match row_amount(cols, &cell, reading) {
        Ok(a) => a,
        Err(why) => return Row::Error(line, why),
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
                return Row::Error(
                    line,
                    "id is not a UUID, as this server's export writes it".into(),
                );
            }
        }
    } else {
        None
    };
    // The export's text goes back exactly as it was; a bank's is tidied.
    let description = if layout.export {
        let raw = cols
            .description
            .first()
            .and_then(|&i| fields.get(i))
            .map_or("", |d| spreadsheet::unguard(d));
        if let Err(why) = validate::description(raw) {
            return Row::Error(line, format!("description {why}"));
        }
        (!raw.is_empty()).then(|| raw.to_owned())
    } else {
        joined_description(cols.description.iter().map(|&i| cell(i)))
    };
    Row::Transaction(FileTransaction {
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
        correction: None,
    })
}

/// The texts of the description columns, tidied, joined in order; a text
/// the one before already holds is left out.
fn joined_description<'a>(texts: impl Iterator<Item = &'a str>) -> Option<String> {
    let mut parts: Vec<String> = Vec::new();
    for text in texts.filter_map(clean_description) {
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
    }
    clean_description(&parts.join(DESCRIPTION_JOINER))
}

/// The signed amount of a row: money out negative.
fn row_amount<'a>(
    cols: &Columns,
    cell: &impl Fn(usize) -> &'a str,
    reading: &Reading,
) -> Result<i64, String> {
    let read = |name: &str, i: usize| -> Result<Option<i64>, String> {
        let raw = cell(i);
        if raw.is_empty() {
            return Ok(None);
        }
        Money::parse_localized(raw, reading.decimal)
            .map(|m| Some(m.minor()))
            .map_err(|why| format!("{name} {raw:?} {why}"))
    };
    if let Some(i) = cols.amount {
        let amount = read("amount", i)?.ok_or("amount is empty")?;
        return Ok(match (cols.direction, reading.sign) {
            (Some(d), _) if cell(d).eq_ignore_ascii_case(&reading.out_value) => -amount.abs(),
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

/// Whether a header cell is the column `reference` names.
fn names(cell: &str, reference: &str) -> bool {
    cell.trim().eq_ignore_ascii_case(reference.trim())
}

/// A column reference: a header name, or a 1-based position.
fn column(header: Option<&[String]>, reference: &str) -> Option<usize> {
    if let Some(i) = header.and_then(|header| header.iter().position(|h| names(h, reference))) {
        return Some(i);
    }
    reference
        .trim()
        .parse::<usize>()
        .ok()
        .filter(|n| *n >= 1)
        .map(|n| n - 1)
}

/// The columns a description option names: one, or several separated by
/// commas (a header that itself holds a comma is taken whole).
fn description_refs(header: Option<&[String]>, reference: &str) -> Vec<String> {
    let whole = header.is_some_and(|h| h.iter().any(|c| names(c, reference)));
    if whole || !reference.contains(',') {
        return vec![reference.to_owned()];
    }
    reference.split(',').map(|r| r.trim().to_owned()).collect()
}

/// Whether the mapping names its columns (rather than reading them by name).
pub fn is_mapped(mapping: &CsvImportQuery) -> bool {
    mapping.date.is_some()
        || mapping.amount.is_some()
        || mapping.debit.is_some()
        || mapping.credit.is_some()
}

/// Finds the delimiter, the header and the columns the mapping names.
pub fn layout(text: &str, mapping: &CsvImportQuery, range: DateRange) -> Result<Layout, FileError> {
    let mapped = is_mapped(mapping);
    let candidates: Vec<Delimiter> = match mapping.delimiter {
        Some(d) => vec![d],
        None => Delimiter::ALL.to_vec(),
    };
    // The header that had the most of the named columns, to say what is missing.
    let mut closest: Option<(usize, u64, Vec<String>)> = None;
    for &delimiter in &candidates {
        let head: Vec<(u64, Vec<String>)> = records(text, delimiter.byte())
            .take(HEADER_SEARCH_ROWS)
            .filter_map(Result::ok)
            .collect();
        let found = if mapped {
            mapped_layout(&head, mapping, range, &mut closest)
        } else {
            named_layout(&head, mapping)
        };
        if let Some((header_row, columns, export)) = found {
            let header = header_row
                .and_then(|i| head.get(i))
                .map(|(_, h)| h.iter().map(|c| c.trim().to_owned()).collect())
                .unwrap_or_default();
            return Ok(Layout {
                delimiter,
                header_row,
                header,
                columns,
                export,
            });
        }
    }
    Err(FileError(if mapped {
        match closest {
            Some((_, line, header)) => {
                let missing: Vec<String> = named_refs(mapping)
                    .into_iter()
                    .filter(|(_, r)| !header.iter().any(|h| names(h, r)))
                    .map(|(option, r)| format!("{r:?} (asked by {option}=)"))
                    .collect();
                format!(
                    "the file has no column {}; the header (line {line}) has: {}",
                    missing.join(", no column "),
                    header
                        .iter()
                        .map(|h| format!("{:?}", h.trim()))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }
            None => "the columns the mapping names by position are not in the file                      (check them and the delimiter)"
                .into(),
        }
    } else {
        format!(
            "no column mapping given and the header is not this server's export ({})              nor has date and amount columns: give date=, amount= (or debit=/credit=) and description=",
            EXPORT_CSV_HEADER.join(",")
        )
    }))
}

/// The columns the mapping names by header, with the option naming each.
fn named_refs(mapping: &CsvImportQuery) -> Vec<(&'static str, String)> {
    let refs = [
        ("date", &mapping.date),
        ("amount", &mapping.amount),
        ("debit", &mapping.debit),
        ("credit", &mapping.credit),
        ("direction", &mapping.direction),
        ("category", &mapping.category),
        ("status", &mapping.status),
        ("id", &mapping.id),
    ];
    let mut named: Vec<(&'static str, String)> = refs
        .into_iter()
        .filter_map(|(option, r)| Some((option, r.clone()?)))
        .collect();
    if let Some(d) = &mapping.description {
        named.extend(
            description_refs(None, d)
                .into_iter()
                .map(|r| ("description", r)),
        );
    }
    named
        .into_iter()
        .filter(|(_, r)| r.trim().parse::<usize>().is_err())
        .collect()
}

/// The layout the mapping describes, if some row among `head` is its header.
fn mapped_layout(
    head: &[(u64, Vec<String>)],
    mapping: &CsvImportQuery,
    range: DateRange,
    closest: &mut Option<(usize, u64, Vec<String>)>,
) -> Option<(Option<usize>, Columns, bool)> {
    let named = named_refs(mapping);
    let header_row = if named.is_empty() {
        // Columns by position: the first row is the header if it is not data.
        Some(0).filter(|_| {
            let first = head.first().map(|(_, r)| r.as_slice()).unwrap_or_default();
            let date = mapping.date.as_deref().and_then(|d| column(None, d));
            date.and_then(|i| first.get(i))
                .is_some_and(|v| !Survey::is_date(v, range))
        })
    } else {
        let has = |row: &[String], r: &str| row.iter().any(|h| names(h, r));
        for (line, row) in head {
            let n = named.iter().filter(|(_, r)| has(row, r)).count();
            if closest.as_ref().is_none_or(|(best, _, _)| n > *best) {
                *closest = Some((n, *line, row.clone()));
            }
        }
        Some(
            head.iter()
                .position(|(_, row)| named.iter().all(|(_, r)| has(row, r)))?,
        )
    };
    let header = header_row.map(|i| head[i].1.as_slice());
    let col = |r: &Option<String>| r.as_deref().and_then(|r| column(header, r));
    let description = match &mapping.description {
        Some(d) => description_refs(header, d)
            .iter()
            .map(|r| column(header, r))
            .collect::<Option<Vec<_>>>()?,
        None => Vec::new(),
    };
    let columns = Columns {
        date: col(&mapping.date)?,
        amount: col(&mapping.amount),
        debit: col(&mapping.debit),
        credit: col(&mapping.credit),
        direction: col(&mapping.direction),
        description,
        category: col(&mapping.category),
        status: col(&mapping.status),
        id: col(&mapping.id),
    };
    // Columns by position must exist: that is how the delimiter is told apart.
    let width = head
        .get(header_row.unwrap_or(0))
        .map_or(0, |(_, r)| r.len());
    let widest = [
        Some(columns.date),
        columns.amount,
        columns.debit,
        columns.credit,
        columns.direction,
        columns.category,
        columns.status,
        columns.id,
    ]
    .into_iter()
    .flatten()
    .chain(columns.description.iter().copied())
    .max()
    .unwrap_or(0);
    (widest < width && columns.amounts().next().is_some()).then_some((header_row, columns, false))
}

/// With no mapping: this server's export, or columns found by their names
/// (`date`, `amount`, `description`, `category`, and `status` or `state`).
fn named_layout(
    head: &[(u64, Vec<String>)],
    mapping: &CsvImportQuery,
) -> Option<(Option<usize>, Columns, bool)> {
    let first = head
        .iter()
        .position(|(_, r)| r.iter().any(|f| !f.trim().is_empty()))?;
    let header = &head[first].1;
    let find = |name: &str| header.iter().position(|h| names(h, name));
    let export = header.len() == EXPORT_CSV_HEADER.len()
        && header
            .iter()
            .zip(EXPORT_CSV_HEADER)
            .all(|(h, e)| h.trim() == e);
    let status = match &mapping.status {
        Some(s) => Some(column(Some(header), s)?),
        None if export => None,
        None => find("status").or_else(|| find("state")),
    };
    let columns = Columns {
        date: find(if export { "spent_on" } else { "date" })?,
        amount: Some(find("amount")?),
        description: find("description").into_iter().collect(),
        category: find("category"),
        status,
        id: if export { find("id") } else { None },
        ..Columns::default()
    };
    Some((Some(first), columns, export))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 12, 4).unwrap_or_default()
    }

    fn mapping(pairs: &[(&str, &str)]) -> CsvImportQuery {
        let map: serde_json::Map<String, serde_json::Value> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), serde_json::Value::from(*v)))
            .collect();
        serde_json::from_value(map.into()).unwrap_or_default()
    }

    #[test]
    fn two_digit_years_pending_rows_and_joined_descriptions() {
        let text = "Tag;Betrag;Wer;Zweck;Info\n28.03.18;-1234,56;ASDF;Miete;Umsatz vorgemerkt\n\
                    28.03.18;-12,00;Bäcker;Brot;Umsatz gebucht\n29.03.18;123,00;Hans;Hans;Umsatz gebucht\n";
        let m = mapping(&[
            ("date", "Tag"),
            ("amount", "Betrag"),
            ("description", "Wer,Zweck"),
            ("status", "Info"),
        ]);
        let parsed = read(text, &m, today()).expect("reads");
        assert_eq!(parsed.pending, 1);
        assert_eq!(parsed.errors, []);
        let t = &parsed.transactions;
        assert_eq!(t.len(), 2);
        assert_eq!(t[0].date.to_string(), "2018-03-28");
        assert_eq!(t[0].amount, -1200);
        assert_eq!(t[0].description.as_deref(), Some("Bäcker - Brot"));
        assert_eq!(t[1].description.as_deref(), Some("Hans"));
    }

    #[test]
    fn a_contradicting_decimal_style_is_a_line_error_never_times_100() {
        let text = "date,amount\n2024-01-02,\"-5,50\"\n2024-01-03,-2.25\n";
        let m = mapping(&[("date", "date"), ("amount", "amount"), ("decimal", "point")]);
        let parsed = read(text, &m, today()).expect("reads");
        assert_eq!(parsed.transactions.len(), 1);
        assert_eq!(parsed.transactions[0].amount, -225);
        assert_eq!(parsed.errors.len(), 1);
        assert!(
            parsed.errors[0].message.contains("decimal comma"),
            "{:?}",
            parsed.errors
        );
        // Unsaid, the style is the file's: here its commas.
        let text = "date;amount\n2024-01-02;-5,50\n2024-01-03;-1.002,25\n2024-01-04;-7\n";
        let m = mapping(&[("date", "date"), ("amount", "amount")]);
        let parsed = read(text, &m, today()).expect("reads");
        let amounts: Vec<i64> = parsed.transactions.iter().map(|t| t.amount).collect();
        assert_eq!(amounts, [-550, -100_225, -700]);
    }

    #[test]
    fn a_missing_column_is_named_with_the_headers_found() {
        let m = mapping(&[("date", "Datum"), ("amount", "Betrag")]);
        let why = read("Datum;Wert\n02.01.2024;1\n", &m, today())
            .err()
            .map(|e| e.0)
            .unwrap_or_default();
        assert!(why.contains("\"Betrag\" (asked by amount=)"), "{why}");
        assert!(why.contains("\"Datum\", \"Wert\""), "{why}");
    }

    #[test]
    fn ambiguous_dates_are_refused_with_the_candidates() {
        let m = mapping(&[("date", "d"), ("amount", "a")]);
        let why = read("d,a\n3/6/2016,-1\n4/6/2016,-2\n", &m, today())
            .err()
            .map(|e| e.0)
            .unwrap_or_default();
        assert!(why.contains("%d/%m/%Y or %m/%d/%Y"), "{why}");
    }

    #[test]
    fn preamble_semicolons_and_decimal_commas() {
        let text = "Bank;Export\n\nDatum;Betrag;Text\n02.01.2024;-5,50;Kaffee\n13.01.2024;100,00;Lohn\nxx;1;y\n";
        let mapping = CsvImportQuery {
            date: Some("Datum".into()),
            amount: Some("Betrag".into()),
            description: Some("Text".into()),
            ..CsvImportQuery::default()
        };
        let parsed = read(text, &mapping, today()).expect("reads");
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
        let parsed = read(&text, &CsvImportQuery::default(), today()).expect("reads");
        let t = &parsed.transactions[0];
        assert_eq!((t.amount, t.origin), (-1250, Some(id)));
        assert_eq!(t.description.as_deref(), Some("Lunch, with Bo"));
    }

    #[test]
    fn unknown_layout_without_mapping_is_refused() {
        assert!(read("a,b\n1,2\n", &CsvImportQuery::default(), today()).is_err());
    }
}
