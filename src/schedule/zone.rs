//! A time zone as a list of UTC offset changes. chrono-tz answers "what is
//! the offset at instant t" but does not expose its transition list, and the
//! evaluator needs "when does the current offset end" to walk the timeline
//! one constant-offset segment at a time. This module recovers the list once
//! per zone by probing chrono-tz every two days from 1800 to 2101 and
//! bisecting each change to the second, then caches it for the process.
//!
//! Probing every two days cannot miss a change: since 1900 no zone in the tz
//! database has two changes less than seven days apart (the closest are
//! America/Noronha in 2000 and Asia/Gaza's Ramadan pauses), and before that
//! only one change per zone falls in any two-day window. chrono-tz lists no
//! change after 2099, so offsets are constant from then on; its first change
//! anywhere is in 1845.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use chrono::{DateTime, Offset, TimeZone};
use chrono_tz::Tz;

/// 1800-01-01T00:00:00Z.
const PROBE_START: i64 = -5_364_662_400;
/// 2101-01-01T00:00:00Z.
const PROBE_END: i64 = 4_133_980_800;
const PROBE_STEP: i64 = 2 * 86_400;

/// The offset changes of one zone, in seconds.
#[derive(Debug, PartialEq, Eq)]
pub struct Zone {
    /// UTC instants at which the offset changes, ascending.
    changes: Vec<i64>,
    /// `offsets[i]` holds before `changes[i]` and from `changes[i - 1]`;
    /// one longer than `changes`.
    offsets: Vec<i32>,
}

/// One stretch of constant offset: `[start, end)` in UTC seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    /// Index of the segment, for stepping to its neighbours.
    pub index: usize,
    /// First instant (None: since the beginning of time).
    pub start: Option<i64>,
    /// First instant after it (None: until the end of time).
    pub end: Option<i64>,
    /// UTC offset in seconds (local = utc + offset).
    pub offset: i64,
}

impl Zone {
    /// The cached table for `tz`, built on first use.
    pub fn get(tz: Tz) -> Arc<Zone> {
        static CACHE: OnceLock<Mutex<HashMap<Tz, Arc<Zone>>>> = OnceLock::new();
        let cache = CACHE.get_or_init(Default::default);
        // A panic while holding the lock can only come from a bug in
        // `Zone::build`; the map is still consistent, so keep using it.
        let mut map = cache.lock().unwrap_or_else(|poison| poison.into_inner());
        map.entry(tz)
            .or_insert_with(|| Arc::new(Zone::build(tz)))
            .clone()
    }

    fn build(tz: Tz) -> Zone {
        let offset_at = |t: i64| -> i32 {
            // Every probe lies between 1800 and 2101, well inside chrono's range.
            let utc = DateTime::from_timestamp(t, 0).expect("probe instant in range");
            tz.offset_from_utc_datetime(&utc.naive_utc())
                .fix()
                .local_minus_utc()
        };
        let mut changes = Vec::new();
        let mut offsets = vec![offset_at(PROBE_START)];
        let mut t = PROBE_START;
        let mut current = offsets[0];
        while t < PROBE_END {
            let next = t + PROBE_STEP;
            let there = offset_at(next);
            if there != current {
                // Bisect: offset_at(lo) == current, offset_at(hi) == there.
                let (mut lo, mut hi) = (t, next);
                while hi - lo > 1 {
                    let mid = lo + (hi - lo) / 2;
                    if offset_at(mid) == current {
                        lo = mid;
                    } else {
                        hi = mid;
                    }
                }
                changes.push(hi);
                offsets.push(there);
                current = there;
            }
            t = next;
        }
        Zone { changes, offsets }
    }

    /// The segment containing instant `t`.
    pub fn segment_at(&self, t: i64) -> Segment {
        self.segment(self.changes.partition_point(|&c| c <= t))
    }

    /// Segment number `index` (0 ..= number of changes).
    pub fn segment(&self, index: usize) -> Segment {
        Segment {
            index,
            start: index.checked_sub(1).map(|i| self.changes[i]),
            end: self.changes.get(index).copied(),
            offset: i64::from(self.offsets[index]),
        }
    }

    /// The offset in force before segment `index` began, if it has a start.
    pub fn previous_offset(&self, index: usize) -> Option<i64> {
        index.checked_sub(1).map(|i| i64::from(self.offsets[i]))
    }

    /// Offset changes in `[from, to)`: (instant, offset before, offset after).
    pub fn changes_between(
        &self,
        from: i64,
        to: i64,
    ) -> impl Iterator<Item = (i64, i64, i64)> + '_ {
        let first = self.changes.partition_point(|&c| c < from);
        self.changes[first..]
            .iter()
            .take_while(move |&&c| c < to)
            .enumerate()
            .map(move |(k, &c)| {
                let i = first + k;
                (
                    c,
                    i64::from(self.offsets[i]),
                    i64::from(self.offsets[i + 1]),
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn berlin_2026_changes_to_the_second() {
        let zone = Zone::get(chrono_tz::Europe::Berlin);
        // 2026-03-29T01:00:00Z and 2026-10-25T01:00:00Z (tz database: last
        // Sunday of March and October at 01:00 UTC).
        let changes: Vec<_> = zone.changes_between(1_767_225_600, 1_798_761_600).collect();
        assert_eq!(
            changes,
            vec![(1_774_746_000, 3600, 7200), (1_792_890_000, 7200, 3600)]
        );
    }

    #[test]
    fn zone_without_changes_after_1970_has_one_segment_then() {
        let zone = Zone::get(chrono_tz::Asia::Kolkata);
        let seg = zone.segment_at(1_800_000_000);
        assert_eq!(seg.offset, 19_800);
        assert_eq!(seg.end, None);
    }
}
