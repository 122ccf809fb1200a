//! `QueueExtend`: a worker's heartbeat, keeping a lease for long work.

use serde::{Deserialize, Serialize};

use super::ApplyCtx;
use crate::delay_queue::{self, LeaseAction, QueueOutcome};
use crate::error::Result;
use crate::limits::{check_name, check_token, check_ttl, InvalidInput};

/// Make the lease on message `id` of `queue` last `visibility_ms` from now,
/// if `lease_token` still holds it (a lapsed lease cannot be revived).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueExtend {
    /// The queue.
    pub queue: String,
    /// The message id.
    pub id: String,
    /// The token of the caller's lease.
    pub lease_token: String,
    /// The lease's new length, counted from the moment it is applied.
    pub visibility_ms: u64,
}

impl QueueExtend {
    pub(crate) fn validate(&self) -> Result<(), InvalidInput> {
        check_name("queue", &self.queue)?;
        check_name("id", &self.id)?;
        check_token("lease_token", &self.lease_token)?;
        check_ttl("visibility_ms", self.visibility_ms)
    }

    pub(crate) fn apply(&self, ctx: &mut ApplyCtx<'_>) -> Result<QueueOutcome> {
        delay_queue::settle(
            ctx,
            &self.queue,
            &self.id,
            &self.lease_token,
            LeaseAction::Extend {
                visibility_ms: self.visibility_ms,
            },
        )
    }
}
