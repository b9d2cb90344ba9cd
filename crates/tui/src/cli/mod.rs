//! Subcommands for scripts: human-readable tables, or the server's JSON with `--json`.

mod args;
mod output;

use std::io::{BufRead, IsTerminal, Write};

use finance_shared::{
    CategoryRename, Credentials, ExpenseUpdate, ExportFormat, ExportQuery, ImportJobStatus,
    ListQuery, MockImportRequest, Money, NewExpense, SummaryQuery, TrendQuery, validate,
};

use crate::api::{Answer, ApiError, Client};
use crate::session::{Session, SessionStore};

pub use args::*;
use output::table;
pub use output::{import_report, job_report};

/// A failed command, with its exit code.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The server refused (exit 1).
    #[error("{0}")]
    Refused(String),
    /// Bad arguments (exit 2).
    #[error("{0}")]
    Usage(String),
    /// The server could not be reached (exit 3).
    #[error("{0}")]
    Unreachable(String),
}

impl CliError {
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Refused(_) => 1,
            CliError::Usage(_) => 2,
            CliError::Unreachable(_) => 3,
        }
    }
}

impl From<ApiError> for CliError {
    fn from(e: ApiError) -> Self {
        match e {
            ApiError::Unreachable { .. } => CliError::Unreachable(e.to_string()),
            ApiError::Refused { body, .. } => {
                let mut message = body.message;
                for (field, reason) in body.fields.unwrap_or_default() {
                    message.push_str(&format!("\n  {field}: {reason}"));
                }
                CliError::Refused(message)
            }
            ApiError::Protocol(m) => CliError::Refused(m),
        }
    }
}

struct Context {
    store: SessionStore,
    server_flag: Option<String>,
    session: Option<Session>,
    json: bool,
}

impl Context {
    fn server(&self) -> String {
        self.server_flag
            .clone()
            .or_else(|| self.session.as_ref().map(|s| s.server.clone()))
            .unwrap_or_else(|| DEFAULT_SERVER.to_owned())
    }

    /// A client with the stored token, or a clear error when logged out.
    fn authed(&self) -> Result<Client, CliError> {
        match &self.session {
            Some(s) if s.is_valid() => Ok(Client::new(&self.server(), Some(s.token.clone()))),
            Some(_) => Err(CliError::Refused(
                "your session has expired; run `finance login`".into(),
            )),
            None => Err(CliError::Refused(
                "not logged in; run `finance login --email you@example.com`".into(),
            )),
        }
    }

    /// The answer, or the error after forgetting a session the server refused.
    fn check<T>(&self, result: Result<Answer<T>, ApiError>) -> Result<Answer<T>, CliError> {
        match result {
            Err(e) if e.is_unauthorized() && self.session.is_some() => {
                let _ = self.store.delete();
                Err(CliError::Refused(
                    "the server refused the stored session; run `finance login`".into(),
                ))
            }
            other => other.map_err(CliError::from),
        }
    }

    fn print<T>(&self, answer: &Answer<T>, human: impl FnOnce(&T) -> String) {
        let text = if self.json {
            answer.raw.clone()
        } else {
            human(&answer.value)
        };
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{}", text.trim_end());
    }
}

/// Runs the command line.
pub async fn run(cli: Cli) -> Result<(), CliError> {
    let store = SessionStore::new(cli.config_dir.clone());
    let Some(command) = cli.command else {
        let session = store.load().ok().flatten();
        let server = cli
            .server
            .clone()
            .or(session.map(|s| s.server))
            .unwrap_or_else(|| DEFAULT_SERVER.into());
        if !std::io::stdout().is_terminal() {
            return Err(CliError::Usage(
                "the dashboard needs a terminal; see `finance --help` for subcommands".into(),
            ));
        }
        return crate::dashboard::run(server, store)
            .await
            .map_err(|e| CliError::Refused(e.to_string()));
    };
    let session = match store.load() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("finance: {e}");
            None
        }
    };
    let ctx = Context {
        store,
        server_flag: cli.server,
        session,
        json: cli.json,
    };
    match command {
        Cmd::Login(args) => authenticate(&ctx, args, false).await,
        Cmd::Register(args) => authenticate(&ctx, args, true).await,
        Cmd::Logout => {
            if let Ok(client) = ctx.authed() {
                match client.logout().await {
                    Ok(_) => {}
                    Err(e) if e.is_unauthorized() => {}
                    Err(e) => eprintln!(
                        "finance: the server was not told ({e}); the token stays valid until it expires"
                    ),
                }
            }
            ctx.store
                .delete()
                .map_err(|e| CliError::Refused(e.to_string()))?;
            if !ctx.json {
                println!("Logged out.");
            }
            Ok(())
        }
        Cmd::Whoami => {
            let me = ctx.check(ctx.authed()?.me().await)?;
            ctx.print(&me, |u| {
                format!("{} on {} (user {})", u.email, ctx.server(), u.id)
            });
            Ok(())
        }
        Cmd::Add {
            category,
            amount,
            description,
            date,
        } => {
            let category = validate::category(&category)
                .map_err(|e| CliError::Usage(format!("category {e}")))?;
            let amount = parse_amount(&amount)?;
            if let Some(d) = &description {
                validate::description(d)
                    .map_err(|e| CliError::Usage(format!("description {e}")))?;
            }
            let expense = NewExpense {
                category,
                description,
                amount,
                spent_on: date,
            };
            let added = ctx.check(ctx.authed()?.add_expense(&expense).await)?;
            ctx.print(&added, |e| {
                format!(
                    "Added {} {} on {} (id {})",
                    e.category, e.amount, e.spent_on, e.id
                )
            });
            Ok(())
        }
        Cmd::List {
            limit,
            category,
            from,
            to,
            search,
        } => {
            let query = ListQuery {
                limit: Some(limit),
                cursor: None,
                category,
                from,
                to,
                q: search,
            };
            let page = ctx.check(ctx.authed()?.list(&query).await)?;
            ctx.print(&page, |p| {
                let rows: Vec<[String; 4]> = p
                    .expenses
                    .iter()
                    .map(|e| {
                        [
                            e.spent_on.to_string(),
                            e.category.clone(),
                            e.description.clone().unwrap_or_default(),
                            e.amount.to_string(),
                        ]
                    })
                    .collect();
                table(["DATE", "CATEGORY", "DESCRIPTION", "AMOUNT"], &rows)
            });
            Ok(())
        }
        Cmd::Summary { from, to } => {
            let summary = ctx.check(ctx.authed()?.summary(&SummaryQuery { from, to }).await)?;
            ctx.print(&summary, |s| {
                let mut rows: Vec<[String; 3]> = s
                    .categories
                    .iter()
                    .map(|c| [c.category.clone(), c.count.to_string(), c.total.to_string()])
                    .collect();
                rows.push(["TOTAL".into(), s.count.to_string(), s.total.to_string()]);
                table(["CATEGORY", "COUNT", "TOTAL"], &rows)
            });
            Ok(())
        }
        Cmd::Edit {
            id,
            category,
            amount,
            description,
            no_description,
            date,
        } => {
            let category = category
                .map(|c| validate::category(&c))
                .transpose()
                .map_err(|e| CliError::Usage(format!("category {e}")))?;
            let amount = amount.map(|a| parse_amount(&a)).transpose()?;
            if let Some(d) = &description {
                validate::description(d)
                    .map_err(|e| CliError::Usage(format!("description {e}")))?;
            }
            let update = ExpenseUpdate {
                category,
                description: if no_description {
                    Some(None)
                } else {
                    description.map(Some)
                },
                amount,
                spent_on: date,
            };
            if update == ExpenseUpdate::default() {
                return Err(CliError::Usage(
                    "nothing to change: give --category, --amount, --description, --no-description or --date".into(),
                ));
            }
            let changed = ctx.check(ctx.authed()?.update_expense(&id, &update).await)?;
            ctx.print(&changed, |e| {
                format!(
                    "Changed: {} {} {} on {}",
                    e.category,
                    e.description.as_deref().unwrap_or("-"),
                    e.amount,
                    e.spent_on
                )
            });
            Ok(())
        }
        Cmd::Rm { id } => {
            ctx.check(ctx.authed()?.delete_expense(&id).await)?;
            if !ctx.json {
                println!("Deleted {id}");
            }
            Ok(())
        }
        Cmd::Trend { months, end } => {
            let query = TrendQuery {
                months: Some(months),
                end,
            };
            let trend = ctx.check(ctx.authed()?.trend(&query).await)?;
            ctx.print(&trend, |t| {
                let rows: Vec<[String; 4]> = t
                    .months
                    .iter()
                    .map(|m| {
                        let top = m
                            .categories
                            .first()
                            .map(|c| format!("{} {}", c.category, c.total))
                            .unwrap_or_default();
                        [
                            m.month.clone(),
                            m.count.to_string(),
                            top,
                            m.total.to_string(),
                        ]
                    })
                    .collect();
                table(["MONTH", "COUNT", "LARGEST", "TOTAL"], &rows)
            });
            Ok(())
        }
        Cmd::Categories { action: None } => {
            let list = ctx.check(ctx.authed()?.categories().await)?;
            ctx.print(&list, |l| {
                let rows: Vec<[String; 4]> = l
                    .categories
                    .iter()
                    .map(|c| {
                        [
                            c.category.clone(),
                            c.count.to_string(),
                            c.last_used.to_string(),
                            c.total.to_string(),
                        ]
                    })
                    .collect();
                table(["CATEGORY", "COUNT", "LAST USED", "TOTAL"], &rows)
            });
            Ok(())
        }
        Cmd::Categories {
            action: Some(CategoryAction::Rename { from, to }),
        } => {
            let to = validate::category(&to).map_err(|e| CliError::Usage(format!("to {e}")))?;
            let renamed = ctx.check(
                ctx.authed()?
                    .rename_category(&CategoryRename { from, to })
                    .await,
            )?;
            ctx.print(&renamed, |r| {
                format!("Moved {} expenses to {}", r.moved, r.category)
            });
            Ok(())
        }
        Cmd::Export { format, from, to } => {
            let query = ExportQuery {
                format: Some(match format {
                    Format::Csv => ExportFormat::Csv,
                    Format::Json => ExportFormat::Json,
                }),
                from,
                to,
            };
            let client = ctx.authed()?;
            let mut out = std::io::BufWriter::new(std::io::stdout());
            let written = client.export(&query, &mut out).await;
            let flushed = out.flush();
            match written {
                Err(e) if e.is_unauthorized() => ctx.check::<()>(Err(e)).map(|_| ()),
                Err(e) => Err(e.into()),
                Ok(_) => match flushed {
                    Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                        Err(CliError::Refused(format!("cannot write the export: {e}")))
                    }
                    _ => Ok(()),
                },
            }
        }
        Cmd::Import {
            source: ImportSource::Csv { file, map },
        } => {
            let mut query = Vec::new();
            for pair in map {
                let (key, value) = pair
                    .split_once('=')
                    .ok_or_else(|| CliError::Usage(format!("--map {pair:?} is not KEY=VALUE")))?;
                if !MAP_KEYS.contains(&key) {
                    return Err(CliError::Usage(format!(
                        "--map {key:?} is not one of {}",
                        MAP_KEYS.join(", ")
                    )));
                }
                query.push((key.to_owned(), value.to_owned()));
            }
            import_file(&ctx, "csv", "text/csv", file, query).await
        }
        Cmd::Import {
            source: ImportSource::Ofx { file },
        } => import_file(&ctx, "ofx", "application/x-ofx", file, Vec::new()).await,
        Cmd::Import {
            source: ImportSource::Mock { count, seed },
        } => {
            let result = ctx.check(
                ctx.authed()?
                    .import_mock(&MockImportRequest { count, seed })
                    .await,
            )?;
            ctx.print(&result, |r| {
                format!("Imported {}, skipped {}", r.imported, r.skipped)
            });
            Ok(())
        }
    }
}

/// Reads an amount as the API takes it.
fn parse_amount(raw: &str) -> Result<Money, CliError> {
    raw.trim()
        .parse::<Money>()
        .map_err(|e| e.to_string())
        .and_then(|m| validate::amount(m).map_err(str::to_owned))
        .map_err(|e| CliError::Usage(format!("amount {e}")))
}

/// Sends a bank file (or standard input for `-`) and reports what it did.
async fn import_file(
    ctx: &Context,
    kind: &str,
    content_type: &str,
    args: FileImportArgs,
    mut query: Vec<(String, String)>,
) -> Result<(), CliError> {
    let bytes = if args.file.as_os_str() == "-" {
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin().lock(), &mut buf)
            .map_err(|e| CliError::Usage(format!("cannot read standard input: {e}")))?;
        buf
    } else {
        std::fs::read(&args.file)
            .map_err(|e| CliError::Usage(format!("cannot read {}: {e}", args.file.display())))?
    };
    if args.dry_run {
        query.push(("dry_run".into(), "true".into()));
    }
    if args.strict {
        query.push(("strict".into(), "true".into()));
    }
    if let Some(c) = args.category {
        query.push(("default_category".into(), c));
    }
    if args.background {
        return import_in_background(ctx, kind, content_type, bytes, &query, args.no_wait).await;
    }
    let result = ctx.check(
        ctx.authed()?
            .import_file(kind, &query, content_type, bytes)
            .await,
    )?;
    ctx.print(&result, import_report);
    Ok(())
}

/// Queues a file import, then (unless `no_wait`) follows the job until it
/// ends, with its progress on standard error.
async fn import_in_background(
    ctx: &Context,
    kind: &str,
    content_type: &str,
    bytes: Vec<u8>,
    query: &[(String, String)],
    no_wait: bool,
) -> Result<(), CliError> {
    let client = ctx.authed()?;
    let queued = ctx.check(
        client
            .import_file_in_background(kind, query, content_type, bytes)
            .await,
    )?;
    if no_wait {
        ctx.print(&queued, |job| {
            format!("Queued {} transactions: {}", job.total, job.status_url)
        });
        return Ok(());
    }
    let status_url = queued.value.status_url.clone();
    let mut last_done = None;
    let job = loop {
        let answer = ctx.check(client.import_job(&status_url).await)?;
        if answer.value.status.is_finished() {
            break answer;
        }
        if answer.value.status == ImportJobStatus::Running && last_done != Some(answer.value.done) {
            last_done = Some(answer.value.done);
            eprintln!("written {} of {}", answer.value.done, answer.value.total);
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    };
    ctx.print(&job, job_report);
    match (&job.value.status, &job.value.error) {
        (ImportJobStatus::Failed, error) => Err(CliError::Refused(format!(
            "the import failed: {}",
            error.as_deref().unwrap_or("no reason given")
        ))),
        _ => Ok(()),
    }
}

/// What a background import did, for people.
async fn authenticate(ctx: &Context, args: AuthArgs, register: bool) -> Result<(), CliError> {
    let email = match args.email {
        Some(e) => e,
        None if args.password_stdin => {
            return Err(CliError::Usage("--password-stdin needs --email".into()));
        }
        None => prompt_line("Email: ")?,
    };
    let email = validate::email(&email)
        .map_err(|e| CliError::Usage(format!("email {e}")))?
        .into_string();
    let password = if args.password_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| CliError::Usage(e.to_string()))?;
        line.trim_end_matches(['\n', '\r']).to_owned()
    } else {
        rpassword::prompt_password("Password: ").map_err(|e| {
            CliError::Usage(format!(
                "cannot read the password ({e}); use --password-stdin"
            ))
        })?
    };
    if register {
        validate::password(&password).map_err(|e| CliError::Usage(format!("password {e}")))?;
    }
    let server = ctx.server();
    let client = Client::new(&server, None);
    let credentials = Credentials { email, password };
    let answer = if register {
        client.register(&credentials).await
    } else {
        client.login(&credentials).await
    }?;
    let session = Session::from_auth(&server, &answer.value);
    ctx.store
        .save(&session)
        .map_err(|e| CliError::Refused(e.to_string()))?;
    let verb = if register {
        "Registered and logged in"
    } else {
        "Logged in"
    };
    ctx.print(&answer, |a| format!("{verb} as {}", a.user.email));
    Ok(())
}

fn prompt_line(prompt: &str) -> Result<String, CliError> {
    eprint!("{prompt}");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| CliError::Usage(e.to_string()))?;
    Ok(line.trim().to_owned())
}

/// Left-aligned columns, the last one right-aligned (amounts).
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_the_contract() {
        assert_eq!(CliError::Refused(String::new()).exit_code(), 1);
        assert_eq!(CliError::Usage(String::new()).exit_code(), 2);
        assert_eq!(CliError::Unreachable(String::new()).exit_code(), 3);
    }
}
