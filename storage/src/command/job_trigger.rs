//! `JobTrigger`: a manual run, outside the schedule.

use serde::{Deserialize, Serialize};

use super::ApplyCtx;
use crate::attempts;
use crate::error::Result;
use crate::jobs;
use crate::limits::{check_name, check_token, InvalidInput};
use crate::runs::{RunOutcome, RunRecord, RunState, RunTables};
use crate::tables::JOBS;

/// Run job `job` now, as run `run_id` (chosen by the proposer). It does
/// not move the cursor, runs even while the job is paused, and is not held
/// back by the overlap policy: the operator asked for it. Triggering with
/// an id that exists reports that run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobTrigger {
    /// The job.
    pub job: String,
    /// The new run's id.
    pub run_id: String,
}

impl JobTrigger {
    pub(crate) fn validate(&self) -> Result<(), InvalidInput> {
        check_name("job", &self.job)?;
        check_token("run_id", &self.run_id)
    }

    pub(crate) fn apply(&self, ctx: &mut ApplyCtx<'_>) -> Result<RunOutcome> {
        let now = ctx.now_ms();
        let txn = ctx.txn;
        {
            let mut jobs_table = txn.open_table(JOBS)?;
            let Some(mut job) = jobs::get(&jobs_table, &self.job)? else {
                return Ok(RunOutcome::JobNotFound);
            };
            let mut runs = RunTables::open(txn)?;
            if let Some(existing) = runs.get(&self.run_id)? {
                return Ok(RunOutcome::Recorded {
                    run_id: existing.id,
                    state: existing.state,
                });
            }
            let run = RunRecord {
                id: self.run_id.clone(),
                job: self.job.clone(),
                job_version: job.version,
                seq: 0,
                scheduled_for_ms: now,
                fired_at_ms: now,
                manual: true,
                state: RunState::Pending,
                reason: None,
                slots: 1,
                last_slot_ms: now,
                attempts: Vec::new(),
                next_attempt_at_ms: None,
                finished_at_ms: None,
            };
            runs.record_new(&self.job, &mut job, run)?;
            jobs::put(&mut jobs_table, &self.job, &job)?;
        }
        attempts::schedule(ctx, &self.run_id, now)?;
        Ok(RunOutcome::Recorded {
            run_id: self.run_id.clone(),
            state: RunState::Pending,
        })
    }
}
