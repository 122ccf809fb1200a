//! The command line: `gnomon serve`, `gnomon cron …` and the client subcommands.

pub mod cron;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// gnomon: a distributed cron scheduler in one binary.
#[derive(Debug, Parser)]
#[command(name = "gnomon", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Evaluate and explain cron expressions offline.
    Cron(cron::CronArgs),
}

/// Parse the command line, run the chosen subcommand and return its exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Cron(args) => cron::run(args),
    }
}
