//! `JobDelete`: remove a job, its history and its waiting attempts.

use serde::{Deserialize, Serialize};

use super::ApplyCtx;
use crate::attempts;
use crate::error::Result;
use crate::jobs::{self, JobOutcome};
use crate::limits::{check_name, InvalidInput};
use crate::runs::RunTables;
use crate::tables::JOBS;

/// Delete the job `name`: its unfinished runs are cancelled (their
/// attempts leave the queue, and a worker running one finds its run gone
/// and stops), and its history is removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobDelete {
    /// The job.
    pub name: String,
}

impl JobDelete {
    pub(crate) fn validate(&self) -> Result<(), InvalidInput> {
        check_name("name", &self.name)
    }

    pub(crate) fn apply(&self, ctx: &mut ApplyCtx<'_>) -> Result<JobOutcome> {
        let txn = ctx.txn;
        let unfinished = {
            let mut table = txn.open_table(JOBS)?;
            let Some(job) = jobs::get(&table, &self.name)? else {
                return Ok(JobOutcome::NotFound);
            };
            table.remove(self.name.as_bytes())?;
            jobs::forget(txn, ctx.vars, &job)?;
            RunTables::open(txn)?.delete_job_runs(&self.name)?
        };
        for run in &unfinished {
            attempts::drop_message(ctx, &run.id)?;
        }
        Ok(JobOutcome::Deleted {
            cancelled: u32::try_from(unfinished.len()).unwrap_or(u32::MAX),
        })
    }
}
