//! The login and register screen.

use ratatui::Frame;
use ratatui::layout::{Alignment, Rect};
use ratatui::style::{Color, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph, Wrap};

use super::{centered, error_line, input_line};
use crate::app::{LoginField, LoginForm};

pub(super) fn render(form: &LoginForm, server: &str, frame: &mut Frame, area: Rect) {
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
