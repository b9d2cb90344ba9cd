//! The rollups summaries are read from, and the rows they come back as.

use std::collections::BTreeMap;

use chrono::{Datelike, NaiveDate};
use finance_shared::validate::CategoryKey;
use finance_shared::{CategoryInfo, CategoryTotal, Expense, Money, MonthTotal, Summary};

/// The changes a batch of new expenses makes to `categories` and `daily_totals`.
#[derive(Default)]
pub(crate) struct Rollup {
    /// Category key -> the first spelling seen.
    pub names: BTreeMap<CategoryKey, String>,
    /// (day, category key) -> (total, count).
    pub days: BTreeMap<(NaiveDate, CategoryKey), (i64, i64)>,
    /// (first day of the month, category key) -> (total, count).
    pub months: BTreeMap<(NaiveDate, CategoryKey), (i64, i64)>,
}

impl Rollup {
    /// The rollup of new expenses.
    pub fn of<'a>(expenses: impl IntoIterator<Item = &'a Expense>) -> Self {
        let mut rollup = Rollup::default();
        for e in expenses {
            rollup.add(e, 1);
        }
        rollup
    }

    /// The rollup of one expense turning from `old` into `new` (either absent).
    pub fn change(old: Option<&Expense>, new: Option<&Expense>) -> Self {
        let mut rollup = Rollup::default();
        if let Some(old) = old {
            rollup.add(old, -1);
        }
        if let Some(new) = new {
            rollup.add(new, 1);
        }
        rollup
    }

    fn add(&mut self, e: &Expense, sign: i64) {
        let key = finance_shared::validate::category_key(&e.category);
        if sign > 0 {
            self.names
                .entry(key.clone())
                .or_insert_with(|| e.category.clone());
        }
        for (period, totals) in [
            (e.spent_on, &mut self.days),
            (first_of_month(e.spent_on), &mut self.months),
        ] {
            let row = totals.entry((period, key.clone())).or_default();
            row.0 += sign * e.amount.minor();
            row.1 += sign;
        }
    }

    /// Days and categories that lost expenses: their rows may have reached zero.
    pub fn shrunk(&self) -> impl Iterator<Item = &(NaiveDate, CategoryKey)> {
        shrunk(&self.days)
    }

    /// Months and categories that lost expenses.
    pub fn shrunk_months(&self) -> impl Iterator<Item = &(NaiveDate, CategoryKey)> {
        shrunk(&self.months)
    }
}

fn shrunk(
    totals: &BTreeMap<(NaiveDate, CategoryKey), (i64, i64)>,
) -> impl Iterator<Item = &(NaiveDate, CategoryKey)> {
    totals
        .iter()
        .filter(|(_, (_, count))| *count < 0)
        .map(|(k, _)| k)
}

pub(crate) fn first_of_month(day: NaiveDate) -> NaiveDate {
    day.with_day(1).unwrap_or(day)
}

/// How a summary over `from..=to` reads the rollups: whole months from
/// `monthly_totals` (`months`, end exclusive), and the days before and after
/// them from `daily_totals` (`head` and `tail`, inclusive). Its cost follows
/// the number of months and categories, whatever the length of the history.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SummarySpans {
    pub head: (NaiveDate, NaiveDate),
    pub months: (NaiveDate, NaiveDate),
    pub tail: (NaiveDate, NaiveDate),
}

impl SummarySpans {
    pub fn new(from: Option<NaiveDate>, to: Option<NaiveDate>) -> Self {
        let earliest = NaiveDate::from_ymd_opt(1, 1, 1).unwrap_or(NaiveDate::MIN);
        let latest = NaiveDate::from_ymd_opt(9999, 12, 31).unwrap_or(NaiveDate::MAX);
        let next_month = |d: NaiveDate| {
            first_of_month(d)
                .checked_add_months(chrono::Months::new(1))
                .unwrap_or(latest)
        };
        let (lo, hi) = (from.unwrap_or(earliest), to.unwrap_or(latest));
        // Whole months: from the first month starting on or after `lo`, up to
        // the month after the last one ending on or before `hi`.
        let start = if first_of_month(lo) == lo {
            lo
        } else {
            next_month(lo)
        };
        // (Dates stay within years 1 to 9999: SQLite compares them as text.)
        let end = if hi == latest {
            latest
        } else if next_month(hi).pred_opt() == Some(hi) {
            next_month(hi)
        } else {
            first_of_month(hi)
        };
        let empty = (latest, earliest);
        if start >= end {
            return SummarySpans {
                head: (lo, hi),
                months: (earliest, earliest),
                tail: empty,
            };
        }
        SummarySpans {
            head: start.pred_opt().map_or(empty, |last| (lo, last)),
            months: (start, end),
            tail: if end > hi || hi == latest {
                empty
            } else {
                (end, hi)
            },
        }
    }
}

/// The months of a trend from per-month, per-category rows sorted by month
/// and then by total, largest first; `months` lists every month shown.
pub fn months_from_rows(
    months: &[String],
    rows: Vec<(String, String, i64, i64)>,
) -> Vec<MonthTotal> {
    let mut by_month: BTreeMap<String, Vec<(String, i64, i64)>> = BTreeMap::new();
    for (month, category, total, count) in rows {
        by_month
            .entry(month)
            .or_default()
            .push((category, total, count));
    }
    months
        .iter()
        .map(|month| {
            let rows = by_month.remove(month).unwrap_or_default();
            let total = rows.iter().map(|r| r.1).sum();
            let count = rows.iter().map(|r| u64::try_from(r.2).unwrap_or(0)).sum();
            MonthTotal {
                month: month.clone(),
                total: Money::from_minor(total),
                count,
                categories: rows
                    .into_iter()
                    .map(|(category, total, count)| CategoryTotal {
                        category,
                        total: Money::from_minor(total),
                        count: u64::try_from(count).unwrap_or(0),
                    })
                    .collect(),
            }
        })
        .collect()
}

/// A row of `categories()`: name, count, total and latest day.
pub(crate) fn category_info(
    (category, count, total, last_used): (String, i64, i64, NaiveDate),
) -> CategoryInfo {
    CategoryInfo {
        category,
        count: u64::try_from(count).unwrap_or(0),
        total: Money::from_minor(total),
        last_used,
    }
}

/// Builds the summary from per-category rows already sorted by total, largest first.
pub(crate) fn summary_from_rows(
    rows: impl IntoIterator<Item = (String, i64, i64)>,
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
) -> Summary {
    let mut total = Money::ZERO;
    let mut count = 0u64;
    let categories = rows
        .into_iter()
        .map(|(category, minor, n)| {
            let n = u64::try_from(n).unwrap_or(0);
            total = Money::from_minor(total.minor().saturating_add(minor));
            count += n;
            finance_shared::CategoryTotal {
                category,
                total: Money::from_minor(minor),
                count: n,
            }
        })
        .collect();
    Summary {
        total,
        count,
        categories,
        from,
        to,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(s: &str) -> NaiveDate {
        s.parse().expect("date")
    }

    /// Every day of 2023..2027 lands in exactly one span for a range.
    fn covers_once(from: Option<NaiveDate>, to: Option<NaiveDate>) {
        let spans = SummarySpans::new(from, to);
        let mut d = day("2023-01-01");
        while d < day("2027-01-01") {
            let wanted = from.is_none_or(|f| d >= f) && to.is_none_or(|t| d <= t);
            let hits = [spans.head, spans.tail]
                .iter()
                .filter(|(lo, hi)| d >= *lo && d <= *hi)
                .count()
                + usize::from(
                    first_of_month(d) >= spans.months.0 && first_of_month(d) < spans.months.1,
                );
            let month_whole =
                first_of_month(d) >= spans.months.0 && first_of_month(d) < spans.months.1;
            assert_eq!(
                hits,
                usize::from(wanted),
                "{d} for {from:?}..{to:?}: {spans:?}"
            );
            if month_whole {
                assert!(
                    from.is_none_or(|f| first_of_month(d) >= f),
                    "{d}: a month starting before from"
                );
            }
            d = d.succ_opt().expect("next day");
        }
    }

    #[test]
    fn summary_spans_cover_every_day_of_a_range_once() {
        let dates = [
            None,
            Some(day("2024-01-01")),
            Some(day("2024-01-15")),
            Some(day("2024-01-31")),
            Some(day("2024-02-29")),
            Some(day("2024-03-01")),
            Some(day("2025-06-30")),
        ];
        for from in dates {
            for to in dates {
                covers_once(from, to);
            }
        }
    }
}
