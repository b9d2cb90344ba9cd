//! `finance`: the terminal dashboard (no subcommand) and the scripting CLI.

mod api;
mod app;
mod cli;
mod dashboard;
mod session;
mod ui;

use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    let args = cli::Cli::parse();
    match cli::run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("finance: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
