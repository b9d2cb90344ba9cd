//! The windows over the dashboard: help, the forms, the questions.

use finance_shared::Expense;
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Color, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, Paragraph};

use super::{centered, error_line, input_line, popup};
use crate::app::{App, EXPENSE_FIELDS, ExpenseForm, FileKind, ImportFileForm};
use crate::keys;

pub(super) fn confirm_delete(expense: &Expense, frame: &mut Frame, area: Rect) {
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
    popup(frame, area, " Delete this expense? ", lines, 64);
}

pub(super) fn import_menu(frame: &mut Frame, area: Rect) {
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
    popup(frame, area, " Import from ", lines, 64);
}

pub(super) fn import_file(form: &ImportFileForm, frame: &mut Frame, area: Rect) {
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

/// Every key, from the table the key handling reads.
pub(super) fn help(frame: &mut Frame, area: Rect) {
    let entry = |keys: &str, what: &str| {
        Line::from(vec![
            Span::styled(format!("{keys:>18}  "), Style::new().bold()),
            Span::raw(what.to_owned()),
        ])
    };
    let mut lines: Vec<Line> = keys::help(keys::DASHBOARD)
        .iter()
        .map(|(keys, what)| entry(keys, what))
        .collect();
    lines.extend(keys::FORMS.iter().map(|(k, what)| entry(k, what)));
    let popup = centered(area, 70, lines.len() as u16 + 2);
    frame.render_widget(Clear, popup);
    frame.render_widget(
        Paragraph::new(lines).block(Block::bordered().title(" Keys ")),
        popup,
    );
}

pub(super) fn expense_form(app: &App, form: &ExpenseForm, frame: &mut Frame, area: Rect) {
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
