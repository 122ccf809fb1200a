//! `gnomon cron next|explain` as a user runs them (SPEC §3).

use std::process::{Command, Output};

fn gnomon(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gnomon"))
        .args(args)
        .output()
        .expect("run gnomon")
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).expect("utf-8")
}

fn stderr(out: &Output) -> String {
    String::from_utf8(out.stderr.clone()).expect("utf-8")
}

/// An error is exactly one line on stderr, nothing on stdout, exit code 2,
/// and the line contains every one of `needles`.
fn assert_error(args: &[&str], needles: &[&str]) {
    let out = gnomon(args);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
    assert!(out.stdout.is_empty(), "{args:?} printed {}", stdout(&out));
    assert_eq!(err.lines().count(), 1, "{args:?}: not one line: {err}");
    for needle in needles {
        assert!(err.contains(needle), "{args:?}: `{needle}` not in {err}");
    }
}

#[test]
fn next_prints_rfc3339_with_the_zone_offset() {
    // Berlin skips 02:00-03:00 on 2026-03-29 (zoneinfo); once moves 02:30 to 03:00.
    let out = gnomon(&[
        "cron",
        "next",
        "30 2 * * *",
        "--tz",
        "Europe/Berlin",
        "--from",
        "2026-03-28T12:00:00+01:00",
        "--count",
        "3",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "2026-03-29T03:00:00+02:00\n2026-03-30T02:30:00+02:00\n2026-03-31T02:30:00+02:00\n"
    );
}

#[test]
fn next_defaults_to_five_utc_instants_from_now() {
    let out = gnomon(&["cron", "next", "* * * * *"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let lines: Vec<_> = stdout(&out).lines().map(str::to_string).collect();
    assert_eq!(lines.len(), 5);
    assert!(lines.iter().all(|l| l.ends_with(":00+00:00")), "{lines:?}");
}

#[test]
fn next_takes_dialect_and_policy() {
    let out = gnomon(&[
        "cron",
        "next",
        "0 30 2 ? * SUN",
        "--dialect",
        "quartz",
        "--dst",
        "literal",
        "--tz",
        "Europe/Berlin",
        "--from",
        "2026-03-22T12:00:00+01:00",
        "--count",
        "1",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    // Literal: 2026-03-29 02:30 does not exist, next Sunday is 2026-04-05.
    assert_eq!(stdout(&out), "2026-04-05T02:30:00+02:00\n");
}

#[test]
fn bad_input_is_one_line_and_exit_2() {
    assert_error(
        &["cron", "next", "0 61 * * *"],
        &["hour field", "`61`", "byte 2"],
    );
    assert_error(&["cron", "next", "* * * *"], &["expected 5, 6", "found 4"]);
    assert_error(
        &["cron", "next", "* * * * *", "--tz", "Mars/Olympus"],
        &["unknown time zone", "Mars/Olympus"],
    );
    assert_error(
        &["cron", "next", "0 0 30 2 *"],
        &["can never fire", "day-of-month"],
    );
    assert_error(
        &["cron", "next", "0 0 0 31 4 ?", "--dialect", "quartz"],
        &["can never fire"],
    );
    assert_error(
        &["cron", "next", "* * * * *", "--dialect", "vixie"],
        &["--dialect", "unknown dialect", "vixie"],
    );
    assert_error(
        &["cron", "next", "* * * * *", "--dst", "twice"],
        &["--dst", "unknown dst policy", "twice"],
    );
    assert_error(
        &["cron", "next", "* * * * *", "--from", "yesterday"],
        &["--from", "yesterday"],
    );
    assert_error(&["cron", "next", "* * * * *", "--count", "0"], &["--count"]);
    assert_error(
        &["cron", "next", "@every 0s"],
        &["@every", "longer than zero"],
    );
    assert_error(
        &["cron", "next", "@fortnightly"],
        &["unknown macro", "@fortnightly"],
    );
    assert_error(
        &["cron", "explain", "0 0 * * FRI#6"],
        &["day-of-week field", "FRI#6"],
    );
}

#[test]
fn every_malformed_field_names_its_field() {
    for (expr, field) in [
        ("60 * * * * *", "second field"),
        ("60 * * * *", "minute field"),
        ("* 24 * * *", "hour field"),
        ("* * 0 * *", "day-of-month field"),
        ("* * * 13 *", "month field"),
        ("* * * FOO *", "month field"),
        ("* * * * 8", "day-of-week field"),
        ("0 0 0 * * * 1969", "year field"),
        ("*/0 * * * *", "minute field"),
        ("* * L-40 * *", "day-of-month field"),
        ("* ? * * *", "hour field"),
    ] {
        assert_error(&["cron", "next", expr], &[field]);
    }
}

#[test]
fn explain_describes_and_warns() {
    let out = gnomon(&[
        "cron",
        "explain",
        "30 2 * * *",
        "--tz",
        "Europe/Berlin",
        "--from",
        "2026-01-01T00:00:00Z",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("description: at 02:30, every day"), "{text}");
    assert!(text.contains("warning[dst_moved]: on 2026-03-29"), "{text}");
    assert!(
        text.contains("warning[dst_first_occurrence]: on 2026-10-25"),
        "{text}"
    );
}

#[test]
fn explain_json_matches_the_http_shape() {
    let out = gnomon(&[
        "cron",
        "explain",
        "0 9 1 * MON",
        "--json",
        "--from",
        "2026-01-01T00:00:00Z",
        "--count",
        "2",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["valid"], true);
    assert_eq!(v["normalized"], "0 0 9 1 * 1");
    // Day 1 OR Monday: Thu Jan 1, then Mon Jan 5.
    assert_eq!(v["next"][0]["utc"], "2026-01-01T09:00:00Z");
    assert_eq!(v["next"][1]["local"], "2026-01-05T09:00:00+00:00");
    assert_eq!(v["warnings"][0]["code"], "day_or_rule");
}
