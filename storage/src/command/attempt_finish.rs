//! `AttemptFinish`: a worker reports how an attempt ended.

use serde::{Deserialize, Serialize};

use super::ApplyCtx;
use crate::attempts;
use crate::error::Result;
use crate::jobs;
use crate::limits::{check_token, InvalidInput};
use crate::runs::{AttemptResult, RunOutcome, RunState, RunTables};
use crate::tables::JOBS;

/// Most bytes of output kept per attempt (SPEC §7), plus room for the
/// marker that says it was cut.
pub const MAX_OUTPUT_BYTES: usize = 64 * 1024 + 256;

/// Most bytes of an attempt's error message.
pub const MAX_ERROR_BYTES: usize = 4 * 1024;

/// Record the end of attempt `attempt` of run `run_id`, run under
/// `lease_token`, and move the run on: `succeeded`; `retrying` after the
/// job's backoff for this attempt; or `dead` after the last attempt. An
/// attempt handed back at shutdown runs again at once and does not count.
/// A report for an attempt that has ended already changes nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptFinish {
    /// The run.
    pub run_id: String,
    /// The attempt, from 1.
    pub attempt: u32,
    /// The lease the attempt ran under.
    pub lease_token: String,
    /// How it ended.
    pub result: AttemptResult,
    /// HTTP status, exit code, or minus the signal.
    pub status: Option<i64>,
    /// What the target answered or printed.
    pub output: String,
    /// Why it could not run or complete, if so.
    pub error: Option<String>,
}

enum Next {
    Nothing,
    Retry(u64),
    Done,
}

impl AttemptFinish {
    pub(crate) fn validate(&self) -> Result<(), InvalidInput> {
        check_token("run_id", &self.run_id)?;
        check_token("lease_token", &self.lease_token)?;
        if self.result == AttemptResult::Lost {
            return Err(InvalidInput::new(
                "result",
                "a worker cannot report its own attempt lost",
            ));
        }
        if self.output.len() > MAX_OUTPUT_BYTES {
            return Err(InvalidInput::new(
                "output",
                format!("at most {MAX_OUTPUT_BYTES} bytes"),
            ));
        }
        if self
            .error
            .as_ref()
            .is_some_and(|e| e.len() > MAX_ERROR_BYTES)
        {
            return Err(InvalidInput::new(
                "error",
                format!("at most {MAX_ERROR_BYTES} bytes"),
            ));
        }
        Ok(())
    }

    pub(crate) fn apply(&self, ctx: &mut ApplyCtx<'_>) -> Result<RunOutcome> {
        let now = ctx.now_ms();
        let txn = ctx.txn;
        let (state, next, job_name) = {
            let mut jobs_table = txn.open_table(JOBS)?;
            let mut runs = RunTables::open(txn)?;
            let Some(mut run) = runs.get(&self.run_id)? else {
                return Ok(RunOutcome::RunNotFound);
            };
            let latest = run.attempts.len() == self.attempt as usize;
            let index = (self.attempt as usize).wrapping_sub(1);
            let Some(attempt) = run
                .attempts
                .get_mut(index)
                .filter(|a| a.lease_token == self.lease_token)
            else {
                return Ok(RunOutcome::AttemptNotFound);
            };
            if attempt.result.is_some() {
                return Ok(RunOutcome::Recorded {
                    run_id: run.id,
                    state: run.state,
                });
            }
            attempt.result = Some(self.result);
            attempt.status = self.status;
            attempt.output = self.output.clone();
            attempt.error = self.error.clone();
            attempt.finished_at_ms = Some(now);

            let was = run.state;
            let mut next = Next::Nothing;
            if latest && !run.state.is_final() {
                let mut job = jobs::get(&jobs_table, &run.job)?;
                let max_attempts = job.as_ref().map_or(1, |j| j.max_attempts());
                match self.result {
                    AttemptResult::Succeeded => {
                        run.state = RunState::Succeeded;
                        next = Next::Done;
                    }
                    AttemptResult::HandedBack => {
                        run.state = RunState::Pending;
                        next = Next::Retry(now);
                    }
                    _ if run.counted_attempts() < max_attempts => {
                        let tier = (run.counted_attempts() as usize).saturating_sub(1);
                        let delay = job
                            .as_ref()
                            .and_then(|j| j.backoff_ms.get(tier))
                            .copied()
                            .unwrap_or(0);
                        run.state = RunState::Retrying;
                        run.next_attempt_at_ms = Some(now.saturating_add(delay));
                        next = Next::Retry(now.saturating_add(delay));
                    }
                    _ => {
                        run.state = RunState::Dead;
                        run.reason = Some(format!("all {max_attempts} attempts failed"));
                        next = Next::Done;
                    }
                }
                if run.state.is_final() {
                    run.finished_at_ms = Some(now);
                    if let Some(job) = job.as_mut() {
                        job.unfinished.retain(|id| *id != run.id);
                        jobs::put(&mut jobs_table, &run.job, job)?;
                    }
                }
            }
            runs.update(was, &run)?;
            (run.state, next, run.job)
        };
        match next {
            Next::Nothing => {}
            Next::Retry(due_at_ms) => attempts::schedule(ctx, &self.run_id, due_at_ms)?,
            Next::Done => {
                attempts::drop_message(ctx, &self.run_id)?;
                attempts::start_queued(ctx, &job_name)?;
            }
        }
        Ok(RunOutcome::Recorded {
            run_id: self.run_id.clone(),
            state,
        })
    }
}
