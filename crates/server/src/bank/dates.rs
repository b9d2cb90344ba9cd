//! The dates of bank files: read with a given format, or with the one format
//! found to fit every date of the file.
//!
//! A format is a chrono format, whose year says its width: `%Y` four digits,
//! `%y` two, which chrono reads as 1970–2069 (`69` is 2069, `70` is 1970).
//! A date is kept only from 1900-01-01 to a year after the import: a year
//! `0018` is a two-digit year read as four, never an expense.

use std::collections::BTreeSet;

use chrono::{Datelike, Days, NaiveDate};

/// Formats tried when none is given, in the order a tie is told.
pub const CANDIDATES: [&str; 16] = [
    "%Y-%m-%d", "%Y/%m/%d", "%Y.%m.%d", "%Y%m%d", "%d.%m.%Y", "%d.%m.%y", "%d/%m/%Y", "%d/%m/%y",
    "%m/%d/%Y", "%m/%d/%y", "%d-%m-%Y", "%d-%m-%y", "%m-%d-%Y", "%m-%d-%y", "%m.%d.%Y", "%d %b %Y",
];

/// Which part of a date comes first: what two formats that both fit a
/// file disagree on.
fn order(format: &str) -> &'static str {
    match format.find("%d").zip(format.find("%m")) {
        _ if format.starts_with("%Y") => "year first",
        Some((d, m)) if d < m => "day first",
        _ => "month first",
    }
}

/// The days a file's dates may fall on: 1900-01-01 to a year after `today`.
#[derive(Clone, Copy, Debug)]
pub struct DateRange {
    pub first: NaiveDate,
    pub last: NaiveDate,
}

impl DateRange {
    pub fn around(today: NaiveDate) -> Self {
        DateRange {
            first: NaiveDate::from_ymd_opt(finance_shared::validate::YEAR_MIN, 1, 1)
                .unwrap_or(NaiveDate::MIN),
            last: today
                .checked_add_days(Days::new(366))
                .filter(|d| d.year() <= finance_shared::validate::YEAR_MAX)
                .unwrap_or(NaiveDate::MAX),
        }
    }

    fn contains(&self, day: NaiveDate) -> bool {
        (self.first..=self.last).contains(&day)
    }
}

/// The date part of a cell: a time of day after it (`2021-09-06 6:11:59`,
/// `2024-01-02T10:00`) is left off unless the format reads one.
fn date_text<'a>(cell: &'a str, format: &str) -> &'a str {
    let reads_time = ["%H", "%I", "%M", "%S", "%T", "%R", " "]
        .iter()
        .any(|t| format.contains(t));
    if reads_time {
        return cell;
    }
    let end = cell
        .char_indices()
        .find(|&(i, c)| {
            c == ' ' && !format.contains(' ')
                || c == 'T' && cell[i + 1..].starts_with(|d: char| d.is_ascii_digit())
        })
        .map_or(cell.len(), |(i, _)| i);
    &cell[..end]
}

/// Reads one date with `format`, or says why it cannot be a date here.
pub fn read(cell: &str, format: &str, range: DateRange) -> Result<NaiveDate, String> {
    let day = NaiveDate::parse_from_str(date_text(cell, format), format)
        .map_err(|_| format!("date {cell:?} does not match the date format {format}"))?;
    if range.contains(day) {
        return Ok(day);
    }
    let hint = if day.year() < 100 && format.contains("%Y") {
        " (a two-digit year needs %y)"
    } else {
        ""
    };
    Err(format!(
        "date {cell:?} read with {format} is {day}, outside {} to {}{hint}",
        range.first, range.last
    ))
}

/// What the dates of a file say about their format.
#[derive(Clone, Debug)]
pub struct Survey {
    /// Candidates that read every readable date so far.
    fitting: Vec<&'static str>,
    /// A date no fitting candidate reads, though another does: (line, text).
    conflict: Option<(u64, String)>,
    /// Some date was read by a candidate.
    seen_any: bool,
    range: DateRange,
}

/// Why no one format could be found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SurveyError {
    /// No date of the file is in any known format.
    Unknown,
    /// Formats of different meaning fit every date.
    Ambiguous(Vec<&'static str>),
    /// The dates are in more than one format.
    Mixed { line: u64, text: String },
}

impl std::fmt::Display for SurveyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SurveyError::Unknown => write!(
                f,
                "no date of the file is in a known format: give date_format (for example %d/%m/%Y)"
            ),
            SurveyError::Ambiguous(candidates) => write!(
                f,
                "the dates fit more than one format ({}): give date_format",
                candidates.join(" or ")
            ),
            SurveyError::Mixed { line, text } => write!(
                f,
                "the dates are in more than one format (line {line}: {text:?}): give date_format"
            ),
        }
    }
}

impl Survey {
    pub fn new(range: DateRange) -> Self {
        Survey {
            fitting: CANDIDATES.to_vec(),
            conflict: None,
            seen_any: false,
            range,
        }
    }

    /// Takes one date cell of the file into account.
    pub fn see(&mut self, line: u64, cell: &str) {
        let cell = cell.trim();
        if cell.is_empty() || self.conflict.is_some() {
            return;
        }
        let fits = |f: &&str| read(cell, f, self.range).is_ok();
        let still: Vec<&'static str> = self.fitting.iter().copied().filter(fits).collect();
        if !still.is_empty() {
            self.fitting = still;
            self.seen_any = true;
        } else if CANDIDATES.iter().any(fits) {
            self.conflict = Some((line, cell.to_owned()));
        }
    }

    /// The one format every date fits.
    pub fn format(&self) -> Result<&'static str, SurveyError> {
        if let Some((line, text)) = &self.conflict {
            return Err(SurveyError::Mixed {
                line: *line,
                text: text.clone(),
            });
        }
        if !self.seen_any {
            return Err(SurveyError::Unknown);
        }
        let orders: BTreeSet<&str> = self.fitting.iter().map(|f| order(f)).collect();
        match (orders.len(), self.fitting.first()) {
            (1, Some(first)) => Ok(first),
            _ => Err(SurveyError::Ambiguous(self.fitting.clone())),
        }
    }

    /// Whether `cell` could be a date at all (to tell a header from data).
    pub fn is_date(cell: &str, range: DateRange) -> bool {
        CANDIDATES
            .iter()
            .any(|f| read(cell.trim(), f, range).is_ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range() -> DateRange {
        DateRange::around(NaiveDate::from_ymd_opt(2026, 12, 4).unwrap_or_default())
    }

    fn survey(cells: &[&str]) -> Result<&'static str, SurveyError> {
        let mut s = Survey::new(range());
        for (i, c) in cells.iter().enumerate() {
            s.see(i as u64 + 2, c);
        }
        s.format()
    }

    #[test]
    fn two_digit_years_are_found_and_never_read_as_year_18() {
        assert_eq!(survey(&["03.04.18", "30.04.18"]), Ok("%d.%m.%y"));
        assert_eq!(
            read("03.04.18", "%d.%m.%y", range()),
            Ok(NaiveDate::from_ymd_opt(2018, 4, 3).unwrap_or_default())
        );
        let why = read("03.04.18", "%d.%m.%Y", range()).expect_err("refused");
        assert!(why.contains("0018-04-03") && why.contains("%y"), "{why}");
    }

    #[test]
    fn day_or_month_first_is_told_by_any_day_past_12() {
        assert_eq!(survey(&["3/6/2016", "3/16/2016"]), Ok("%m/%d/%Y"));
        assert_eq!(survey(&["3/6/2016", "16/3/2016"]), Ok("%d/%m/%Y"));
        assert_eq!(
            survey(&["3/6/2016", "4/6/2016"]),
            Err(SurveyError::Ambiguous(vec!["%d/%m/%Y", "%m/%d/%Y"]))
        );
        assert_eq!(
            survey(&["13/6/2016", "6/13/2016"]),
            Err(SurveyError::Mixed {
                line: 3,
                text: "6/13/2016".into()
            })
        );
        assert_eq!(survey(&["Buchung", "soon"]), Err(SurveyError::Unknown));
    }

    #[test]
    fn times_of_day_are_left_off_and_dates_past_next_year_refused() {
        assert_eq!(
            survey(&["2021-09-06 6:11:59", "2021-10-01 12:00:00"]),
            Ok("%Y-%m-%d")
        );
        assert_eq!(
            read("2021-09-06T06:11:59Z", "%Y-%m-%d", range()),
            Ok(NaiveDate::from_ymd_opt(2021, 9, 6).unwrap_or_default())
        );
        assert!(read("2028-01-01", "%Y-%m-%d", range()).is_err());
        assert!(read("1899-12-31", "%Y-%m-%d", range()).is_err());
    }
}
