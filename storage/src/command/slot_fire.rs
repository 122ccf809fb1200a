//! `SlotFire`: the scheduler's decision about one slot (or a run of missed
//! slots) of a job: fire it, or record it as missed.

use serde::{Deserialize, Serialize};

use super::ApplyCtx;
use crate::attempts;
use crate::error::Result;
use crate::jobs::{self, Concurrency};
use crate::limits::{check_name, check_token, InvalidInput};
use crate::runs::{AttemptResult, RunOutcome, RunRecord, RunState, RunTables};
use crate::tables::JOBS;

/// What to do with the slot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SlotDecision {
    /// Fire it (subject to the job's overlap policy). `after` names the run
    /// of an earlier slot decided in the same batch (a catch-up): under
    /// `forbid` this run then waits for that one instead of being skipped,
    /// so slots that fire late run one after another.
    Run {
        /// The run of the previous slot decided together with this one.
        after: Option<String>,
    },
    /// Record it as missed.
    Miss {
        /// Why, for the run record.
        reason: String,
    },
    /// Record `count` slots from `slot_ms` to `last_ms` as missed, in one record.
    MissRange {
        /// The last slot of the range.
        last_ms: u64,
        /// How many slots the range holds.
        count: u64,
        /// Why, for the run record.
        reason: String,
    },
}

/// Handle `slot_ms` of job `job` as `decision`, making run `run_id`.
///
/// The slot must lie after the job's cursor, which then moves to it: a slot
/// at or before the cursor is refused, so no slot is ever handled twice,
/// whoever proposes it. A proposer that looked at an older version of the
/// job is refused too, and decides again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotFire {
    /// The job.
    pub job: String,
    /// The job's version the decision was made for.
    pub version: u64,
    /// The slot (the first of a missed range), Unix ms.
    pub slot_ms: u64,
    /// The run's id, derived from job and slot by the proposer.
    pub run_id: String,
    /// What to do.
    pub decision: SlotDecision,
}

impl SlotFire {
    pub(crate) fn validate(&self) -> Result<(), InvalidInput> {
        check_name("job", &self.job)?;
        check_token("run_id", &self.run_id)?;
        if let SlotDecision::MissRange { last_ms, count, .. } = &self.decision {
            if *last_ms < self.slot_ms || *count == 0 {
                return Err(InvalidInput::new(
                    "decision",
                    "a missed range must hold at least one slot, in order",
                ));
            }
        }
        Ok(())
    }

    pub(crate) fn apply(&self, ctx: &mut ApplyCtx<'_>) -> Result<RunOutcome> {
        let now = ctx.now_ms();
        let txn = ctx.txn;
        let (run_id, state, cancelled, queued) = {
            let mut jobs_table = txn.open_table(JOBS)?;
            let Some(mut job) = jobs::get(&jobs_table, &self.job)? else {
                return Ok(RunOutcome::JobNotFound);
            };
            if job.version != self.version {
                return Ok(RunOutcome::Stale {
                    version: job.version,
                });
            }
            if !job.enabled {
                return Ok(RunOutcome::Disabled);
            }
            let mut runs = RunTables::open(txn)?;
            if self.slot_ms <= job.cursor_ms || runs.get(&self.run_id)?.is_some() {
                return Ok(RunOutcome::AlreadyHandled {
                    cursor_ms: job.cursor_ms,
                });
            }
            let mut cancelled = Vec::new();
            let mut queued = false;
            let (state, reason, slots, last) = match &self.decision {
                SlotDecision::Run { after } => match (job.concurrency, job.unfinished.first()) {
                    (Concurrency::Forbid, Some(_))
                        if after.as_ref().is_some_and(|a| job.unfinished.contains(a)) =>
                    {
                        queued = true;
                        let reason = format!(
                            "queued behind run {}: slots that fire late run one at a time",
                            after.as_deref().unwrap_or("")
                        );
                        (RunState::Pending, Some(reason), 1, self.slot_ms)
                    }
                    (Concurrency::Forbid, Some(earlier)) => (
                        RunState::Skipped,
                        Some(format!("overlap: run {earlier} is unfinished")),
                        1,
                        self.slot_ms,
                    ),
                    (Concurrency::Replace, Some(_)) => {
                        for id in std::mem::take(&mut job.unfinished) {
                            let Some(mut old) = runs.get(&id)? else {
                                continue;
                            };
                            let was = old.state;
                            old.state = RunState::Cancelled;
                            old.reason = Some(format!("replaced by run {}", self.run_id));
                            old.finished_at_ms = Some(now);
                            old.next_attempt_at_ms = None;
                            if let Some(a) = old.attempts.last_mut().filter(|a| a.result.is_none())
                            {
                                a.result = Some(AttemptResult::Cancelled);
                                a.finished_at_ms = Some(now);
                            }
                            runs.update(was, &old)?;
                            cancelled.push(id);
                        }
                        (RunState::Pending, None, 1, self.slot_ms)
                    }
                    _ => (RunState::Pending, None, 1, self.slot_ms),
                },
                SlotDecision::Miss { reason } => {
                    (RunState::Missed, Some(reason.clone()), 1, self.slot_ms)
                }
                SlotDecision::MissRange {
                    last_ms,
                    count,
                    reason,
                } => (
                    RunState::Missed,
                    Some(format!("{reason} ({count} slots up to {last_ms})")),
                    *count,
                    *last_ms,
                ),
            };
            let run = RunRecord {
                id: self.run_id.clone(),
                job: self.job.clone(),
                job_version: job.version,
                seq: 0,
                scheduled_for_ms: self.slot_ms,
                fired_at_ms: now,
                manual: false,
                state,
                reason,
                slots,
                last_slot_ms: last,
                attempts: Vec::new(),
                next_attempt_at_ms: None,
                finished_at_ms: state.is_final().then_some(now),
            };
            runs.record_new(&self.job, &mut job, run)?;
            job.cursor_ms = last;
            jobs::put(&mut jobs_table, &self.job, &job)?;
            (self.run_id.clone(), state, cancelled, queued)
        };
        for id in &cancelled {
            attempts::drop_message(ctx, id)?;
        }
        // A queued run gets its attempt when the run before it finishes.
        if state == RunState::Pending && !queued {
            // Older slots first: an overdue slot sorts before later ones.
            attempts::schedule(ctx, &run_id, self.slot_ms.min(now))?;
        }
        Ok(RunOutcome::Recorded { run_id, state })
    }
}
