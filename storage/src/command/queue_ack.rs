//! `QueueAck`: the worker is done with a message; it is never delivered again.

use serde::{Deserialize, Serialize};

use super::ApplyCtx;
use crate::delay_queue::{self, LeaseAction, QueueOutcome};
use crate::error::Result;
use crate::limits::{check_name, check_token, InvalidInput};

/// Ack message `id` of `queue`, if `lease_token` holds its (unlapsed) lease.
///
/// Acking again under the same token reports the first ack, so a retried
/// request is harmless.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueAck {
    /// The queue.
    pub queue: String,
    /// The message id.
    pub id: String,
    /// The token of the caller's lease.
    pub lease_token: String,
}

impl QueueAck {
    pub(crate) fn validate(&self) -> Result<(), InvalidInput> {
        check_name("queue", &self.queue)?;
        check_name("id", &self.id)?;
        check_token("lease_token", &self.lease_token)
    }

    pub(crate) fn apply(&self, ctx: &mut ApplyCtx<'_>) -> Result<QueueOutcome> {
        delay_queue::settle(
            ctx,
            &self.queue,
            &self.id,
            &self.lease_token,
            LeaseAction::Ack,
        )
    }
}
