//! `gnomon cron next|explain`: the time engine on the command line.

use std::process::ExitCode;

use clap::Args;

/// Arguments of `gnomon cron`.
#[derive(Debug, Args)]
pub struct CronArgs {}

/// Run `gnomon cron`.
pub fn run(_args: CronArgs) -> ExitCode {
    eprintln!("error: gnomon cron is not built yet");
    ExitCode::from(2)
}
