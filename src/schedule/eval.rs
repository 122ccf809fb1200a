//! Next fire time: the calendar walked along the zone's timeline.
//!
//! The timeline of a zone is a row of segments of constant UTC offset. Within
//! one segment local readings and instants map one to one, in order, so the
//! first fire time after `t` is found by asking the calendar for the first
//! matching reading in the segment's reading range and, failing that, moving
//! to the next segment. The daylight-saving policy (SPEC §6) only decides
//! which readings each segment offers:
//!
//! * `literal`, and `once` for jobs that follow the clock: every reading the
//!   clock shows, so a skipped reading never matches and a repeated one
//!   matches in both segments that show it;
//! * `once` for fixed-time jobs: a segment that begins with the clock turned
//!   back offers only the readings the previous segment did not show (the
//!   first occurrence wins), and a clock turned forward offers the skipped
//!   readings as a single slot at the first instant after the gap.

use std::sync::Arc;

use super::calendar::Calendar;
use super::zone::Zone;

/// What the engine evaluates.
#[derive(Debug, Clone)]
pub enum Rule {
    /// `@every`: multiples of the period since the Unix epoch, in any zone.
    Every {
        /// Milliseconds, at least 1.
        period_ms: i64,
    },
    /// A calendar expression in a zone.
    Calendar {
        /// The matching readings.
        calendar: Calendar,
        /// The zone's offset changes.
        zone: Arc<Zone>,
        /// `once` policy and a fixed-time job.
        once_fixed: bool,
    },
}

impl Rule {
    /// The first fire instant strictly after `after_ms` (Unix milliseconds).
    pub fn next_after_ms(&self, after_ms: i64) -> Option<i64> {
        match self {
            Rule::Every { period_ms } => after_ms
                .div_euclid(*period_ms)
                .checked_add(1)?
                .checked_mul(*period_ms),
            Rule::Calendar {
                calendar,
                zone,
                once_fixed,
            } => {
                let from = after_ms.div_euclid(1000).checked_add(1)?;
                next_calendar(calendar, zone, *once_fixed, from)?.checked_mul(1000)
            }
        }
    }
}

/// The first fire instant at or after `from` (Unix seconds).
fn next_calendar(calendar: &Calendar, zone: &Zone, once_fixed: bool, from: i64) -> Option<i64> {
    let mut segment = zone.segment_at(from);
    if once_fixed && segment.start == Some(from) {
        // `from` is the first instant after a change: if the clock jumped
        // forward there, skipped fire times fire now.
        if let Some(before) = zone.previous_offset(segment.index) {
            if before < segment.offset
                && calendar
                    .next_in(from + before, from + segment.offset)
                    .is_some()
            {
                return Some(from);
            }
        }
    }
    let mut from = from;
    loop {
        let offset = segment.offset;
        let mut lo = from.checked_add(offset)?;
        if once_fixed {
            if let (Some(start), Some(before)) =
                (segment.start, zone.previous_offset(segment.index))
            {
                // Readings below start + before were shown by the previous segment.
                lo = lo.max(start + before);
            }
        }
        let hi = segment.end.map_or(i64::MAX, |end| end + offset);
        if let Some(reading) = calendar.next_in(lo, hi) {
            return Some(reading - offset);
        }
        let end = segment.end?;
        let next = zone.segment(segment.index + 1);
        if once_fixed
            && next.offset > offset
            && calendar.next_in(end + offset, end + next.offset).is_some()
        {
            // Fire times in the skipped readings fire once, right after the gap.
            return Some(end);
        }
        segment = next;
        from = end;
    }
}
