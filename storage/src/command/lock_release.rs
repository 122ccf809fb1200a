//! `LockRelease`: the holder lets a lock go before its lease lapses.

use serde::{Deserialize, Serialize};

use super::ApplyCtx;
use crate::error::Result;
use crate::limits::{check_name, check_owner, InvalidInput};
use crate::locks::{self, LockOutcome};
use crate::tables::LOCKS;

/// Release `name`, if `owner` holds it under `token`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockRelease {
    /// The lock's name.
    pub name: String,
    /// The caller, who must be the holder.
    pub owner: String,
    /// The token the caller was granted.
    pub token: u64,
}

impl LockRelease {
    pub(crate) fn validate(&self) -> Result<(), InvalidInput> {
        check_name("name", &self.name)?;
        check_owner("owner", &self.owner)
    }

    pub(crate) fn apply(&self, ctx: &mut ApplyCtx<'_>) -> Result<LockOutcome> {
        let now = ctx.now_ms();
        let mut table = ctx.txn.open_table(LOCKS)?;
        match locks::get(&table, &self.name)? {
            Some(held)
                if held.is_live(now) && held.owner == self.owner && held.token == self.token =>
            {
                table.remove(self.name.as_bytes())?;
                Ok(LockOutcome::Released {
                    released_at_ms: now,
                })
            }
            other => Ok(LockOutcome::NotHolder {
                holder: other.filter(|r| r.is_live(now)),
            }),
        }
    }
}
