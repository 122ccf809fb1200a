//! Runs `tests/data/cron_cases.txt`: each case's expected fire instants,
//! written in the zone's local time with its offset, in order.

use chrono::{DateTime, TimeDelta, Utc};
use gnomon::schedule::validate::fire_time;
use gnomon::schedule::{Dialect, DstPolicy, Schedule};

#[derive(Debug, Default)]
struct Case {
    name: String,
    line: usize,
    expr: String,
    dialect: Option<String>,
    tz: Option<String>,
    dst: Option<String>,
    from: String,
    expect: Vec<String>,
    end: bool,
}

fn load() -> Vec<Case> {
    let text = include_str!("../data/cron_cases.txt");
    let mut cases: Vec<Case> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, value) = line.split_once(' ').unwrap_or((line, ""));
        let value = value.trim().to_string();
        if key == "case" {
            cases.push(Case {
                name: value,
                line: i + 1,
                ..Case::default()
            });
            continue;
        }
        let case = cases
            .last_mut()
            .unwrap_or_else(|| panic!("line {}: `{key}` before any case", i + 1));
        match key {
            "expr" => case.expr = value,
            "dialect" => case.dialect = Some(value),
            "tz" => case.tz = Some(value),
            "dst" => case.dst = Some(value),
            "from" => case.from = value,
            "expect" => case.expect.push(value),
            "end" => case.end = true,
            other => panic!("line {}: unknown key `{other}`", i + 1),
        }
    }
    cases
}

fn run(case: &Case) -> Result<(), String> {
    let dialect: Dialect = case
        .dialect
        .as_deref()
        .unwrap_or("cron")
        .parse()
        .map_err(|e| format!("{e}"))?;
    let dst: DstPolicy = case
        .dst
        .as_deref()
        .unwrap_or("once")
        .parse()
        .map_err(|e| format!("{e}"))?;
    let tz = case.tz.as_deref().unwrap_or("UTC");
    let schedule = Schedule::parse(&case.expr, dialect, tz, dst).map_err(|e| e.to_string())?;
    let from = DateTime::parse_from_rfc3339(&case.from)
        .map_err(|e| format!("from: {e}"))?
        .with_timezone(&Utc);
    let mut got: Vec<String> = schedule
        .fire_times(from)
        .take(case.expect.len() + usize::from(case.end))
        .map(|t| fire_time(&schedule, t).local)
        .collect();
    if case.end && got.len() > case.expect.len() {
        return Err(format!(
            "expected no fire time after {:?}, got {:?}",
            case.expect, got
        ));
    }
    got.truncate(case.expect.len());
    if got != case.expect {
        return Err(format!(
            "expected {:?}\n           got {:?}",
            case.expect, got
        ));
    }
    // Starting just before an expected instant (and after the one before it)
    // must give that instant too.
    let mut previous = from;
    for text in &case.expect {
        let expected = DateTime::parse_from_rfc3339(text)
            .map_err(|e| format!("expect {text}: {e}"))?
            .with_timezone(&Utc);
        for delta in [TimeDelta::milliseconds(1), TimeDelta::seconds(1)] {
            let start = expected - delta;
            if start >= previous && schedule.next_after(start) != Some(expected) {
                return Err(format!(
                    "next_after({start}) = {:?}, expected {text}",
                    schedule
                        .next_after(start)
                        .map(|t| fire_time(&schedule, t).local)
                ));
            }
        }
        previous = expected;
    }
    Ok(())
}

#[test]
fn cron_cases_file() {
    let cases = load();
    assert!(cases.len() >= 60, "only {} cases", cases.len());
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|c| {
            run(c)
                .err()
                .map(|e| format!("case {} (line {}): `{}`\n  {e}", c.name, c.line, c.expr))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn cron_cases_cover_dst_in_six_zones_under_both_policies() {
    let cases = load();
    let dst_zones = [
        "Europe/Berlin",
        "America/New_York",
        "Australia/Lord_Howe",
        "America/Sao_Paulo",
        "Asia/Hebron",
        "Pacific/Apia",
        "Europe/London",
        "Australia/Sydney",
        "America/Havana",
    ];
    let dst: Vec<&Case> = cases
        .iter()
        .filter(|c| {
            c.tz.as_deref().is_some_and(|z| dst_zones.contains(&z)) && !c.expr.starts_with("@every")
        })
        .collect();
    assert!(dst.len() >= 25, "only {} DST cases", dst.len());
    let mut zones: Vec<&str> = dst.iter().filter_map(|c| c.tz.as_deref()).collect();
    zones.sort_unstable();
    zones.dedup();
    assert!(zones.len() >= 6, "DST cases in only {zones:?}");
    assert!(dst.iter().any(|c| c.dst.as_deref() == Some("literal")));
    assert!(dst.iter().any(|c| c.dst.is_none()));
}
