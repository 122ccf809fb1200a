//! `LedgerComplete`: the claimant stores the result of a claimed key.

use serde::{Deserialize, Serialize};

use super::ApplyCtx;
use crate::error::Result;
use crate::ledger::{self, LedgerOutcome, LedgerState};
use crate::limits::{check_name, check_token, check_ttl, InvalidInput};
use crate::tables::LEDGER;

/// Complete `key` with `result`, if it is claimed under `claim_token`.
///
/// Completing again with the same result is a no-op that reports the
/// record, which makes a retried request harmless.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerComplete {
    /// The idempotency key.
    pub key: String,
    /// The token the key was claimed with.
    pub claim_token: String,
    /// The result, as JSON text.
    pub result: String,
    /// The record's lifetime from now on; the claim's `ttl_ms` if absent.
    pub ttl_ms: Option<u64>,
}

impl LedgerComplete {
    pub(crate) fn validate(&self) -> Result<(), InvalidInput> {
        check_name("key", &self.key)?;
        check_token("claim_token", &self.claim_token)?;
        if let Some(ttl) = self.ttl_ms {
            check_ttl("ttl_ms", ttl)?;
        }
        Ok(())
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
        match &old.state {
            LedgerState::Completed { result } if *result == self.result => {
                Ok(LedgerOutcome::Completed(old))
            }
            LedgerState::Completed { .. } => Ok(LedgerOutcome::AlreadyCompleted(old)),
            LedgerState::InProgress => {
                let mut record = old.clone();
                record.state = LedgerState::Completed {
                    result: self.result.clone(),
                };
                record.ttl_ms = self.ttl_ms.unwrap_or(old.ttl_ms);
                record.updated_at_ms = now;
                record.expires_at_ms = now.saturating_add(record.ttl_ms);
                ledger::put(ctx, &self.key, Some(&old), &record)?;
                Ok(LedgerOutcome::Completed(record))
            }
        }
    }
}
