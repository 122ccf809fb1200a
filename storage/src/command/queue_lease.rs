//! `QueueLease`: hand a worker the next due messages of a queue.

use serde::{Deserialize, Serialize};

use super::ApplyCtx;
use crate::delay_queue::{self, LeaseRequest, QueueOutcome};
use crate::error::Result;
use crate::limits::{check_name, check_owner, check_token, check_ttl, InvalidInput};

/// Most messages one lease may ask for.
pub const MAX_LEASE_BATCH: u32 = 100;

/// Lease up to `max` due messages of `queue` to `worker` for
/// `visibility_ms`, in due order.
///
/// Each message's lease token is `lease_token-<attempt>`: the base is chosen
/// (randomly) before proposing, and the attempt number makes every delivery's
/// token distinct.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueLease {
    /// The queue.
    pub queue: String,
    /// Who leases.
    pub worker: String,
    /// Most messages to lease, 1 to [`MAX_LEASE_BATCH`].
    pub max: u32,
    /// Stop adding messages once their payloads reach this many bytes (one
    /// message is always leased if one is due).
    pub max_bytes: u64,
    /// How long the leases last.
    pub visibility_ms: u64,
    /// The base of the lease tokens, random, chosen by the proposer.
    pub lease_token: String,
}

impl QueueLease {
    pub(crate) fn validate(&self) -> Result<(), InvalidInput> {
        check_name("queue", &self.queue)?;
        check_owner("worker", &self.worker)?;
        if self.max == 0 || self.max > MAX_LEASE_BATCH {
            return Err(InvalidInput::new(
                "max",
                format!("must be between 1 and {MAX_LEASE_BATCH}, got {}", self.max),
            ));
        }
        check_ttl("visibility_ms", self.visibility_ms)?;
        check_token("lease_token", &self.lease_token)
    }

    pub(crate) fn apply(&self, ctx: &mut ApplyCtx<'_>) -> Result<QueueOutcome> {
        delay_queue::lease(
            ctx,
            &LeaseRequest {
                queue: &self.queue,
                worker: &self.worker,
                max: self.max as usize,
                max_bytes: self.max_bytes,
                visibility_ms: self.visibility_ms,
                token_base: &self.lease_token,
            },
        )
    }
}
