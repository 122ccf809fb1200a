//! The calendar side of a cron expression: which wall-clock readings match,
//! with no time zone in sight. Readings are "local seconds": seconds since
//! 1970-01-01T00:00:00 on the local clock, as if that clock were UTC. The
//! search walks months, not days or minutes, using a 31-bit mask of the
//! matching days of each month, so the next match is found in a few dozen
//! operations even when it is years away.

use super::field::{Field, Item, MIN_YEAR};
use super::Dialect;

const DAY: i64 = 86_400;

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
/// `days_from_civil`).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day number from [`days_from_civil`].
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (
        if m <= 2 {
            yoe + era * 400 + 1
        } else {
            yoe + era * 400
        },
        m,
        d,
    )
}

/// 0 = Sunday … 6 = Saturday.
pub fn weekday(days: i64) -> u32 {
    (days + 4).rem_euclid(7) as u32
}

/// Number of days in a month.
pub fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        4 | 6 | 9 | 11 => 30,
        2 if y % 4 == 0 && (y % 100 != 0 || y % 400 == 0) => 29,
        2 => 28,
        _ => 31,
    }
}

/// Lowest set bit at or above `from`.
fn next_bit(mask: u64, from: u32) -> Option<u32> {
    if from >= 64 {
        return None;
    }
    let m = mask & (u64::MAX << from);
    (m != 0).then(|| m.trailing_zeros())
}

/// How the two day fields combine (SPEC §6, the Vixie/cronie rule).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DayCombine {
    /// Both fields restricted: a day matches if either matches.
    Or,
    /// At least one field starts with `*` or is `?`: both must match.
    And,
}

/// The compiled day-of-month and day-of-week fields.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Days {
    /// Plain days of the month, bits 1–31.
    dom: u32,
    /// `L-n` offsets, bit n (`L` is bit 0).
    last: u32,
    /// `nW` days, bits 1–31.
    nearest_weekday: u32,
    last_weekday: bool,
    /// Plain weekdays, bits 0–6 (Sunday = 0).
    dow: u8,
    /// For each weekday of the month's first day, the days 1–31 whose weekday
    /// is in `dow`.
    dow_by_first: [u32; 7],
    /// `dL` weekdays, bits 0–6.
    last_of: u8,
    /// `d#n`: for each weekday, the weeks wanted (bits 1–5).
    nth: [u8; 7],
    combine: DayCombine,
    /// True when neither field restricts anything: every day matches.
    every_day: bool,
}

impl Days {
    fn new(dom: &Field, dow: &Field, dialect: Dialect) -> Days {
        let mut days = Days {
            dom: dom.plain_bits(dialect)[0] as u32,
            last: 0,
            nearest_weekday: 0,
            last_weekday: false,
            dow: dow.plain_bits(dialect)[0] as u8,
            dow_by_first: [0; 7],
            last_of: 0,
            nth: [0; 7],
            combine: DayCombine::And,
            every_day: false,
        };
        for item in &dom.items {
            match *item {
                Item::Last(n) => days.last |= 1 << n,
                Item::NearestWeekday(d) => days.nearest_weekday |= 1 << d,
                Item::LastWeekday => days.last_weekday = true,
                _ => {}
            }
        }
        for item in &dow.items {
            match *item {
                Item::LastOf(d) => days.last_of |= 1 << super::field::dow_internal(d, dialect),
                Item::Nth(d, n) => {
                    days.nth[super::field::dow_internal(d, dialect) as usize] |= 1 << n
                }
                _ => {}
            }
        }
        for first in 0..7u32 {
            days.dow_by_first[first as usize] = (1..=31u32)
                .filter(|d| days.dow & (1 << ((first + d - 1) % 7)) != 0)
                .fold(0, |mask, d| mask | 1 << d);
        }
        let dom_any = dom.starts_with_star || dom.is_question();
        let dow_any = dow.starts_with_star || dow.is_question();
        days.combine = if dom_any || dow_any {
            DayCombine::And
        } else {
            DayCombine::Or
        };
        days.every_day = dom.is_any() && dow.is_any();
        days
    }

    /// Days 1–31 of the month that match, as bits.
    fn mask(&self, y: i64, m: u32) -> u32 {
        let len = days_in_month(y, m);
        let valid = (u32::MAX >> (31 - len)) & !1;
        if self.every_day {
            return valid;
        }
        let first_day = days_from_civil(y, m, 1);
        let first = weekday(first_day);
        let wd = |d: u32| (first + d - 1) % 7;

        let mut dom = self.dom;
        let mut last = self.last;
        while last != 0 {
            let n = last.trailing_zeros();
            last &= last - 1;
            if n < len {
                dom |= 1 << (len - n);
            }
        }
        let mut near = self.nearest_weekday;
        while near != 0 {
            let d = near.trailing_zeros();
            near &= near - 1;
            if d <= len {
                dom |= 1 << nearest_weekday(d, len, wd(d));
            }
        }
        if self.last_weekday {
            dom |= 1 << nearest_weekday(len, len, wd(len));
        }

        let mut dow = self.dow_by_first[first as usize];
        for w in 0..7u32 {
            let bit = 1u8 << w;
            if self.last_of & bit != 0 {
                dow |= 1 << (len - (wd(len) + 7 - w) % 7);
            }
            let weeks = self.nth[w as usize];
            if weeks != 0 {
                let first_w = 1 + (w + 7 - first) % 7;
                for n in 1..=5u32 {
                    let d = first_w + 7 * (n - 1);
                    if weeks & (1 << n) != 0 && d <= len {
                        dow |= 1 << d;
                    }
                }
            }
        }
        let days = match self.combine {
            DayCombine::Or => dom | dow,
            DayCombine::And => dom & dow,
        };
        days & valid
    }
}

/// The weekday nearest day `d` without leaving the month (Quartz `W`):
/// Saturday moves to Friday unless that is in the previous month, Sunday to
/// Monday unless that is in the next month.
fn nearest_weekday(d: u32, len: u32, wd: u32) -> u32 {
    match wd {
        6 if d == 1 => 3,
        6 => d - 1,
        0 if d == len => d - 2,
        0 => d + 1,
        _ => d,
    }
}

/// The years the year field allows, or every year.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Years {
    Any,
    /// Bit `y - 1970`.
    Some([u128; 2]),
}

impl Years {
    fn contains(&self, y: i64) -> bool {
        match self {
            Years::Any => true,
            Years::Some(bits) => {
                let i = y - i64::from(MIN_YEAR);
                (0..256).contains(&i) && bits[(i / 128) as usize] & (1 << (i % 128)) != 0
            }
        }
    }

    /// The first allowed year at or after `y`.
    fn next(&self, y: i64) -> Option<i64> {
        match self {
            Years::Any => Some(y),
            Years::Some(_) => {
                let from = y.max(i64::from(MIN_YEAR));
                (from..i64::from(MIN_YEAR) + 256).find(|&y| self.contains(y))
            }
        }
    }
}

/// A compiled calendar: which local readings match the expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Calendar {
    seconds: u64,
    minutes: u64,
    hours: u64,
    months: u16,
    days: Days,
    years: Years,
}

/// How far ahead a search looks when no year field bounds it: the Gregorian
/// calendar repeats every 400 years, so nothing found in 401 never comes.
const HORIZON_YEARS: i64 = 401;

impl Calendar {
    /// Compile the seven fields (seconds first; the year field optional).
    pub fn new(fields: &[Field], dialect: Dialect) -> Calendar {
        let bits = |i: usize| fields[i].plain_bits(dialect)[0];
        let years = match fields.get(6) {
            Some(f) if !f.is_any() => Years::Some(f.plain_bits(dialect)),
            _ => Years::Any,
        };
        Calendar {
            seconds: bits(0) as u64,
            minutes: bits(1) as u64,
            hours: bits(2) as u64,
            months: bits(4) as u16,
            days: Days::new(&fields[3], &fields[5], dialect),
            years,
        }
    }

    /// How the day fields combine.
    pub fn day_combine(&self) -> DayCombine {
        self.days.combine
    }

    /// Whether any day at all matches in the year range (or 400 years).
    pub fn has_matching_day(&self) -> bool {
        let start = match &self.years {
            Years::Any => 2000,
            Years::Some(_) => i64::from(MIN_YEAR),
        };
        self.next_day(start, 1, 1, i64::MAX).is_some()
    }

    /// First matching day at or after the date, as (y, m, d), looking no
    /// further than day number `stop`.
    fn next_day(&self, mut y: i64, mut m: u32, mut d: u32, stop: i64) -> Option<(i64, u32, u32)> {
        let limit = y + HORIZON_YEARS;
        loop {
            if !self.years.contains(y) {
                y = self.years.next(y + 1)?;
                (m, d) = (1, 1);
            }
            if y > limit || days_from_civil(y, m, d) > stop {
                return None;
            }
            if self.months & (1 << m) != 0 {
                let mask = self.days.mask(y, m) & (u32::MAX << d);
                if mask != 0 {
                    let found = mask.trailing_zeros();
                    return (days_from_civil(y, m, found) <= stop).then_some((y, m, found));
                }
            }
            d = 1;
            m += 1;
            if m > 12 {
                (y, m) = (y + 1, 1);
            }
        }
    }

    /// First matching time of day at or after `tod` seconds, in seconds.
    fn next_time(&self, tod: i64) -> Option<i64> {
        let (h, mi, s) = (
            (tod / 3600) as u32,
            (tod / 60 % 60) as u32,
            (tod % 60) as u32,
        );
        let first_s = i64::from(self.seconds.trailing_zeros());
        let first_m = i64::from(self.minutes.trailing_zeros());
        let at = |h: u32, m: i64, s: i64| i64::from(h) * 3600 + m * 60 + s;
        if self.hours & (1 << h) != 0 {
            if self.minutes & (1 << mi) != 0 {
                if let Some(s2) = next_bit(self.seconds, s) {
                    return Some(at(h, i64::from(mi), i64::from(s2)));
                }
            }
            if let Some(m2) = next_bit(self.minutes, mi + 1) {
                return Some(at(h, i64::from(m2), first_s));
            }
        }
        next_bit(self.hours, h + 1).map(|h2| at(h2, first_m, first_s))
    }

    /// The first matching reading in `[lo, hi)`, in local seconds.
    pub fn next_in(&self, lo: i64, hi: i64) -> Option<i64> {
        if lo >= hi {
            return None;
        }
        let days = lo.div_euclid(DAY);
        let stop = (hi - 1).div_euclid(DAY);
        let (y, m, d) = civil_from_days(days);
        let (y2, m2, d2) = self.next_day(y, m, d, stop)?;
        let found = if (y2, m2, d2) == (y, m, d) {
            match self.next_time(lo.rem_euclid(DAY)) {
                Some(t) => days * DAY + t,
                None => {
                    let (y, m, d) = civil_from_days(days + 1);
                    let (y, m, d) = self.next_day(y, m, d, stop)?;
                    days_from_civil(y, m, d) * DAY + self.first_time()
                }
            }
        } else {
            days_from_civil(y2, m2, d2) * DAY + self.first_time()
        };
        (found < hi).then_some(found)
    }

    /// The first matching time of a day, in seconds.
    fn first_time(&self) -> i64 {
        i64::from(self.hours.trailing_zeros()) * 3600
            + i64::from(self.minutes.trailing_zeros()) * 60
            + i64::from(self.seconds.trailing_zeros())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_round_trip() {
        for z in [
            -1_000_000, -719_468, -1, 0, 1, 59, 10_957, 20_000, 2_000_000,
        ] {
            let (y, m, d) = civil_from_days(z);
            assert_eq!(days_from_civil(y, m, d), z);
        }
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(weekday(0), 4, "1970-01-01 was a Thursday");
        assert_eq!(days_in_month(2000, 2), 29);
        assert_eq!(days_in_month(1900, 2), 28);
    }

    #[test]
    fn nearest_weekday_stays_in_month() {
        // 2026-08-01 is a Saturday: 1W is Monday the 3rd.
        assert_eq!(nearest_weekday(1, 31, 6), 3);
        // 2026-05-31 is a Sunday: 31W is Friday the 29th.
        assert_eq!(nearest_weekday(31, 31, 0), 29);
        assert_eq!(nearest_weekday(15, 30, 6), 14);
        assert_eq!(nearest_weekday(15, 30, 0), 16);
    }
}
