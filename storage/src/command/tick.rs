//! `Tick`: let the log's clock act on what waits for it.

use serde::{Deserialize, Serialize};

use super::ApplyCtx;
use crate::error::Result;
use crate::limits::InvalidInput;
use crate::tables::TIMERS;
use crate::timers::{self, TimerKind};
use crate::{delay_queue, ledger};

/// Most timer entries one tick may ask to process.
pub const MAX_TICK_BUDGET: u32 = 10_000;

/// Process up to `budget` entries of the time index that are due at
/// `log_now`, earliest first: lapse leases (waiting again, or dead), and
/// collect acked tombstones, old dead letters and expired ledger records.
///
/// The leader proposes a tick only when the earliest entry is due, so an
/// idle cluster writes nothing; the budget bounds the work of one entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tick {
    /// Most entries to process, 1 to [`MAX_TICK_BUDGET`].
    pub budget: u32,
}

/// What a tick did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TickOutcome {
    /// Entries processed.
    pub processed: u32,
    /// Whether due entries remain (the budget ran out).
    pub more: bool,
}

impl Tick {
    pub(crate) fn validate(&self) -> Result<(), InvalidInput> {
        if self.budget == 0 || self.budget > MAX_TICK_BUDGET {
            return Err(InvalidInput::new(
                "budget",
                format!(
                    "must be between 1 and {MAX_TICK_BUDGET}, got {}",
                    self.budget
                ),
            ));
        }
        Ok(())
    }

    pub(crate) fn apply(&self, ctx: &mut ApplyCtx<'_>) -> Result<TickOutcome> {
        let now = ctx.now_ms();
        let due = timers::due(&ctx.txn.open_table(TIMERS)?, now, self.budget as usize)?;
        for timer in &due {
            timers::remove_timer(&mut ctx.txn.open_table(TIMERS)?, timer)?;
            match timer.kind {
                Some(TimerKind::Message) => {
                    delay_queue::on_timer(ctx, &timer.subject, timer.at_ms)?
                }
                Some(TimerKind::Ledger) => ledger::on_timer(ctx, &timer.subject)?,
                None => tracing::trace!(at_ms = timer.at_ms, "dropped a timer of an unknown kind"),
            }
        }
        let more = timers::next(&ctx.txn.open_table(TIMERS)?)?.is_some_and(|at| at <= now);
        Ok(TickOutcome {
            processed: due.len() as u32,
            more,
        })
    }
}
