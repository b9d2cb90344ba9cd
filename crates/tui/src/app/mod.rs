//! The dashboard's state and how keys and answers change it. No I/O here:
//! `update` returns the [`Command`]s for the runtime to carry out.
//!
//! A screen or window is a variant of [`Screen`] or [`Overlay`] holding its
//! state; a form owns its keys (`forms`), the dashboard's keys are the table
//! in `crate::keys`, and the answers the runtime brings back are [`Msg`]s.

mod answers;
mod forms;
mod messages;
#[cfg(test)]
mod tests;
#[cfg(test)]
pub(crate) use tests::import_job;

use chrono::{Months, NaiveDate};
use finance_shared::{Expense, ImportJob, Summary, Trend};
use ratatui::crossterm::event::{KeyCode, KeyEvent};

pub use forms::{
    EXPENSE_FIELDS, ExpenseForm, FileImport, FileKind, ImportFileForm, LoginField, LoginForm,
    Outcome, Save,
};
pub use messages::{Command, Msg, Period, Tab, View};

use crate::keys::{self, Action};
use messages::month_of;

/// Rows from the end of the table at which the next page is fetched.
const LOAD_MORE_MARGIN: usize = 5;

/// What is on screen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Screen {
    Login(LoginForm),
    Dashboard,
}

/// A window over the dashboard.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Overlay {
    None,
    AddExpense(ExpenseForm),
    Help,
    /// "Delete this expense?"
    ConfirmDelete(Expense),
    /// Mock, CSV or OFX?
    ImportMenu,
    ImportFile(ImportFileForm),
}

/// Whether the status line reports success or trouble.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tone {
    Info,
    Error,
}

/// The whole state of the dashboard.
#[derive(Clone, Debug)]
pub struct App {
    pub server: String,
    pub screen: Screen,
    pub overlay: Overlay,
    pub email: String,
    pub summary: Option<Summary>,
    pub expenses: Vec<Expense>,
    pub next_cursor: Option<String>,
    pub selected: usize,
    pub status: (Tone, String),
    /// Requests under way (shows the working indicator).
    pub in_flight: usize,
    pub loading_more: bool,
    pub today: NaiveDate,
    pub should_quit: bool,
    pub tab: Tab,
    pub period: Period,
    /// The table's search text (sent as `q`).
    pub search: String,
    /// The search line has the keyboard.
    pub searching: bool,
    pub trend: Option<Trend>,
    /// Bumped by every refresh, so a late answer to an older one is dropped.
    pub generation: u64,
    /// A background import under way (its progress shows in the status line).
    pub import: Option<ImportJob>,
}

impl App {
    /// The login screen.
    pub fn logged_out(server: &str, today: NaiveDate, message: Option<String>) -> Self {
        let tone = if message.is_some() {
            Tone::Error
        } else {
            Tone::Info
        };
        App {
            server: server.to_owned(),
            screen: Screen::Login(LoginForm::default()),
            overlay: Overlay::None,
            email: String::new(),
            summary: None,
            expenses: Vec::new(),
            next_cursor: None,
            selected: 0,
            status: (tone, message.unwrap_or_else(|| format!("Server: {server}"))),
            in_flight: 0,
            loading_more: false,
            today,
            should_quit: false,
            tab: Tab::Overview,
            period: Period::All,
            search: String::new(),
            searching: false,
            trend: None,
            generation: 0,
            import: None,
        }
    }

    /// The dashboard of a logged-in user, with its first load under way.
    pub fn logged_in(server: &str, email: &str, today: NaiveDate) -> (Self, Vec<Command>) {
        let mut app = App::logged_out(server, today, None);
        app.screen = Screen::Dashboard;
        app.email = email.to_owned();
        app.status = (Tone::Info, "Loading…".to_owned());
        app.in_flight = 1;
        (app, vec![Command::Refresh(View::default())])
    }

    /// What the dashboard shows now, as a refresh.
    fn refresh(&mut self) -> Vec<Command> {
        self.generation += 1;
        let (from, to) = self.period.range();
        let q = Some(self.search.trim())
            .filter(|q| !q.is_empty())
            .map(str::to_owned);
        let mut commands = self.start(Command::Refresh(View {
            from,
            to,
            q,
            generation: self.generation,
        }));
        if self.tab == Tab::Trend {
            commands.extend(self.load_trend());
        }
        commands
    }

    fn load_trend(&mut self) -> Vec<Command> {
        let end = match self.period {
            Period::All => self.today,
            Period::Month(first) => first,
        };
        self.start(Command::LoadTrend { end })
    }

    /// Moves the period a month back (`-1`) or forth (`1`); from all time, to this month.
    fn step_period(&mut self, months: i32) -> Vec<Command> {
        let this_month = month_of(self.today);
        self.period = Period::Month(match self.period {
            Period::All => this_month,
            Period::Month(first) if months < 0 => {
                first.checked_sub_months(Months::new(1)).unwrap_or(first)
            }
            Period::Month(first) => first.checked_add_months(Months::new(1)).unwrap_or(first),
        });
        self.set_status(Tone::Info, format!("Showing {}…", self.period.label()));
        self.refresh()
    }

    /// The expense under the cursor.
    pub fn selected_expense(&self) -> Option<&Expense> {
        self.expenses.get(self.selected)
    }

    /// Categories the user has used, for completion.
    pub fn categories(&self) -> impl Iterator<Item = &str> {
        self.summary
            .iter()
            .flat_map(|s| s.categories.iter().map(|c| c.category.as_str()))
    }

    /// The existing category the typed text starts (case-insensitively), if any.
    pub fn completion(&self, typed: &str) -> Option<String> {
        if typed.is_empty() {
            return None;
        }
        let lower = typed.to_lowercase();
        let mut names: Vec<&str> = self.categories().collect();
        names.sort_unstable();
        names
            .into_iter()
            .find(|c| c.to_lowercase().starts_with(&lower) && *c != typed)
            .map(str::to_owned)
    }

    fn set_status(&mut self, tone: Tone, text: impl Into<String>) {
        self.status = (tone, text.into());
    }

    fn start(&mut self, command: Command) -> Vec<Command> {
        self.in_flight += 1;
        vec![command]
    }

    fn done(&mut self) {
        self.in_flight = self.in_flight.saturating_sub(1);
    }

    fn on_key(&mut self, key: KeyEvent) -> Vec<Command> {
        if keys::is(key, keys::QUIT_ANYWHERE) {
            self.should_quit = true;
            return Vec::new();
        }
        // A form does not submit while a request is under way.
        let in_form = matches!(self.screen, Screen::Login(_))
            || matches!(
                self.overlay,
                Overlay::AddExpense(_) | Overlay::ImportFile(_)
            );
        if in_form && key.code == KeyCode::Enter && self.in_flight > 0 {
            return Vec::new();
        }
        if let Screen::Login(_) = self.screen {
            return self.on_login_key(key);
        }
        match &mut self.overlay {
            Overlay::Help => {
                self.overlay = Overlay::None;
                Vec::new()
            }
            Overlay::AddExpense(_) => self.on_form_key(key),
            Overlay::ConfirmDelete(expense) => {
                let id = expense.id;
                self.overlay = Overlay::None;
                if matches!(key.code, KeyCode::Char('y' | 'Y')) {
                    self.set_status(Tone::Info, "Deleting…");
                    self.start(Command::DeleteExpense(id))
                } else {
                    self.set_status(Tone::Info, "Kept");
                    Vec::new()
                }
            }
            Overlay::ImportMenu => {
                self.overlay = Overlay::None;
                let kind = match key.code {
                    KeyCode::Char('m') => {
                        self.set_status(Tone::Info, "Importing from the bank…");
                        return self.start(Command::Import);
                    }
                    KeyCode::Char('c') => FileKind::Csv,
                    KeyCode::Char('o') => FileKind::Ofx,
                    _ => return Vec::new(),
                };
                self.overlay = Overlay::ImportFile(ImportFileForm::new(kind));
                Vec::new()
            }
            Overlay::ImportFile(form) => match form.on_key(key) {
                Outcome::Editing | Outcome::Invalid(_) => Vec::new(),
                Outcome::Cancelled => self.cancel(),
                Outcome::Submitted(file) => {
                    self.set_status(Tone::Info, "Importing the file…");
                    self.start(Command::ImportFile {
                        kind: file.kind,
                        path: file.path,
                        mapping: file.mapping,
                    })
                }
            },
            Overlay::None if self.searching => self.on_search_key(key),
            Overlay::None => match keys::action(keys::DASHBOARD, key) {
                Some(action) => self.on_action(action),
                None => Vec::new(),
            },
        }
    }

    /// Closes the overlay without doing what it offered.
    fn cancel(&mut self) -> Vec<Command> {
        self.overlay = Overlay::None;
        self.set_status(Tone::Info, "Cancelled");
        Vec::new()
    }

    fn on_search_key(&mut self, key: KeyEvent) -> Vec<Command> {
        match key.code {
            KeyCode::Enter => {
                self.searching = false;
                return Vec::new();
            }
            KeyCode::Esc => {
                self.searching = false;
                self.search.clear();
            }
            KeyCode::Backspace => {
                self.search.pop();
            }
            KeyCode::Char(c) => self.search.push(c),
            _ => return Vec::new(),
        }
        self.selected = 0;
        self.refresh()
    }

    fn on_login_key(&mut self, key: KeyEvent) -> Vec<Command> {
        let Screen::Login(form) = &mut self.screen else {
            return Vec::new();
        };
        let Outcome::Submitted(credentials) = form.on_key(key) else {
            return Vec::new();
        };
        let register = form.register;
        let verb = if register {
            "Registering"
        } else {
            "Logging in"
        };
        self.status = (Tone::Info, format!("{verb}…"));
        self.start(Command::Authenticate {
            credentials,
            register,
        })
    }

    /// Does what a dashboard key stands for (see `keys::DASHBOARD`).
    fn on_action(&mut self, action: Action) -> Vec<Command> {
        match action {
            Action::Back if !self.search.is_empty() => {
                self.search.clear();
                self.selected = 0;
                return self.refresh();
            }
            Action::Back => self.set_status(Tone::Info, "q or Ctrl-C quits"),
            Action::Quit => self.should_quit = true,
            Action::Help => self.overlay = Overlay::Help,
            Action::Add => self.overlay = Overlay::AddExpense(ExpenseForm::new(self.today)),
            Action::Refresh => {
                self.set_status(Tone::Info, "Refreshing…");
                return self.refresh();
            }
            Action::Import => self.overlay = Overlay::ImportMenu,
            Action::Edit => {
                if let Some(expense) = self.selected_expense() {
                    self.overlay = Overlay::AddExpense(ExpenseForm::edit(expense));
                }
            }
            Action::Delete => {
                if let Some(expense) = self.selected_expense() {
                    self.overlay = Overlay::ConfirmDelete(expense.clone());
                }
            }
            Action::Search => self.searching = true,
            Action::SwitchTab => {
                self.tab = match self.tab {
                    Tab::Overview => Tab::Trend,
                    Tab::Trend => Tab::Overview,
                };
                if self.tab == Tab::Trend {
                    return self.load_trend();
                }
            }
            Action::PreviousMonth => return self.step_period(-1),
            Action::NextMonth => return self.step_period(1),
            Action::ThisMonth => {
                self.period = Period::Month(month_of(self.today));
                self.set_status(Tone::Info, format!("Showing {}…", self.period.label()));
                return self.refresh();
            }
            Action::AllTime => {
                self.period = Period::All;
                self.set_status(Tone::Info, "Showing all time…");
                return self.refresh();
            }
            Action::Logout => {
                *self = App::logged_out(&self.server, self.today, None);
                self.set_status(Tone::Info, "Logged out");
                return vec![Command::RevokeToken, Command::DeleteSession];
            }
            Action::Down => return self.select(self.selected.saturating_add(1)),
            Action::Up => return self.select(self.selected.saturating_sub(1)),
            Action::PageDown => return self.select(self.selected.saturating_add(10)),
            Action::PageUp => return self.select(self.selected.saturating_sub(10)),
            Action::First => return self.select(0),
            Action::Last => return self.select(usize::MAX),
        }
        Vec::new()
    }

    /// Moves the selection; near the end of what is loaded, fetches the next page.
    fn select(&mut self, row: usize) -> Vec<Command> {
        self.selected = row.min(self.expenses.len().saturating_sub(1));
        let near_end = self.selected + LOAD_MORE_MARGIN >= self.expenses.len();
        match &self.next_cursor {
            Some(cursor) if near_end && !self.loading_more => {
                self.loading_more = true;
                let cursor = cursor.clone();
                self.start(Command::LoadMore { cursor })
            }
            _ => Vec::new(),
        }
    }

    fn on_form_key(&mut self, key: KeyEvent) -> Vec<Command> {
        let completion = match &self.overlay {
            Overlay::AddExpense(form) => self.completion(&form.values[0]),
            _ => None,
        };
        let Overlay::AddExpense(form) = &mut self.overlay else {
            return Vec::new();
        };
        match form.on_key(key, completion) {
            Outcome::Editing => Vec::new(),
            Outcome::Cancelled => self.cancel(),
            Outcome::Invalid(why) => {
                self.set_status(Tone::Error, why);
                Vec::new()
            }
            Outcome::Submitted(save) => {
                self.set_status(Tone::Info, "Saving…");
                self.start(match save {
                    Save::Add(expense) => Command::AddExpense(expense),
                    Save::Update { id, update } => Command::UpdateExpense { id, update },
                })
            }
        }
    }
}
