//! `gnomon cron next|explain`: the time engine on the command line (SPEC §3).
//! Both commands work offline. Errors are one line on stderr and exit code 2;
//! the dialect, policy, start and count are parsed here rather than by clap so
//! that a bad value gets that one line too.

use std::process::ExitCode;

use chrono::{DateTime, Utc};
use clap::{Args, Subcommand};

use crate::schedule::validate::{explain, fire_time, MAX_COUNT};
use crate::schedule::{Dialect, DstPolicy, Schedule};

/// Arguments of `gnomon cron`.
#[derive(Debug, Args)]
pub struct CronArgs {
    #[command(subcommand)]
    command: CronCommand,
}

#[derive(Debug, Subcommand)]
enum CronCommand {
    /// Print the next fire instants, one per line, RFC 3339 with the zone's offset.
    Next {
        #[command(flatten)]
        common: Common,
        /// Print this many instants (1–100).
        #[arg(long, default_value = "5")]
        count: String,
    },
    /// Describe a schedule, preview it and warn about surprises.
    Explain {
        #[command(flatten)]
        common: Common,
        /// Preview this many instants (0–100).
        #[arg(long, default_value = "5")]
        count: String,
        /// Print the same JSON as `POST /v1/cron/validate`.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
struct Common {
    /// The cron expression; quote it (`'*/15 9-17 * * MON-FRI'`).
    expr: String,
    /// IANA time zone of the schedule.
    #[arg(long, default_value = "UTC")]
    tz: String,
    /// `cron` (5–7 fields, Sunday 0 or 7) or `quartz` (6–7 fields, Sunday 1).
    #[arg(long, default_value = "cron")]
    dialect: String,
    /// Daylight-saving policy: `once` or `literal`.
    #[arg(long, default_value = "once")]
    dst: String,
    /// Start instant, RFC 3339, exclusive (default: now).
    #[arg(long)]
    from: Option<String>,
}

/// Run `gnomon cron`.
pub fn run(args: CronArgs) -> ExitCode {
    let result = match args.command {
        CronCommand::Next { common, count } => next(&common, &count),
        CronCommand::Explain {
            common,
            count,
            json,
        } => explain_cmd(&common, &count, json),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
    }
}

fn setup(
    common: &Common,
    count: &str,
    min: usize,
) -> Result<(Schedule, DateTime<Utc>, usize), String> {
    let dialect: Dialect = common
        .dialect
        .parse()
        .map_err(|e| format!("--dialect: {e}"))?;
    let dst: DstPolicy = common.dst.parse().map_err(|e| format!("--dst: {e}"))?;
    let from = match &common.from {
        Some(text) => DateTime::parse_from_rfc3339(text)
            .map_err(|e| format!("--from `{text}`: {e}; write it like 2026-03-29T00:00:00+01:00"))?
            .with_timezone(&Utc),
        None => Utc::now(),
    };
    let count = count
        .parse::<usize>()
        .ok()
        .filter(|n| (min..=MAX_COUNT).contains(n))
        .ok_or_else(|| format!("--count `{count}`: expected a number from {min} to {MAX_COUNT}"))?;
    let schedule = Schedule::parse(&common.expr, dialect, &common.tz, dst).map_err(|e| {
        let hint = match e.code() {
            "unknown_timezone" => "; see --tz",
            "unknown_dialect" | "never_fires" | "unknown_dst_policy" => "",
            _ => "; run `gnomon cron explain --help` for the syntax",
        };
        format!("{e}{hint}")
    })?;
    Ok((schedule, from, count))
}

fn next(common: &Common, count: &str) -> Result<(), String> {
    let (schedule, from, count) = setup(common, count, 1)?;
    let times: Vec<_> = schedule.fire_times(from).take(count).collect();
    if times.is_empty() {
        return Err(format!(
            "`{}` has no fire time after {}",
            common.expr,
            from.to_rfc3339()
        ));
    }
    for t in times {
        println!("{}", fire_time(&schedule, t).local);
    }
    Ok(())
}

fn explain_cmd(common: &Common, count: &str, json: bool) -> Result<(), String> {
    let (schedule, from, count) = setup(common, count, 0)?;
    let v = explain(&schedule, from, count);
    if json {
        // Serializing plain strings and vectors cannot fail.
        println!(
            "{}",
            serde_json::to_string_pretty(&v).expect("validation serializes")
        );
        return Ok(());
    }
    println!("expression:  {}", schedule.expression());
    println!("normalized:  {}", v.normalized);
    println!("description: {}", v.description);
    println!(
        "zone:        {} (dialect {}, dst {})",
        schedule.timezone().name(),
        schedule.dialect(),
        schedule.dst()
    );
    if !v.next.is_empty() {
        println!("next:");
        for t in &v.next {
            println!("  {}  ({})", t.local, t.utc);
        }
    }
    for w in &v.warnings {
        println!("warning[{}]: {}", w.code, w.message);
    }
    Ok(())
}
