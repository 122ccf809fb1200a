//! `LockAcquire`: take a free (or lapsed) lock, or extend one the caller holds.

use serde::{Deserialize, Serialize};

use super::ApplyCtx;
use crate::error::Result;
use crate::limits::{check_name, check_owner, check_ttl, InvalidInput};
use crate::locks::{self, LockOutcome, LockRecord};
use crate::tables::LOCKS;

/// Acquire `name` for `owner` for `ttl_ms`.
///
/// Acquiring a lock the owner already holds keeps its token and extends the
/// lease, which makes a retried request harmless.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockAcquire {
    /// The lock's name (SPEC §7).
    pub name: String,
    /// Who wants it.
    pub owner: String,
    /// How long the lease lasts from the moment it is applied.
    pub ttl_ms: u64,
}

impl LockAcquire {
    pub(crate) fn validate(&self) -> Result<(), InvalidInput> {
        check_name("name", &self.name)?;
        check_owner("owner", &self.owner)?;
        check_ttl("ttl_ms", self.ttl_ms)
    }

    pub(crate) fn apply(&self, ctx: &mut ApplyCtx<'_>) -> Result<LockOutcome> {
        let now = ctx.now_ms();
        let mut table = ctx.txn.open_table(LOCKS)?;
        let expires_at_ms = now.saturating_add(self.ttl_ms);
        let (token, acquired_at_ms) = match locks::get(&table, &self.name)? {
            Some(held) if held.is_live(now) && held.owner != self.owner => {
                return Ok(LockOutcome::Held {
                    owner: held.owner,
                    expires_at_ms: held.expires_at_ms,
                });
            }
            Some(mine) if mine.is_live(now) => (mine.token, mine.acquired_at_ms),
            _ => (ctx.vars.next_fence(), now),
        };
        let record = LockRecord {
            owner: self.owner.clone(),
            token,
            acquired_at_ms,
            expires_at_ms,
        };
        locks::put(&mut table, &self.name, &record)?;
        Ok(LockOutcome::Granted {
            token,
            acquired_at_ms,
            expires_at_ms,
        })
    }
}
