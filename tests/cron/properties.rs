//! Properties of `next_after` for random expressions, zones, policies and
//! instants, checked against a brute-force oracle written here from SPEC §6
//! alone: the oracle keeps the expression as generated (not as gnomon parses
//! it), matches readings with chrono, and asks chrono-tz, not gnomon's zone
//! table, which instants show which reading.
//!
//! For each case: `next(t) > t`; `next(t)` is a fire instant under the
//! policy; and no fire instant lies strictly between `t` and `next(t)`,
//! checked minute by minute over a window of three days after `t`.

use chrono::{
    DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, Offset, TimeZone, Timelike, Utc,
};
use chrono_tz::Tz;
use gnomon::schedule::{Dialect, DstPolicy, Schedule};
use proptest::prelude::*;

/// One item of a generated field.
#[derive(Debug, Clone)]
enum It {
    Any,
    Val(u32),
    Range(u32, u32),
    StepStar(u32),
    StepRange(u32, u32, u32),
    Last(u32),
    Weekday(u32),
    LastWeekday,
    Nth(u32, u32),
    LastOf(u32),
}

impl It {
    fn render(&self) -> String {
        match *self {
            It::Any => "*".into(),
            It::Val(v) => v.to_string(),
            It::Range(a, b) => format!("{a}-{b}"),
            It::StepStar(n) => format!("*/{n}"),
            It::StepRange(a, b, n) => format!("{a}-{b}/{n}"),
            It::Last(0) => "L".into(),
            It::Last(n) => format!("L-{n}"),
            It::Weekday(d) => format!("{d}W"),
            It::LastWeekday => "LW".into(),
            It::Nth(d, n) => format!("{d}#{n}"),
            It::LastOf(d) => format!("{d}L"),
        }
    }

    /// Does value `v` (with `min` the field's lowest value) match a plain item?
    fn plain(&self, v: u32, min: u32) -> bool {
        match *self {
            It::Any => true,
            It::Val(x) => v == x,
            It::Range(a, b) => a <= v && v <= b,
            It::StepStar(n) => (v - min) % n == 0,
            It::StepRange(a, b, n) => a <= v && v <= b && (v - a) % n == 0,
            _ => false,
        }
    }
}

#[derive(Debug, Clone)]
struct Expr {
    minute: Vec<It>,
    hour: Vec<It>,
    dom: Vec<It>,
    month: Vec<It>,
    dow: Vec<It>,
}

fn render(items: &[It]) -> String {
    items.iter().map(It::render).collect::<Vec<_>>().join(",")
}

fn star(items: &[It]) -> bool {
    matches!(items.first(), Some(It::Any | It::StepStar(_)))
}

fn days_in_month(d: NaiveDate) -> u32 {
    let (y, m) = if d.month() == 12 {
        (d.year() + 1, 1)
    } else {
        (d.year(), d.month() + 1)
    };
    NaiveDate::from_ymd_opt(y, m, 1)
        .expect("first of a month")
        .pred_opt()
        .expect("a day before")
        .day()
}

/// 0 = Sunday.
fn wd(d: NaiveDate) -> u32 {
    d.weekday().num_days_from_sunday()
}

fn is_weekday(d: NaiveDate) -> bool {
    (1..=5).contains(&wd(d))
}

fn dom_matches(item: &It, date: NaiveDate) -> bool {
    let len = days_in_month(date);
    let day = date.day();
    let on = |d: u32| date.with_day(d).expect("day exists");
    match *item {
        It::Last(n) => len > n && day == len - n,
        It::Weekday(d0) => {
            if d0 > len {
                return false;
            }
            let target = on(d0);
            let nearest = match wd(target) {
                6 if d0 == 1 => 3,
                6 => d0 - 1,
                0 if d0 == len => d0 - 2,
                0 => d0 + 1,
                _ => d0,
            };
            day == nearest
        }
        It::LastWeekday => {
            let last = (1..=len)
                .rev()
                .find(|&d| is_weekday(on(d)))
                .expect("a weekday");
            day == last
        }
        _ => item.plain(day, 1),
    }
}

fn dow_matches(item: &It, date: NaiveDate) -> bool {
    let w = wd(date);
    let len = days_in_month(date);
    match *item {
        It::Nth(d, n) => w == d % 7 && (date.day() - 1) / 7 + 1 == n,
        It::LastOf(d) => w == d % 7 && date.day() + 7 > len,
        // Cron numbering 0-7: 7 is Sunday too.
        _ => (0..=7).any(|v| v % 7 == w && item.plain(v, 0)),
    }
}

impl Expr {
    fn text(&self) -> String {
        format!(
            "{} {} {} {} {}",
            render(&self.minute),
            render(&self.hour),
            render(&self.dom),
            render(&self.month),
            render(&self.dow)
        )
    }

    fn follows_clock(&self) -> bool {
        star(&self.minute) || star(&self.hour)
    }

    /// Does a wall-clock reading match (seconds are always 0)?
    fn matches(&self, r: NaiveDateTime) -> bool {
        if r.second() != 0
            || !self.minute.iter().any(|i| i.plain(r.minute(), 0))
            || !self.hour.iter().any(|i| i.plain(r.hour(), 0))
            || !self.month.iter().any(|i| i.plain(r.month(), 1))
        {
            return false;
        }
        let date = r.date();
        let dom = self.dom.iter().any(|i| dom_matches(i, date));
        let dow = self.dow.iter().any(|i| dow_matches(i, date));
        if star(&self.dom) || star(&self.dow) {
            dom && dow
        } else {
            dom || dow
        }
    }
}

fn offset(tz: Tz, u: DateTime<Utc>) -> i64 {
    i64::from(
        tz.offset_from_utc_datetime(&u.naive_utc())
            .fix()
            .local_minus_utc(),
    )
}

/// Is `u` a fire instant of `e` in `tz` under `dst`? (SPEC §6.)
fn fires(e: &Expr, tz: Tz, dst: DstPolicy, u: DateTime<Utc>) -> bool {
    let reading = u.with_timezone(&tz).naive_local();
    let fixed_once = dst == DstPolicy::Once && !e.follows_clock();
    if !fixed_once {
        return e.matches(reading);
    }
    if e.matches(reading)
        && tz
            .from_local_datetime(&reading)
            .earliest()
            .map(|x| x.with_timezone(&Utc))
            == Some(u)
    {
        return true;
    }
    // A clock turned forward at u: skipped readings that match fire at u.
    let (before, after) = (offset(tz, u - Duration::seconds(1)), offset(tz, u));
    if after > before {
        let start = u.naive_utc() + Duration::seconds(before);
        let mut r = start;
        while r < u.naive_utc() + Duration::seconds(after) {
            if e.matches(r) {
                return true;
            }
            r += Duration::minutes(1);
        }
    }
    false
}

fn items(one: impl Strategy<Value = It> + Clone + 'static) -> impl Strategy<Value = Vec<It>> {
    prop_oneof![
        3 => one.clone().prop_map(|i| vec![i]),
        1 => proptest::collection::vec(one, 2..=3),
    ]
}

fn time_item(max: u32, hot: u32) -> impl Strategy<Value = It> + Clone {
    prop_oneof![
        2 => Just(It::Any),
        2 => (1..=max / 2).prop_map(It::StepStar),
        4 => (0..=max).prop_map(It::Val),
        3 => (0..=hot).prop_map(It::Val),
        1 => (0..=max).prop_flat_map(move |a| (Just(a), a..=max)).prop_map(|(a, b)| It::Range(a, b)),
        1 => (0..=max, 1..=max / 2)
            .prop_flat_map(move |(a, n)| (Just(a), a..=max, Just(n)))
            .prop_map(|(a, b, n)| It::StepRange(a, b, n)),
    ]
}

fn expr() -> impl Strategy<Value = Expr> {
    let minute = items(time_item(59, 59));
    let hour = items(time_item(23, 3));
    let dom = items(prop_oneof![
        6 => Just(It::Any),
        2 => (1..=31u32).prop_map(It::Val),
        1 => (1..=31u32).prop_flat_map(|a| (Just(a), a..=31)).prop_map(|(a, b)| It::Range(a, b)),
        1 => (1..=15u32).prop_map(It::StepStar),
        1 => (0..=5u32).prop_map(It::Last),
        1 => (1..=31u32).prop_map(It::Weekday),
        1 => Just(It::LastWeekday),
    ]);
    let month = items(prop_oneof![
        6 => Just(It::Any),
        1 => (1..=12u32).prop_map(It::Val),
        1 => (1..=12u32).prop_flat_map(|a| (Just(a), a..=12)).prop_map(|(a, b)| It::Range(a, b)),
    ]);
    let dow = items(prop_oneof![
        6 => Just(It::Any),
        2 => (0..=7u32).prop_map(It::Val),
        1 => (0..=7u32).prop_flat_map(|a| (Just(a), a..=7)).prop_map(|(a, b)| It::Range(a, b)),
        1 => ((0..=6u32), (1..=5u32)).prop_map(|(d, n)| It::Nth(d, n)),
        1 => (0..=6u32).prop_map(It::LastOf),
    ]);
    (minute, hour, dom, month, dow).prop_map(|(minute, hour, dom, month, dow)| Expr {
        minute,
        hour,
        dom,
        month,
        dow,
    })
}

const ZONES: [&str; 8] = [
    "Europe/Berlin",
    "America/New_York",
    "Australia/Lord_Howe",
    "America/Sao_Paulo",
    "Asia/Hebron",
    "Asia/Kolkata",
    "Pacific/Apia",
    "UTC",
];

/// Offset changes (Unix seconds) from the case file's header, with their
/// zones, to start near.
const CHANGES: [(&str, i64); 10] = [
    ("Europe/Berlin", 1_774_746_000),       // 2026-03-29T01:00Z
    ("Europe/Berlin", 1_792_890_000),       // 2026-10-25T01:00Z
    ("America/New_York", 1_772_953_200),    // 2026-03-08T07:00Z
    ("America/New_York", 1_793_512_800),    // 2026-11-01T06:00Z
    ("Australia/Lord_Howe", 1_775_314_800), // 2026-04-04T15:00Z
    ("Australia/Lord_Howe", 1_790_955_000), // 2026-10-03T15:30Z
    ("America/Sao_Paulo", 1_518_919_200),   // 2018-02-18T02:00Z
    ("America/Sao_Paulo", 1_541_300_400),   // 2018-11-04T03:00Z
    ("Asia/Hebron", 1_572_037_200),         // 2019-10-25T21:00Z
    ("Pacific/Apia", 1_325_239_200),        // 2011-12-30T10:00Z
];

/// A zone and an instant: anywhere in 2017–2030, within a day of a change,
/// or within seconds of one.
fn zone_and_start() -> impl Strategy<Value = (&'static str, i64)> {
    prop_oneof![
        1 => (proptest::sample::select(ZONES.to_vec()), 1_500_000_000i64..1_900_000_000),
        3 => (proptest::sample::select(CHANGES.to_vec()), -86_400i64..86_400)
            .prop_map(|((zone, c), d)| (zone, c + d)),
        1 => (proptest::sample::select(CHANGES.to_vec()), -3i64..=1)
            .prop_map(|((zone, c), d)| (zone, c + d)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn next_is_the_first_fire_instant_after_t(
        e in expr(),
        (zone, t) in zone_and_start(),
        literal in any::<bool>(),
    ) {
        let dst = if literal { DstPolicy::Literal } else { DstPolicy::Once };
        let text = e.text();
        let schedule = match Schedule::parse(&text, Dialect::Cron, zone, dst) {
            Ok(s) => s,
            Err(err) => {
                // Only a date that never exists may be refused.
                prop_assert_eq!(err.code(), "never_fires", "`{}`: {}", text, err);
                return Ok(());
            }
        };
        let tz: Tz = zone.parse().expect("zone exists");
        let mut t = DateTime::from_timestamp(t, 0).expect("in range");
        let window_end = t + Duration::days(3);
        // Successive steps, until the window is covered.
        while t < window_end {
            let next = schedule.next_after(t);
            if let Some(n) = next {
                prop_assert!(n > t, "`{}` in {}: next_after({}) = {}", text, zone, t, n);
                prop_assert!(
                    fires(&e, tz, dst, n),
                    "`{}` in {} ({:?}): next_after({}) = {} is not a fire instant", text, zone, dst, t, n
                );
            }
            let limit = next.map_or(window_end, |n| n.min(window_end));
            // Minutes strictly between t and next (seconds are always 0).
            let mut u = t + Duration::seconds(60 - t.timestamp().rem_euclid(60));
            while u < limit {
                prop_assert!(
                    !fires(&e, tz, dst, u),
                    "`{}` in {} ({:?}): {} fires but next_after({}) = {:?}", text, zone, dst, u, t, next
                );
                u += Duration::minutes(1);
            }
            match next {
                Some(n) => t = n,
                None => break,
            }
        }
    }
}
