//! The dashboard's runtime: terminal events and server answers in, frames out.
//! Network calls run as tasks and report back as messages, so the screen
//! never waits on the network; a frame is drawn only after something happened.

use chrono::Utc;
use finance_shared::{
    ErrorBody, ErrorCode, ListQuery, MockImportRequest, SummaryQuery, TrendQuery,
};
use ratatui::DefaultTerminal;
use ratatui::crossterm::event::{self, Event, KeyEventKind};
use tokio::sync::mpsc;

use crate::api::{ApiError, Client};
use crate::app::{App, Command, FileKind, Msg, View};
use crate::session::{Session, SessionStore};
use crate::ui;

/// Runs the dashboard until the user quits; the terminal is restored on every exit path.
pub async fn run(server: String, store: SessionStore) -> anyhow::Result<()> {
    let today = Utc::now().date_naive();
    let (mut app, commands, token) = match store.load() {
        Ok(Some(session)) if session.is_valid() => {
            let (app, commands) = App::logged_in(&session.server, &session.email, today);
            (app, commands, Some(session.token))
        }
        Ok(Some(_)) => (
            App::logged_out(
                &server,
                today,
                Some("Your session has expired; log in again".into()),
            ),
            vec![],
            None,
        ),
        Ok(None) => (App::logged_out(&server, today, None), vec![], None),
        Err(e) => (
            App::logged_out(&server, today, Some(e.to_string())),
            vec![],
            None,
        ),
    };
    let mut client = Client::new(&app.server, token);

    let mut terminal = ratatui::init();
    let result = event_loop(&mut terminal, &mut app, &mut client, &store, commands).await;
    ratatui::restore();
    result
}

fn spawn_input_reader(tx: mpsc::UnboundedSender<Msg>) {
    std::thread::spawn(move || {
        loop {
            let msg = match event::read() {
                Ok(Event::Key(key)) if key.kind == KeyEventKind::Press => Msg::Key(key),
                Ok(Event::Resize(_, _)) => Msg::Resize,
                Ok(_) => continue,
                Err(_) => break,
            };
            if tx.send(msg).is_err() {
                break;
            }
        }
    });
}

async fn event_loop(
    terminal: &mut DefaultTerminal,
    app: &mut App,
    client: &mut Client,
    store: &SessionStore,
    initial: Vec<Command>,
) -> anyhow::Result<()> {
    let (tx, mut rx) = mpsc::unbounded_channel();
    spawn_input_reader(tx.clone());
    for command in initial {
        execute(command, client, store, app, &tx);
    }
    terminal.draw(|f| ui::render(app, f))?;
    while let Some(msg) = rx.recv().await {
        for command in app.update(msg) {
            execute(command, client, store, app, &tx);
        }
        if app.should_quit {
            break;
        }
        terminal.draw(|f| ui::render(app, f))?;
    }
    Ok(())
}

/// Carries out one command: session changes at once, network calls as tasks.
fn execute(
    command: Command,
    client: &mut Client,
    store: &SessionStore,
    app: &mut App,
    tx: &mpsc::UnboundedSender<Msg>,
) {
    let send = |tx: &mpsc::UnboundedSender<Msg>, msg: Msg| {
        let _ = tx.send(msg);
    };
    let tx = tx.clone();
    let c = client.clone();
    match command {
        Command::SaveSession(auth) => {
            *client = client.with_token(auth.access_token.clone());
            let session = Session::from_auth(client.base(), &auth);
            if let Err(e) = store.save(&session) {
                app.status = (crate::app::Tone::Error, e.to_string());
            }
        }
        Command::RevokeToken => {
            // Best effort: the session is forgotten here whatever the server says.
            tokio::spawn(async move {
                let _ = c.logout().await;
            });
        }
        Command::DeleteSession => {
            *client = Client::new(client.base(), None);
            if let Err(e) = store.delete() {
                app.status = (crate::app::Tone::Error, e.to_string());
            }
        }
        Command::Authenticate {
            credentials,
            register,
        } => {
            tokio::spawn(async move {
                let result = if register {
                    c.register(&credentials).await
                } else {
                    c.login(&credentials).await
                };
                send(&tx, Msg::Authenticated(result.map(|a| a.value)));
            });
        }
        Command::Refresh(view) => {
            tokio::spawn(async move {
                let summary_query = SummaryQuery {
                    from: view.from,
                    to: view.to,
                };
                let list_query = list_query(&view, None);
                let (summary, page) = tokio::join!(c.summary(&summary_query), c.list(&list_query));
                let result = summary.and_then(|s| page.map(|p| (s.value, p.value)));
                send(&tx, Msg::Refreshed(view.generation, result));
            });
        }
        Command::LoadMore { cursor } => {
            let (from, to) = app.period.range();
            let view = View {
                from,
                to,
                q: Some(app.search.trim().to_owned()).filter(|q| !q.is_empty()),
                generation: app.generation,
            };
            tokio::spawn(async move {
                let query = list_query(&view, Some(cursor));
                send(&tx, Msg::MoreLoaded(c.list(&query).await.map(|a| a.value)));
            });
        }
        Command::AddExpense(expense) => {
            tokio::spawn(async move {
                send(
                    &tx,
                    Msg::Added(c.add_expense(&expense).await.map(|a| a.value)),
                );
            });
        }
        Command::UpdateExpense { id, update } => {
            tokio::spawn(async move {
                let result = c.update_expense(&id.to_string(), &update).await;
                send(&tx, Msg::Updated(result.map(|a| a.value)));
            });
        }
        Command::DeleteExpense(id) => {
            tokio::spawn(async move {
                let result = c.delete_expense(&id.to_string()).await;
                send(&tx, Msg::Deleted(result.map(|_| id)));
            });
        }
        Command::LoadTrend { end } => {
            tokio::spawn(async move {
                let query = TrendQuery {
                    months: Some(12),
                    end: Some(end),
                };
                send(
                    &tx,
                    Msg::TrendLoaded(c.trend(&query).await.map(|a| a.value)),
                );
            });
        }
        Command::ImportFile {
            kind,
            path,
            mapping,
        } => {
            tokio::spawn(async move {
                let result = match tokio::fs::read(expand_home(&path)).await {
                    Ok(bytes) => {
                        let (route, content_type) = match kind {
                            FileKind::Csv => ("csv", "text/csv"),
                            FileKind::Ofx => ("ofx", "application/x-ofx"),
                        };
                        c.import_file_in_background(route, &mapping, content_type, bytes)
                            .await
                            .map(|a| a.value)
                    }
                    Err(e) => Err(ApiError::Refused {
                        status: 400,
                        body: ErrorBody {
                            error: ErrorCode::BadRequest,
                            message: format!("cannot read {path}: {e}"),
                            fields: None,
                        },
                    }),
                };
                send(&tx, Msg::ImportQueued(result));
            });
        }
        Command::PollImport { status_url } => {
            tokio::spawn(async move {
                tokio::time::sleep(IMPORT_POLL).await;
                let result = c.import_job(&status_url).await.map(|a| a.value);
                send(&tx, Msg::ImportPolled(result));
            });
        }
        Command::Import => {
            tokio::spawn(async move {
                let result = c.import_mock(&MockImportRequest::default()).await;
                send(&tx, Msg::Imported(result.map(|a| a.value)));
            });
        }
    }
}

/// How often a background import's progress is asked for.
const IMPORT_POLL: std::time::Duration = std::time::Duration::from_millis(300);

/// The list query of a view, from a cursor.
fn list_query(view: &View, cursor: Option<String>) -> ListQuery {
    ListQuery {
        cursor,
        from: view.from,
        to: view.to,
        q: view.q.clone(),
        ..ListQuery::default()
    }
}

/// `~/x` as the home directory's `x`, as a shell would.
fn expand_home(path: &str) -> std::path::PathBuf {
    match (path.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => std::path::Path::new(&home).join(rest),
        _ => std::path::PathBuf::from(path),
    }
}
