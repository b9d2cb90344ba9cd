//! Rendering: a pure function of the [`App`].

use ratatui::Frame;
use ratatui::layout::{Alignment, Constraint, Flex, Layout, Rect};
use ratatui::style::{Color, Modifier, Style, Stylize};
use ratatui::text::{Line, Span, Text};
use ratatui::widgets::{
    Bar, BarChart, Block, Cell, Clear, Paragraph, Row, Table, TableState, Wrap,
};

use crate::app::{
    App, EXPENSE_FIELDS, ExpenseForm, FileKind, ImportFileForm, LoginField, LoginForm, Overlay,
    Screen, Tab, Tone,
};

/// Longest category label in the chart.
const LABEL_WIDTH: usize = 14;

/// Every key of the dashboard, for the help window and the README.
pub const KEYS: &[(&str, &str)] = &[
    ("a", "add an expense"),
    ("e", "edit the selected expense"),
    ("d / Del", "delete the selected expense (asks first)"),
    ("/", "search descriptions and categories as you type"),
    ("i", "import: mock bank, CSV or OFX file"),
    ("Tab", "switch between overview and month-by-month trend"),
    ("[ / ]", "previous / next month"),
    ("T / A", "this month / all time"),
    ("r", "refresh"),
    ("j / ↓, k / ↑", "move in the table (loads more as you go)"),
    ("PgDn / PgUp", "move ten rows"),
    ("g / Home, G / End", "first / last row"),
    ("L", "log out (forget the stored session)"),
    ("?", "this help"),
    ("q / Ctrl-C", "quit"),
    ("Esc", "close, cancel or clear the search (never quits)"),
    ("In forms", "Tab / Shift-Tab move, Enter saves, Esc cancels"),
    ("Category field", "→ accepts the suggested category"),
];

/// Draws the whole screen.
pub fn render(app: &App, frame: &mut Frame) {
    let [body, status] =
        Layout::vertical([Constraint::Fill(1), Constraint::Length(1)]).areas(frame.area());
    match &app.screen {
        Screen::Login(form) => render_login(form, &app.server, frame, body),
        Screen::Dashboard => render_dashboard(app, frame, body),
    }
    render_status(app, frame, status);
    match &app.overlay {
        Overlay::None => {}
        Overlay::Help => render_help(frame, body),
        Overlay::AddExpense(form) => render_form(app, form, frame, body),
        Overlay::ConfirmDelete(expense) => {
            let lines = vec![
                Line::default(),
                Line::from(format!(
                    "  {} {} {} {}",
                    expense.spent_on,
                    expense.category,
                    expense.description.as_deref().unwrap_or(""),
                    expense.amount
                )),
                Line::default(),
                Line::from(Span::styled(
                    "  y: delete · any other key: keep",
                    Style::new().fg(Color::DarkGray),
                )),
            ];
            popup(frame, body, " Delete this expense? ", lines, 64);
        }
        Overlay::ImportMenu => {
            let lines = vec![
                Line::default(),
                Line::from("  m  mock bank sync"),
                Line::from("  c  CSV file (a bank export, or finance's own export)"),
                Line::from("  o  OFX / QFX file"),
                Line::default(),
                Line::from(Span::styled(
                    "  Esc: cancel",
                    Style::new().fg(Color::DarkGray),
                )),
            ];
            popup(frame, body, " Import from ", lines, 64);
        }
        Overlay::ImportFile(form) => render_import_file(form, frame, body),
    }
}

fn popup(frame: &mut Frame, area: Rect, title: &str, lines: Vec<Line>, width: u16) {
    let area = centered(area, width, lines.len() as u16 + 2);
    frame.render_widget(Clear, area);
    frame.render_widget(
        Paragraph::new(lines)
            .block(Block::bordered().title(title))
            .wrap(Wrap { trim: false }),
        area,
    );
}

fn render_import_file(form: &ImportFileForm, frame: &mut Frame, area: Rect) {
    let (title, fields): (&str, &[&str]) = match form.kind {
        FileKind::Csv => (" Import a CSV file ", &["File", "Mapping"]),
        FileKind::Ofx => (" Import an OFX / QFX file ", &["File"]),
    };
    let mut lines = vec![Line::default()];
    for (i, label) in fields.iter().enumerate() {
        lines.push(input_line(
            label,
            form.values[i].clone(),
            form.focus == i,
            None,
        ));
    }
    if form.kind == FileKind::Csv {
        lines.push(Line::from(Span::styled(
            "              optional: date=Posting Date; amount=Amount; date_format=%m/%d/%Y",
            Style::new().fg(Color::DarkGray),
        )));
    }
    lines.push(error_line(&form.error));
    lines.push(Line::from(Span::styled(
        "Tab: next field · Enter: import · Esc: cancel",
        Style::new().fg(Color::DarkGray),
    )));
    popup(frame, area, title, lines, 84);
}

fn centered(area: Rect, width: u16, height: u16) -> Rect {
    let [row] = Layout::vertical([Constraint::Length(height.min(area.height))])
        .flex(Flex::Center)
        .areas(area);
    let [cell] = Layout::horizontal([Constraint::Length(width.min(area.width))])
        .flex(Flex::Center)
        .areas(row);
    cell
}

fn error_line(error: &Option<String>) -> Line<'_> {
    match error {
        Some(e) => Line::from(Span::styled(
            format!("{:14}{e}", ""),
            Style::new().fg(Color::Red),
        )),
        None => Line::default(),
    }
}

fn input_line<'a>(label: &'a str, value: String, focused: bool, ghost: Option<String>) -> Line<'a> {
    let label_style = if focused {
        Style::new().bold().fg(Color::Cyan)
    } else {
        Style::new()
    };
    let mut spans = vec![
        Span::styled(format!("{label:>12}: "), label_style),
        Span::raw(value),
    ];
    if let Some(ghost) = ghost {
        spans.push(Span::styled(ghost, Style::new().fg(Color::DarkGray)));
    }
    if focused {
        spans.push(Span::styled("▏", Style::new().fg(Color::Cyan)));
    }
    Line::from(spans)
}

fn render_login(form: &LoginForm, server: &str, frame: &mut Frame, area: Rect) {
    let title = if form.register {
        " finance · create an account "
    } else {
        " finance · log in "
    };
    let masked = "•".repeat(form.password.chars().count());
    let mut lines = vec![
        Line::default(),
        input_line(
            "Email",
            form.email.clone(),
            form.focus == LoginField::Email,
            None,
        ),
        error_line(&form.email_error),
        input_line("Password", masked, form.focus == LoginField::Password, None),
        error_line(&form.password_error),
        error_line(&form.error),
        Line::from(Span::styled(
            format!("Server: {server}"),
            Style::new().fg(Color::DarkGray),
        )),
    ];
    let toggle = if form.register {
        "Ctrl-R: log in instead"
    } else {
        "Ctrl-R: register instead"
    };
    lines.push(Line::from(Span::styled(
        format!("Tab: next field · Enter: submit · {toggle} · Ctrl-C: quit"),
        Style::new().fg(Color::DarkGray),
    )));
    let block = Block::bordered()
        .title(title)
        .title_alignment(Alignment::Center);
    let popup = centered(area, 72, lines.len() as u16 + 2);
    frame.render_widget(
        Paragraph::new(lines)
            .block(block)
            .wrap(Wrap { trim: false }),
        popup,
    );
}

fn render_dashboard(app: &App, frame: &mut Frame, area: Rect) {
    if app.tab == Tab::Trend {
        render_trend(app, frame, area);
        return;
    }
    let categories = app.summary.as_ref().map_or(0, |s| s.categories.len()) as u16;
    let chart_height = categories.clamp(1, (area.height / 3).max(3)) + 2;
    let [header, chart, table] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(chart_height),
        Constraint::Fill(1),
    ])
    .areas(area);

    let (total, count) = app.summary.as_ref().map_or_else(
        || ("…".to_owned(), "…".to_owned()),
        |s| (s.total.to_string(), s.count.to_string()),
    );
    let header_line = Line::from(vec![
        Span::styled(" finance ", Style::new().bold().reversed()),
        Span::raw(format!(" {}  ", app.email)),
        Span::styled(format!("total {total}"), Style::new().bold()),
        Span::raw(format!(" · {count} expenses · {}", app.period.label())),
    ]);
    frame.render_widget(Paragraph::new(header_line), header);
    render_chart(app, frame, chart);
    render_table(app, frame, table);
}

fn truncate(s: &str, width: usize) -> String {
    if s.chars().count() <= width {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(width.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

fn render_chart(app: &App, frame: &mut Frame, area: Rect) {
    let block = Block::bordered().title(" Spending by category ");
    let categories = app
        .summary
        .as_ref()
        .map(|s| s.categories.as_slice())
        .unwrap_or_default();
    if categories.is_empty() {
        let hint = if app.summary.is_none() {
            "Loading…"
        } else {
            "No expenses yet: press a to add one, or i to import."
        };
        frame.render_widget(Paragraph::new(hint).block(block).fg(Color::DarkGray), area);
        return;
    }
    let rows = usize::from(area.height.saturating_sub(2));
    let block = match categories.len().saturating_sub(rows) {
        0 => block,
        hidden => block.title(format!(" {hidden} smaller not shown ")),
    };
    let bars: Vec<Bar> = categories
        .iter()
        .take(rows)
        .map(|c| {
            Bar::new(u64::try_from(c.total.minor()).unwrap_or(0))
                .label(Line::from(truncate(&c.category, LABEL_WIDTH)))
                .text_value(c.total.to_string())
        })
        .collect();
    let chart = BarChart::horizontal(bars)
        .block(block)
        .bar_width(1)
        .bar_gap(0)
        .bar_style(Style::new().fg(Color::Cyan))
        .value_style(Style::new().fg(Color::Black).bg(Color::Cyan));
    frame.render_widget(chart, area);
}

fn render_table(app: &App, frame: &mut Frame, area: Rect) {
    let title = match (&app.next_cursor, app.loading_more) {
        (_, true) => format!(
            " Recent expenses ({} loaded, loading more…) ",
            app.expenses.len()
        ),
        (Some(_), false) => format!(
            " Recent expenses ({} loaded, more below) ",
            app.expenses.len()
        ),
        (None, false) => format!(" Recent expenses ({}) ", app.expenses.len()),
    };
    let block = Block::bordered().title(title);
    if app.expenses.is_empty() {
        frame.render_widget(Paragraph::new("").block(block), area);
        return;
    }
    let header = Row::new(["Date", "Category", "Description", "Amount"].map(|h| {
        if h == "Amount" {
            Cell::from(Text::from(h).alignment(Alignment::Right))
        } else {
            Cell::from(h)
        }
    }))
    .style(Style::new().bold());
    let rows = app.expenses.iter().map(|e| {
        Row::new([
            Cell::from(e.spent_on.to_string()),
            Cell::from(e.category.as_str()),
            Cell::from(
                e.description
                    .as_deref()
                    .unwrap_or("")
                    .replace(['\n', '\t', '\r'], " "),
            ),
            Cell::from(Text::from(e.amount.to_string()).alignment(Alignment::Right)),
        ])
    });
    let table = Table::new(
        rows,
        [
            Constraint::Length(10),
            Constraint::Length(16),
            Constraint::Fill(1),
            Constraint::Length(14),
        ],
    )
    .header(header)
    .block(block)
    .row_highlight_style(Style::new().add_modifier(Modifier::REVERSED));
    let mut state = TableState::default().with_selected(Some(app.selected));
    frame.render_stateful_widget(table, area, &mut state);
}

fn render_trend(app: &App, frame: &mut Frame, area: Rect) {
    let [header, chart, table] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Percentage(55),
        Constraint::Fill(1),
    ])
    .areas(area);
    let header_line = Line::from(vec![
        Span::styled(" finance ", Style::new().bold().reversed()),
        Span::raw(format!(" {}  ", app.email)),
        Span::styled("month by month", Style::new().bold()),
        Span::raw(format!(" · {}", app.period.label())),
    ]);
    frame.render_widget(Paragraph::new(header_line), header);
    let Some(trend) = &app.trend else {
        frame.render_widget(
            Paragraph::new("Loading…")
                .block(Block::bordered().title(" Spending per month "))
                .fg(Color::DarkGray),
            chart,
        );
        return;
    };
    let selected = match app.period {
        crate::app::Period::Month(first) => Some(first.format("%Y-%m").to_string()),
        crate::app::Period::All => None,
    };
    let bars: Vec<Bar> = trend
        .months
        .iter()
        .map(|m| {
            let style = if selected.as_deref() == Some(m.month.as_str()) {
                Style::new().fg(Color::Yellow)
            } else {
                Style::new().fg(Color::Cyan)
            };
            Bar::new(u64::try_from(m.total.minor()).unwrap_or(0))
                .label(Line::from(m.month.get(2..).unwrap_or(&m.month).to_owned()))
                .text_value(format!("{:.0}", m.total.minor() as f64 / 100.0))
                .style(style)
        })
        .collect();
    let width = chart.width.saturating_sub(2) / trend.months.len().max(1) as u16;
    frame.render_widget(
        BarChart::vertical(bars)
            .block(Block::bordered().title(format!(
                " Spending per month, {} to {} ",
                trend.from, trend.to
            )))
            .bar_width(width.saturating_sub(1).max(1))
            .bar_gap(1),
        chart,
    );
    let rows = trend.months.iter().rev().map(|m| {
        let top: Vec<String> = m
            .categories
            .iter()
            .take(3)
            .map(|c| format!("{} {}", c.category, c.total))
            .collect();
        Row::new([
            Cell::from(m.month.clone()),
            Cell::from(m.count.to_string()),
            Cell::from(top.join(" · ")),
            Cell::from(Text::from(m.total.to_string()).alignment(Alignment::Right)),
        ])
    });
    let header =
        Row::new(["Month", "Count", "Largest categories", "Total"]).style(Style::new().bold());
    frame.render_widget(
        Table::new(
            rows,
            [
                Constraint::Length(8),
                Constraint::Length(6),
                Constraint::Fill(1),
                Constraint::Length(14),
            ],
        )
        .header(header)
        .block(Block::bordered().title(" Months, newest first ")),
        table,
    );
}

fn render_status(app: &App, frame: &mut Frame, area: Rect) {
    let working = if app.in_flight > 0 {
        Span::styled(" ⟳ working… ", Style::new().fg(Color::Yellow).bold())
    } else {
        Span::raw(" ")
    };
    let style = match app.status.0 {
        Tone::Info => Style::new(),
        Tone::Error => Style::new().fg(Color::Red),
    };
    let hints = match (&app.screen, &app.overlay) {
        (Screen::Login(_), _) => "",
        (_, Overlay::AddExpense(_) | Overlay::ImportFile(_)) => {
            "Tab next · Enter save · Esc cancel"
        }
        (_, Overlay::Help) => "any key closes",
        (_, Overlay::ConfirmDelete(_) | Overlay::ImportMenu) => "",
        _ if app.searching => "Enter keep · Esc clear",
        _ => "a add · e edit · d del · / search · ? help",
    };
    // Hints give way to the status on a narrow terminal, to an import's
    // progress, and to an error too long to share the line with them.
    let hints_width = hints.chars().count() as u16 + 1;
    let status_width = app.status.1.chars().count() as u16 + 14;
    let crowded = app.status.0 == Tone::Error && status_width + hints_width > area.width;
    let hints_width = if hints_width * 2 <= area.width && app.import.is_none() && !crowded {
        hints_width
    } else {
        0
    };
    let [left, right] =
        Layout::horizontal([Constraint::Fill(1), Constraint::Length(hints_width)]).areas(area);
    let mut spans = vec![working];
    if app.searching || !app.search.is_empty() {
        spans.push(Span::styled(
            format!("/{}", app.search),
            Style::new().fg(Color::Cyan).bold(),
        ));
        if app.searching {
            spans.push(Span::styled("▏", Style::new().fg(Color::Cyan)));
        }
        spans.push(Span::raw("  "));
    }
    if let Some(job) = &app.import {
        spans.push(Span::styled(
            progress_bar(job.done, job.total, 10),
            Style::new().fg(Color::Green),
        ));
        spans.push(Span::raw(" "));
    }
    spans.push(Span::styled(app.status.1.as_str(), style));
    frame.render_widget(Paragraph::new(Line::from(spans)), left);
    frame.render_widget(Paragraph::new(Line::from(hints).fg(Color::DarkGray)), right);
}

/// `▕█████░░░░░▏`: `done` of `total` in `cells` cells.
fn progress_bar(done: u64, total: u64, cells: u64) -> String {
    let filled = (done.min(total) * cells).checked_div(total).unwrap_or(0);
    let mut bar = String::from("▕");
    for cell in 0..cells {
        bar.push(if cell < filled { '█' } else { '░' });
    }
    bar.push('▏');
    bar
}

fn render_help(frame: &mut Frame, area: Rect) {
    let lines: Vec<Line> = KEYS
        .iter()
        .map(|(k, what)| {
            Line::from(vec![
                Span::styled(format!("{k:>18}  "), Style::new().bold()),
                Span::raw(*what),
            ])
        })
        .collect();
    let popup = centered(area, 70, lines.len() as u16 + 2);
    frame.render_widget(Clear, popup);
    frame.render_widget(
        Paragraph::new(lines).block(Block::bordered().title(" Keys ")),
        popup,
    );
}

fn render_form(app: &App, form: &ExpenseForm, frame: &mut Frame, area: Rect) {
    let mut lines = vec![Line::default()];
    for (i, label) in EXPENSE_FIELDS.iter().enumerate() {
        let typed = &form.values[0];
        let ghost = match app.completion(typed) {
            Some(name) if i == 0 && form.focus == 0 => name.get(typed.len()..).map(str::to_owned),
            _ => None,
        };
        lines.push(input_line(
            label,
            form.values[i].clone(),
            form.focus == i,
            ghost,
        ));
        lines.push(error_line(&form.errors[i]));
    }
    lines.push(Line::from(Span::styled(
        "Tab/Shift-Tab: move · →: accept category · Enter: save · Esc: cancel",
        Style::new().fg(Color::DarkGray),
    )));
    let title = if form.editing.is_some() {
        " Edit the expense "
    } else {
        " Add an expense "
    };
    let popup = centered(area, 76, lines.len() as u16 + 2);
    frame.render_widget(Clear, popup);
    frame.render_widget(
        Paragraph::new(lines).block(Block::bordered().title(title)),
        popup,
    );
}

#[cfg(test)]
mod tests {
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
}
