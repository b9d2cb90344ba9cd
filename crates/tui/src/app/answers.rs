//! How the server's answers change the dashboard.

use finance_shared::{AuthResponse, Expense, ImportJob, ImportJobStatus};

use super::{App, Command, Msg, Overlay, Screen, Tone};
use crate::api::ApiError;

impl App {
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
                            form.refused(body.fields.unwrap_or_default());
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
    pub(super) fn on_import_job(&mut self, job: ImportJob) -> Vec<Command> {
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

    /// Puts a new expense where the list's order (newest first) wants it.
    fn insert_expense(&mut self, expense: Expense) {
        let key = |e: &Expense| (e.spent_on, e.created_at, e.id);
        let at = self.expenses.partition_point(|e| key(e) > key(&expense));
        if at < self.expenses.len() || self.next_cursor.is_none() {
            self.expenses.insert(at, expense);
        }
    }

    pub(super) fn on_error(&mut self, error: ApiError) -> Vec<Command> {
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
}
