//! `JobPut`: create or replace a job.

use serde::{Deserialize, Serialize};

use super::ApplyCtx;
use crate::error::Result;
use crate::jobs::{self, Concurrency, JobOutcome, JobRecord};
use crate::limits::{check_name, InvalidInput, MAX_DELAY_MS, MAX_PAYLOAD_BYTES};
use crate::tables::JOBS;

/// Most retry tiers a job may have.
pub const MAX_RETRY_TIERS: usize = 20;

/// Most runs a job's history may keep.
pub const MAX_HISTORY: u32 = 10_000;

/// Create or replace the job `name`.
///
/// A new job's cursor starts at the moment it is applied: it never fires
/// slots from before it existed. A replaced job keeps its cursor unless its
/// schedule changed or it is being re-enabled; then the cursor moves up to
/// now, so the new schedule (or the resumed job) does not fire slots that
/// passed before the change. Putting an identical job again changes nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobPut {
    /// The job's name (SPEC §7).
    pub name: String,
    /// The job body, as canonical JSON.
    pub definition: String,
    /// Identifies the schedule: expression, zone, dialect and DST policy.
    pub schedule_key: String,
    /// False to create or keep it paused.
    pub enabled: bool,
    /// The overlap policy.
    pub concurrency: Concurrency,
    /// Retry tiers.
    pub backoff_ms: Vec<u64>,
    /// Runs kept in the history.
    pub history_limit: u32,
}

impl JobPut {
    pub(crate) fn validate(&self) -> Result<(), InvalidInput> {
        check_name("name", &self.name)?;
        if self.definition.len() > MAX_PAYLOAD_BYTES {
            return Err(InvalidInput::new(
                "body",
                format!(
                    "the job body is {} bytes; at most {MAX_PAYLOAD_BYTES}",
                    self.definition.len()
                ),
            ));
        }
        if self.backoff_ms.len() > MAX_RETRY_TIERS {
            return Err(InvalidInput::new(
                "retry.backoff_ms",
                format!(
                    "at most {MAX_RETRY_TIERS} tiers, got {}",
                    self.backoff_ms.len()
                ),
            ));
        }
        if let Some(bad) = self.backoff_ms.iter().find(|d| **d > MAX_DELAY_MS) {
            return Err(InvalidInput::new(
                "retry.backoff_ms",
                format!("each delay must be at most {MAX_DELAY_MS} ms, got {bad}"),
            ));
        }
        if self.history_limit == 0 || self.history_limit > MAX_HISTORY {
            return Err(InvalidInput::new(
                "history_limit",
                format!(
                    "must be between 1 and {MAX_HISTORY}, got {}",
                    self.history_limit
                ),
            ));
        }
        Ok(())
    }

    pub(crate) fn apply(&self, ctx: &mut ApplyCtx<'_>) -> Result<JobOutcome> {
        let now = ctx.now_ms();
        let mut table = ctx.txn.open_table(JOBS)?;
        let (mut job, created) = match jobs::get(&table, &self.name)? {
            Some(job)
                if job.definition == self.definition
                    && job.enabled == self.enabled
                    && job.schedule_key == self.schedule_key =>
            {
                return Ok(JobOutcome::Saved {
                    version: job.version,
                    created: false,
                });
            }
            Some(mut job) => {
                if job.schedule_key != self.schedule_key || (!job.enabled && self.enabled) {
                    job.cursor_ms = job.cursor_ms.max(now);
                }
                job.version += 1;
                job.definition = self.definition.clone();
                job.schedule_key = self.schedule_key.clone();
                job.enabled = self.enabled;
                job.concurrency = self.concurrency;
                job.backoff_ms = self.backoff_ms.clone();
                job.history_limit = self.history_limit;
                job.updated_at_ms = now;
                (job, false)
            }
            None => (
                JobRecord {
                    version: 1,
                    definition: self.definition.clone(),
                    schedule_key: self.schedule_key.clone(),
                    enabled: self.enabled,
                    concurrency: self.concurrency,
                    backoff_ms: self.backoff_ms.clone(),
                    history_limit: self.history_limit,
                    cursor_ms: now,
                    created_at_ms: now,
                    updated_at_ms: now,
                    run_seq: 0,
                    history_len: 0,
                    unfinished: Vec::new(),
                    revision: 0,
                },
                true,
            ),
        };
        jobs::touch(ctx.txn, ctx.vars, &self.name, &mut job)?;
        jobs::put(&mut table, &self.name, &job)?;
        Ok(JobOutcome::Saved {
            version: job.version,
            created,
        })
    }
}
