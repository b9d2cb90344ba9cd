//! Snapshots of every screen.

use super::*;
use crate::app::{App, Msg};
use chrono::{DateTime, NaiveDate};
use finance_shared::{CategoryTotal, Expense, ExpensePage, Money, Summary};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

fn today() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, 24).expect("valid date")
}

fn screen(app: &App) -> String {
    let mut terminal = Terminal::new(TestBackend::new(80, 24)).expect("test terminal");
    terminal.draw(|f| render(app, f)).expect("draw");
    terminal.backend().to_string()
}

fn key(app: &mut App, code: KeyCode) {
    app.update(Msg::Key(KeyEvent::new(code, KeyModifiers::NONE)));
}

fn type_text(app: &mut App, text: &str) {
    text.chars().for_each(|c| key(app, KeyCode::Char(c)));
}

fn dashboard() -> App {
    let (mut app, _) = App::logged_in("http://127.0.0.1:8080", "ann@example.com", today());
    let categories = [
        ("Groceries", 48_230, 9),
        ("Rent", 120_000, 1),
        ("Coffee", 4_150, 12),
        ("Transport", 9_875, 6),
    ];
    let mut categories: Vec<CategoryTotal> = categories
        .iter()
        .map(|(c, t, n)| CategoryTotal {
            category: (*c).into(),
            total: Money::from_minor(*t),
            count: *n,
        })
        .collect();
    categories.sort_by_key(|c| std::cmp::Reverse(c.total));
    let expenses = (0..30)
        .map(|i: u32| Expense {
            id: uuid::Uuid::from_u128(u128::from(i)),
            category: ["Groceries", "Coffee", "Transport"][i as usize % 3].into(),
            description: i.is_multiple_of(2).then(|| format!("Purchase number {i}")),
            amount: Money::from_minor(i64::from(i) * 137 + 99),
            spent_on: today() - chrono::Days::new(u64::from(i / 2)),
            created_at: DateTime::UNIX_EPOCH,
            source: "manual".into(),
        })
        .collect();
    let summary = Summary {
        total: Money::from_minor(182_255),
        count: 28,
        categories,
        from: None,
        to: None,
    };
    app.update(Msg::Refreshed(
        app.generation,
        Ok((
            summary,
            ExpensePage {
                expenses,
                next_cursor: Some("c".into()),
            },
        )),
    ));
    app
}

#[test]
fn login_screen() {
    let mut app = App::logged_out("http://127.0.0.1:8080", today(), None);
    type_text(&mut app, "ann@example.com");
    key(&mut app, KeyCode::Tab);
    type_text(&mut app, "hunter2");
    insta::assert_snapshot!(screen(&app));
}

#[test]
fn login_screen_with_errors() {
    let mut app = App::logged_out("http://127.0.0.1:8080", today(), None);
    type_text(&mut app, "ann@");
    key(&mut app, KeyCode::Enter);
    insta::assert_snapshot!(screen(&app));
}

#[test]
fn dashboard_with_data() {
    let mut app = dashboard();
    key(&mut app, KeyCode::Char('j'));
    key(&mut app, KeyCode::Char('j'));
    insta::assert_snapshot!(screen(&app));
}

#[test]
fn empty_dashboard() {
    let (mut app, _) = App::logged_in("http://127.0.0.1:8080", "ann@example.com", today());
    let summary = Summary {
        total: Money::ZERO,
        count: 0,
        categories: vec![],
        from: None,
        to: None,
    };
    app.update(Msg::Refreshed(
        app.generation,
        Ok((
            summary,
            ExpensePage {
                expenses: vec![],
                next_cursor: None,
            },
        )),
    ));
    insta::assert_snapshot!(screen(&app));
}

#[test]
fn add_form_with_a_validation_error() {
    let mut app = dashboard();
    key(&mut app, KeyCode::Char('a'));
    type_text(&mut app, "Gro");
    key(&mut app, KeyCode::Tab);
    type_text(&mut app, "12.345");
    key(&mut app, KeyCode::Enter);
    key(&mut app, KeyCode::BackTab);
    insta::assert_snapshot!(screen(&app));
}

#[test]
fn help() {
    let mut app = dashboard();
    key(&mut app, KeyCode::Char('?'));
    insta::assert_snapshot!(screen(&app));
}

#[test]
fn chart_says_how_many_categories_it_leaves_out() {
    let (mut app, _) = App::logged_in("http://127.0.0.1:8080", "ann@example.com", today());
    let categories: Vec<CategoryTotal> = (0..12)
        .map(|i| CategoryTotal {
            category: format!("Category {i:02}"),
            total: Money::from_minor(10_000 - i64::from(i) * 500),
            count: 1,
        })
        .collect();
    let summary = Summary {
        total: Money::from_minor(87_000),
        count: 12,
        categories,
        from: None,
        to: None,
    };
    app.update(Msg::Refreshed(
        app.generation,
        Ok((
            summary,
            ExpensePage {
                expenses: vec![],
                next_cursor: None,
            },
        )),
    ));
    let screen = screen(&app);
    assert!(screen.contains("5 smaller not shown"), "{screen}");
    insta::assert_snapshot!(screen);
}

#[test]
fn narrow_terminal_still_shows_the_essentials() {
    let app = dashboard();
    let mut terminal = Terminal::new(TestBackend::new(40, 16)).expect("test terminal");
    terminal.draw(|f| render(&app, f)).expect("draw");
    insta::assert_snapshot!(terminal.backend().to_string());
}
#[test]
fn editing_the_selected_row() {
    let mut app = dashboard();
    key(&mut app, KeyCode::Down);
    key(&mut app, KeyCode::Char('e'));
    insta::assert_snapshot!(screen(&app));
}

#[test]
fn delete_asks_first() {
    let mut app = dashboard();
    key(&mut app, KeyCode::Char('d'));
    insta::assert_snapshot!(screen(&app));
}

#[test]
fn searching_as_you_type() {
    let mut app = dashboard();
    key(&mut app, KeyCode::Char('/'));
    type_text(&mut app, "purchase 1");
    insta::assert_snapshot!(screen(&app));
}

#[test]
fn import_offers_mock_csv_and_ofx_then_asks_for_the_file() {
    let mut app = dashboard();
    key(&mut app, KeyCode::Char('i'));
    let menu = screen(&app);
    key(&mut app, KeyCode::Char('c'));
    type_text(&mut app, "~/Downloads/chase.csv");
    key(&mut app, KeyCode::Tab);
    type_text(&mut app, "date=Posting Date; amount=Amount");
    insta::assert_snapshot!(format!("{menu}\n{}", screen(&app)));
}

#[test]
fn a_background_import_shows_its_progress() {
    let mut app = dashboard();
    let job = crate::app::import_job(finance_shared::ImportJobStatus::Running, 1);
    app.update(crate::app::Msg::ImportPolled(Ok(job)));
    insta::assert_snapshot!(screen(&app));
}

#[test]
fn trend_tab_month_by_month_with_the_window_highlighted() {
    let mut app = dashboard();
    key(&mut app, KeyCode::Char('['));
    key(&mut app, KeyCode::Char('['));
    key(&mut app, KeyCode::Tab);
    let months = (0..12)
        .map(|i: u32| {
            let month = NaiveDate::from_ymd_opt(2025, 11, 1)
                .and_then(|d| d.checked_add_months(chrono::Months::new(i)))
                .expect("month");
            let total = i64::from(i % 5) * 41_000 + 12_345;
            finance_shared::MonthTotal {
                month: month.format("%Y-%m").to_string(),
                total: Money::from_minor(total),
                count: u64::from(i) + 3,
                categories: vec![CategoryTotal {
                    category: "Rent".into(),
                    total: Money::from_minor(total),
                    count: 1,
                }],
            }
        })
        .collect();
    app.update(Msg::TrendLoaded(Ok(finance_shared::Trend {
        from: NaiveDate::from_ymd_opt(2025, 11, 1).expect("date"),
        to: NaiveDate::from_ymd_opt(2026, 10, 31).expect("date"),
        months,
    })));
    insta::assert_snapshot!(screen(&app));
}
