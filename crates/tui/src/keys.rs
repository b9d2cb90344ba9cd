//! Every key of the dashboard, in one table: the key handling looks keys up
//! here, and the help window lists them from here.

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

/// What a key on the dashboard does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Add,
    Edit,
    Delete,
    Search,
    Import,
    SwitchTab,
    PreviousMonth,
    NextMonth,
    ThisMonth,
    AllTime,
    Refresh,
    Down,
    Up,
    PageDown,
    PageUp,
    First,
    Last,
    Logout,
    Help,
    Quit,
    /// Close, cancel or clear; never quits.
    Back,
}

/// A key as the table names it: a code, with Ctrl or without (Shift is in
/// the character: `G`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Key {
    pub code: KeyCode,
    pub ctrl: bool,
}

const fn char(c: char) -> Key {
    code(KeyCode::Char(c))
}

const fn code(code: KeyCode) -> Key {
    Key { code, ctrl: false }
}

const fn ctrl(c: char) -> Key {
    Key {
        code: KeyCode::Char(c),
        ctrl: true,
    }
}

/// Ctrl-C: quits from anywhere, forms and the login screen included.
pub const QUIT_ANYWHERE: Key = ctrl('c');

/// One line of the table: the keys, what they do, and what help says of
/// them (empty: help lists them with the line before, whose words cover both).
pub struct Binding {
    pub keys: &'static [Key],
    pub action: Action,
    pub help: &'static str,
}

const fn bind(keys: &'static [Key], action: Action, help: &'static str) -> Binding {
    Binding { keys, action, help }
}

/// The dashboard's keys, in the order help lists them.
pub const DASHBOARD: &[Binding] = &[
    bind(&[char('a')], Action::Add, "add an expense"),
    bind(&[char('e')], Action::Edit, "edit the selected expense"),
    bind(
        &[char('d'), code(KeyCode::Delete)],
        Action::Delete,
        "delete the selected expense (asks first)",
    ),
    bind(
        &[char('/')],
        Action::Search,
        "search descriptions and categories as you type",
    ),
    bind(
        &[char('i')],
        Action::Import,
        "import: mock bank, CSV or OFX file",
    ),
    bind(
        &[code(KeyCode::Tab), code(KeyCode::BackTab)],
        Action::SwitchTab,
        "switch between overview and month-by-month trend",
    ),
    bind(&[char('[')], Action::PreviousMonth, "previous / next month"),
    bind(&[char(']')], Action::NextMonth, ""),
    bind(&[char('T')], Action::ThisMonth, "this month / all time"),
    bind(&[char('A')], Action::AllTime, ""),
    bind(&[char('r')], Action::Refresh, "refresh"),
    bind(
        &[char('j'), code(KeyCode::Down)],
        Action::Down,
        "move in the table (loads more as you go)",
    ),
    bind(&[char('k'), code(KeyCode::Up)], Action::Up, ""),
    bind(
        &[code(KeyCode::PageDown)],
        Action::PageDown,
        "move ten rows",
    ),
    bind(&[code(KeyCode::PageUp)], Action::PageUp, ""),
    bind(
        &[char('g'), code(KeyCode::Home)],
        Action::First,
        "first / last row",
    ),
    bind(&[char('G'), code(KeyCode::End)], Action::Last, ""),
    bind(
        &[char('L')],
        Action::Logout,
        "log out (forget the stored session)",
    ),
    bind(&[char('?')], Action::Help, "this help"),
    bind(&[char('q'), QUIT_ANYWHERE], Action::Quit, "quit"),
    bind(
        &[code(KeyCode::Esc)],
        Action::Back,
        "close, cancel or clear the search (never quits)",
    ),
];

/// The keys every form shares (handled in `app::forms`), for help.
pub const FORMS: &[(&str, &str)] = &[
    ("In forms", "Tab / Shift-Tab move, Enter saves, Esc cancels"),
    ("Category field", "→ accepts the suggested category"),
];

/// How help writes a key.
fn label(key: &Key) -> Option<String> {
    let name = match key.code {
        KeyCode::Char(c) if key.ctrl => return Some(format!("Ctrl-{}", c.to_ascii_uppercase())),
        KeyCode::Char(c) => c.to_string(),
        KeyCode::Delete => "Del".into(),
        KeyCode::Tab => "Tab".into(),
        // Shift-Tab goes with Tab.
        KeyCode::BackTab => return None,
        KeyCode::Down => "↓".into(),
        KeyCode::Up => "↑".into(),
        KeyCode::PageDown => "PgDn".into(),
        KeyCode::PageUp => "PgUp".into(),
        KeyCode::Home => "Home".into(),
        KeyCode::End => "End".into(),
        KeyCode::Esc => "Esc".into(),
        other => format!("{other}"),
    };
    Some(name)
}

/// The lines of help for `table`: the keys as they are written, and what
/// they do (a binding without words of its own joins the line before).
pub fn help(table: &[Binding]) -> Vec<(String, &'static str)> {
    let mut lines: Vec<(Vec<String>, &'static str)> = Vec::new();
    for binding in table {
        let keys = binding
            .keys
            .iter()
            .filter_map(label)
            .collect::<Vec<_>>()
            .join(" / ");
        match lines.last_mut() {
            Some((labels, _)) if binding.help.is_empty() => labels.push(keys),
            _ => lines.push((vec![keys], binding.help)),
        }
    }
    lines
        .into_iter()
        .map(|(labels, help)| {
            let one_key_each = labels.iter().all(|l| !l.contains(' '));
            (labels.join(if one_key_each { " / " } else { ", " }), help)
        })
        .collect()
}

/// The action `event` stands for in `table`.
pub fn action(table: &[Binding], event: KeyEvent) -> Option<Action> {
    let pressed = Key {
        code: event.code,
        ctrl: event.modifiers.contains(KeyModifiers::CONTROL),
    };
    table
        .iter()
        .find(|b| b.keys.contains(&pressed))
        .map(|b| b.action)
}

/// Whether `event` is `key`.
pub fn is(event: KeyEvent, key: Key) -> bool {
    event.code == key.code && event.modifiers.contains(KeyModifiers::CONTROL) == key.ctrl
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_key_has_two_actions() {
        let mut seen = Vec::new();
        for binding in DASHBOARD {
            for key in binding.keys {
                assert!(!seen.contains(key), "{key:?} is bound twice");
                seen.push(*key);
            }
        }
    }

    #[test]
    fn help_lists_every_key_once_and_joins_pairs() {
        let lines = help(DASHBOARD);
        let find = |keys: &str| lines.iter().find(|(k, _)| k == keys).map(|(_, h)| *h);
        assert_eq!(find("[ / ]"), Some("previous / next month"));
        assert_eq!(
            find("j / ↓, k / ↑"),
            Some("move in the table (loads more as you go)")
        );
        assert_eq!(find("q / Ctrl-C"), Some("quit"));
        assert!(lines.iter().all(|(_, h)| !h.is_empty()));
    }

    #[test]
    fn shift_is_in_the_character_and_ctrl_is_not_ignored() {
        let shifted = KeyEvent::new(KeyCode::Char('G'), KeyModifiers::SHIFT);
        assert_eq!(action(DASHBOARD, shifted), Some(Action::Last));
        let ctrl_a = KeyEvent::new(KeyCode::Char('a'), KeyModifiers::CONTROL);
        assert_eq!(action(DASHBOARD, ctrl_a), None);
        let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
        assert_eq!(action(DASHBOARD, ctrl_c), Some(Action::Quit));
    }
}
