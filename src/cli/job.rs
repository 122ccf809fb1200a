//! `gnomon job list|get|put|delete|run|pause|resume|runs`.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{json, Value};

use super::client::Server;

/// Arguments of `gnomon job`.
#[derive(Debug, Args)]
pub struct JobArgs {
    #[command(flatten)]
    server: Server,
    #[command(subcommand)]
    command: JobCommand,
}

#[derive(Debug, Subcommand)]
enum JobCommand {
    /// List every job with its next fire times.
    List,
    /// Show one job.
    Get {
        /// The job's name.
        name: String,
    },
    /// Create or replace a job from a JSON body (SPEC §4).
    Put {
        /// The job's name.
        name: String,
        /// File holding the job body; `-` (the default) reads stdin.
        #[arg(long, short, default_value = "-")]
        file: PathBuf,
    },
    /// Delete a job and its history.
    Delete {
        /// The job's name.
        name: String,
    },
    /// Run a job now, outside its schedule.
    Run {
        /// The job's name.
        name: String,
    },
    /// Pause a job: its slots are not fired until it is resumed.
    Pause {
        /// The job's name.
        name: String,
    },
    /// Resume a paused job from now on.
    Resume {
        /// The job's name.
        name: String,
    },
    /// Show a job's latest runs, newest first.
    Runs {
        /// The job's name.
        name: String,
        /// How many runs.
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
}

fn read_body(file: &PathBuf) -> anyhow::Result<Value> {
    let mut text = String::new();
    if file.as_os_str() == "-" {
        std::io::stdin()
            .read_to_string(&mut text)
            .context("cannot read the job body from stdin")?;
    } else {
        text = std::fs::read_to_string(file)
            .with_context(|| format!("cannot read {}", file.display()))?;
    }
    serde_json::from_str(&text).context("the job body is not JSON (see SPEC §4 for its fields)")
}

/// Run `gnomon job`.
pub fn run(args: JobArgs) -> ExitCode {
    let s = args.server;
    let path = |name: &str, rest: &str| format!("/v1/jobs/{name}{rest}");
    match args.command {
        JobCommand::List => s.call(Method::GET, "/v1/jobs", None),
        JobCommand::Get { name } => s.call(Method::GET, &path(&name, ""), None),
        JobCommand::Put { name, file } => match read_body(&file) {
            Ok(body) => s.call(Method::PUT, &path(&name, ""), Some(body)),
            Err(e) => super::report(&e),
        },
        JobCommand::Delete { name } => s.call(Method::DELETE, &path(&name, ""), None),
        JobCommand::Run { name } => s.call(Method::POST, &path(&name, "/trigger"), Some(json!({}))),
        JobCommand::Pause { name } => s.call(Method::POST, &path(&name, "/pause"), Some(json!({}))),
        JobCommand::Resume { name } => {
            s.call(Method::POST, &path(&name, "/resume"), Some(json!({})))
        }
        JobCommand::Runs { name, limit } => s.call(
            Method::GET,
            &path(&name, &format!("/runs?limit={limit}")),
            None,
        ),
    }
}
