//! Unit tests of the public surface: names, errors, termination and the
//! edges of the timeline. Fire-time cases live in `tests/data/cron_cases.txt`.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use super::*;

fn at(rfc3339: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(rfc3339)
        .expect("valid instant")
        .with_timezone(&Utc)
}

fn parse(
    expr: &str,
    dialect: Dialect,
    tz: &str,
    dst: DstPolicy,
) -> Result<Schedule, ScheduleError> {
    Schedule::parse(expr, dialect, tz, dst)
}

#[test]
fn dialect_and_policy_names() {
    assert_eq!(Dialect::default(), Dialect::Cron);
    assert_eq!(DstPolicy::default(), DstPolicy::Once);
    assert_eq!(
        serde_json::to_string(&Dialect::Quartz).unwrap(),
        "\"quartz\""
    );
    assert_eq!(
        serde_json::to_string(&DstPolicy::Literal).unwrap(),
        "\"literal\""
    );
    assert_eq!(
        serde_json::from_str::<DstPolicy>("\"once\"").unwrap(),
        DstPolicy::Once
    );
    assert!(serde_json::from_str::<Dialect>("\"vixie\"").is_err());
    assert_eq!("Quartz".parse::<Dialect>(), Ok(Dialect::Quartz));
    assert_eq!("literal".parse::<DstPolicy>(), Ok(DstPolicy::Literal));
    let err = "vixie".parse::<Dialect>().unwrap_err();
    assert_eq!(err.code(), "unknown_dialect");
    assert!(err.to_string().contains("`vixie`"));
    let err = "twice".parse::<DstPolicy>().unwrap_err();
    assert_eq!(err.code(), "unknown_dst_policy");
    assert!(err.to_string().contains("`twice`"));
}

#[test]
fn schedule_is_shareable() {
    fn check<T: Clone + Send + Sync + std::fmt::Debug + 'static>() {}
    check::<Schedule>();
}

#[test]
fn errors_have_codes_positions_and_name_the_field() {
    let cases: [(&str, Dialect, &str, Option<usize>, &str); 8] = [
        ("", Dialect::Cron, "invalid_expression", None, "empty"),
        (
            "* * * *",
            Dialect::Cron,
            "invalid_expression",
            None,
            "found 4",
        ),
        (
            "* * * * *",
            Dialect::Quartz,
            "invalid_expression",
            None,
            "quartz",
        ),
        (
            "0 0 9 * * MON#0",
            Dialect::Quartz,
            "invalid_expression",
            Some(10),
            "day-of-week field",
        ),
        (
            "0 0 9 ? * 0",
            Dialect::Quartz,
            "invalid_expression",
            Some(10),
            "out of range 1-7",
        ),
        (
            "@every 5",
            Dialect::Cron,
            "invalid_expression",
            Some(7),
            "needs a unit",
        ),
        (
            "0 0 30 2 *",
            Dialect::Cron,
            "never_fires",
            Some(4),
            "day-of-month field `30`",
        ),
        (
            "0 0 0 31 4 ?",
            Dialect::Quartz,
            "never_fires",
            Some(6),
            "month field `4`",
        ),
    ];
    for (expr, dialect, code, position, needle) in cases {
        let err = parse(expr, dialect, "UTC", DstPolicy::Once).unwrap_err();
        assert_eq!(err.code(), code, "{expr}: {err}");
        assert_eq!(err.position(), position, "{expr}: {err}");
        assert!(err.to_string().contains(needle), "{expr}: {err}");
    }
    let err = parse(
        "* * * * *",
        Dialect::Cron,
        "Europe/Atlantis",
        DstPolicy::Once,
    )
    .unwrap_err();
    assert_eq!(err.code(), "unknown_timezone");
    assert!(err.to_string().contains("Europe/Atlantis"));
}

#[test]
fn a_time_only_in_a_gap_never_fires_under_literal() {
    // 2026-03-29 02:30 does not exist in Berlin; the year field allows only that day.
    let err = parse(
        "0 30 2 29 3 ? 2026",
        Dialect::Quartz,
        "Europe/Berlin",
        DstPolicy::Literal,
    )
    .unwrap_err();
    assert_eq!(err.code(), "never_fires");
    assert!(err.to_string().contains("dst=literal"), "{err}");
    let once = parse(
        "0 30 2 29 3 ? 2026",
        Dialect::Quartz,
        "Europe/Berlin",
        DstPolicy::Once,
    )
    .unwrap();
    assert_eq!(
        once.next_after(at("2026-01-01T00:00:00Z")),
        Some(at("2026-03-29T01:00:00Z"))
    );
}

#[test]
fn exhausted_years_end_the_iterator() {
    let s = parse("0 0 0 1 1 ? 2027", Dialect::Quartz, "UTC", DstPolicy::Once).unwrap();
    let all: Vec<_> = s.fire_times(at("2020-01-01T00:00:00Z")).collect();
    assert_eq!(all, vec![at("2027-01-01T00:00:00Z")]);
    assert_eq!(s.next_after(at("2027-01-01T00:00:00Z")), None);
}

#[test]
fn rare_dates_are_found_quickly() {
    // Feb 29 that is also a Sunday (`*/7` starts with `*`, so both must match):
    // 2032, 2060, 2088 (Python's datetime.date.weekday()).
    let s = parse(
        "0 0 29 2 */7",
        Dialect::Cron,
        "Europe/Berlin",
        DstPolicy::Once,
    )
    .unwrap();
    let started = Instant::now();
    let years: Vec<_> = s
        .fire_times(at("2026-01-01T00:00:00Z"))
        .take(3)
        .map(|t| t.with_timezone(&s.timezone()).to_rfc3339())
        .collect();
    assert_eq!(
        years,
        [
            "2032-02-29T00:00:00+01:00",
            "2060-02-29T00:00:00+01:00",
            "2088-02-29T00:00:00+01:00"
        ]
    );
    assert!(started.elapsed() < Duration::from_secs(1));
}

#[test]
fn beyond_the_tz_tables_offsets_stay_as_they_last_were() {
    // chrono-tz lists Berlin's changes up to 2099; later instants are CET.
    let s = parse(
        "0 12 1 7 *",
        Dialect::Cron,
        "Europe/Berlin",
        DstPolicy::Once,
    )
    .unwrap();
    let next = s.next_after(at("2150-01-01T00:00:00Z")).unwrap();
    assert_eq!(next, at("2150-07-01T11:00:00Z"));
    // Around the year 97 000.
    let far = DateTime::from_timestamp(3_000_000_000_000, 0).unwrap();
    assert!(s.next_after(far).is_some_and(|t| t > far));
}

#[test]
fn instants_before_1970_work() {
    let s = parse(
        "0 0 1 1 *",
        Dialect::Cron,
        "America/New_York",
        DstPolicy::Once,
    )
    .unwrap();
    assert_eq!(
        s.next_after(at("1950-06-01T00:00:00Z")),
        Some(at("1951-01-01T05:00:00Z"))
    );
}

#[test]
fn every_is_anchored_at_the_epoch_on_both_sides() {
    let s = parse(
        "@every 1h30m",
        Dialect::Cron,
        "Asia/Kolkata",
        DstPolicy::Once,
    )
    .unwrap();
    assert_eq!(s.next_after_ms(-1), Some(0));
    assert_eq!(s.next_after_ms(0), Some(5_400_000));
    assert_eq!(s.next_after_ms(-5_400_000), Some(0));
    assert_eq!(s.next_after_ms(-5_400_001), Some(-5_400_000));
    assert_eq!(s.normalized(), "@every 1h30m");
}

#[test]
fn next_after_the_last_representable_instant_is_none() {
    let s = parse("* * * * * *", Dialect::Cron, "UTC", DstPolicy::Once).unwrap();
    assert_eq!(s.next_after(DateTime::<Utc>::MAX_UTC), None);
    let e = parse("@every 1s", Dialect::Cron, "UTC", DstPolicy::Once).unwrap();
    assert_eq!(e.next_after_ms(i64::MAX), None);
}

#[test]
fn clock_following_is_read_from_the_time_fields() {
    let follows = |e: &str| {
        parse(e, Dialect::Cron, "UTC", DstPolicy::Once)
            .unwrap()
            .follows_clock()
    };
    assert!(follows("* 2 * * *"));
    assert!(follows("*/15 * * * *"));
    assert!(follows("@hourly"));
    assert!(follows("*/10 30 2 * * *"));
    assert!(!follows("30 2 * * *"));
    assert!(!follows("@daily"));
    assert!(!follows("0 0-23 * * *"));
}
