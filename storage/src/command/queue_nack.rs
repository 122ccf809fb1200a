//! `QueueNack`: the worker gives a message back for another delivery.

use serde::{Deserialize, Serialize};

use super::ApplyCtx;
use crate::delay_queue::{self, LeaseAction, QueueOutcome};
use crate::error::Result;
use crate::limits::{check_delay, check_name, check_token, InvalidInput};

/// Give message `id` of `queue` back, due again `delay_ms` from now, if
/// `lease_token` holds its lease. A message that has had all its deliveries
/// goes to the dead letters instead.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueNack {
    /// The queue.
    pub queue: String,
    /// The message id.
    pub id: String,
    /// The token of the caller's lease.
    pub lease_token: String,
    /// How long after now it is due again.
    pub delay_ms: u64,
}

impl QueueNack {
    pub(crate) fn validate(&self) -> Result<(), InvalidInput> {
        check_name("queue", &self.queue)?;
        check_name("id", &self.id)?;
        check_token("lease_token", &self.lease_token)?;
        check_delay("delay_ms", self.delay_ms)
    }

    pub(crate) fn apply(&self, ctx: &mut ApplyCtx<'_>) -> Result<QueueOutcome> {
        delay_queue::settle(
            ctx,
            &self.queue,
            &self.id,
            &self.lease_token,
            LeaseAction::Nack {
                delay_ms: self.delay_ms,
            },
        )
    }
}
