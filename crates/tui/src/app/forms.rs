//! The forms: each owns its keys and, on Enter, checks its fields with the
//! server's rules and gives back what to send.

use chrono::NaiveDate;
use finance_shared::{Credentials, Expense, ExpenseUpdate, Money, NewExpense, validate};
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use uuid::Uuid;

/// What a key did to a form.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome<T> {
    /// Still being filled in.
    Editing,
    Cancelled,
    /// Enter, with fields that are wrong (the form says which); the reason
    /// for the status line.
    Invalid(&'static str),
    Submitted(T),
}

/// Backspace and typed characters, for any field.
fn edit(field: &mut String, key: KeyEvent) {
    match key.code {
        KeyCode::Backspace => {
            field.pop();
        }
        KeyCode::Char(c) => field.push(c),
        _ => {}
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

impl LoginForm {
    /// Ctrl-R switches between logging in and registering. Esc leaves the
    /// form as it is: the login screen has nowhere to go back to.
    pub fn on_key(&mut self, key: KeyEvent) -> Outcome<Credentials> {
        match key.code {
            KeyCode::Char('r') if key.modifiers.contains(KeyModifiers::CONTROL) => {
                self.register = !self.register;
                self.email_error = None;
                self.password_error = None;
            }
            KeyCode::Tab | KeyCode::BackTab | KeyCode::Up | KeyCode::Down => {
                self.focus = match self.focus {
                    LoginField::Email => LoginField::Password,
                    LoginField::Password => LoginField::Email,
                };
            }
            KeyCode::Enter => return self.submit(),
            _ => edit(
                match self.focus {
                    LoginField::Email => &mut self.email,
                    LoginField::Password => &mut self.password,
                },
                key,
            ),
        }
        Outcome::Editing
    }

    fn submit(&mut self) -> Outcome<Credentials> {
        self.error = None;
        self.email_error = validate::email(&self.email)
            .err()
            .map(|e| format!("Email {e}"));
        self.password_error = if self.register {
            validate::password(&self.password)
                .err()
                .map(|e| format!("Password {e}"))
        } else if self.password.is_empty() {
            Some("Password is required".into())
        } else {
            None
        };
        if self.email_error.is_some() || self.password_error.is_some() {
            return Outcome::Invalid("Fix the highlighted fields");
        }
        Outcome::Submitted(Credentials {
            email: self.email.trim().to_owned(),
            password: self.password.clone(),
        })
    }
}

/// The fields of the expense form, in order.
pub const EXPENSE_FIELDS: [&str; 4] = ["Category", "Amount", "Description", "Date"];

/// What the expense form sends.
#[derive(Clone, Debug, PartialEq)]
pub enum Save {
    Add(NewExpense),
    Update { id: Uuid, update: ExpenseUpdate },
}

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
    pub fn new(today: NaiveDate) -> Self {
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

    pub fn edit(expense: &Expense) -> Self {
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

    /// `completion` is the category → would accept.
    pub fn on_key(&mut self, key: KeyEvent, completion: Option<String>) -> Outcome<Save> {
        let fields = EXPENSE_FIELDS.len();
        match key.code {
            KeyCode::Esc => return Outcome::Cancelled,
            KeyCode::Tab | KeyCode::Down => self.focus = (self.focus + 1) % fields,
            KeyCode::BackTab | KeyCode::Up => self.focus = (self.focus + fields - 1) % fields,
            KeyCode::Right => {
                if let Some(name) = completion.filter(|_| self.focus == 0) {
                    self.values[0] = name;
                }
            }
            KeyCode::Enter => {
                let Some(expense) = self.validate() else {
                    return Outcome::Invalid("Fix the highlighted fields");
                };
                return Outcome::Submitted(match &self.editing {
                    Some(old) => Save::Update {
                        id: old.id,
                        update: ExpenseUpdate {
                            category: Some(expense.category),
                            description: Some(expense.description),
                            amount: Some(expense.amount),
                            spent_on: expense.spent_on,
                        },
                    },
                    None => Save::Add(expense),
                });
            }
            _ => edit(&mut self.values[self.focus], key),
        }
        Outcome::Editing
    }

    /// Shows the server's reasons beside the fields they name.
    pub fn refused(&mut self, fields: impl IntoIterator<Item = (String, String)>) {
        for (name, reason) in fields {
            let i = match name.as_str() {
                "category" => 0,
                "amount" => 1,
                "description" => 2,
                _ => 3,
            };
            self.errors[i] = Some(format!("{} {reason}", EXPENSE_FIELDS[i]));
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

/// The kinds of bank file the dashboard imports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileKind {
    Csv,
    Ofx,
}

/// A bank file to import: its kind, path and, for CSV, column mapping.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileImport {
    pub kind: FileKind,
    pub path: String,
    /// As query pairs.
    pub mapping: Vec<(String, String)>,
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
    pub fn new(kind: FileKind) -> Self {
        ImportFileForm {
            kind,
            values: Default::default(),
            focus: 0,
            error: None,
        }
    }

    pub fn on_key(&mut self, key: KeyEvent) -> Outcome<FileImport> {
        let fields = if self.kind == FileKind::Csv { 2 } else { 1 };
        match key.code {
            KeyCode::Esc => return Outcome::Cancelled,
            KeyCode::Tab | KeyCode::BackTab | KeyCode::Up | KeyCode::Down => {
                self.focus = (self.focus + 1) % fields;
            }
            KeyCode::Enter => {
                let path = self.values[0].trim().to_owned();
                if path.is_empty() {
                    self.error = Some("Give the file's path".into());
                    return Outcome::Editing;
                }
                match self.mapping() {
                    Ok(mapping) => {
                        self.error = None;
                        return Outcome::Submitted(FileImport {
                            kind: self.kind,
                            path,
                            mapping,
                        });
                    }
                    Err(e) => self.error = Some(format!("Mapping: {e}")),
                }
            }
            _ => edit(&mut self.values[self.focus], key),
        }
        Outcome::Editing
    }

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
