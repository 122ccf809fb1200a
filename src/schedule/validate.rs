//! Validation for people: what `gnomon cron explain` prints and
//! `POST /v1/cron/validate` returns. A normalized form, a description, the
//! next fire times, and warnings about what the schedule will do that its
//! author may not expect.
//!
//! Warning codes (stable, part of the API):
//! * `dst_moved`: under `once`, a fixed fire time falls in a skipped hour
//!   and fires right after the gap;
//! * `dst_skipped`: a fire time falls in a skipped hour and does not fire
//!   (`literal`, or a job that follows the clock);
//! * `dst_doubled`: a fire time occurs twice and fires twice (`literal`, or a
//!   job that follows the clock);
//! * `dst_first_occurrence`: under `once`, a fixed fire time occurs twice
//!   and fires only at the first occurrence;
//! * `day_or_rule`: both day fields are restricted, so either one matching
//!   is enough;
//! * `uneven_step`: a step does not divide its field's cycle (`*/7` minutes);
//! * `six_fields_may_be_year`: a 6-field cron expression also reads as
//!   minute … day-of-week plus a year;
//! * `sub_second`: `@every` fires more often than once a second;
//! * `no_future_fire_times`: the year field is exhausted.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

use super::calendar::{civil_from_days, Calendar};
use super::describe::{describe, join};
use super::field::{Field, FieldKind, Item, StepBase};
use super::parse::{render_duration, Expr};
use super::zone::Zone;
use super::{Dialect, DstPolicy, Schedule, ScheduleError};

/// How far ahead daylight-saving warnings look.
const WARN_HORIZON_SECS: i64 = 366 * 86_400;
/// The most fire times a preview returns.
pub const MAX_COUNT: usize = 100;

/// A valid schedule, explained.
#[derive(Debug, Clone, Serialize)]
pub struct Validation {
    /// Always true; mirrors the HTTP body.
    pub valid: bool,
    /// Seconds first, names as numbers, macros expanded.
    pub normalized: String,
    /// The expression in plain English.
    pub description: String,
    /// The next fire times after the start instant.
    pub next: Vec<FireTime>,
    /// Things the author may not expect.
    pub warnings: Vec<Warning>,
}

/// One fire instant, in the schedule's zone and in UTC.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FireTime {
    /// RFC 3339 with the zone's offset.
    pub local: String,
    /// RFC 3339 in UTC (`Z`).
    pub utc: String,
}

/// A warning with a stable code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Warning {
    /// Stable snake_case code.
    pub code: &'static str,
    /// What happens and what to do about it.
    pub message: String,
}

/// Parse and explain: the shared core of `gnomon cron explain` and
/// `POST /v1/cron/validate`. `count` is capped at [`MAX_COUNT`].
pub fn validate(
    expr: &str,
    dialect: Dialect,
    tz: &str,
    dst: DstPolicy,
    from: DateTime<Utc>,
    count: usize,
) -> Result<Validation, ScheduleError> {
    let schedule = Schedule::parse(expr, dialect, tz, dst)?;
    Ok(explain(&schedule, from, count))
}

/// Explain an already parsed schedule.
pub fn explain(schedule: &Schedule, from: DateTime<Utc>, count: usize) -> Validation {
    let next: Vec<FireTime> = schedule
        .fire_times(from)
        .take(count.min(MAX_COUNT))
        .map(|t| fire_time(schedule, t))
        .collect();
    let mut warnings = Vec::new();
    let parsed = schedule.parsed();
    match &parsed.expr {
        Expr::Every { period_ms } => {
            if *period_ms < 1000 {
                warnings.push(Warning {
                    code: "sub_second",
                    message: format!(
                        "@every {} fires {:.1} times a second; every slot is a run, so this \
                         is rarely what a cron job wants",
                        render_duration(*period_ms),
                        1000.0 / *period_ms as f64
                    ),
                });
            }
        }
        Expr::Fields(fields) => {
            if let Some(calendar) = schedule.calendar() {
                dst_warnings(schedule, calendar, from, &mut warnings);
            }
            if schedule.day_or_rule() {
                warnings.push(Warning {
                    code: "day_or_rule",
                    message: format!(
                        "both day-of-month `{}` and day-of-week `{}` are restricted, so a day \
                         that matches either one fires (the Vixie cron rule); start one of them \
                         with `*` to require both",
                        fields[3].render(),
                        fields[5].render()
                    ),
                });
            }
            for field in fields {
                if let Some(message) = uneven_step(field, schedule.dialect()) {
                    warnings.push(Warning {
                        code: "uneven_step",
                        message,
                    });
                }
            }
            if let Some(message) = six_fields(schedule) {
                warnings.push(Warning {
                    code: "six_fields_may_be_year",
                    message,
                });
            }
        }
    }
    if next.is_empty() && count > 0 {
        warnings.push(Warning {
            code: "no_future_fire_times",
            message: format!(
                "the expression has no fire time after {}; its year field is exhausted",
                from.to_rfc3339_opts(SecondsFormat::Secs, true)
            ),
        });
    }
    Validation {
        valid: true,
        normalized: schedule.normalized(),
        description: describe(parsed, schedule.dialect()),
        next,
        warnings,
    }
}

/// An instant as the schedule's zone and UTC show it.
pub fn fire_time(schedule: &Schedule, t: DateTime<Utc>) -> FireTime {
    FireTime {
        local: t
            .with_timezone(&schedule.timezone())
            .to_rfc3339_opts(SecondsFormat::AutoSi, false),
        utc: t.to_rfc3339_opts(SecondsFormat::AutoSi, true),
    }
}

/// Local seconds as `HH:MM` or `HH:MM:SS`.
fn clock(reading: i64) -> String {
    let tod = reading.rem_euclid(86_400);
    let (h, m, s) = (tod / 3600, tod / 60 % 60, tod % 60);
    if s == 0 {
        format!("{h:02}:{m:02}")
    } else {
        format!("{h:02}:{m:02}:{s:02}")
    }
}

/// Local seconds as `YYYY-MM-DD`.
fn date(reading: i64) -> String {
    let (y, m, d) = civil_from_days(reading.div_euclid(86_400));
    format!("{y:04}-{m:02}-{d:02}")
}

/// A UTC offset in seconds as `+02:00`.
fn offset(secs: i64) -> String {
    let sign = if secs < 0 { '-' } else { '+' };
    let a = secs.abs();
    format!("{sign}{:02}:{:02}", a / 3600, a / 60 % 60)
}

/// The matching readings in `[lo, hi)`, described ("fire time 02:30",
/// "fire times 02:00 and 02:30", "60 fire times from 02:00 to 02:59"), and
/// whether that is more than one.
fn matches_in(calendar: &Calendar, lo: i64, hi: i64) -> Option<(String, bool)> {
    let mut found = Vec::new();
    let mut count = 0usize;
    let mut last = lo;
    let mut at = lo;
    while let Some(r) = calendar.next_in(at, hi) {
        if found.len() < 4 {
            found.push(clock(r));
        }
        count += 1;
        last = r;
        at = r + 1;
    }
    let text = match count {
        0 => return None,
        1 => format!("fire time {}", found[0]),
        2..=4 => format!("fire times {}", join(found)),
        n => format!("{n} fire times from {} to {}", found[0], clock(last)),
    };
    Some((text, count > 1))
}

fn dst_warnings(
    schedule: &Schedule,
    calendar: &Calendar,
    from: DateTime<Utc>,
    warnings: &mut Vec<Warning>,
) {
    let zone = Zone::get(schedule.timezone());
    let start = from.timestamp();
    let fixed_once = schedule.dst() == DstPolicy::Once && !schedule.follows_clock();
    let policy = if schedule.dst() == DstPolicy::Literal {
        "dst=literal".to_string()
    } else if fixed_once {
        "dst=once".to_string()
    } else {
        "dst=once (the job follows the clock: a time field starts with `*`)".to_string()
    };
    let name = schedule.timezone().name();
    for (at, before, after) in zone.changes_between(start, start + WARN_HORIZON_SECS) {
        let (old, new) = (at + before, at + after);
        if after > before {
            let Some((times, many)) = matches_in(calendar, old, new) else {
                continue;
            };
            let (verb, they) = if many {
                ("do not exist", "they fire")
            } else {
                ("does not exist", "it fires")
            };
            let what = format!(
                "on {} the clocks in {name} jump from {} to {}, so {times} {verb} that day",
                date(old),
                clock(old),
                clock(new)
            );
            warnings.push(if fixed_once {
                Warning {
                    code: "dst_moved",
                    message: format!(
                        "{what}; under {policy} {they} once, at {}{} ({})",
                        clock(new),
                        offset(after),
                        fire_time(schedule, DateTime::from_timestamp(at, 0).unwrap_or(from)).utc
                    ),
                }
            } else {
                Warning {
                    code: "dst_skipped",
                    message: format!(
                        "{what}; under {policy} {} not fire",
                        if many { "they do" } else { "it does" }
                    ),
                }
            });
        } else {
            let Some((times, many)) = matches_in(calendar, new, old) else {
                continue;
            };
            let (verb, they) = if many {
                ("occur", "they fire")
            } else {
                ("occurs", "it fires")
            };
            let what = format!(
                "on {} the clocks in {name} go back from {} to {}, so {times} {verb} twice \
                 (at {} and at {})",
                date(new),
                clock(old),
                clock(new),
                offset(before),
                offset(after)
            );
            warnings.push(if fixed_once {
                Warning {
                    code: "dst_first_occurrence",
                    message: format!(
                        "{what}; under {policy} {they} only at the first, {}",
                        offset(before)
                    ),
                }
            } else {
                Warning {
                    code: "dst_doubled",
                    message: format!("{what}; under {policy} {they} at both"),
                }
            });
        }
    }
}

/// A step over a whole cyclic field that does not divide the cycle.
fn uneven_step(field: &Field, dialect: Dialect) -> Option<String> {
    let (min, max) = match field.kind {
        FieldKind::Year => return None,
        FieldKind::DayOfWeek => (
            field.kind.bounds(dialect).0,
            field.kind.bounds(dialect).0 + 6,
        ),
        kind => kind.bounds(dialect),
    };
    let cycle = max - min + 1;
    field.items.iter().find_map(|item| {
        let Item::Step(base, step) = *item else {
            return None;
        };
        let start = match base {
            StepBase::Star => min,
            StepBase::From(a) => a,
            StepBase::Range(..) => return None,
        };
        if step == 1 || start > max {
            return None;
        }
        if field.kind == FieldKind::DayOfMonth {
            return Some(format!(
                "day-of-month field `{}` counts from the start of each month, and months have \
                 28 to 31 days, so the interval across a month's end is not {step} days",
                field.render()
            ));
        }
        let last = start + (max - start) / step * step;
        let wrap = start + cycle - last;
        (wrap != step).then(|| {
            let unit = match field.kind {
                FieldKind::Second => "second",
                FieldKind::Minute => "minute",
                FieldKind::Hour => "hour",
                FieldKind::Month => "month",
                _ => "day",
            };
            let across = match field.kind {
                FieldKind::Second => "minute",
                FieldKind::Minute => "hour",
                FieldKind::Hour => "day",
                FieldKind::Month => "year",
                _ => "week",
            };
            format!(
                "{} field `{}` fires at {start} … {last} and then {start} again: the interval \
                 across the {across} is {wrap} {unit}s, not {step}",
                field.kind,
                field.render()
            )
        })
    })
}

/// A 6-field cron expression that also reads as 5 fields plus a year.
fn six_fields(schedule: &Schedule) -> Option<String> {
    if schedule.dialect() != Dialect::Cron || schedule.parsed().written_fields != 6 {
        return None;
    }
    let as_year = format!("0 {}", schedule.expression().trim());
    let other = Schedule::parse(
        &as_year,
        Dialect::Cron,
        schedule.timezone().name(),
        schedule.dst(),
    )
    .ok()?;
    Some(format!(
        "6 fields are read as second minute hour day-of-month month day-of-week ({}); if you \
         meant minute hour day-of-month month day-of-week year ({}), write `{}`",
        describe(schedule.parsed(), Dialect::Cron),
        describe(other.parsed(), Dialect::Cron),
        as_year
    ))
}
