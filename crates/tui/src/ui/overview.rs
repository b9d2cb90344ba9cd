//! The dashboard's overview: totals, the chart by category, the table.

use ratatui::Frame;
use ratatui::layout::{Alignment, Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style, Stylize};
use ratatui::text::{Line, Span, Text};
use ratatui::widgets::{Bar, BarChart, Block, Cell, Paragraph, Row, Table, TableState};

use super::truncate;
use crate::app::App;

/// Longest category label in the chart.
const LABEL_WIDTH: usize = 14;

pub(super) fn render(app: &App, frame: &mut Frame, area: Rect) {
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
