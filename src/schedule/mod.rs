//! The schedule engine: cron dialects, time zones and daylight saving
//! (SPEC §6). A [`Schedule`] is an expression bound to a zone and a DST
//! policy; the scheduler asks it for the next fire instant after the last
//! slot it recorded, and [`validate()`] explains a schedule to a person.
//!
//! The evaluator is written here over chrono-tz rather than taken from a
//! crate: the `cron` crate reads only seconds-first expressions, ANDs the
//! day fields and returns instants before its input across a fall-back
//! transition; `croner` lacks `L-n`, the `literal` policy and cronie's
//! `*`-day rule. Semantics the SPEC leaves open are in `DESIGN.md` beside
//! this file.
//!
//! * [`field`]: one field, its items and value sets;
//! * [`parse`]: fields by dialect, macros, `@every`, the normalized form;
//! * [`calendar`]: which wall-clock readings match;
//! * [`zone`]: a zone's offset changes;
//! * [`eval`]: the next fire instant under a DST policy;
//! * [`describe`]: the expression in plain English;
//! * [`mod@validate`]: description, preview and warnings for people.

pub mod calendar;
pub mod describe;
pub mod error;
pub mod eval;
pub mod field;
pub mod parse;
pub mod validate;
pub mod zone;

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

pub use error::ScheduleError;
pub use field::FieldKind;
pub use validate::{validate, FireTime, Validation, Warning};

use calendar::{Calendar, DayCombine};
use eval::Rule;
use parse::{Expr, Parsed};
use zone::Zone;

/// How an expression is read (SPEC §6). The job body's `"dialect"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dialect {
    /// Vixie/cronie: 5, 6 (seconds first) or 7 (plus year) fields; day of
    /// week 0–7 with 0 and 7 Sunday.
    #[default]
    Cron,
    /// Quartz: 6 or 7 fields, seconds first; day of week 1–7 with 1 Sunday.
    Quartz,
}

impl Dialect {
    /// The name as the API and command line spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Dialect::Cron => "cron",
            Dialect::Quartz => "quartz",
        }
    }
}

impl fmt::Display for Dialect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Dialect {
    type Err = ScheduleError;

    /// `cron` or `quartz`, in any case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "cron" => Ok(Dialect::Cron),
            "quartz" => Ok(Dialect::Quartz),
            _ => Err(ScheduleError::UnknownDialect(s.to_string())),
        }
    }
}

/// What a daylight-saving transition does to fire times (SPEC §6). The job
/// body's `"dst"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DstPolicy {
    /// As cronie: each local fire time fires once; skipped times fire right
    /// after the gap, repeated ones at their first occurrence. Jobs whose
    /// seconds, minute or hour field starts with `*` follow the clock.
    #[default]
    Once,
    /// As Temporal, Nomad and `CRON_TZ`: match wall-clock readings; skipped
    /// times never fire, repeated ones fire twice.
    Literal,
}

impl DstPolicy {
    /// The name as the API and command line spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            DstPolicy::Once => "once",
            DstPolicy::Literal => "literal",
        }
    }
}

impl fmt::Display for DstPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DstPolicy {
    type Err = ScheduleError;

    /// `once` or `literal`, in any case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "once" => Ok(DstPolicy::Once),
            "literal" => Ok(DstPolicy::Literal),
            _ => Err(ScheduleError::UnknownDstPolicy(s.to_string())),
        }
    }
}

/// Look up an IANA zone name (`UTC` included).
pub fn parse_timezone(name: &str) -> Result<Tz, ScheduleError> {
    name.parse::<Tz>()
        .map_err(|_| ScheduleError::UnknownTimezone(name.to_string()))
}

/// A parsed expression bound to a zone and a DST policy: the one thing the
/// scheduler needs to compute slots. Cheap to clone (the zone table is
/// shared) and safe to share between threads.
#[derive(Debug, Clone)]
pub struct Schedule {
    source: String,
    dialect: Dialect,
    tz: Tz,
    dst: DstPolicy,
    parsed: Parsed,
    rule: Rule,
}

impl Schedule {
    /// Parse `expr` in `dialect`, in zone `tz` (an IANA name) under `dst`.
    ///
    /// Fails on a malformed expression, an unknown zone, or an expression
    /// that can never fire (`0 0 30 2 *`), so a job that is accepted always
    /// has fire times in principle (they may all lie in the past when the
    /// year field says so).
    pub fn parse(
        expr: &str,
        dialect: Dialect,
        tz: &str,
        dst: DstPolicy,
    ) -> Result<Schedule, ScheduleError> {
        let parsed = parse::parse(expr, dialect)?;
        let tz = parse_timezone(tz)?;
        let rule = match &parsed.expr {
            Expr::Every { period_ms } => Rule::Every {
                period_ms: *period_ms,
            },
            Expr::Fields(fields) => {
                let calendar = Calendar::new(fields, dialect);
                if !calendar.has_matching_day() {
                    return Err(no_day_error(expr, fields));
                }
                let follows_clock = fields[..3].iter().any(|f| f.starts_with_star);
                Rule::Calendar {
                    calendar,
                    zone: Zone::get(tz),
                    once_fixed: dst == DstPolicy::Once && !follows_clock,
                }
            }
        };
        let schedule = Schedule {
            source: expr.to_string(),
            dialect,
            tz,
            dst,
            parsed,
            rule,
        };
        // 1969-12-29T00:00:00Z: before any local reading of 1970 in any zone.
        if schedule.rule.next_after_ms(-259_200_000).is_none() {
            return Err(ScheduleError::NeverFires {
                expr: expr.to_string(),
                reason: format!(
                    "every time it names falls in a daylight-saving gap of {}, and dst=literal \
                     skips those; use dst=once to fire right after the gap",
                    tz.name()
                ),
                position: None,
            });
        }
        Ok(schedule)
    }

    /// The first fire instant strictly after `after`, or `None` when the
    /// expression has no more (its year field is exhausted). Whole seconds
    /// for calendar expressions, whole milliseconds for `@every`.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        DateTime::from_timestamp_millis(self.next_after_ms(after.timestamp_millis())?)
    }

    /// [`Schedule::next_after`] on Unix milliseconds, the scheduler's slot unit.
    pub fn next_after_ms(&self, after_ms: i64) -> Option<i64> {
        self.rule.next_after_ms(after_ms)
    }

    /// Successive fire instants strictly after `after`, in order.
    pub fn fire_times(&self, after: DateTime<Utc>) -> FireTimes<'_> {
        FireTimes {
            schedule: self,
            cursor: Some(after),
        }
    }

    /// The expression as given.
    pub fn expression(&self) -> &str {
        &self.source
    }

    /// The normalized form: seconds first, names as numbers, macros expanded.
    pub fn normalized(&self) -> String {
        parse::render(&self.parsed)
    }

    /// The dialect the expression was read in.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// The zone fire times are computed in.
    pub fn timezone(&self) -> Tz {
        self.tz
    }

    /// The daylight-saving policy.
    pub fn dst(&self) -> DstPolicy {
        self.dst
    }

    /// True when the seconds, minute or hour field starts with `*`: such a
    /// job follows the clock through transitions even under `once`.
    pub fn follows_clock(&self) -> bool {
        match &self.parsed.expr {
            Expr::Fields(fields) => fields[..3].iter().any(|f| f.starts_with_star),
            Expr::Every { .. } => true,
        }
    }

    pub(crate) fn parsed(&self) -> &Parsed {
        &self.parsed
    }

    pub(crate) fn calendar(&self) -> Option<&Calendar> {
        match &self.rule {
            Rule::Calendar { calendar, .. } => Some(calendar),
            Rule::Every { .. } => None,
        }
    }

    /// True when both day fields are restricted and a day matching either fires.
    pub fn day_or_rule(&self) -> bool {
        self.calendar()
            .is_some_and(|c| c.day_combine() == DayCombine::Or)
    }
}

/// Why no date matches, naming the fields.
fn no_day_error(expr: &str, fields: &[field::Field]) -> ScheduleError {
    let (dom, month, dow) = (&fields[3], &fields[4], &fields[5]);
    let year = fields.get(6).filter(|y| !y.is_any());
    let mut reason = if dow.is_any() {
        format!(
            "no month in month field `{}` has a day in day-of-month field `{}`",
            month.render(),
            dom.render()
        )
    } else {
        format!(
            "no date matches day-of-month `{}`, month `{}` and day-of-week `{}`",
            dom.render(),
            month.render(),
            dow.render()
        )
    };
    if let Some(year) = year {
        reason.push_str(&format!(" in years `{}`", year.render()));
    }
    ScheduleError::NeverFires {
        expr: expr.to_string(),
        reason,
        position: Some(dom.position),
    }
}

/// Iterator over fire instants; see [`Schedule::fire_times`].
#[derive(Debug, Clone)]
pub struct FireTimes<'a> {
    schedule: &'a Schedule,
    cursor: Option<DateTime<Utc>>,
}

impl Iterator for FireTimes<'_> {
    type Item = DateTime<Utc>;

    fn next(&mut self) -> Option<DateTime<Utc>> {
        let next = self.schedule.next_after(self.cursor?);
        self.cursor = next;
        next
    }
}

#[cfg(test)]
mod tests;
