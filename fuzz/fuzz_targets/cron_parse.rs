//! Fuzz the cron parser and evaluator: any text, in either dialect, under
//! either DST policy, in a few zones chosen for their transitions, must parse
//! or fail without panicking; an accepted schedule must re-parse from its
//! normalized form to the same normalized form, and `next_after` must return
//! instants strictly after its input, in order, promptly.

#![no_main]

use chrono::DateTime;
use gnomon::schedule::{validate, Dialect, DstPolicy, Schedule};
use libfuzzer_sys::fuzz_target;

const ZONES: [&str; 6] = [
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "Australia/Lord_Howe",
    "America/Sao_Paulo",
    "Asia/Hebron",
];

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let Ok(expr) = std::str::from_utf8(rest) else {
        return;
    };
    let dialect = if selector & 1 == 0 { Dialect::Cron } else { Dialect::Quartz };
    let dst = if selector & 2 == 0 { DstPolicy::Once } else { DstPolicy::Literal };
    let zone = ZONES[usize::from(selector >> 2) % ZONES.len()];
    let Ok(schedule) = Schedule::parse(expr, dialect, zone, dst) else {
        return;
    };
    let normalized = schedule.normalized();
    let again = Schedule::parse(&normalized, dialect, zone, dst)
        .unwrap_or_else(|e| panic!("normalized `{normalized}` of `{expr}` fails: {e}"));
    assert_eq!(again.normalized(), normalized, "normalization is not stable");
    // 2026-01-01T00:00:00Z, and instants around a Berlin transition.
    for start in [1_767_225_600_000i64, 1_792_886_400_000, 0] {
        let mut t = start;
        for _ in 0..20 {
            let Some(next) = schedule.next_after_ms(t) else {
                break;
            };
            assert!(next > t, "`{expr}`: next_after({t}) = {next}");
            assert_eq!(again.next_after_ms(t), Some(next), "re-parsed schedule differs");
            t = next;
        }
    }
    if selector & 0x80 != 0 {
        let from = DateTime::from_timestamp(1_767_225_600, 0).expect("in range");
        let v = validate(expr, dialect, zone, dst, from, 3).expect("parsed once already");
        assert!(!v.description.is_empty());
    }
});
