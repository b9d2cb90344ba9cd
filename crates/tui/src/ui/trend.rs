//! The dashboard's month-by-month trend.

use ratatui::Frame;
use ratatui::layout::{Alignment, Constraint, Layout, Rect};
use ratatui::style::{Color, Style, Stylize};
use ratatui::text::{Line, Span, Text};
use ratatui::widgets::{Bar, BarChart, Block, Cell, Paragraph, Row, Table};

use crate::app::App;

pub(super) fn render(app: &App, frame: &mut Frame, area: Rect) {
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
