//! Long polls: wait for the replicated state to change instead of polling.

use gnomon_raft::Consensus;
use tokio::time::Instant;

/// Wait until `ready()` holds (checked now and after every entry applied on
/// this node), or until `wake_at`, whichever comes first.
pub(crate) async fn until(
    consensus: &Consensus,
    wake_at: Instant,
    mut ready: impl FnMut() -> bool,
) {
    let mut applied = consensus.applied_index();
    // Whatever was applied before the subscription is not a change to wait
    // for: look once now, or an entry applied just before could be missed.
    if ready() {
        return;
    }
    let sleep = tokio::time::sleep_until(wake_at);
    tokio::pin!(sleep);
    loop {
        tokio::select! {
            () = &mut sleep => return,
            changed = applied.changed() => {
                if changed.is_err() || ready() {
                    return;
                }
            }
        }
    }
}

/// The tokio instant at which the wall clock reads `unix_ms` (now, if past).
pub(crate) fn instant_at(unix_ms: u64) -> Instant {
    let now = gnomon_raft::wall_clock_ms();
    Instant::now() + std::time::Duration::from_millis(unix_ms.saturating_sub(now))
}
