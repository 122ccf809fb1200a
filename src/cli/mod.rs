//! The command line: `gnomon serve`, `gnomon cron …` and the client subcommands.

pub mod client;
pub mod cluster;
pub mod cron;
pub mod job;
pub mod serve;

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
    /// Run a node.
    Serve(serve::ServeArgs),
    /// Evaluate and explain cron expressions offline.
    Cron(cron::CronArgs),
    /// Inspect and change the cluster's membership.
    Cluster(cluster::ClusterArgs),
    /// Define, inspect and run jobs.
    Job(job::JobArgs),
}

/// Parse the command line, run the chosen subcommand and return its exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::Cron(args) => cron::run(args),
        Command::Cluster(args) => cluster::run(args),
        Command::Job(args) => job::run(args),
    }
}

/// Log to stderr, filtered by `RUST_LOG` (default: gnomon at info, openraft quieter).
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,openraft=warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

/// Print an error with its whole chain of causes; exit code 1.
fn report(error: &anyhow::Error) -> ExitCode {
    eprintln!("error: {error:#}");
    ExitCode::FAILURE
}
