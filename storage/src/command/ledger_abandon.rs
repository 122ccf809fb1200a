//! `LedgerAbandon`: the claimant gives up a claim and frees the key.

use serde::{Deserialize, Serialize};

use super::ApplyCtx;
use crate::error::Result;
use crate::ledger::{self, LedgerOutcome, LedgerState};
use crate::limits::{check_name, check_token, InvalidInput};
use crate::tables::LEDGER;

/// Free `key`, if it is in progress under `claim_token`. A completed key
/// stays completed: its work is done and must not run again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerAbandon {
    /// The idempotency key.
    pub key: String,
    /// The token the key was claimed with.
    pub claim_token: String,
}

impl LedgerAbandon {
    pub(crate) fn validate(&self) -> Result<(), InvalidInput> {
        check_name("key", &self.key)?;
        check_token("claim_token", &self.claim_token)
    }

    pub(crate) fn apply(&self, ctx: &mut ApplyCtx<'_>) -> Result<LedgerOutcome> {
        let now = ctx.now_ms();
        let current = ledger::get(&ctx.txn.open_table(LEDGER)?, &self.key)?;
        let Some(old) = current.filter(|r| r.is_live(now)) else {
            return Ok(LedgerOutcome::NotFound);
        };
        if old.claim_token != self.claim_token {
            return Ok(LedgerOutcome::WrongToken(old));
        }
        if old.state != LedgerState::InProgress {
            return Ok(LedgerOutcome::AlreadyCompleted(old));
        }
        ledger::delete(ctx, &self.key, &old)?;
        Ok(LedgerOutcome::Abandoned {
            abandoned_at_ms: now,
        })
    }
}
