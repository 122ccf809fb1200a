//! Commands: everything that changes replicated state, one file per variant.
//!
//! A [`Batch`] is what one Raft log entry carries: the commands that reached
//! the leader while the previous append was in flight, stamped with the
//! leader's clock. Each command validates itself ([`Command::validate`]) and
//! applies itself against an `ApplyCtx`; [`Command`] only dispatches.

mod lock_acquire;
mod lock_release;
mod lock_renew;

use redb::WriteTransaction;
use serde::{Deserialize, Serialize};

pub use lock_acquire::LockAcquire;
pub use lock_release::LockRelease;
pub use lock_renew::LockRenew;

use crate::error::Result;
use crate::limits::InvalidInput;
use crate::locks::LockOutcome;
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
}

/// What applying one command did. Refusals are outcomes too: the entry
/// still counts as applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// The command's input was invalid; nothing changed.
    Invalid(InvalidInput),
    /// A lock command's result.
    Lock(LockOutcome),
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
        }
    }

    /// Whether applying the command twice has the same effect as applying it
    /// once, so a request whose outcome is unknown may be sent again.
    pub fn is_retry_safe(&self) -> bool {
        match self {
            // The holder re-acquiring keeps its token; renewing twice extends twice.
            Command::LockAcquire(_) | Command::LockRenew(_) => true,
            // A second release would report that the caller no longer holds it.
            Command::LockRelease(_) => false,
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
into_command!(LockAcquire, LockRenew, LockRelease);
