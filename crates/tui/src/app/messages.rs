//! What goes in and out of `update`: messages, and commands for the runtime.

use chrono::{Datelike, Months, NaiveDate};
use finance_shared::{
    AuthResponse, Credentials, Expense, ExpensePage, ExpenseUpdate, ImportJob, ImportResult,
    NewExpense, Summary, Trend,
};
use ratatui::crossterm::event::KeyEvent;
use uuid::Uuid;

use super::forms::FileKind;
use crate::api::ApiError;

/// Work for the runtime: network calls and the session file.
#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    Authenticate {
        credentials: Credentials,
        register: bool,
    },
    /// Summary and first page of what the view shows.
    Refresh(View),
    LoadMore {
        cursor: String,
    },
    AddExpense(NewExpense),
    UpdateExpense {
        id: Uuid,
        update: ExpenseUpdate,
    },
    DeleteExpense(Uuid),
    Import,
    /// Read a bank file and import it.
    ImportFile {
        kind: FileKind,
        path: String,
        /// CSV column mapping, as query pairs.
        mapping: Vec<(String, String)>,
    },
    /// Ask where a background import is, after a short pause.
    PollImport {
        status_url: String,
    },
    /// Month-by-month totals of the months up to `end`.
    LoadTrend {
        end: NaiveDate,
    },
    /// Keep the session after a login.
    SaveSession(AuthResponse),
    /// Revoke the token on the server (logout).
    RevokeToken,
    /// Forget the session (logout, or the server refused the token).
    DeleteSession,
}

/// Something that happened: a key, a resize, or an answer from the server.
#[derive(Debug)]
pub enum Msg {
    Key(KeyEvent),
    Resize,
    Authenticated(Result<AuthResponse, ApiError>),
    /// The answer to the refresh of this generation (older ones are dropped).
    Refreshed(u64, Result<(Summary, ExpensePage), ApiError>),
    MoreLoaded(Result<ExpensePage, ApiError>),
    Added(Result<Expense, ApiError>),
    Updated(Result<Expense, ApiError>),
    Deleted(Result<Uuid, ApiError>),
    Imported(Result<ImportResult, ApiError>),
    /// A file import was queued (202), or refused at once.
    ImportQueued(Result<ImportJob, ApiError>),
    /// Where a queued import is now.
    ImportPolled(Result<ImportJob, ApiError>),
    TrendLoaded(Result<Trend, ApiError>),
}

/// What the summary, chart and table show: a period and a search.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct View {
    pub from: Option<NaiveDate>,
    pub to: Option<NaiveDate>,
    pub q: Option<String>,
    pub generation: u64,
}

/// The months the dashboard covers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Period {
    #[default]
    All,
    /// The month starting on this day.
    Month(NaiveDate),
}

impl Period {
    /// First and last day, or neither for all time.
    pub fn range(self) -> (Option<NaiveDate>, Option<NaiveDate>) {
        match self {
            Period::All => (None, None),
            Period::Month(first) => (
                Some(first),
                first
                    .checked_add_months(Months::new(1))
                    .and_then(|d| d.pred_opt()),
            ),
        }
    }

    /// `November 2026`, or `all time`.
    pub fn label(self) -> String {
        match self {
            Period::All => "all time".into(),
            Period::Month(first) => first.format("%B %Y").to_string(),
        }
    }
}

/// The first day of `day`'s month.
pub(crate) fn month_of(day: NaiveDate) -> NaiveDate {
    day.with_day(1).unwrap_or(day)
}

/// Which page of the dashboard is shown.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Tab {
    #[default]
    Overview,
    /// Month by month.
    Trend,
}
