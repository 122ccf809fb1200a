//! The executor: runs one attempt of a job's [`Target`] and reports what
//! happened as an [`AttemptReport`]. It knows nothing of leases, retries or
//! run history; the scheduler decides when to call [`execute`] and what to do
//! with the report.
//!
//! * **HTTP targets** send `method` (default `POST`) to `url` with the job's
//!   headers, then the SPEC §5 headers, which replace any job header of the
//!   same name: `Idempotency-Key` (the run id), `Gnomon-Run-Id`,
//!   `Gnomon-Job`, `Gnomon-Scheduled-For` (RFC 3339 UTC), `Gnomon-Attempt`
//!   (from 1) and `Gnomon-Fencing-Token`. A 2xx is success. The timeout
//!   (default 10 s) covers connecting, the response and reading its body.
//! * **Shell targets** run `/bin/sh -c COMMAND` in a new process group, with
//!   stdin from `/dev/null`, stdout and stderr joined in one pipe, and the
//!   node's environment without its own `GNOMON_*` variables (such as
//!   `GNOMON_TOKEN`) but with `GNOMON_RUN_ID`, `GNOMON_JOB`,
//!   `GNOMON_SCHEDULED_FOR`, `GNOMON_ATTEMPT` and `GNOMON_FENCING_TOKEN`. Exit
//!   status 0 is success. On timeout (default 60 s) or cancellation the whole
//!   group gets `SIGTERM`, then `SIGKILL` after [`KILL_GRACE`]. When the
//!   shell exits by itself, whatever it left running in its group is ended
//!   the same way, so an attempt never leaves processes behind. A process
//!   that moves itself to another group or session (`setsid`) escapes this.
//! * **Output** is the response body, or stdout and stderr interleaved, as
//!   UTF-8 with invalid bytes replaced, cut to [`OUTPUT_LIMIT`] bytes with a
//!   line starting with [`TRUNCATION_MARKER`] at the end when anything was
//!   dropped. A shell's excess output is read and discarded, so a chatty
//!   command never blocks on a full pipe.
//!
//! [`execute`] does not validate: callers check targets with
//! [`Target::validate`] when a job is accepted, which is also where
//! `--allow-shell` is enforced.

mod http;
mod output;
mod shell;
mod target;

pub use output::{OUTPUT_LIMIT, TRUNCATION_MARKER};
pub use shell::KILL_GRACE;
pub use target::{
    Target, TargetError, DEFAULT_HTTP_METHOD, DEFAULT_HTTP_TIMEOUT_MS, DEFAULT_SHELL_TIMEOUT_MS,
    HTTP_METHODS, MAX_BODY_BYTES, MAX_COMMAND_BYTES, MAX_TIMEOUT_MS,
};

use chrono::{DateTime, SecondsFormat};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

/// What identifies an attempt to its target (SPEC §5). Everything but
/// `attempt` and `fencing_token` is the same on every attempt of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptContext {
    /// The run's id, also sent as the idempotency key.
    pub run_id: String,
    /// The job's name.
    pub job: String,
    /// The slot the run is for, in Unix milliseconds.
    pub scheduled_for_ms: u64,
    /// The attempt number, from 1.
    pub attempt: u32,
    /// The fencing token of this attempt's lease, strictly increasing per job,
    /// so a target can refuse a stale worker.
    pub fencing_token: u64,
}

impl AttemptContext {
    /// The slot as RFC 3339 in UTC, with fractional seconds only when the
    /// slot has them: `2026-03-29T01:00:00Z`.
    pub fn scheduled_for(&self) -> String {
        i64::try_from(self.scheduled_for_ms)
            .ok()
            .and_then(DateTime::from_timestamp_millis)
            .map(|t| t.to_rfc3339_opts(SecondsFormat::AutoSi, true))
            // Past the year 262143; no cron expression fires there.
            .unwrap_or_else(|| format!("@{}ms", self.scheduled_for_ms))
    }
}

/// How an attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttemptOutcome {
    /// A 2xx response, or exit status 0.
    Succeeded,
    /// Any other status or exit, or the target could not be reached or run.
    Failed,
    /// The target's timeout passed first; the work was stopped.
    TimedOut,
    /// The caller cancelled the attempt; the work was stopped.
    Cancelled,
}

/// What happened in one attempt, ready for the run history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptReport {
    /// How it ended.
    pub outcome: AttemptOutcome,
    /// The HTTP status; or the shell's exit code, or minus the signal that
    /// ended it. `None` when there was no response or process.
    pub status: Option<i64>,
    /// The response body or the command's output, at most [`OUTPUT_LIMIT`]
    /// bytes.
    pub output: String,
    /// Why it failed when `status` does not say: `connection refused`, a
    /// spawn failure, a timeout, a cancellation.
    pub error: Option<String>,
}

impl AttemptReport {
    fn new(outcome: AttemptOutcome, status: Option<i64>, output: String) -> Self {
        Self {
            outcome,
            status,
            output,
            error: None,
        }
    }

    fn failed(error: impl Into<String>) -> Self {
        Self::new(AttemptOutcome::Failed, None, String::new()).with_error(error)
    }

    fn with_error(mut self, error: impl Into<String>) -> Self {
        self.error = Some(error.into());
        self
    }
}

/// Runs one attempt and reports it. Returns when the target finished, when
/// its timeout passed, or soon after `cancel` fired; in the last two cases
/// the work is stopped first (the HTTP request aborted, the shell's process
/// group killed and reaped). Dropping the future also stops the work, with
/// `SIGKILL` for a shell. `client` is shared by all HTTP attempts; see
/// [`http_client`].
#[tracing::instrument(skip_all, fields(
    job_id = %ctx.job,
    run_id = %ctx.run_id,
    attempt = ctx.attempt,
    target = target.kind(),
))]
pub async fn execute(
    client: &reqwest::Client,
    target: &Target,
    ctx: &AttemptContext,
    cancel: CancellationToken,
) -> AttemptReport {
    let report = if cancel.is_cancelled() {
        AttemptReport::new(AttemptOutcome::Cancelled, None, String::new())
            .with_error("cancelled before it started")
    } else {
        match target {
            Target::Http {
                url,
                method,
                headers,
                body,
                ..
            } => {
                let request = http::Request {
                    url,
                    method,
                    headers,
                    body: body.as_deref(),
                };
                http::run(client, request, target.timeout(), ctx, &cancel).await
            }
            Target::Shell { command, .. } => {
                shell::run(command, target.timeout(), ctx, &cancel).await
            }
        }
    };
    tracing::debug!(
        outcome = ?report.outcome,
        status = ?report.status,
        error = report.error.as_deref(),
        "attempt finished"
    );
    report
}

/// An HTTP client suited to [`execute`]: it names itself `gnomon/VERSION`,
/// has no overall timeout (each target brings its own) and follows no
/// redirect: a 3xx is a failure with its status, because following one
/// would silently turn a POST into a GET to another address.
pub fn http_client() -> reqwest::Result<reqwest::Client> {
    gnomon_raft::http_client::builder()
        .user_agent(concat!("gnomon/", env!("CARGO_PKG_VERSION")))
        .redirect(reqwest::redirect::Policy::none())
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(scheduled_for_ms: u64) -> AttemptContext {
        AttemptContext {
            run_id: "r".to_owned(),
            job: "j".to_owned(),
            scheduled_for_ms,
            attempt: 1,
            fencing_token: 1,
        }
    }

    #[test]
    fn scheduled_for_is_rfc3339_utc() {
        assert_eq!(
            ctx(1_774_746_000_000).scheduled_for(),
            "2026-03-29T01:00:00Z"
        );
        assert_eq!(ctx(1_500).scheduled_for(), "1970-01-01T00:00:01.500Z");
        assert_eq!(ctx(u64::MAX).scheduled_for(), format!("@{}ms", u64::MAX));
    }

    #[test]
    fn outcomes_serialise_in_snake_case() {
        assert_eq!(
            serde_json::to_value(AttemptOutcome::TimedOut).unwrap(),
            "timed_out"
        );
    }

    #[tokio::test]
    async fn an_attempt_cancelled_before_it_starts_does_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("ran");
        let target = Target::Shell {
            command: format!("touch '{}'", marker.display()),
            timeout_ms: 10_000,
        };
        let cancel = CancellationToken::new();
        cancel.cancel();
        let client = http_client().unwrap();
        let report = execute(&client, &target, &ctx(0), cancel).await;
        assert_eq!(report.outcome, AttemptOutcome::Cancelled);
        assert!(!marker.exists());
    }
}
