//! `finance`: the terminal dashboard (no subcommand) and the scripting CLI.

use std::process::ExitCode;

use clap::Parser;
use finance_tui::cli;

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
