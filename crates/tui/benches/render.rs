//! One dashboard frame with 50 categories and 1,000 table rows, on a test backend.

use chrono::{DateTime, Days, NaiveDate};
use criterion::{Criterion, criterion_group, criterion_main};
use finance_shared::{CategoryTotal, Expense, ExpensePage, Money, Summary};
use finance_tui::app::{App, Msg};
use finance_tui::ui;
use ratatui::Terminal;
use ratatui::backend::TestBackend;

fn loaded_dashboard() -> App {
    let today = NaiveDate::from_ymd_opt(2026, 11, 24).expect("date");
    let (mut app, _) = App::logged_in("http://127.0.0.1:8080", "ann@example.com", today);
    let categories: Vec<CategoryTotal> = (0..50)
        .map(|i: i64| CategoryTotal {
            category: format!("Category number {i}"),
            total: Money::from_minor((50 - i) * 12_345),
            count: u64::try_from(i).unwrap_or(0) + 1,
        })
        .collect();
    let expenses: Vec<Expense> = (0..1000)
        .map(|i: u32| Expense {
            id: uuid::Uuid::from_u128(u128::from(i)),
            category: format!("Category number {}", i % 50),
            description: Some(format!("Purchase number {i} at a shop with a long name")),
            amount: Money::from_minor(i64::from(i) * 137 + 99),
            spent_on: today - Days::new(u64::from(i / 3)),
            created_at: DateTime::UNIX_EPOCH,
            source: "manual".into(),
        })
        .collect();
    let summary = Summary {
        total: Money::from_minor(categories.iter().map(|c| c.total.minor()).sum()),
        count: 1000,
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
                next_cursor: None,
            },
        )),
    ));
    app.selected = 500;
    app
}

fn render(c: &mut Criterion) {
    let app = loaded_dashboard();
    let mut terminal = Terminal::new(TestBackend::new(160, 50)).expect("test terminal");
    c.bench_function("dashboard frame, 50 categories, 1,000 rows, 160x50", |b| {
        b.iter(|| {
            terminal.draw(|f| ui::render(&app, f)).expect("draw");
        });
    });
}

criterion_group!(benches, render);
criterion_main!(benches);
