//! The internal queue of attempts, `gnomon:attempts`, and what the
//! scheduler's commands do with it.
//!
//! A run that is waiting for an attempt has exactly one message in the
//! queue, whose id is the run id: due now for a new run, due after the
//! backoff for a retry. Workers lease it with an `AttemptStart` and renew
//! the lease with `QueueExtend` heartbeats; a worker that dies loses the
//! lease and the message comes round again. The run's own record, not the
//! queue, counts attempts, so the message is given more deliveries than any
//! run can use.

use crate::command::ApplyCtx;
use crate::delay_queue::{self, NewMessage};
use crate::error::Result;
use crate::jobs;
use crate::limits::MAX_ATTEMPTS;
use crate::tables::JOBS;

/// The internal queue attempts wait in.
pub const ATTEMPTS_QUEUE: &str = "gnomon:attempts";

/// Make `run_id`'s next attempt due at `due_at_ms`, replacing whatever
/// message the run had (a lapsed or held lease included).
pub(crate) fn schedule(ctx: &mut ApplyCtx<'_>, run_id: &str, due_at_ms: u64) -> Result<()> {
    delay_queue::remove(ctx, ATTEMPTS_QUEUE, run_id)?;
    delay_queue::enqueue(
        ctx,
        &NewMessage {
            queue: ATTEMPTS_QUEUE,
            id: run_id,
            payload: "null",
            due_at_ms,
            max_attempts: MAX_ATTEMPTS,
            dedup_key: None,
        },
    )?;
    Ok(())
}

/// The run needs no more attempts: drop its message, leased or not.
pub(crate) fn drop_message(ctx: &mut ApplyCtx<'_>, run_id: &str) -> Result<()> {
    delay_queue::remove(ctx, ATTEMPTS_QUEUE, run_id)?;
    Ok(())
}

/// A run of `job_name` has finished: if the job's oldest unfinished run is
/// queued (waiting, without an attempt, behind the one that finished), its
/// attempt is due now.
pub(crate) fn start_queued(ctx: &mut ApplyCtx<'_>, job_name: &str) -> Result<()> {
    let next = {
        let table = ctx.txn.open_table(JOBS)?;
        jobs::get(&table, job_name)?.and_then(|job| job.unfinished.first().cloned())
    };
    let Some(run_id) = next else {
        return Ok(());
    };
    // Every unfinished run has a message except a queued one.
    if delay_queue::message(ctx, ATTEMPTS_QUEUE, &run_id)?.is_none() {
        let now = ctx.now_ms();
        schedule(ctx, &run_id, now)?;
    }
    Ok(())
}
