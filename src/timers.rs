//! The leader's ticks: the only way time moves the replicated state
//! without a client asking.
//!
//! Leases lapse, ledger records expire and tombstones fall due for
//! collection at instants recorded in the state's time index. On the leader
//! this task sleeps until the earliest of them (re-reading it after every
//! apply, since any entry may add an earlier one), then proposes a `Tick`
//! that processes a bounded batch. While nothing waits on time it proposes
//! nothing, so an idle cluster writes nothing. Followers run the task too,
//! but only watch for leadership.

use std::time::Duration;

use gnomon_raft::{wall_clock_ms, Consensus};
use gnomon_storage::command::{Outcome, Tick};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::Instrument;

use crate::api::wait::instant_at;

/// Most time-index entries one tick processes: bounds the work of one entry.
const TICK_BUDGET: u32 = 512;

/// Least time between two ticks, so that instants a few milliseconds apart
/// are processed by one entry instead of one each.
const MIN_TICK_GAP: Duration = Duration::from_millis(10);

/// Start the task; it runs until aborted.
pub fn spawn(consensus: Consensus) -> JoinHandle<()> {
    tokio::spawn(run(consensus))
}

/// What the leader should do about time right now.
enum Next {
    /// Nothing waits on time.
    Idle,
    /// The earliest entry falls due at this wall-clock instant.
    At(u64),
    /// Something is due: tick.
    Now,
}

fn next(consensus: &Consensus) -> Next {
    let view = match consensus.read() {
        Ok(view) => view,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the time index");
            return Next::At(wall_clock_ms() + 1_000);
        }
    };
    let (next, log_now) = match (view.next_timer(), view.vars()) {
        (Ok(next), Ok(vars)) => (next, vars.log_now_ms),
        (Err(e), _) | (_, Err(e)) => {
            tracing::warn!(error = %e, "cannot read the time index");
            return Next::At(wall_clock_ms() + 1_000);
        }
    };
    match next {
        None => Next::Idle,
        // A tick is stamped with this node's clock, and judged at the later
        // of that and the log's clock.
        Some(at) if at <= wall_clock_ms().max(log_now) => Next::Now,
        Some(at) => Next::At(at),
    }
}

async fn run(consensus: Consensus) {
    let node_id = consensus.id();
    let mut metrics = consensus.metrics();
    let mut applied = consensus.applied_index();
    let mut last_tick = Instant::now() - MIN_TICK_GAP;
    let mut stalled = Duration::ZERO;
    loop {
        if !consensus.is_leader() {
            if metrics.changed().await.is_err() {
                return;
            }
            continue;
        }
        let wake_at = match next(&consensus) {
            Next::Now => {
                let earliest = (last_tick + MIN_TICK_GAP).max(Instant::now() + stalled);
                tokio::time::sleep_until(earliest).await;
                last_tick = Instant::now();
                match tick(&consensus, node_id).await {
                    Some(processed) if processed > 0 => stalled = Duration::ZERO,
                    // Nothing was done although something looked due (this
                    // node's state lags, or the proposal failed): back off.
                    _ => {
                        stalled =
                            (stalled * 2).clamp(Duration::from_millis(50), Duration::from_secs(2))
                    }
                }
                continue;
            }
            Next::At(at) => Some(instant_at(at)),
            Next::Idle => None,
        };
        // Sleep until the instant, or until an apply or a leadership change
        // may have moved it.
        let sleep = async {
            match wake_at {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = sleep => {}
            changed = applied.changed() => if changed.is_err() { return },
            changed = metrics.changed() => if changed.is_err() { return },
        }
    }
}

/// Propose one tick; how many entries it processed, if it committed.
async fn tick(consensus: &Consensus, node_id: u64) -> Option<u32> {
    let proposal = consensus.propose_one(Tick {
        budget: TICK_BUDGET,
    });
    match proposal
        .instrument(tracing::debug_span!("tick", node_id))
        .await
    {
        Ok(Outcome::Tick(done)) => {
            tracing::debug!(processed = done.processed, more = done.more, "ticked");
            Some(done.processed)
        }
        Ok(other) => {
            tracing::error!(outcome = ?other, "a tick came back with a foreign outcome");
            None
        }
        Err(e) => {
            tracing::warn!(error = %e, "tick not committed; will retry");
            None
        }
    }
}
