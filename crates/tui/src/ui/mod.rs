//! Drawing: a pure function of the [`App`], a module per screen (`login`,
//! `overview`, `trend`) and for the windows over them (`overlays`), with
//! the pieces they share here.

mod login;
mod overlays;
mod overview;
#[cfg(test)]
mod tests;
mod trend;

use ratatui::Frame;
use ratatui::layout::{Constraint, Flex, Layout, Rect};
use ratatui::style::{Color, Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, Paragraph, Wrap};

use crate::app::{App, Overlay, Screen, Tab, Tone};

/// Draws the whole screen.
pub fn render(app: &App, frame: &mut Frame) {
    let [body, status] =
        Layout::vertical([Constraint::Fill(1), Constraint::Length(1)]).areas(frame.area());
    match &app.screen {
        Screen::Login(form) => login::render(form, &app.server, frame, body),
        Screen::Dashboard if app.tab == Tab::Trend => trend::render(app, frame, body),
        Screen::Dashboard => overview::render(app, frame, body),
    }
    render_status(app, frame, status);
    match &app.overlay {
        Overlay::None => {}
        Overlay::Help => overlays::help(frame, body),
        Overlay::AddExpense(form) => overlays::expense_form(app, form, frame, body),
        Overlay::ConfirmDelete(expense) => overlays::confirm_delete(expense, frame, body),
        Overlay::ImportMenu => overlays::import_menu(frame, body),
        Overlay::ImportFile(form) => overlays::import_file(form, frame, body),
    }
}

pub(super) fn popup(frame: &mut Frame, area: Rect, title: &str, lines: Vec<Line>, width: u16) {
    let area = centered(area, width, lines.len() as u16 + 2);
    frame.render_widget(Clear, area);
    frame.render_widget(
        Paragraph::new(lines)
            .block(Block::bordered().title(title))
            .wrap(Wrap { trim: false }),
        area,
    );
}

pub(super) fn centered(area: Rect, width: u16, height: u16) -> Rect {
    let [row] = Layout::vertical([Constraint::Length(height.min(area.height))])
        .flex(Flex::Center)
        .areas(area);
    let [cell] = Layout::horizontal([Constraint::Length(width.min(area.width))])
        .flex(Flex::Center)
        .areas(row);
    cell
}

pub(super) fn error_line(error: &Option<String>) -> Line<'_> {
    match error {
        Some(e) => Line::from(Span::styled(
            format!("{:14}{e}", ""),
            Style::new().fg(Color::Red),
        )),
        None => Line::default(),
    }
}

pub(super) fn input_line<'a>(
    label: &'a str,
    value: String,
    focused: bool,
    ghost: Option<String>,
) -> Line<'a> {
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

pub(super) fn truncate(s: &str, width: usize) -> String {
    if s.chars().count() <= width {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(width.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

pub(super) fn render_status(app: &App, frame: &mut Frame, area: Rect) {
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
pub(super) fn progress_bar(done: u64, total: u64, cells: u64) -> String {
    let filled = (done.min(total) * cells).checked_div(total).unwrap_or(0);
    let mut bar = String::from("▕");
    for cell in 0..cells {
        bar.push(if cell < filled { '█' } else { '░' });
    }
    bar.push('▏');
    bar
}
