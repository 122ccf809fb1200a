//! `next_after` for typical expressions, and a year of minutely slots.
//! Target (issue 3): median `next` under 1 µs for the common cases.

use std::hint::black_box;

use chrono::{DateTime, Utc};
use criterion::{criterion_group, criterion_main, Criterion};
use gnomon::schedule::{Dialect, DstPolicy, Schedule};

fn schedule(expr: &str, dialect: Dialect, tz: &str) -> Schedule {
    Schedule::parse(expr, dialect, tz, DstPolicy::Once).expect("valid expression")
}

fn next(c: &mut Criterion) {
    // 2026-03-28T12:34:56Z: the day before Berlin's spring change.
    let t: DateTime<Utc> = DateTime::from_timestamp(1_774_701_296, 0).expect("in range");
    let cases = [
        ("every minute", "* * * * *", Dialect::Cron, "UTC"),
        (
            "every minute, Berlin",
            "* * * * *",
            Dialect::Cron,
            "Europe/Berlin",
        ),
        (
            "daily 02:30, Berlin",
            "30 2 * * *",
            Dialect::Cron,
            "Europe/Berlin",
        ),
        (
            "weekdays 09:00, New York",
            "0 9 * * MON-FRI",
            Dialect::Cron,
            "America/New_York",
        ),
        (
            "last day 00:00 (0 0 L * *)",
            "0 0 L * *",
            Dialect::Cron,
            "Europe/Berlin",
        ),
        (
            "second Friday (FRI#2)",
            "0 0 12 ? * FRI#2",
            Dialect::Quartz,
            "Europe/Berlin",
        ),
        ("every 90s", "@every 90s", Dialect::Cron, "UTC"),
    ];
    let mut group = c.benchmark_group("next_after");
    for (name, expr, dialect, tz) in cases {
        let s = schedule(expr, dialect, tz);
        group.bench_function(name, |b| b.iter(|| s.next_after(black_box(t))));
    }
    group.finish();
}

fn year_of_minutes(c: &mut Criterion) {
    let from: DateTime<Utc> = DateTime::from_timestamp(1_767_225_600, 0).expect("in range");
    let s = schedule("* * * * *", Dialect::Cron, "Europe/Berlin");
    let mut group = c.benchmark_group("slots");
    group.sample_size(10);
    group.bench_function("a year of minutely slots, Berlin", |b| {
        b.iter(|| {
            let n = s.fire_times(black_box(from)).take(525_600).count();
            assert_eq!(n, 525_600);
        })
    });
    group.finish();
}

criterion_group!(benches, next, year_of_minutes);
criterion_main!(benches);
