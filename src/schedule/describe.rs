//! The expression in plain English, built from the fields as written:
//! "at 02:30, on Monday through Friday", "every 15 minutes, in hours 9
//! through 17, every day". The aim is to confirm a reading, not to be pretty.

use super::field::{dow_internal, Field, FieldKind, Item, StepBase};
use super::parse::{render_duration, Expr, Parsed};
use super::Dialect;

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];
const ORDINALS: [&str; 5] = ["first", "second", "third", "fourth", "fifth"];

/// Describe a parsed expression.
pub fn describe(parsed: &Parsed, dialect: Dialect) -> String {
    let fields = match &parsed.expr {
        Expr::Every { period_ms } => {
            return format!(
                "every {}, counted from 1970-01-01T00:00:00Z",
                render_duration(*period_ms)
            )
        }
        Expr::Fields(fields) => fields,
    };
    let namer = Namer { dialect };
    let mut parts = vec![time_phrase(&fields[0], &fields[1], &fields[2], &namer)];
    parts.push(day_phrase(&fields[3], &fields[5], &namer));
    if !fields[4].is_any() {
        parts.push(format!("in {}", namer.list(&fields[4], "month")));
    }
    if let Some(year) = fields.get(6).filter(|y| !y.is_any()) {
        parts.push(format!("in {}", namer.list(year, "year")));
    }
    parts.join(", ")
}

fn single(field: &Field) -> Option<u32> {
    match field.items.as_slice() {
        [Item::Value(v)] => Some(*v),
        _ => None,
    }
}

fn is_star(field: &Field) -> bool {
    matches!(field.items.as_slice(), [Item::Star] | [Item::Question])
}

fn time_phrase(sec: &Field, min: &Field, hour: &Field, namer: &Namer) -> String {
    if let (Some(s), Some(m)) = (single(sec), single(min)) {
        let at = |h: u32| {
            if s == 0 {
                format!("{h:02}:{m:02}")
            } else {
                format!("{h:02}:{m:02}:{s:02}")
            }
        };
        let hours: Option<Vec<u32>> = hour
            .items
            .iter()
            .map(|i| match i {
                Item::Value(v) => Some(*v),
                _ => None,
            })
            .collect();
        if let Some(hours) = hours.filter(|h| h.len() <= 6) {
            return format!("at {}", join(hours.into_iter().map(at).collect()));
        }
    }
    let mut parts = Vec::new();
    match single(sec) {
        Some(0) => {}
        _ if is_star(sec) => parts.push("every second".to_string()),
        _ => parts.push(namer.phrase(sec, "second")),
    }
    if is_star(min) {
        if parts.is_empty() {
            parts.push("every minute".into());
        }
    } else {
        parts.push(namer.phrase(min, "minute"));
    }
    let mut text = parts.join(" ");
    if !is_star(hour) {
        let hours = namer.phrase(hour, "hour");
        let sep = if hours.starts_with("every") {
            ", "
        } else {
            " "
        };
        text = format!("{text}{sep}{hours}");
    } else if !min.starts_with_star {
        text.push_str(" of every hour");
    }
    text
}

fn day_phrase(dom: &Field, dow: &Field, namer: &Namer) -> String {
    let dom_any = dom.starts_with_star || dom.is_question();
    let dow_any = dow.starts_with_star || dow.is_question();
    let dom_text = || namer.days_of_month(dom);
    let dow_text = || namer.days_of_week(dow);
    match (dom.is_any(), dow.is_any()) {
        (true, true) => "every day".into(),
        (true, false) => dow_text(),
        (false, true) => dom_text(),
        (false, false) if !dom_any && !dow_any => format!("{} or {}", dom_text(), dow_text()),
        (false, false) => format!("{} if also {}", dom_text(), dow_text()),
    }
}

/// "a", "a and b", "a, b and c".
pub(crate) fn join(items: Vec<String>) -> String {
    match items.len() {
        0 => String::new(),
        1 => items[0].clone(),
        n => format!("{} and {}", items[..n - 1].join(", "), items[n - 1]),
    }
}

/// Names values of a field in words.
struct Namer {
    dialect: Dialect,
}

impl Namer {
    fn name(&self, kind: FieldKind, v: u32) -> String {
        match kind {
            FieldKind::Month => MONTHS[(v - 1) as usize].to_string(),
            FieldKind::DayOfWeek => DAYS[dow_internal(v, self.dialect) as usize].to_string(),
            _ => v.to_string(),
        }
    }

    fn item(&self, kind: FieldKind, item: &Item, unit: &str) -> String {
        let n = |v| self.name(kind, v);
        match *item {
            Item::Star | Item::Question => format!("every {unit}"),
            Item::Value(v) => n(v),
            Item::Range(a, b) => format!("{} through {}", n(a), n(b)),
            Item::Step(StepBase::Star, s) => format!("every {s} {unit}s"),
            Item::Step(StepBase::From(a), s) => format!("every {s} {unit}s from {}", n(a)),
            Item::Step(StepBase::Range(a, b), s) => {
                format!("every {s} {unit}s from {} through {}", n(a), n(b))
            }
            Item::Last(0) => "the last day of the month".into(),
            Item::Last(k) => format!("{k} days before the last day of the month"),
            Item::NearestWeekday(d) => format!("the weekday nearest day {d}"),
            Item::LastWeekday => "the last weekday of the month".into(),
            Item::LastOf(d) => format!("the last {} of the month", n(d)),
            Item::Nth(d, k) => format!("the {} {} of the month", ORDINALS[(k - 1) as usize], n(d)),
        }
    }

    /// "every 15 minutes", "minute 5", "hours 9 through 17".
    fn phrase(&self, field: &Field, unit: &str) -> String {
        if let [Item::Step(StepBase::Star, s)] = field.items.as_slice() {
            return format!("every {s} {unit}s");
        }
        let prefix = match field.kind {
            FieldKind::Second | FieldKind::Minute => "at",
            _ => "in",
        };
        format!("{prefix} {}", self.list(field, unit))
    }

    /// "minute 5", "minutes 0 and 30", "January through March".
    fn list(&self, field: &Field, unit: &str) -> String {
        let words = join(
            field
                .items
                .iter()
                .map(|i| self.item(field.kind, i, unit))
                .collect(),
        );
        let named = matches!(field.kind, FieldKind::Month | FieldKind::DayOfWeek);
        let plural = field.items.len() > 1 || matches!(field.items[0], Item::Range(..));
        match field.items.as_slice() {
            [Item::Step(..)] => words,
            _ if named => words,
            _ if plural => format!("{unit}s {words}"),
            _ => format!("{unit} {words}"),
        }
    }

    fn days_of_month(&self, dom: &Field) -> String {
        let plain = dom
            .items
            .iter()
            .all(|i| matches!(i, Item::Value(_) | Item::Range(..) | Item::Step(..)));
        if plain {
            format!("on {} of the month", self.list(dom, "day"))
        } else {
            let words = dom
                .items
                .iter()
                .map(|i| match i {
                    Item::Value(d) => format!("day {d}"),
                    other => self.item(FieldKind::DayOfMonth, other, "day"),
                })
                .collect();
            format!("on {}", join(words))
        }
    }

    fn days_of_week(&self, dow: &Field) -> String {
        format!("on {}", self.list(dow, "day of the week"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::parse::parse;

    fn d(text: &str, dialect: Dialect) -> String {
        describe(&parse(text, dialect).unwrap(), dialect)
    }

    #[test]
    fn common_expressions() {
        assert_eq!(d("30 2 * * *", Dialect::Cron), "at 02:30, every day");
        assert_eq!(d("* * * * *", Dialect::Cron), "every minute, every day");
        assert_eq!(
            d("*/15 9-17 * * mon-fri", Dialect::Cron),
            "every 15 minutes in hours 9 through 17, on Monday through Friday"
        );
        assert_eq!(
            d("0 * * * *", Dialect::Cron),
            "at minute 0 of every hour, every day"
        );
        assert_eq!(
            d("0 0 12 ? * FRI#2", Dialect::Quartz),
            "at 12:00, on the second Friday of the month"
        );
        assert_eq!(
            d("0 0 L-3 * *", Dialect::Cron),
            "at 00:00, on 3 days before the last day of the month"
        );
        assert_eq!(
            d("0 9 1 * MON", Dialect::Cron),
            "at 09:00, on day 1 of the month or on Monday"
        );
        assert_eq!(
            d("0 0 0 1 1 * 2030", Dialect::Cron),
            "at 00:00, on day 1 of the month, in January, in year 2030"
        );
        assert_eq!(
            d("@every 90s", Dialect::Cron),
            "every 1m30s, counted from 1970-01-01T00:00:00Z"
        );
    }
}
