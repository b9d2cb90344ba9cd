//! How keys and answers change the dashboard's state.

use super::*;
use crate::api::ApiError;
use chrono::NaiveDate;
use finance_shared::{
    AuthResponse, Credentials, Expense, ExpensePage, ExpenseUpdate, ImportJob, ImportJobStatus,
    ImportResult, Money, NewExpense, Summary,
};
use finance_shared::{CategoryTotal, User};
use ratatui::crossterm::event::KeyEventKind;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use uuid::Uuid;

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
    app.update(Msg::ImportQueued(Ok(import_job(
        ImportJobStatus::Queued,
        0,
    ))));
    let mut failed = import_job(ImportJobStatus::Failed, 0);
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
    let mut job = import_job(ImportJobStatus::Queued, 0);
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
        replaced: None,
        deleted: None,
        pending: 0,
        zero_amount: 0,
        money_in_count: 1,
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
