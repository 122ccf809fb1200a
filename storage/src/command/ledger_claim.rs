//! `LedgerClaim`: claim an idempotency key, or learn who has it.

use serde::{Deserialize, Serialize};

use super::ApplyCtx;
use crate::error::Result;
use crate::ledger::{self, LedgerOutcome, LedgerRecord, LedgerState};
use crate::limits::{check_name, check_owner, check_token, check_ttl, InvalidInput};
use crate::tables::LEDGER;

/// Claim `key` for `owner` for `ttl_ms`, under `claim_token`.
///
/// The token is generated before proposing, so a retried claim finds its
/// own record and is told `Claimed` again instead of `Exists`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerClaim {
    /// The idempotency key (SPEC §7 name rules).
    pub key: String,
    /// Who claims it.
    pub owner: String,
    /// How long the record lives after this and each later change.
    pub ttl_ms: u64,
    /// The claimant's secret, random, chosen by the proposer.
    pub claim_token: String,
}

impl LedgerClaim {
    pub(crate) fn validate(&self) -> Result<(), InvalidInput> {
        check_name("key", &self.key)?;
        check_owner("owner", &self.owner)?;
        check_ttl("ttl_ms", self.ttl_ms)?;
        check_token("claim_token", &self.claim_token)
    }

    pub(crate) fn apply(&self, ctx: &mut ApplyCtx<'_>) -> Result<LedgerOutcome> {
        let now = ctx.now_ms();
        let current = ledger::get(&ctx.txn.open_table(LEDGER)?, &self.key)?;
        match current {
            Some(live) if live.is_live(now) => {
                if live.claim_token == self.claim_token && live.state == LedgerState::InProgress {
                    return Ok(LedgerOutcome::Claimed {
                        claim_token: live.claim_token,
                        expires_at_ms: live.expires_at_ms,
                    });
                }
                Ok(LedgerOutcome::Exists(live))
            }
            expired => {
                let record = LedgerRecord {
                    owner: self.owner.clone(),
                    claim_token: self.claim_token.clone(),
                    state: LedgerState::InProgress,
                    ttl_ms: self.ttl_ms,
                    created_at_ms: now,
                    updated_at_ms: now,
                    expires_at_ms: now.saturating_add(self.ttl_ms),
                };
                ledger::put(ctx, &self.key, expired.as_ref(), &record)?;
                Ok(LedgerOutcome::Claimed {
                    claim_token: record.claim_token,
                    expires_at_ms: record.expires_at_ms,
                })
            }
        }
    }
}
