use clap::Parser;
use finance_server::config::{Cli, Command};
use finance_server::{AppState, jobs, seed, serve, shutdown_signal, telemetry};

/// Longest a stopping server waits for a background import under way; one
/// cut short is rolled back and run again by the next worker.
const WORKER_GRACE: std::time::Duration = std::time::Duration::from_secs(30);

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
    let command = cli.command.take().unwrap_or(Command::Serve {
        with_worker: true,
        no_worker: false,
    });
    let bind = cli.bind;
    let settings = cli.resolve()?;
    let state = AppState::from_settings(&settings).await?;
    match command {
        Command::Serve { no_worker, .. } => {
            if no_worker && settings.redis.is_none() {
                tracing::warn!(
                    "--no-worker without REDIS_URL: background imports wait until a server with a worker starts"
                );
            }
            let listener = tokio::net::TcpListener::bind(bind)
                .await
                .map_err(|e| anyhow::anyhow!("cannot listen on {bind}: {e}"))?;
            tracing::info!("listening on http://{}", listener.local_addr()?);
            let worker = (!no_worker).then(|| jobs::InProcessWorker::spawn(state.clone()));
            serve(state, listener, shutdown_signal()).await?;
            if let Some(worker) = worker
                && !worker.stop(WORKER_GRACE).await
            {
                tracing::warn!("stopping with an import under way: it will be run again");
            }
        }
        Command::Migrate => {
            tracing::info!(backend = state.store.backend(), "migrations applied");
        }
        Command::Worker => {
            if settings.redis.is_none() {
                anyhow::bail!(
                    "the worker takes jobs from Redis: set REDIS_URL (without Redis, `serve` runs imports itself)"
                );
            }
            jobs::run_worker(state, shutdown_signal()).await;
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
