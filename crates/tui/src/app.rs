//! The dashboard's state and how keys and answers change it. No I/O here:
//! `update` returns the [`Command`]s for the runtime to carry out.

use chrono::{Datelike, Months, NaiveDate};
use finance_shared::{
    AuthResponse, Credentials, Expense, ExpensePage, ExpenseUpdate, ImportJob, ImportJobStatus,
    ImportResult, Money, NewExpense, Summary, Trend, validate,
};
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use uuid::Uuid;

use crate::api::ApiError;

/// Rows from the end of the table at which the next page is fetched.
const LOAD_MORE_MARGIN: usize = 5;

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
fn month_of(day: NaiveDate) -> NaiveDate {
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

/// The kinds of bank file the dashboard imports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileKind {
    Csv,
    Ofx,
}

/// The prompt for a bank file: its path and, for CSV, the column mapping.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportFileForm {
    pub kind: FileKind,
    /// Path, mapping.
    pub values: [String; 2],
    pub focus: usize,
    pub error: Option<String>,
}

impl ImportFileForm {
    /// The mapping as query pairs: `date=Posting Date; amount=Amount`.
    fn mapping(&self) -> Result<Vec<(String, String)>, String> {
        self.values[1]
            .split(';')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|pair| {
                pair.split_once('=')
                    .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
                    .ok_or_else(|| format!("{pair:?} is not KEY=VALUE"))
            })
            .collect()
    }
}

/// Which login field has the cursor.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LoginField {
    #[default]
    Email,
    Password,
}

/// The login (or register) form.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LoginForm {
    pub email: String,
    pub password: String,
    pub focus: LoginField,
    pub register: bool,
    pub email_error: Option<String>,
    pub password_error: Option<String>,
    /// A problem that concerns neither field (server unreachable).
    pub error: Option<String>,
}

/// The fields of the add-expense form, in order.
pub const EXPENSE_FIELDS: [&str; 4] = ["Category", "Amount", "Description", "Date"];

/// The add-expense form, also used to edit one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExpenseForm {
    /// Category, amount, description, date.
    pub values: [String; 4],
    pub errors: [Option<String>; 4],
    pub focus: usize,
    /// The expense being edited.
    pub editing: Option<Expense>,
}

impl ExpenseForm {
    fn new(today: NaiveDate) -> Self {
        ExpenseForm {
            values: [
                String::new(),
                String::new(),
                String::new(),
                today.to_string(),
            ],
            errors: Default::default(),
            focus: 0,
            editing: None,
        }
    }

    fn edit(expense: &Expense) -> Self {
        ExpenseForm {
            values: [
                expense.category.clone(),
                expense.amount.to_string(),
                expense.description.clone().unwrap_or_default(),
                expense.spent_on.to_string(),
            ],
            errors: Default::default(),
            focus: 1,
            editing: Some(expense.clone()),
        }
    }

    /// The request, or the reason each bad field is bad (same rules as the server).
    fn validate(&mut self) -> Option<NewExpense> {
        let [category, amount, description, date] = &self.values;
        let category = validate::category(category).map_err(|e| format!("Category {e}"));
        let amount = amount
            .trim()
            .parse::<Money>()
            .map_err(|e| e.to_string())
            .and_then(|m| validate::amount(m).map_err(str::to_owned))
            .map_err(|e| format!("Amount {e}"));
        let description = if description.is_empty() {
            Ok(None)
        } else {
            validate::description(description)
                .map(|()| Some(description.clone()))
                .map_err(|e| format!("Description {e}"))
        };
        let spent_on = NaiveDate::parse_from_str(date.trim(), "%Y-%m-%d")
            .map_err(|_| "Date must be YYYY-MM-DD".to_owned());
        self.errors = [
            category.as_ref().err().cloned(),
            amount.as_ref().err().cloned(),
            description.as_ref().err().cloned(),
            spent_on.as_ref().err().cloned(),
        ];
        Some(NewExpense {
            category: category.ok()?,
            amount: amount.ok()?,
            description: description.ok()?,
            spent_on: Some(spent_on.ok()?),
        })
    }
}

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

    /// Applies one event; returns the work it calls for.
    pub fn update(&mut self, msg: Msg) -> Vec<Command> {
        match msg {
            Msg::Key(key) => self.on_key(key),
            Msg::Resize => Vec::new(),
            Msg::Authenticated(result) => self.on_authenticated(result),
            Msg::Refreshed(generation, result) => {
                self.done();
                if generation != self.generation {
                    return Vec::new();
                }
                match result {
                    Ok((summary, page)) => {
                        // Keep the last action's result ("Imported 20, skipped 0") on screen.
                        if self.status.1.ends_with('…') {
                            self.set_status(
                                Tone::Info,
                                format!(
                                    "Loaded {} categories, {} recent expenses",
                                    summary.categories.len(),
                                    page.expenses.len()
                                ),
                            );
                        }
                        self.summary = Some(summary);
                        self.expenses = page.expenses;
                        self.next_cursor = page.next_cursor;
                        self.selected = self.selected.min(self.expenses.len().saturating_sub(1));
                        Vec::new()
                    }
                    Err(e) => self.on_error(e),
                }
            }
            Msg::MoreLoaded(result) => {
                self.done();
                self.loading_more = false;
                match result {
                    Ok(page) => {
                        self.expenses.extend(page.expenses);
                        self.next_cursor = page.next_cursor;
                        Vec::new()
                    }
                    Err(e) => self.on_error(e),
                }
            }
            Msg::Added(result) | Msg::Updated(result) => {
                self.done();
                let editing =
                    matches!(&self.overlay, Overlay::AddExpense(f) if f.editing.is_some());
                match result {
                    Ok(expense) => {
                        self.set_status(
                            Tone::Info,
                            format!(
                                "{} {} {} on {}",
                                if editing { "Changed" } else { "Added" },
                                expense.category,
                                expense.amount,
                                expense.spent_on
                            ),
                        );
                        self.overlay = Overlay::None;
                        match self.expenses.iter_mut().find(|e| e.id == expense.id) {
                            Some(row) => *row = expense,
                            None => self.insert_expense(expense),
                        }
                        self.refresh()
                    }
                    Err(ApiError::Refused { status: 422, body }) => {
                        if let Overlay::AddExpense(form) = &mut self.overlay {
                            for (name, reason) in body.fields.unwrap_or_default() {
                                let i = match name.as_str() {
                                    "category" => 0,
                                    "amount" => 1,
                                    "description" => 2,
                                    _ => 3,
                                };
                                form.errors[i] = Some(format!("{} {reason}", EXPENSE_FIELDS[i]));
                            }
                        }
                        self.set_status(
                            Tone::Error,
                            "The server refused the expense; see the form",
                        );
                        Vec::new()
                    }
                    Err(e) => self.on_error(e),
                }
            }
            Msg::Deleted(result) => {
                self.done();
                match result {
                    Ok(id) => {
                        self.expenses.retain(|e| e.id != id);
                        self.selected = self.selected.min(self.expenses.len().saturating_sub(1));
                        self.set_status(Tone::Info, "Deleted");
                        self.refresh()
                    }
                    Err(e) => self.on_error(e),
                }
            }
            Msg::Imported(result) => {
                self.done();
                match result {
                    Ok(r) => {
                        self.set_status(
                            Tone::Info,
                            format!("Imported {}, skipped {}", r.imported, r.skipped),
                        );
                        self.refresh()
                    }
                    Err(e) => self.on_error(e),
                }
            }
            Msg::ImportQueued(result) => {
                self.done();
                match result {
                    Ok(job) => {
                        self.overlay = Overlay::None;
                        self.on_import_job(job)
                    }
                    Err(ApiError::Refused { body, .. })
                        if matches!(self.overlay, Overlay::ImportFile(_)) =>
                    {
                        let mut reason = body.message;
                        if let Some((field, why)) =
                            body.fields.unwrap_or_default().into_iter().next()
                        {
                            reason = format!("{field}: {why}");
                        }
                        if let Overlay::ImportFile(form) = &mut self.overlay {
                            form.error = Some(reason.clone());
                        }
                        self.set_status(Tone::Error, reason);
                        Vec::new()
                    }
                    Err(e) => self.on_error(e),
                }
            }
            Msg::ImportPolled(result) => {
                self.done();
                match result {
                    Ok(job) => self.on_import_job(job),
                    Err(e) => {
                        self.import = None;
                        self.on_error(e)
                    }
                }
            }
            Msg::TrendLoaded(result) => {
                self.done();
                match result {
                    Ok(trend) => {
                        self.trend = Some(trend);
                        Vec::new()
                    }
                    Err(e) => self.on_error(e),
                }
            }
        }
    }

    /// Shows where a background import is: its progress while it runs
    /// (polling again), what it did once it has ended.
    fn on_import_job(&mut self, job: ImportJob) -> Vec<Command> {
        match job.status {
            ImportJobStatus::Queued | ImportJobStatus::Running => {
                let text = if job.status == ImportJobStatus::Queued {
                    format!("Import of {} transactions queued…", job.total)
                } else {
                    format!(
                        "Importing: {} of {} written ({}%)…",
                        job.done,
                        job.total,
                        (job.done * 100).checked_div(job.total).unwrap_or(0)
                    )
                };
                self.set_status(Tone::Info, text);
                let status_url = job.status_url.clone();
                self.import = Some(job);
                self.start(Command::PollImport { status_url })
            }
            ImportJobStatus::Succeeded => {
                let mut text = format!(
                    "Read {}: imported {}, skipped {}, ignored {} money-in",
                    job.transactions,
                    job.imported.unwrap_or(0),
                    job.skipped.unwrap_or(0),
                    job.ignored
                );
                if let Some(first) = job.errors.first() {
                    text.push_str(&format!(
                        "; {} bad lines (line {}: {})",
                        job.errors_total.max(job.errors.len() as u64),
                        first.line,
                        first.message
                    ));
                }
                let tone = if job.errors.is_empty() {
                    Tone::Info
                } else {
                    Tone::Error
                };
                self.import = None;
                self.set_status(tone, text);
                self.refresh()
            }
            ImportJobStatus::Failed => {
                self.import = None;
                self.set_status(
                    Tone::Error,
                    format!(
                        "The import failed: {}",
                        job.error.as_deref().unwrap_or("no reason given")
                    ),
                );
                Vec::new()
            }
        }
    }

    fn start(&mut self, command: Command) -> Vec<Command> {
        self.in_flight += 1;
        vec![command]
    }

    fn done(&mut self) {
        self.in_flight = self.in_flight.saturating_sub(1);
    }

    /// Puts a new expense where the list's order (newest first) wants it.
    fn insert_expense(&mut self, expense: Expense) {
        let key = |e: &Expense| (e.spent_on, e.created_at, e.id);
        let at = self.expenses.partition_point(|e| key(e) > key(&expense));
        if at < self.expenses.len() || self.next_cursor.is_none() {
            self.expenses.insert(at, expense);
        }
    }

    fn on_error(&mut self, error: ApiError) -> Vec<Command> {
        if error.is_unauthorized() && self.screen == Screen::Dashboard {
            *self = App::logged_out(
                &self.server,
                self.today,
                Some("Your session has ended; log in again".into()),
            );
            return vec![Command::DeleteSession];
        }
        self.set_status(Tone::Error, error.to_string());
        Vec::new()
    }

    fn on_authenticated(&mut self, result: Result<AuthResponse, ApiError>) -> Vec<Command> {
        self.done();
        let Screen::Login(form) = &mut self.screen else {
            return Vec::new();
        };
        match result {
            Ok(auth) => {
                let (app, mut commands) =
                    App::logged_in(&self.server, &auth.user.email, self.today);
                *self = app;
                self.set_status(Tone::Info, format!("Logged in as {}", auth.user.email));
                commands.insert(0, Command::SaveSession(auth));
                commands
            }
            Err(ApiError::Refused { status, body }) => {
                match status {
                    401 => form.password_error = Some("Wrong email or password".into()),
                    409 => {
                        form.email_error =
                            Some("This email already has an account; Ctrl-R to log in".into())
                    }
                    422 => {
                        let fields = body.fields.unwrap_or_default();
                        form.email_error = fields.get("email").map(|r| format!("Email {r}"));
                        form.password_error =
                            fields.get("password").map(|r| format!("Password {r}"));
                    }
                    _ => form.error = Some(body.message.clone()),
                }
                self.status = (Tone::Error, body.message);
                Vec::new()
            }
            Err(e) => {
                form.error = Some(e.to_string());
                self.status = (Tone::Error, e.to_string());
                Vec::new()
            }
        }
    }

    fn on_key(&mut self, key: KeyEvent) -> Vec<Command> {
        if key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char('c') {
            self.should_quit = true;
            return Vec::new();
        }
        if let Screen::Login(_) = self.screen {
            return self.on_login_key(key);
        }
        match &self.overlay {
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
                self.overlay = Overlay::ImportFile(ImportFileForm {
                    kind,
                    values: Default::default(),
                    focus: 0,
                    error: None,
                });
                Vec::new()
            }
            Overlay::ImportFile(_) => self.on_import_file_key(key),
            Overlay::None if self.searching => self.on_search_key(key),
            Overlay::None => self.on_dashboard_key(key),
        }
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

    fn on_import_file_key(&mut self, key: KeyEvent) -> Vec<Command> {
        let busy = self.in_flight > 0;
        let Overlay::ImportFile(form) = &mut self.overlay else {
            return Vec::new();
        };
        let fields = if form.kind == FileKind::Csv { 2 } else { 1 };
        match key.code {
            KeyCode::Esc => {
                self.overlay = Overlay::None;
                self.set_status(Tone::Info, "Cancelled");
            }
            KeyCode::Tab | KeyCode::BackTab | KeyCode::Up | KeyCode::Down => {
                form.focus = (form.focus + 1) % fields;
            }
            KeyCode::Backspace => {
                form.values[form.focus].pop();
            }
            KeyCode::Char(c) => form.values[form.focus].push(c),
            KeyCode::Enter if !busy => {
                let path = form.values[0].trim().to_owned();
                if path.is_empty() {
                    form.error = Some("Give the file's path".into());
                    return Vec::new();
                }
                match form.mapping() {
                    Ok(mapping) => {
                        form.error = None;
                        let command = Command::ImportFile {
                            kind: form.kind,
                            path,
                            mapping,
                        };
                        self.set_status(Tone::Info, "Importing the file…");
                        return self.start(command);
                    }
                    Err(e) => form.error = Some(format!("Mapping: {e}")),
                }
            }
            _ => {}
        }
        Vec::new()
    }

    fn on_login_key(&mut self, key: KeyEvent) -> Vec<Command> {
        let busy = self.in_flight > 0;
        let Screen::Login(form) = &mut self.screen else {
            return Vec::new();
        };
        let field = match form.focus {
            LoginField::Email => &mut form.email,
            LoginField::Password => &mut form.password,
        };
        match key.code {
            // Esc goes back, and the login screen has nowhere to go back to:
            // it leaves the form as it is. Ctrl-C quits.
            KeyCode::Esc => {}
            KeyCode::Char('r') if key.modifiers.contains(KeyModifiers::CONTROL) => {
                form.register = !form.register;
                form.email_error = None;
                form.password_error = None;
            }
            KeyCode::Tab | KeyCode::BackTab | KeyCode::Up | KeyCode::Down => {
                form.focus = match form.focus {
                    LoginField::Email => LoginField::Password,
                    LoginField::Password => LoginField::Email,
                };
            }
            KeyCode::Backspace => {
                field.pop();
            }
            KeyCode::Char(c) => field.push(c),
            KeyCode::Enter if !busy => {
                form.error = None;
                form.email_error = validate::email(&form.email)
                    .err()
                    .map(|e| format!("Email {e}"));
                form.password_error = if form.register {
                    validate::password(&form.password)
                        .err()
                        .map(|e| format!("Password {e}"))
                } else if form.password.is_empty() {
                    Some("Password is required".into())
                } else {
                    None
                };
                if form.email_error.is_none() && form.password_error.is_none() {
                    let command = Command::Authenticate {
                        credentials: Credentials {
                            email: form.email.trim().to_owned(),
                            password: form.password.clone(),
                        },
                        register: form.register,
                    };
                    let verb = if form.register {
                        "Registering"
                    } else {
                        "Logging in"
                    };
                    self.status = (Tone::Info, format!("{verb}…"));
                    return self.start(command);
                }
            }
            _ => {}
        }
        Vec::new()
    }

    fn on_dashboard_key(&mut self, key: KeyEvent) -> Vec<Command> {
        match key.code {
            // Esc clears a search; it never quits (q and Ctrl-C do).
            KeyCode::Esc if !self.search.is_empty() => {
                self.search.clear();
                self.selected = 0;
                return self.refresh();
            }
            KeyCode::Esc => self.set_status(Tone::Info, "q or Ctrl-C quits"),
            KeyCode::Char('q') => self.should_quit = true,
            KeyCode::Char('?') => self.overlay = Overlay::Help,
            KeyCode::Char('a') => self.overlay = Overlay::AddExpense(ExpenseForm::new(self.today)),
            KeyCode::Char('r') => {
                self.set_status(Tone::Info, "Refreshing…");
                return self.refresh();
            }
            KeyCode::Char('i') => self.overlay = Overlay::ImportMenu,
            KeyCode::Char('e') => {
                if let Some(expense) = self.selected_expense() {
                    self.overlay = Overlay::AddExpense(ExpenseForm::edit(expense));
                }
            }
            KeyCode::Char('d') | KeyCode::Delete => {
                if let Some(expense) = self.selected_expense() {
                    self.overlay = Overlay::ConfirmDelete(expense.clone());
                }
            }
            KeyCode::Char('/') => self.searching = true,
            KeyCode::Tab | KeyCode::BackTab => {
                self.tab = match self.tab {
                    Tab::Overview => Tab::Trend,
                    Tab::Trend => Tab::Overview,
                };
                if self.tab == Tab::Trend {
                    return self.load_trend();
                }
            }
            KeyCode::Char('[') => return self.step_period(-1),
            KeyCode::Char(']') => return self.step_period(1),
            KeyCode::Char('T') => {
                self.period = Period::Month(month_of(self.today));
                self.set_status(Tone::Info, format!("Showing {}…", self.period.label()));
                return self.refresh();
            }
            KeyCode::Char('A') => {
                self.period = Period::All;
                self.set_status(Tone::Info, "Showing all time…");
                return self.refresh();
            }
            KeyCode::Char('L') => {
                *self = App::logged_out(&self.server, self.today, None);
                self.set_status(Tone::Info, "Logged out");
                return vec![Command::RevokeToken, Command::DeleteSession];
            }
            KeyCode::Char('j') | KeyCode::Down => {
                return self.select(self.selected.saturating_add(1));
            }
            KeyCode::Char('k') | KeyCode::Up => {
                return self.select(self.selected.saturating_sub(1));
            }
            KeyCode::PageDown => return self.select(self.selected.saturating_add(10)),
            KeyCode::PageUp => return self.select(self.selected.saturating_sub(10)),
            KeyCode::Home | KeyCode::Char('g') => return self.select(0),
            KeyCode::End | KeyCode::Char('G') => return self.select(usize::MAX),
            _ => {}
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
            Overlay::AddExpense(form) if form.focus == 0 => self.completion(&form.values[0]),
            _ => None,
        };
        let busy = self.in_flight > 0;
        let Overlay::AddExpense(form) = &mut self.overlay else {
            return Vec::new();
        };
        match key.code {
            KeyCode::Esc => {
                self.overlay = Overlay::None;
                self.set_status(Tone::Info, "Cancelled");
            }
            KeyCode::Tab | KeyCode::Down => form.focus = (form.focus + 1) % EXPENSE_FIELDS.len(),
            KeyCode::BackTab | KeyCode::Up => {
                form.focus = (form.focus + EXPENSE_FIELDS.len() - 1) % EXPENSE_FIELDS.len()
            }
            KeyCode::Right => {
                if let Some(name) = completion {
                    form.values[0] = name;
                }
            }
            KeyCode::Backspace => {
                form.values[form.focus].pop();
            }
            KeyCode::Char(c) => form.values[form.focus].push(c),
            KeyCode::Enter if !busy => {
                if let Some(expense) = form.validate() {
                    let command = match &form.editing {
                        Some(old) => Command::UpdateExpense {
                            id: old.id,
                            update: ExpenseUpdate {
                                category: Some(expense.category),
                                description: Some(expense.description),
                                amount: Some(expense.amount),
                                spent_on: expense.spent_on,
                            },
                        },
                        None => Command::AddExpense(expense),
                    };
                    self.set_status(Tone::Info, "Saving…");
                    return self.start(command);
                }
                self.set_status(Tone::Error, "Fix the highlighted fields");
            }
            _ => {}
        }
        Vec::new()
    }
}

#[cfg(test)]
/// For tests: a background import of 2 transactions from a file with one bad line.
pub(crate) fn import_job(status: ImportJobStatus, done: u64) -> ImportJob {
    let id = Uuid::now_v7();
    ImportJob {
        job_id: id,
        status_url: format!("/api/imports/{id}"),
        status,
        source: "csv".into(),
        transactions: 3,
        total: 2,
        done,
        imported: None,
        skipped: None,
        ignored: 1,
        errors: vec![finance_shared::LineError {
            line: 4,
            message: "amount \"x\" must be a decimal number".into(),
        }],
        errors_total: 1,
        error: None,
        attempts: 1,
        created_at: chrono::Utc::now(),
        started_at: None,
        finished_at: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use finance_shared::{CategoryTotal, User};
    use ratatui::crossterm::event::KeyEventKind;

    pub fn key(code: KeyCode) -> Msg {
        Msg::Key(KeyEvent::new(code, KeyModifiers::NONE))
    }

    fn ctrl(c: char) -> Msg {
        let mut k = KeyEvent::new(KeyCode::Char(c), KeyModifiers::CONTROL);
        k.kind = KeyEventKind::Press;
        Msg::Key(k)
    }

    fn type_text(app: &mut App, text: &str) {
        for c in text.chars() {
            app.update(key(KeyCode::Char(c)));
        }
    }

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, 24).expect("valid date")
    }

    fn auth(email: &str) -> AuthResponse {
        AuthResponse {
            access_token: "tok".into(),
            token_type: "Bearer".into(),
            expires_in: 60,
            user: User {
                id: uuid::Uuid::nil(),
                email: email.into(),
                created_at: chrono::DateTime::UNIX_EPOCH,
            },
        }
    }

    fn summary(categories: &[&str]) -> Summary {
        Summary {
            total: Money::from_minor(100),
            count: 1,
            categories: categories
                .iter()
                .map(|c| CategoryTotal {
                    category: (*c).into(),
                    total: Money::from_minor(100),
                    count: 1,
                })
                .collect(),
            from: None,
            to: None,
        }
    }

    #[test]
    fn login_validates_before_sending_then_authenticates() {
        let mut app = App::logged_out("http://x", today(), None);
        type_text(&mut app, "ann@example");
        assert!(app.update(key(KeyCode::Enter)).is_empty());
        let Screen::Login(form) = &app.screen else {
            panic!("login screen")
        };
        assert!(form.email_error.is_some());
        assert!(form.password_error.is_some());

        type_text(&mut app, ".com");
        app.update(key(KeyCode::Tab));
        type_text(&mut app, "secret12");
        let commands = app.update(key(KeyCode::Enter));
        assert_eq!(
            commands,
            vec![Command::Authenticate {
                credentials: Credentials {
                    email: "ann@example.com".into(),
                    password: "secret12".into()
                },
                register: false
            }]
        );
        assert_eq!(app.in_flight, 1);
        let commands = app.update(Msg::Authenticated(Ok(auth("ann@example.com"))));
        assert_eq!(app.screen, Screen::Dashboard);
        assert_eq!(
            commands,
            vec![
                Command::SaveSession(auth("ann@example.com")),
                Command::Refresh(View::default())
            ]
        );
    }

    #[test]
    fn register_toggle_applies_password_rules_and_shows_conflict_beside_email() {
        let mut app = App::logged_out("http://x", today(), None);
        app.update(ctrl('r'));
        type_text(&mut app, "ann@example.com");
        app.update(key(KeyCode::Tab));
        type_text(&mut app, "short");
        assert!(
            app.update(key(KeyCode::Enter)).is_empty(),
            "short password refused locally"
        );
        type_text(&mut app, "-but-long");
        assert_eq!(app.update(key(KeyCode::Enter)).len(), 1);
        let conflict = ApiError::Refused {
            status: 409,
            body: finance_shared::ErrorBody {
                error: finance_shared::ErrorCode::Conflict,
                message: "an account with this email already exists".into(),
                fields: None,
            },
        };
        app.update(Msg::Authenticated(Err(conflict)));
        let Screen::Login(form) = &app.screen else {
            panic!("login screen")
        };
        assert!(
            form.email_error
                .as_deref()
                .is_some_and(|e| e.contains("already"))
        );
        assert_eq!(app.in_flight, 0);
    }

    #[test]
    fn add_form_completes_category_validates_and_submits() {
        let (mut app, _) = App::logged_in("http://x", "ann@example.com", today());
        app.update(Msg::Refreshed(
            app.generation,
            Ok((
                summary(&["Groceries", "Gym"]),
                ExpensePage {
                    expenses: vec![],
                    next_cursor: None,
                },
            )),
        ));
        app.update(key(KeyCode::Char('a')));
        type_text(&mut app, "gr");
        app.update(key(KeyCode::Right));
        app.update(key(KeyCode::Tab));
        type_text(&mut app, "12.345");
        assert!(app.update(key(KeyCode::Enter)).is_empty());
        let Overlay::AddExpense(form) = &app.overlay else {
            panic!("form open")
        };
        assert_eq!(
            form.values[0], "Groceries",
            "completion takes the existing spelling"
        );
        assert!(
            form.errors[1]
                .as_deref()
                .is_some_and(|e| e.contains("2 decimal"))
        );
        app.update(key(KeyCode::Backspace));
        app.update(key(KeyCode::BackTab));
        app.update(key(KeyCode::Tab));
        let commands = app.update(key(KeyCode::Enter));
        assert_eq!(
            commands,
            vec![Command::AddExpense(NewExpense {
                category: "Groceries".into(),
                description: None,
                amount: Money::from_minor(1234),
                spent_on: Some(today()),
            })]
        );
    }

    #[test]
    fn esc_cancels_the_form_and_help_closes_on_any_key() {
        let (mut app, _) = App::logged_in("http://x", "a@b.co", today());
        app.update(key(KeyCode::Char('a')));
        app.update(key(KeyCode::Esc));
        assert_eq!(app.overlay, Overlay::None);
        assert!(!app.should_quit);
        app.update(key(KeyCode::Char('?')));
        assert_eq!(app.overlay, Overlay::Help);
        app.update(key(KeyCode::Char('x')));
        assert_eq!(app.overlay, Overlay::None);
        app.update(key(KeyCode::Char('q')));
        assert!(app.should_quit);
    }

    #[test]
    fn scrolling_near_the_end_loads_the_next_page_once() {
        let (mut app, _) = App::logged_in("http://x", "a@b.co", today());
        let expense = |i: u32| Expense {
            id: uuid::Uuid::nil(),
            category: "Food".into(),
            description: None,
            amount: Money::from_minor(i64::from(i)),
            spent_on: today(),
            created_at: chrono::DateTime::UNIX_EPOCH,
            source: "manual".into(),
        };
        let page = ExpensePage {
            expenses: (0..10).map(expense).collect(),
            next_cursor: Some("c1".into()),
        };
        app.update(Msg::Refreshed(app.generation, Ok((summary(&[]), page))));
        for _ in 0..4 {
            assert!(app.update(key(KeyCode::Char('j'))).is_empty());
        }
        assert_eq!(
            app.update(key(KeyCode::Down)),
            vec![Command::LoadMore {
                cursor: "c1".into()
            }]
        );
        assert!(
            app.update(key(KeyCode::Down)).is_empty(),
            "one page at a time"
        );
        app.update(Msg::MoreLoaded(Ok(ExpensePage {
            expenses: (10..15).map(expense).collect(),
            next_cursor: None,
        })));
        assert_eq!(app.expenses.len(), 15);
        app.update(key(KeyCode::End));
        assert_eq!(app.selected, 14);
    }

    #[test]
    fn unauthorized_answer_logs_out_and_forgets_the_session() {
        let (mut app, _) = App::logged_in("http://x", "a@b.co", today());
        let expired = ApiError::Refused {
            status: 401,
            body: finance_shared::ErrorBody {
                error: finance_shared::ErrorCode::Unauthorized,
                message: "access token is invalid or expired".into(),
                fields: None,
            },
        };
        assert_eq!(
            app.update(Msg::Refreshed(app.generation, Err(expired))),
            vec![Command::DeleteSession]
        );
        assert!(matches!(app.screen, Screen::Login(_)));
        assert_eq!(app.status.0, Tone::Error);
    }

    #[test]
    fn import_reports_counts_and_refreshes_without_hiding_them() {
        let (mut app, _) = App::logged_in("http://x", "a@b.co", today());
        assert!(app.update(key(KeyCode::Char('i'))).is_empty());
        assert_eq!(app.overlay, Overlay::ImportMenu);
        assert_eq!(app.update(key(KeyCode::Char('m'))), vec![Command::Import]);
        let result = ImportResult {
            imported: 20,
            skipped: 3,
            expenses: vec![],
        };
        assert_eq!(
            app.update(Msg::Imported(Ok(result))),
            vec![Command::Refresh(View {
                generation: 1,
                ..View::default()
            })]
        );
        app.update(Msg::Refreshed(
            app.generation,
            Ok((
                summary(&["Food"]),
                ExpensePage {
                    expenses: vec![],
                    next_cursor: None,
                },
            )),
        ));
        assert_eq!(
            app.status,
            (Tone::Info, "Imported 20, skipped 3".to_owned())
        );
    }

    #[test]
    fn unreachable_server_is_a_status_message() {
        let (mut app, _) = App::logged_in("http://x", "a@b.co", today());
        let down = ApiError::Unreachable {
            server: "http://x".into(),
            reason: "Connection refused".into(),
        };
        assert!(app.update(Msg::Imported(Err(down))).is_empty());
        assert_eq!(app.screen, Screen::Dashboard);
        assert!(app.status.1.contains("cannot reach"));
        assert_eq!(app.in_flight, 0);
    }
    fn expense(day: u32, category: &str, cents: i64) -> Expense {
        Expense {
            id: uuid::Uuid::now_v7(),
            category: category.into(),
            description: Some("note".into()),
            amount: Money::from_minor(cents),
            spent_on: NaiveDate::from_ymd_opt(2026, 11, day).expect("day"),
            created_at: chrono::DateTime::UNIX_EPOCH,
            source: "manual".into(),
        }
    }

    #[test]
    fn a_failed_background_import_says_why_and_stops_polling() {
        let mut app = with_rows(vec![]);
        app.update(Msg::ImportQueued(Ok(super::import_job(
            ImportJobStatus::Queued,
            0,
        ))));
        let mut failed = super::import_job(ImportJobStatus::Failed, 0);
        failed.error = Some("the database refused the import".into());
        assert!(app.update(Msg::ImportPolled(Ok(failed))).is_empty());
        assert!(app.import.is_none());
        assert_eq!(
            app.status,
            (
                Tone::Error,
                "The import failed: the database refused the import".to_owned()
            )
        );
    }

    fn with_rows(rows: Vec<Expense>) -> App {
        let (mut app, _) = App::logged_in("http://x", "a@b.co", today());
        app.update(Msg::Refreshed(
            app.generation,
            Ok((
                summary(&["Food"]),
                ExpensePage {
                    expenses: rows,
                    next_cursor: None,
                },
            )),
        ));
        app
    }

    #[test]
    fn e_edits_the_selected_row_in_the_add_form_and_sends_every_field() {
        let rows = vec![expense(20, "Food", 1250), expense(19, "Rent", 90000)];
        let target = rows[1].clone();
        let mut app = with_rows(rows);
        app.update(key(KeyCode::Down));
        app.update(key(KeyCode::Char('e')));
        let Overlay::AddExpense(form) = &app.overlay else {
            panic!("the form is open")
        };
        assert_eq!(form.values[1], "900.00");
        assert_eq!(form.focus, 1, "the cursor starts on the amount");
        for _ in 0..6 {
            app.update(key(KeyCode::Backspace));
        }
        type_text(&mut app, "875.5");
        let commands = app.update(key(KeyCode::Enter));
        assert_eq!(
            commands,
            vec![Command::UpdateExpense {
                id: target.id,
                update: ExpenseUpdate {
                    category: Some("Rent".into()),
                    description: Some(Some("note".into())),
                    amount: Some(Money::from_minor(87550)),
                    spent_on: Some(target.spent_on),
                },
            }]
        );
        let changed = Expense {
            amount: Money::from_minor(87550),
            ..target
        };
        let commands = app.update(Msg::Updated(Ok(changed.clone())));
        assert!(matches!(commands.as_slice(), [Command::Refresh(_)]));
        assert_eq!(app.overlay, Overlay::None);
        assert_eq!(app.expenses[1], changed, "the row shows the change at once");
        assert!(app.status.1.starts_with("Changed Rent 875.50"));
    }

    #[test]
    fn d_asks_before_deleting_and_only_y_deletes() {
        let rows = vec![expense(20, "Food", 1250), expense(19, "Rent", 90000)];
        let first = rows[0].id;
        let mut app = with_rows(rows);
        app.update(key(KeyCode::Char('d')));
        assert!(matches!(app.overlay, Overlay::ConfirmDelete(_)));
        assert!(app.update(key(KeyCode::Char('n'))).is_empty(), "kept");
        app.update(key(KeyCode::Char('d')));
        assert_eq!(
            app.update(key(KeyCode::Char('y'))),
            vec![Command::DeleteExpense(first)]
        );
        app.update(Msg::Deleted(Ok(first)));
        assert_eq!(app.expenses.len(), 1);
        assert_eq!(app.expenses[0].category, "Rent");
    }

    #[test]
    fn slash_searches_as_you_type_and_late_answers_are_dropped() {
        let mut app = with_rows(vec![expense(20, "Food", 1250)]);
        app.update(key(KeyCode::Char('/')));
        assert!(app.searching);
        app.update(key(KeyCode::Char('c')));
        let commands = app.update(key(KeyCode::Char('a')));
        let [Command::Refresh(view)] = commands.as_slice() else {
            panic!("a refresh per key: {commands:?}")
        };
        assert_eq!(view.q.as_deref(), Some("ca"));
        let stale = view.generation - 1;
        app.update(Msg::Refreshed(
            stale,
            Ok((
                summary(&[]),
                ExpensePage {
                    expenses: vec![],
                    next_cursor: None,
                },
            )),
        ));
        assert_eq!(
            app.expenses.len(),
            1,
            "the answer for \"c\" came late: dropped"
        );
        app.update(key(KeyCode::Enter));
        assert!(!app.searching);
        assert_eq!(app.search, "ca", "Enter keeps the filter");
        app.update(key(KeyCode::Char('/')));
        let commands = app.update(key(KeyCode::Esc));
        let [Command::Refresh(view)] = commands.as_slice() else {
            panic!("Esc clears: {commands:?}")
        };
        assert_eq!(view.q, None);
        // With nothing left to close, Esc stays on the dashboard.
        assert!(app.update(key(KeyCode::Esc)).is_empty());
        assert!(!app.should_quit, "Esc quit the dashboard");
    }

    #[test]
    fn brackets_step_the_month_and_tab_shows_the_trend_of_that_window() {
        let mut app = with_rows(vec![]);
        let commands = app.update(key(KeyCode::Char('[')));
        let [Command::Refresh(view)] = commands.as_slice() else {
            panic!("{commands:?}")
        };
        assert_eq!(
            (view.from, view.to),
            (
                NaiveDate::from_ymd_opt(2026, 11, 1),
                NaiveDate::from_ymd_opt(2026, 11, 30)
            ),
            "from all time, [ goes to this month"
        );
        app.update(key(KeyCode::Char('[')));
        let commands = app.update(key(KeyCode::Tab));
        assert_eq!(
            commands,
            vec![Command::LoadTrend {
                end: NaiveDate::from_ymd_opt(2026, 10, 1).expect("date")
            }]
        );
        let commands = app.update(key(KeyCode::Char(']')));
        assert!(matches!(
            commands.as_slice(),
            [Command::Refresh(_), Command::LoadTrend { .. }]
        ));
        app.update(key(KeyCode::Char('T')));
        assert_eq!(app.period.label(), "November 2026");
    }

    #[test]
    fn i_offers_csv_with_a_mapping_and_reports_bad_lines() {
        let mut app = with_rows(vec![]);
        app.update(key(KeyCode::Char('i')));
        app.update(key(KeyCode::Char('c')));
        type_text(&mut app, "/tmp/bank.csv");
        app.update(key(KeyCode::Tab));
        type_text(&mut app, "date=Posting Date; amount=Amount");
        let commands = app.update(key(KeyCode::Enter));
        assert_eq!(
            commands,
            vec![Command::ImportFile {
                kind: FileKind::Csv,
                path: "/tmp/bank.csv".into(),
                mapping: vec![
                    ("date".into(), "Posting Date".into()),
                    ("amount".into(), "Amount".into())
                ],
            }]
        );
        let mut job = super::import_job(ImportJobStatus::Queued, 0);
        let polls = app.update(Msg::ImportQueued(Ok(job.clone())));
        assert_eq!(app.overlay, Overlay::None, "the form closes once queued");
        assert_eq!(
            polls,
            vec![Command::PollImport {
                status_url: job.status_url.clone()
            }]
        );
        assert!(app.status.1.contains("queued"), "{}", app.status.1);
        job.status = ImportJobStatus::Running;
        job.done = 1;
        let polls = app.update(Msg::ImportPolled(Ok(job.clone())));
        assert!(matches!(polls.as_slice(), [Command::PollImport { .. }]));
        assert_eq!(app.status.1, "Importing: 1 of 2 written (50%)…");
        assert_eq!(app.import.as_ref().map(|j| j.done), Some(1));
        job.status = ImportJobStatus::Succeeded;
        job.done = 2;
        job.imported = Some(1);
        job.skipped = Some(1);
        let after = app.update(Msg::ImportPolled(Ok(job)));
        assert!(
            after.iter().any(|c| matches!(c, Command::Refresh(_))),
            "{after:?}"
        );
        assert!(app.import.is_none());
        assert_eq!(app.status.0, Tone::Error);
        assert!(
            app.status.1.starts_with("Read 3: imported 1, skipped 1"),
            "{}",
            app.status.1
        );
        assert!(app.status.1.contains("line 4"), "{}", app.status.1);
    }
}
