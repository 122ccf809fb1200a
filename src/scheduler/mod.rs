//! The scheduler: on the leader, turn every due slot of every enabled job
//! into a decision (fire it, or record it missed) and propose it.
//!
//! It keeps each enabled job's next slot in a min-heap, so finding the
//! earliest due slot never scans all jobs. It sleeps until that slot by the
//! wall clock, in steps of at most a second so that a clock step is
//! noticed: nothing fires before the wall clock reaches its slot, and a jump
//! forward is caught up at once (late slots under the misfire policy). All
//! slots due at one moment go out as one proposal.
//!
//! The state machine owns the cursors: a new leader starts from them (after
//! a read barrier, so it has applied everything committed), and a slot at
//! or before a cursor is refused whoever proposes it. A leader that lost
//! its office mid-way is therefore harmless.

pub mod plan;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
use std::sync::Arc;
use std::time::Duration;

use gnomon_raft::{wall_clock_ms, Consensus, ConsensusError};
use gnomon_storage::command::{Command, Outcome, SlotDecision, SlotFire};
use gnomon_storage::jobs::JobRecord;
use gnomon_storage::runs::RunOutcome;
use gnomon_storage::sm::ReadView;
use tokio::task::JoinHandle;

use crate::job::{slot_run_id, JobSpec};
use crate::metrics::Metrics;
use crate::schedule::Schedule;
use plan::{plan, Decision, Policy};

/// Longest single sleep: how soon a wall-clock step forward is noticed.
const MAX_SLEEP: Duration = Duration::from_secs(1);

/// Most slot decisions in one proposal, to bound the size of one entry
/// (about 100 bytes each). A burst up to this size is stamped and applied
/// as one entry, so all its runs carry the same fire time.
const MAX_BATCH: usize = 20_000;

/// Start the scheduler task; it runs until aborted, acting only while this
/// node leads.
pub fn spawn(consensus: Consensus, metrics: Arc<Metrics>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut leadership = consensus.metrics();
        loop {
            if consensus.is_leader() {
                if let Err(e) = lead(&consensus, &metrics).await {
                    tracing::debug!(error = %e, "scheduler stepped back");
                }
            }
            if leadership.changed().await.is_err() {
                return;
            }
        }
    })
}

/// One enabled job as the scheduler tracks it.
struct Entry {
    version: u64,
    schedule: Schedule,
    policy: Policy,
    cursor_ms: i64,
    next_ms: Option<i64>,
}

/// Every enabled job's next slot.
struct Slots {
    /// The `jobs_revision` the table reflects; `None` before the first load.
    revision: Option<u64>,
    entries: BTreeMap<String, Entry>,
    heap: BinaryHeap<Reverse<(i64, String)>>,
}

impl Slots {
    fn empty() -> Self {
        Self {
            revision: None,
            entries: BTreeMap::new(),
            heap: BinaryHeap::new(),
        }
    }

    /// Catch up with the state: every job on the first call, then only the
    /// jobs put, paused or resumed since, so a change costs the leader
    /// work in proportion to the change, not to the number of jobs.
    fn refresh(&mut self, view: &ReadView) -> gnomon_storage::Result<()> {
        let revision = view.vars()?.jobs_revision;
        if self.revision == Some(revision) {
            return Ok(());
        }
        let changed = match self.revision {
            Some(seen) => view.jobs_changed_after(seen)?,
            None => view.jobs()?,
        };
        for (name, record) in changed {
            self.upsert(name, &record);
        }
        self.revision = Some(revision);
        Ok(())
    }

    /// Track `record` as the job's current state (or stop tracking it if
    /// paused), reusing the parsed schedule when the version is unchanged.
    fn upsert(&mut self, name: String, record: &JobRecord) {
        let old = self.entries.remove(&name);
        if !record.enabled {
            return;
        }
        let (schedule, policy) = match old.filter(|e| e.version == record.version) {
            Some(e) => (e.schedule, e.policy),
            None => match JobSpec::parse_stored(&record.definition)
                .ok()
                .and_then(|s| Some((s.schedule().ok()?, s.policy())))
            {
                Some(parsed) => parsed,
                None => {
                    tracing::error!(job_id = %name, "a stored job does not parse; it is not scheduled");
                    return;
                }
            },
        };
        let cursor_ms = i64::try_from(record.cursor_ms).unwrap_or(i64::MAX);
        let next_ms = schedule.next_after_ms(cursor_ms);
        if let Some(next) = next_ms {
            self.heap.push(Reverse((next, name.clone())));
        }
        self.entries.insert(
            name,
            Entry {
                version: record.version,
                schedule,
                policy,
                cursor_ms,
                next_ms,
            },
        );
    }

    /// Re-read one job after a decision found it changed or gone.
    fn reread(&mut self, view: &ReadView, name: &str) -> gnomon_storage::Result<()> {
        match view.job(name)? {
            Some(record) => self.upsert(name.to_string(), &record),
            None => {
                self.entries.remove(name);
            }
        }
        Ok(())
    }

    /// The earliest pending slot, dropping heap items a later advance replaced.
    fn earliest(&mut self) -> Option<i64> {
        while let Some(Reverse((slot, name))) = self.heap.peek() {
            if self.entries.get(name).and_then(|e| e.next_ms) == Some(*slot) {
                return Some(*slot);
            }
            self.heap.pop();
        }
        None
    }

    /// Take every job whose next slot is at or before `now_ms`.
    fn take_due(&mut self, now_ms: i64) -> BTreeSet<String> {
        let mut due = BTreeSet::new();
        while let Some(slot) = self.earliest() {
            if slot > now_ms {
                break;
            }
            if let Some(Reverse((_, name))) = self.heap.pop() {
                due.insert(name);
            }
        }
        due
    }

    /// The job's cursor moved: schedule its next slot after it.
    fn advance(&mut self, name: &str, cursor_ms: i64) {
        if let Some(entry) = self.entries.get_mut(name) {
            entry.cursor_ms = entry.cursor_ms.max(cursor_ms);
            entry.next_ms = entry.schedule.next_after_ms(entry.cursor_ms);
            if let Some(next) = entry.next_ms {
                self.heap.push(Reverse((next, name.to_string())));
            }
        }
    }
}

/// Schedule while this node leads.
async fn lead(consensus: &Consensus, metrics: &Metrics) -> Result<(), ConsensusError> {
    // Apply everything committed first: the cursors must be current.
    consensus.linearize().await?;
    let storage = |e: gnomon_storage::Error| ConsensusError::Fatal(e.to_string());
    let mut slots = Slots::empty();
    let mut applied = consensus.applied_index();
    let mut leadership = consensus.metrics();
    tracing::info!(node_id = consensus.id(), "scheduling as leader");
    while consensus.is_leader() {
        slots.refresh(&consensus.read()?).map_err(storage)?;
        let now = i64::try_from(wall_clock_ms()).unwrap_or(i64::MAX);
        match slots.earliest() {
            Some(slot) if slot <= now => fire(consensus, metrics, &mut slots, now).await?,
            next => {
                let wait = next.map_or(MAX_SLEEP, |slot| {
                    Duration::from_millis(u64::try_from(slot - now).unwrap_or(0)).min(MAX_SLEEP)
                });
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    _ = applied.changed() => {}
                    _ = leadership.changed() => {}
                }
            }
        }
    }
    Ok(())
}

/// Decide and propose every slot due at `now_ms`.
#[tracing::instrument(skip_all, fields(node_id = consensus.id(), now_ms = now_ms))]
async fn fire(
    consensus: &Consensus,
    metrics: &Metrics,
    slots: &mut Slots,
    now_ms: i64,
) -> Result<(), ConsensusError> {
    let due = slots.take_due(now_ms);
    let mut pending: Vec<(String, Decision, SlotFire)> = Vec::new();
    for name in &due {
        let Some(entry) = slots.entries.get(name) else {
            continue;
        };
        let decisions = plan(
            |t| entry.schedule.next_after_ms(t),
            entry.cursor_ms,
            now_ms,
            &entry.policy,
        );
        // Slots of one job that fire together (a catch-up) chain up, so that
        // under `forbid` they run one after another instead of overlapping.
        let mut previous_run = None;
        for decision in decisions {
            let command = slot_fire(name, entry.version, &decision, previous_run.take());
            if matches!(decision, Decision::Run { .. }) {
                previous_run = Some(command.run_id.clone());
            }
            pending.push((name.clone(), decision, command));
        }
    }
    for chunk in pending.chunks(MAX_BATCH) {
        let commands: Vec<Command> = chunk
            .iter()
            .map(|(_, _, c)| Command::SlotFire(c.clone()))
            .collect();
        let outcomes = consensus.propose(commands).await?;
        let fired_at = i64::try_from(wall_clock_ms()).unwrap_or(i64::MAX);
        for ((name, decision, _), outcome) in chunk.iter().zip(outcomes) {
            match outcome {
                Outcome::Run(RunOutcome::Recorded { run_id, state }) => {
                    tracing::debug!(job_id = %name, run_id = %run_id, state = state.as_str(), "slot handled");
                    let slot = match decision {
                        Decision::Run { slot_ms } | Decision::Miss { slot_ms, .. } => *slot_ms,
                        Decision::MissRange { first_ms, .. } => *first_ms,
                    };
                    let count = match decision {
                        Decision::MissRange { count, .. } => *count,
                        _ => 1,
                    };
                    metrics.slot_handled(state, count, u64::try_from(fired_at - slot).unwrap_or(0));
                    slots.advance(name, decision.last_slot_ms());
                }
                Outcome::Run(RunOutcome::AlreadyHandled { cursor_ms }) => {
                    slots.advance(name, i64::try_from(cursor_ms).unwrap_or(i64::MAX));
                }
                // The job changed (or went) under this decision: look again.
                Outcome::Run(
                    RunOutcome::Stale { .. } | RunOutcome::Disabled | RunOutcome::JobNotFound,
                ) => {
                    let view = consensus.read()?;
                    slots
                        .reread(&view, name)
                        .map_err(|e| ConsensusError::Fatal(e.to_string()))?;
                }
                other => {
                    tracing::error!(job_id = %name, ?other, "unexpected outcome of a slot decision")
                }
            }
        }
    }
    Ok(())
}

fn slot_fire(job: &str, version: u64, decision: &Decision, after: Option<String>) -> SlotFire {
    let (slot_ms, decision) = match decision {
        Decision::Run { slot_ms } => (*slot_ms, SlotDecision::Run { after }),
        Decision::Miss { slot_ms, reason } => (
            *slot_ms,
            SlotDecision::Miss {
                reason: reason.clone(),
            },
        ),
        Decision::MissRange {
            first_ms,
            last_ms,
            count,
            reason,
        } => (
            *first_ms,
            SlotDecision::MissRange {
                last_ms: u64::try_from(*last_ms).unwrap_or(0),
                count: *count,
                reason: reason.clone(),
            },
        ),
    };
    SlotFire {
        job: job.to_string(),
        version,
        slot_ms: u64::try_from(slot_ms).unwrap_or(0),
        run_id: slot_run_id(job, slot_ms),
        decision,
    }
}
