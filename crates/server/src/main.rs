use clap::Parser;
use finance_server::config::{Cli, Command};
use finance_server::{AppState, seed, serve, shutdown_signal, telemetry};

/// glibc's malloc keeps what its threads free in per-thread arenas, so a
/// burst of logins (19 MiB for each password hash) or of imports stays
/// resident long after. jemalloc's background threads give freed pages back
/// to the system within about a second (see `.cargo/config.toml`).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut cli = Cli::parse();
    let _telemetry = telemetry::init();
    let command = cli.command.take().unwrap_or(Command::Serve);
    let bind = cli.bind;
    let settings = cli.resolve()?;
    let state = AppState::from_settings(&settings).await?;
    match command {
        Command::Serve => {
            let listener = tokio::net::TcpListener::bind(bind)
                .await
                .map_err(|e| anyhow::anyhow!("cannot listen on {bind}: {e}"))?;
            tracing::info!("listening on http://{}", listener.local_addr()?);
            serve(state, listener, shutdown_signal()).await?;
        }
        Command::Seed { users, expenses } => {
            let started = std::time::Instant::now();
            for email in seed::seed(&state, users, expenses).await? {
                println!("{email}");
            }
            tracing::info!(
                users,
                expenses,
                seconds = started.elapsed().as_secs_f64(),
                password = seed::PASSWORD,
                "seeded"
            );
        }
    }
    Ok(())
}
