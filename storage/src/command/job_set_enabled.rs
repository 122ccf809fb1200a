//! `JobSetEnabled`: pause or resume a job.

use serde::{Deserialize, Serialize};

use super::ApplyCtx;
use crate::error::Result;
use crate::jobs::{self, JobOutcome};
use crate::limits::{check_name, InvalidInput};
use crate::tables::JOBS;

/// Pause (`enabled: false`) or resume a job. A paused job's slots are not
/// fired or recorded; resuming starts from the moment it is applied, so the
/// slots that passed while paused do not fire late. Asking for the state
/// the job is already in changes nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobSetEnabled {
    /// The job.
    pub name: String,
    /// True to resume, false to pause.
    pub enabled: bool,
}

impl JobSetEnabled {
    pub(crate) fn validate(&self) -> Result<(), InvalidInput> {
        check_name("name", &self.name)
    }

    pub(crate) fn apply(&self, ctx: &mut ApplyCtx<'_>) -> Result<JobOutcome> {
        let now = ctx.now_ms();
        let mut table = ctx.txn.open_table(JOBS)?;
        let Some(mut job) = jobs::get(&table, &self.name)? else {
            return Ok(JobOutcome::NotFound);
        };
        if job.enabled != self.enabled {
            if self.enabled {
                job.cursor_ms = job.cursor_ms.max(now);
            }
            job.enabled = self.enabled;
            job.version += 1;
            job.updated_at_ms = now;
            jobs::touch(ctx.txn, ctx.vars, &self.name, &mut job)?;
            jobs::put(&mut table, &self.name, &job)?;
        }
        Ok(JobOutcome::Saved {
            version: job.version,
            created: false,
        })
    }
}
