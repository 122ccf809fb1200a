//! `LockRenew`: extend the lease of a lock the caller still holds.

use serde::{Deserialize, Serialize};

use super::ApplyCtx;
use crate::error::Result;
use crate::limits::{check_name, check_owner, check_ttl, InvalidInput};
use crate::locks::{self, LockOutcome};
use crate::tables::LOCKS;

/// Extend `name` to `ttl_ms` from now, if `owner` holds it under `token`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockRenew {
    /// The lock's name.
    pub name: String,
    /// The caller, who must be the holder.
    pub owner: String,
    /// The token the caller was granted.
    pub token: u64,
    /// The new lease length, counted from the moment it is applied.
    pub ttl_ms: u64,
}

impl LockRenew {
    pub(crate) fn validate(&self) -> Result<(), InvalidInput> {
        check_name("name", &self.name)?;
        check_owner("owner", &self.owner)?;
        check_ttl("ttl_ms", self.ttl_ms)
    }

    pub(crate) fn apply(&self, ctx: &mut ApplyCtx<'_>) -> Result<LockOutcome> {
        let now = ctx.now_ms();
        let mut table = ctx.txn.open_table(LOCKS)?;
        match locks::get(&table, &self.name)? {
            Some(mut held)
                if held.is_live(now) && held.owner == self.owner && held.token == self.token =>
            {
                held.expires_at_ms = now.saturating_add(self.ttl_ms);
                locks::put(&mut table, &self.name, &held)?;
                Ok(LockOutcome::Renewed {
                    token: held.token,
                    expires_at_ms: held.expires_at_ms,
                })
            }
            other => Ok(LockOutcome::NotHolder {
                holder: other.filter(|r| r.is_live(now)),
            }),
        }
    }
}
