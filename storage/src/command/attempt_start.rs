//! `AttemptStart`: a node's workers take due attempts.

use redb::ReadableTable;
use serde::{Deserialize, Serialize};

use super::ApplyCtx;
use crate::attempts::{self, ATTEMPTS_QUEUE};
use crate::codec;
use crate::delay_queue::{self, LeaseRequest, MessageState, QueueOutcome};
use crate::error::Result;
use crate::jobs;
use crate::limits::{check_token, check_ttl, InvalidInput};
use crate::runs::{Attempt, AttemptResult, RunOutcome, RunState, RunTables, StartedAttempt};
use crate::tables::{ATTEMPT_STARTS, JOBS};

/// Most attempts one `AttemptStart` takes.
pub const MAX_START_BATCH: u32 = 100;

/// Lease up to `max` due attempts for node `node`'s workers, for
/// `visibility_ms`, and record each as started with a fresh fencing token.
///
/// A run whose previous attempt never reported back (its worker died or was
/// cut off, so its lease lapsed) has that attempt recorded as `lost`; a run
/// that has used all its attempts goes `dead` instead of starting another.
///
/// Retry-safe: when the proposer cannot tell whether the command was applied
/// (the leader changed under it), it sends the same command again, and a
/// node's repeated `lease_token` is answered with the attempts the first
/// application started and that still run under it — rather than starting
/// more while those sit unclaimed until their leases lapse and count as
/// lost attempts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptStart {
    /// The node whose workers will run them.
    pub node: u64,
    /// Most attempts to take.
    pub max: u32,
    /// How long the leases last unless renewed.
    pub visibility_ms: u64,
    /// The base of the lease tokens, random, chosen by the proposer.
    pub lease_token: String,
}

impl AttemptStart {
    pub(crate) fn validate(&self) -> Result<(), InvalidInput> {
        if self.max == 0 || self.max > MAX_START_BATCH {
            return Err(InvalidInput::new(
                "max",
                format!("must be between 1 and {MAX_START_BATCH}, got {}", self.max),
            ));
        }
        check_ttl("visibility_ms", self.visibility_ms)?;
        check_token("lease_token", &self.lease_token)
    }

    pub(crate) fn apply(&self, ctx: &mut ApplyCtx<'_>) -> Result<RunOutcome> {
        if let Some(again) = self.applied_before(ctx)? {
            return Ok(RunOutcome::Started(again));
        }
        let started = self.take_due(ctx)?;
        if !started.is_empty() {
            let record = StartRecord {
                lease_token: self.lease_token.clone(),
                started: started
                    .iter()
                    .map(|a| (a.run_id.clone(), a.attempt))
                    .collect(),
            };
            ctx.txn.open_table(ATTEMPT_STARTS)?.insert(
                self.node.to_be_bytes().as_slice(),
                codec::encode(&record).as_slice(),
            )?;
        }
        Ok(RunOutcome::Started(started))
    }

    /// If this node's last start that took anything was this very command,
    /// the attempts it started that still run under their leases.
    fn applied_before(&self, ctx: &ApplyCtx<'_>) -> Result<Option<Vec<StartedAttempt>>> {
        let starts = ctx.txn.open_table(ATTEMPT_STARTS)?;
        let Some(stored) = starts.get(self.node.to_be_bytes().as_slice())? else {
            return Ok(None);
        };
        let record: StartRecord = codec::decode("attempt start", stored.value())?;
        if record.lease_token != self.lease_token {
            return Ok(None);
        }
        let jobs_table = ctx.txn.open_table(JOBS)?;
        let runs = RunTables::open(ctx.txn)?;
        let mut again = Vec::new();
        for (run_id, n) in record.started {
            let Some(run) = runs.get(&run_id)? else {
                continue;
            };
            let Some(attempt) = run
                .attempts
                .last()
                .filter(|a| a.n == n && a.result.is_none())
            else {
                continue;
            };
            let Some(expires_at_ms) = lease_expiry(ctx, &run_id, &attempt.lease_token)? else {
                continue;
            };
            let Some(job) =
                jobs::get(&jobs_table, &run.job)?.filter(|job| job.version == attempt.job_version)
            else {
                continue;
            };
            again.push(StartedAttempt {
                job_version: job.version,
                definition: job.definition,
                scheduled_for_ms: run.scheduled_for_ms,
                attempt: n,
                fencing_token: attempt.fencing_token,
                lease_token: attempt.lease_token.clone(),
                lease_expires_at_ms: expires_at_ms,
                run_id: run.id,
                job: run.job,
            });
        }
        Ok(Some(again))
    }

    /// Lease due attempts and record each as started.
    fn take_due(&self, ctx: &mut ApplyCtx<'_>) -> Result<Vec<StartedAttempt>> {
        let now = ctx.now_ms();
        let worker = format!("node-{}", self.node);
        let leased = delay_queue::lease(
            ctx,
            &LeaseRequest {
                queue: ATTEMPTS_QUEUE,
                worker: &worker,
                max: self.max as usize,
                max_bytes: u64::MAX,
                visibility_ms: self.visibility_ms,
                token_base: &self.lease_token,
            },
        )?;
        let QueueOutcome::Leased { messages, .. } = leased else {
            return Ok(Vec::new());
        };
        let txn = ctx.txn;
        let mut started = Vec::with_capacity(messages.len());
        let mut finished = Vec::new();
        let mut died_in = Vec::new();
        {
            let mut jobs_table = txn.open_table(JOBS)?;
            let mut runs = RunTables::open(txn)?;
            for message in messages {
                let run = runs.get(&message.id)?;
                let job = match &run {
                    Some(run) => jobs::get(&jobs_table, &run.job)?,
                    None => None,
                };
                let (Some(mut run), Some(mut job)) = (run, job) else {
                    finished.push(message.id);
                    continue;
                };
                if run.state.is_final() {
                    finished.push(message.id);
                    continue;
                }
                let was = run.state;
                if let Some(last) = run.attempts.last_mut().filter(|a| a.result.is_none()) {
                    last.result = Some(AttemptResult::Lost);
                    last.finished_at_ms = Some(now);
                    last.error = Some(
                        "the worker's lease lapsed: it stopped, crashed or was cut off".into(),
                    );
                }
                if run.counted_attempts() >= job.max_attempts() {
                    run.state = RunState::Dead;
                    run.reason = Some(format!("all {} attempts failed", job.max_attempts()));
                    run.finished_at_ms = Some(now);
                    runs.update(was, &run)?;
                    job.unfinished.retain(|id| *id != run.id);
                    jobs::put(&mut jobs_table, &run.job, &job)?;
                    finished.push(message.id);
                    died_in.push(run.job);
                    continue;
                }
                let n = u32::try_from(run.attempts.len()).unwrap_or(u32::MAX - 1) + 1;
                let fencing_token = ctx.vars.next_fence();
                run.attempts.push(Attempt {
                    n,
                    node: self.node,
                    job_version: job.version,
                    fencing_token,
                    lease_token: message.lease_token.clone(),
                    started_at_ms: now,
                    finished_at_ms: None,
                    result: None,
                    status: None,
                    output: String::new(),
                    error: None,
                });
                run.state = RunState::Running;
                run.next_attempt_at_ms = None;
                runs.update(was, &run)?;
                started.push(StartedAttempt {
                    run_id: run.id,
                    job: run.job,
                    job_version: job.version,
                    definition: job.definition,
                    scheduled_for_ms: run.scheduled_for_ms,
                    attempt: n,
                    fencing_token,
                    lease_token: message.lease_token,
                    lease_expires_at_ms: message.expires_at_ms,
                });
            }
        }
        for id in &finished {
            attempts::drop_message(ctx, id)?;
        }
        for job in &died_in {
            attempts::start_queued(ctx, job)?;
        }
        Ok(started)
    }
}

/// What a node's last `AttemptStart` took (table `attempt_starts`).
#[derive(Serialize, Deserialize)]
struct StartRecord {
    lease_token: String,
    /// Run id and attempt number of each attempt it started.
    started: Vec<(String, u32)>,
}

/// When the lease `lease_token` on run `run_id`'s attempt message lapses,
/// if that lease still holds it.
fn lease_expiry(ctx: &ApplyCtx<'_>, run_id: &str, lease_token: &str) -> Result<Option<u64>> {
    let message = delay_queue::message(ctx, ATTEMPTS_QUEUE, run_id)?;
    Ok(match message.map(|m| m.state) {
        Some(MessageState::Leased {
            lease_token: held,
            expires_at_ms,
            ..
        }) if held == lease_token => Some(expires_at_ms),
        _ => None,
    })
}
