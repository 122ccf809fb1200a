//! `QueueEnqueue`: put a message on a queue, due after an optional delay.

use serde::{Deserialize, Serialize};

use super::ApplyCtx;
use crate::delay_queue::{self, NewMessage, QueueOutcome};
use crate::error::Result;
use crate::limits::{check_delay, InvalidInput};

/// Enqueue `payload` on `queue` as message `id`, due `delay_ms` after the
/// entry is applied.
///
/// The id is chosen before proposing, so a retried enqueue finds the first
/// and is reported as a duplicate of it rather than enqueued twice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueEnqueue {
    /// The queue (SPEC §7 name rules).
    pub queue: String,
    /// The message id, unique within the queue.
    pub id: String,
    /// The payload as JSON text.
    pub payload: String,
    /// How long after `log_now` it becomes due.
    pub delay_ms: u64,
    /// Later enqueues with the same key are duplicates of this one.
    pub dedup_key: Option<String>,
    /// Deliveries allowed before it is dead-lettered.
    pub max_attempts: u32,
}

impl QueueEnqueue {
    fn message(&self, due_at_ms: u64) -> NewMessage<'_> {
        NewMessage {
            queue: &self.queue,
            id: &self.id,
            payload: &self.payload,
            due_at_ms,
            max_attempts: self.max_attempts,
            dedup_key: self.dedup_key.as_deref(),
        }
    }

    pub(crate) fn validate(&self) -> Result<(), InvalidInput> {
        self.message(0).validate()?;
        check_delay("delay_ms", self.delay_ms)
    }

    pub(crate) fn apply(&self, ctx: &mut ApplyCtx<'_>) -> Result<QueueOutcome> {
        let due_at_ms = ctx.now_ms().saturating_add(self.delay_ms);
        delay_queue::enqueue(ctx, &self.message(due_at_ms))
    }
}
