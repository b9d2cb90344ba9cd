use clap::Parser;
use finance_server::config::Cli;
use finance_server::{AppState, serve, shutdown_signal, telemetry};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let _telemetry = telemetry::init();
    let bind = cli.bind;
    let settings = cli.resolve()?;
    let state = AppState::from_settings(&settings).await?;
    let listener = tokio::net::TcpListener::bind(bind)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {bind}: {e}"))?;
    tracing::info!("listening on http://{}", listener.local_addr()?);
    serve(state, listener, shutdown_signal()).await?;
    Ok(())
}
