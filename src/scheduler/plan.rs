//! What to do with the slots between a job's cursor and now (SPEC §5).
//!
//! A slot no later than `misfire_threshold_ms` behind the clock fires, late.
//! Older slots are misfired, and the job's `misfire` policy decides:
//! `run_once` fires the most recent of them and records the rest missed,
//! `skip` records them all missed, `run_all` fires each one within
//! `catchup_window_ms` (at most [`MAX_CATCHUP_RUNS`], the most recent) and
//! records the rest missed. Every slot gets exactly one decision: nothing is
//! fired twice and nothing is skipped silently.
//!
//! This is a pure function of the schedule, the cursor, the clock and the
//! policy, so it is tested without a cluster.

use serde::{Deserialize, Serialize};

/// The `misfire` policy of a job.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Misfire {
    /// One run for the most recent misfired slot; the rest are missed.
    #[default]
    RunOnce,
    /// Every misfired slot is missed.
    Skip,
    /// Every misfired slot within the catch-up window runs (at most 100).
    RunAll,
}

impl Misfire {
    /// The policy's name as the API spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Misfire::RunOnce => "run_once",
            Misfire::Skip => "skip",
            Misfire::RunAll => "run_all",
        }
    }
}

/// The parts of a job that decide its misfires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// The job's misfire policy.
    pub misfire: Misfire,
    /// How late a slot may fire and still count as on time.
    pub threshold_ms: u64,
    /// How far back `run_all` catches up.
    pub catchup_window_ms: u64,
}

/// Most misfired slots `run_all` fires in one catch-up.
pub const MAX_CATCHUP_RUNS: usize = 100;

/// Missed slots recorded one by one; older ones are summarised in a single
/// range record (history keeps the last 100 runs anyway).
pub const MISS_RECORDS: usize = 100;

/// Most slots one plan covers. A longer gap is planned in several rounds,
/// each starting where the previous one left the cursor.
pub const MAX_SLOTS: usize = 100_000;

/// What to do with one slot, or with a run of older missed slots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Fire the slot.
    Run {
        /// The slot, in Unix milliseconds.
        slot_ms: i64,
    },
    /// Record the slot as missed.
    Miss {
        /// The slot, in Unix milliseconds.
        slot_ms: i64,
        /// Why, for the run record.
        reason: String,
    },
    /// Record `count` consecutive slots from `first_ms` to `last_ms` as missed.
    MissRange {
        /// The first slot of the range.
        first_ms: i64,
        /// The last slot of the range.
        last_ms: i64,
        /// How many slots the range holds.
        count: u64,
        /// Why, for the run record.
        reason: String,
    },
}

impl Decision {
    /// The last slot the decision covers: the job's cursor once it is applied.
    pub fn last_slot_ms(&self) -> i64 {
        match self {
            Decision::Run { slot_ms } | Decision::Miss { slot_ms, .. } => *slot_ms,
            Decision::MissRange { last_ms, .. } => *last_ms,
        }
    }
}

/// Decide every slot in `(cursor_ms, now_ms]`, oldest first. `next_after`
/// gives the first slot strictly after its argument.
pub fn plan(
    mut next_after: impl FnMut(i64) -> Option<i64>,
    cursor_ms: i64,
    now_ms: i64,
    policy: &Policy,
) -> Vec<Decision> {
    let mut slots = Vec::new();
    let mut t = cursor_ms;
    let mut truncated = false;
    while let Some(slot) = next_after(t).filter(|s| *s <= now_ms) {
        if slots.len() == MAX_SLOTS {
            truncated = true;
            break;
        }
        slots.push(slot);
        t = slot;
    }
    let late = |slot: i64| u64::try_from(now_ms - slot).unwrap_or(0);
    let on_time_from = slots.partition_point(|s| late(*s) > policy.threshold_ms);
    let (misfired, on_time) = slots.split_at(on_time_from);

    // How many of the misfired slots (the most recent ones) still run.
    let runs = if truncated {
        0 // more recent slots lie beyond this round; these are all missed
    } else {
        match policy.misfire {
            Misfire::Skip => 0,
            Misfire::RunOnce => misfired.len().min(1),
            Misfire::RunAll => misfired
                .iter()
                .rev()
                .take_while(|s| late(**s) <= policy.catchup_window_ms)
                .count()
                .min(MAX_CATCHUP_RUNS),
        }
    };
    let (missed, caught_up) = misfired.split_at(misfired.len() - runs);

    let reason = format!(
        "misfired: more than misfire_threshold_ms ({} ms) late; policy {}",
        policy.threshold_ms,
        policy.misfire.as_str()
    );
    let mut decisions =
        Vec::with_capacity(slots.len().min(MISS_RECORDS + MAX_CATCHUP_RUNS) + on_time.len());
    let summarised = missed.len().saturating_sub(MISS_RECORDS - 1);
    if summarised > 1 {
        decisions.push(Decision::MissRange {
            first_ms: missed[0],
            last_ms: missed[summarised - 1],
            count: summarised as u64,
            reason: reason.clone(),
        });
    }
    let individually = if summarised > 1 {
        &missed[summarised..]
    } else {
        missed
    };
    decisions.extend(individually.iter().map(|&slot_ms| Decision::Miss {
        slot_ms,
        reason: reason.clone(),
    }));
    decisions.extend(
        caught_up
            .iter()
            .chain(on_time)
            .map(|&slot_ms| Decision::Run { slot_ms }),
    );
    decisions
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;

    /// Every minute on the minute: the slot after t is the next multiple of 60 s.
    fn every_minute(t: i64) -> Option<i64> {
        Some((t.div_euclid(MIN) + 1) * MIN)
    }

    fn policy(misfire: Misfire) -> Policy {
        Policy {
            misfire,
            threshold_ms: 60_000,
            catchup_window_ms: 10 * 60_000,
        }
    }

    fn runs(d: &[Decision]) -> Vec<i64> {
        d.iter()
            .filter_map(|d| match d {
                Decision::Run { slot_ms } => Some(*slot_ms / MIN),
                _ => None,
            })
            .collect()
    }

    fn misses(d: &[Decision]) -> Vec<i64> {
        d.iter()
            .filter_map(|d| match d {
                Decision::Miss { slot_ms, .. } => Some(*slot_ms / MIN),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn nothing_due_before_the_next_slot() {
        assert!(plan(
            every_minute,
            10 * MIN,
            10 * MIN + 59_999,
            &policy(Misfire::RunOnce)
        )
        .is_empty());
        // A clock that went back behind the cursor fires nothing.
        assert!(plan(every_minute, 10 * MIN, 3 * MIN, &policy(Misfire::RunOnce)).is_empty());
    }

    #[test]
    fn late_within_the_threshold_still_fires() {
        // Cursor at minute 10; now is minute 12 + 30 s. Slots 11 (90 s late)
        // and 12 (30 s late): only 12 is within the 60 s threshold.
        let d = plan(
            every_minute,
            10 * MIN,
            12 * MIN + 30_000,
            &policy(Misfire::Skip),
        );
        assert_eq!(misses(&d), vec![11]);
        assert_eq!(runs(&d), vec![12]);
        // Exactly at the threshold is on time: slot 11 is 60 000 ms late.
        let d = plan(every_minute, 10 * MIN, 12 * MIN, &policy(Misfire::Skip));
        assert_eq!(runs(&d), vec![11, 12]);
    }

    #[test]
    fn run_once_fires_the_most_recent_misfire() {
        // Down from minute 10 to minute 20 + 10 s: slots 11..=20. Slot 20 is
        // 10 s late (on time); 11..=19 misfired; run_once fires 19 only.
        let d = plan(
            every_minute,
            10 * MIN,
            20 * MIN + 10_000,
            &policy(Misfire::RunOnce),
        );
        assert_eq!(misses(&d), (11..=18).collect::<Vec<_>>());
        assert_eq!(runs(&d), vec![19, 20]);
    }

    #[test]
    fn run_all_catches_up_within_the_window() {
        // Slots 1..=20, now at minute 20 + 10 s; the window is 10 minutes, so
        // misfired slots at most 600 s late are 11..=19 (slot 10 is 610 s late).
        let d = plan(every_minute, 0, 20 * MIN + 10_000, &policy(Misfire::RunAll));
        assert_eq!(misses(&d), (1..=10).collect::<Vec<_>>());
        assert_eq!(runs(&d), (11..=20).collect::<Vec<_>>());
    }

    #[test]
    fn run_all_fires_at_most_a_hundred() {
        let p = Policy {
            catchup_window_ms: 1_000 * 60_000,
            ..policy(Misfire::RunAll)
        };
        // Slots 1..=500 misfired (now is minute 502), window covers them all:
        // the most recent 100 (401..=500) run, 1..=400 are missed; 501 (60 s
        // late) and 502 are on time.
        let d = plan(every_minute, 0, 502 * MIN, &p);
        assert_eq!(runs(&d), (401..=502).collect::<Vec<_>>());
        let range = d.iter().find_map(|d| match d {
            Decision::MissRange {
                first_ms,
                last_ms,
                count,
                ..
            } => Some((*first_ms / MIN, *last_ms / MIN, *count)),
            _ => None,
        });
        // 400 missed: 99 recorded one by one (302..=400), 301 in one range.
        assert_eq!(range, Some((1, 301, 301)));
        assert_eq!(misses(&d), (302..=400).collect::<Vec<_>>());
    }

    #[test]
    fn every_slot_is_decided_once_in_order() {
        for misfire in [Misfire::RunOnce, Misfire::Skip, Misfire::RunAll] {
            let d = plan(every_minute, 0, 1_000 * MIN, &policy(misfire));
            let mut covered = 0u64;
            let mut last = 0;
            for decision in &d {
                let (first, n) = match decision {
                    Decision::Run { slot_ms } | Decision::Miss { slot_ms, .. } => (*slot_ms, 1),
                    Decision::MissRange {
                        first_ms, count, ..
                    } => (*first_ms, *count),
                };
                assert!(first > last, "{misfire:?}: decisions out of order");
                last = decision.last_slot_ms();
                covered += n;
            }
            assert_eq!(covered, 1_000, "{misfire:?}");
            assert_eq!(last, 1_000 * MIN);
        }
    }

    #[test]
    fn a_huge_gap_is_planned_in_rounds() {
        // 150 000 slots due: the first round covers 100 000 of them, all
        // missed (more recent slots exist), and leaves the cursor there.
        let d = plan(every_minute, 0, 150_000 * MIN, &policy(Misfire::RunOnce));
        assert!(runs(&d).is_empty());
        assert_eq!(d.last().unwrap().last_slot_ms(), 100_000 * MIN);
        // The second round: 149 998 is the most recent misfire (120 s late);
        // 149 999 (exactly 60 s late) and 150 000 are on time.
        let d = plan(
            every_minute,
            100_000 * MIN,
            150_000 * MIN,
            &policy(Misfire::RunOnce),
        );
        assert_eq!(runs(&d), vec![149_998, 149_999, 150_000]);
    }
}
