//! Commands: everything that changes replicated state, one file per variant.
//!
//! A [`Batch`] is what one Raft log entry carries: the commands that reached
//! the leader while the previous append was in flight, stamped with the
//! leader's clock. Each command validates itself ([`Command::validate`]) and
//! applies itself against an `ApplyCtx`; [`Command`] only dispatches.

mod attempt_finish;
mod attempt_start;
mod job_delete;
mod job_put;
mod job_set_enabled;
mod job_trigger;
mod ledger_abandon;
mod ledger_claim;
mod ledger_complete;
mod lock_acquire;
mod lock_release;
mod lock_renew;
mod queue_ack;
mod queue_enqueue;
mod queue_extend;
mod queue_lease;
mod queue_nack;
mod slot_fire;
mod tick;

use redb::WriteTransaction;
use serde::{Deserialize, Serialize};

pub use attempt_finish::{AttemptFinish, MAX_ERROR_BYTES, MAX_OUTPUT_BYTES};
pub use attempt_start::{AttemptStart, MAX_START_BATCH};
pub use job_delete::JobDelete;
pub use job_put::{JobPut, MAX_HISTORY, MAX_RETRY_TIERS};
pub use job_set_enabled::JobSetEnabled;
pub use job_trigger::JobTrigger;
pub use ledger_abandon::LedgerAbandon;
pub use ledger_claim::LedgerClaim;
pub use ledger_complete::LedgerComplete;
pub use lock_acquire::LockAcquire;
pub use lock_release::LockRelease;
pub use lock_renew::LockRenew;
pub use queue_ack::QueueAck;
pub use queue_enqueue::QueueEnqueue;
pub use queue_extend::QueueExtend;
pub use queue_lease::{QueueLease, MAX_LEASE_BATCH};
pub use queue_nack::QueueNack;
pub use slot_fire::{SlotDecision, SlotFire};
pub use tick::{Tick, TickOutcome, MAX_TICK_BUDGET};

use crate::delay_queue::QueueOutcome;
use crate::error::Result;
use crate::jobs::JobOutcome;
use crate::ledger::LedgerOutcome;
use crate::limits::InvalidInput;
use crate::locks::LockOutcome;
use crate::runs::RunOutcome;
use crate::vars::Vars;

/// The payload of one Raft log entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Batch {
    /// The proposing leader's wall clock, in Unix milliseconds (SPEC §2).
    pub now_ms: u64,
    /// Applied in order; each yields one [`Outcome`].
    pub commands: Vec<Command>,
}

/// One change to the replicated state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Take a lock, or extend it if the caller already holds it.
    LockAcquire(LockAcquire),
    /// Extend a held lock.
    LockRenew(LockRenew),
    /// Let a held lock go.
    LockRelease(LockRelease),
    /// Claim an idempotency key.
    LedgerClaim(LedgerClaim),
    /// Store the result of a claimed key.
    LedgerComplete(LedgerComplete),
    /// Give up a claim.
    LedgerAbandon(LedgerAbandon),
    /// Put a message on a queue.
    QueueEnqueue(QueueEnqueue),
    /// Lease due messages.
    QueueLease(QueueLease),
    /// Ack a leased message.
    QueueAck(QueueAck),
    /// Give a leased message back.
    QueueNack(QueueNack),
    /// Extend a lease.
    QueueExtend(QueueExtend),
    /// Act on what waits for the log's clock.
    Tick(Tick),
    /// Create or replace a job.
    JobPut(JobPut),
    /// Pause or resume a job.
    JobSetEnabled(JobSetEnabled),
    /// Delete a job and its history.
    JobDelete(JobDelete),
    /// Fire a slot of a job, or record it as missed.
    SlotFire(SlotFire),
    /// Run a job now, outside its schedule.
    JobTrigger(JobTrigger),
    /// Take due attempts for a node's workers.
    AttemptStart(AttemptStart),
    /// Record how an attempt ended.
    AttemptFinish(AttemptFinish),
}

/// What applying one command did. Refusals are outcomes too: the entry
/// still counts as applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// The command's input was invalid; nothing changed.
    Invalid(InvalidInput),
    /// A lock command's result.
    Lock(LockOutcome),
    /// A ledger command's result.
    Ledger(LedgerOutcome),
    /// A queue command's result.
    Queue(QueueOutcome),
    /// A tick's result.
    Tick(TickOutcome),
    /// A job command's result.
    Job(JobOutcome),
    /// A slot, trigger or attempt command's result.
    Run(RunOutcome),
}

/// What a command sees while it is applied: the open write transaction and
/// the replicated scalars. There is deliberately no clock here.
pub(crate) struct ApplyCtx<'t> {
    pub(crate) txn: &'t WriteTransaction,
    pub(crate) vars: &'t mut Vars,
}

impl ApplyCtx<'_> {
    /// The log's clock: the time to judge TTLs and due times against.
    pub(crate) fn now_ms(&self) -> u64 {
        self.vars.log_now_ms
    }
}

impl Command {
    /// Check the command's input against SPEC §7 and its own rules.
    pub fn validate(&self) -> Result<(), InvalidInput> {
        match self {
            Command::LockAcquire(c) => c.validate(),
            Command::LockRenew(c) => c.validate(),
            Command::LockRelease(c) => c.validate(),
            Command::LedgerClaim(c) => c.validate(),
            Command::LedgerComplete(c) => c.validate(),
            Command::LedgerAbandon(c) => c.validate(),
            Command::QueueEnqueue(c) => c.validate(),
            Command::QueueLease(c) => c.validate(),
            Command::QueueAck(c) => c.validate(),
            Command::QueueNack(c) => c.validate(),
            Command::QueueExtend(c) => c.validate(),
            Command::Tick(c) => c.validate(),
            Command::JobPut(c) => c.validate(),
            Command::JobSetEnabled(c) => c.validate(),
            Command::JobDelete(c) => c.validate(),
            Command::SlotFire(c) => c.validate(),
            Command::JobTrigger(c) => c.validate(),
            Command::AttemptStart(c) => c.validate(),
            Command::AttemptFinish(c) => c.validate(),
        }
    }

    /// Whether applying the command twice has the same effect as applying it
    /// once, so a request whose outcome is unknown may be sent again.
    pub fn is_retry_safe(&self) -> bool {
        match self {
            // The holder re-acquiring keeps its token; renewing twice extends twice.
            Command::LockAcquire(_) | Command::LockRenew(_) => true,
            // A claim carries its token: a retry finds its own claim.
            // Completing again with the same result reports the record.
            // An enqueue carries its id: a retry is reported as a duplicate.
            // A repeated ack under the same token reports the first ack.
            // Extending twice extends to the same length from a later now.
            // A tick only does what is due, and nothing twice.
            Command::LedgerClaim(_)
            | Command::LedgerComplete(_)
            | Command::QueueEnqueue(_)
            | Command::QueueAck(_)
            | Command::QueueExtend(_)
            | Command::Tick(_) => true,
            // Putting the same job or state again changes nothing; a slot
            // at or before the cursor, a trigger whose run exists and an
            // attempt that has ended are each reported, not redone.
            Command::JobPut(_)
            | Command::JobSetEnabled(_)
            | Command::SlotFire(_)
            | Command::JobTrigger(_)
            | Command::AttemptFinish(_) => true,
            // A node's repeated start is answered with what the first took.
            Command::AttemptStart(_) => true,
            // A second delete finds no job.
            Command::JobDelete(_) => false,
            // A second release would report that the caller no longer holds it.
            Command::LockRelease(_) => false,
            // A second abandon or nack finds the claim or lease gone; a
            // second lease would lease other messages.
            Command::LedgerAbandon(_) | Command::QueueLease(_) | Command::QueueNack(_) => false,
        }
    }

    /// Apply the command. Input is validated again here, so a command that
    /// slipped past the API's checks still changes nothing.
    pub(crate) fn apply(&self, ctx: &mut ApplyCtx<'_>) -> Result<Outcome> {
        if let Err(invalid) = self.validate() {
            return Ok(Outcome::Invalid(invalid));
        }
        Ok(match self {
            Command::LockAcquire(c) => Outcome::Lock(c.apply(ctx)?),
            Command::LockRenew(c) => Outcome::Lock(c.apply(ctx)?),
            Command::LockRelease(c) => Outcome::Lock(c.apply(ctx)?),
            Command::LedgerClaim(c) => Outcome::Ledger(c.apply(ctx)?),
            Command::LedgerComplete(c) => Outcome::Ledger(c.apply(ctx)?),
            Command::LedgerAbandon(c) => Outcome::Ledger(c.apply(ctx)?),
            Command::QueueEnqueue(c) => Outcome::Queue(c.apply(ctx)?),
            Command::QueueLease(c) => Outcome::Queue(c.apply(ctx)?),
            Command::QueueAck(c) => Outcome::Queue(c.apply(ctx)?),
            Command::QueueNack(c) => Outcome::Queue(c.apply(ctx)?),
            Command::QueueExtend(c) => Outcome::Queue(c.apply(ctx)?),
            Command::Tick(c) => Outcome::Tick(c.apply(ctx)?),
            Command::JobPut(c) => Outcome::Job(c.apply(ctx)?),
            Command::JobSetEnabled(c) => Outcome::Job(c.apply(ctx)?),
            Command::JobDelete(c) => Outcome::Job(c.apply(ctx)?),
            Command::SlotFire(c) => Outcome::Run(c.apply(ctx)?),
            Command::JobTrigger(c) => Outcome::Run(c.apply(ctx)?),
            Command::AttemptStart(c) => Outcome::Run(c.apply(ctx)?),
            Command::AttemptFinish(c) => Outcome::Run(c.apply(ctx)?),
        })
    }
}

macro_rules! into_command {
    ($($variant:ident),*) => {$(
        impl From<$variant> for Command {
            fn from(c: $variant) -> Self {
                Command::$variant(c)
            }
        }
    )*};
}
into_command!(
    LockAcquire,
    LockRenew,
    LockRelease,
    LedgerClaim,
    LedgerComplete,
    LedgerAbandon,
    QueueEnqueue,
    QueueLease,
    QueueAck,
    QueueNack,
    QueueExtend,
    Tick,
    JobPut,
    JobSetEnabled,
    JobDelete,
    SlotFire,
    JobTrigger,
    AttemptStart,
    AttemptFinish
);
