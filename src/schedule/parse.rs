//! From text to fields: splits an expression into fields by dialect, expands
//! the macros, reads `@every` durations, and renders the normalized form.

use super::error::ScheduleError;
use super::field::{Field, FieldKind, Item};
use super::Dialect;

/// A parsed expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    /// A calendar expression: six fields (seconds first) or seven (with year).
    Fields(Vec<Field>),
    /// `@every DURATION`: slots at whole multiples of the period since the
    /// Unix epoch.
    Every {
        /// The period in milliseconds, at least 1.
        period_ms: i64,
    },
}

/// An expression and how it was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    /// The meaning.
    pub expr: Expr,
    /// Fields as written (5, 6 or 7), or 0 for a macro.
    pub written_fields: usize,
}

const KINDS: [FieldKind; 7] = [
    FieldKind::Second,
    FieldKind::Minute,
    FieldKind::Hour,
    FieldKind::DayOfMonth,
    FieldKind::Month,
    FieldKind::DayOfWeek,
    FieldKind::Year,
];

/// Parse `text` in `dialect`.
pub fn parse(text: &str, dialect: Dialect) -> Result<Parsed, ScheduleError> {
    let words = split(text);
    let Some(&(first_pos, first)) = words.first() else {
        return Err(ScheduleError::Empty);
    };
    if first.starts_with('@') {
        return parse_macro(&words, first_pos, first, dialect);
    }
    let n = words.len();
    let kinds: &[FieldKind] = match (dialect, n) {
        (Dialect::Cron, 5) => &KINDS[1..6],
        (_, 6) => &KINDS[..6],
        (_, 7) => &KINDS[..],
        (Dialect::Cron, _) => {
            return Err(ScheduleError::FieldCount {
                dialect: "cron",
                found: n,
                expected: "5, 6 (seconds first) or 7 (seconds first, year last)",
            })
        }
        (Dialect::Quartz, _) => {
            return Err(ScheduleError::FieldCount {
                dialect: "quartz",
                found: n,
                expected: "6 or 7 (seconds first, optional year)",
            })
        }
    };
    let mut fields = Vec::with_capacity(7);
    if n == 5 {
        fields.push(Field::from_items(FieldKind::Second, vec![Item::Value(0)]));
    }
    for (&kind, &(position, word)) in kinds.iter().zip(&words) {
        let field = Field::parse(kind, word, position, dialect).map_err(|reason| {
            ScheduleError::InvalidField {
                field: kind,
                text: word.to_string(),
                position,
                reason,
            }
        })?;
        fields.push(field);
    }
    Ok(Parsed {
        expr: Expr::Fields(fields),
        written_fields: n,
    })
}

/// Whitespace-separated words with their byte offsets.
fn split(text: &str) -> Vec<(usize, &str)> {
    let mut words = Vec::new();
    let mut start = None;
    for (i, c) in text.char_indices() {
        match (c.is_whitespace(), start) {
            (true, Some(s)) => {
                words.push((s, &text[s..i]));
                start = None;
            }
            (false, None) => start = Some(i),
            _ => {}
        }
    }
    if let Some(s) = start {
        words.push((s, &text[s..]));
    }
    words
}

fn parse_macro(
    words: &[(usize, &str)],
    position: usize,
    name: &str,
    dialect: Dialect,
) -> Result<Parsed, ScheduleError> {
    let lower = name.to_ascii_lowercase();
    if lower == "@every" {
        let [_, (dpos, duration)] = words else {
            return Err(ScheduleError::InvalidDuration {
                text: words.get(2).map_or("", |w| w.1).to_string(),
                position: words.get(2).map_or(position + name.len(), |w| w.0),
                reason: if words.len() < 2 {
                    "a duration such as 90s or 1h30m must follow @every".into()
                } else {
                    "@every takes exactly one duration".into()
                },
            });
        };
        let period_ms =
            parse_duration(duration).map_err(|reason| ScheduleError::InvalidDuration {
                text: duration.to_string(),
                position: *dpos,
                reason,
            })?;
        return Ok(Parsed {
            expr: Expr::Every { period_ms },
            written_fields: 0,
        });
    }
    // second minute hour day-of-month month day-of-week
    let spec: [&str; 6] = match lower.as_str() {
        "@yearly" | "@annually" => ["0", "0", "0", "1", "1", "*"],
        "@monthly" => ["0", "0", "0", "1", "*", "*"],
        "@weekly" => ["0", "0", "0", "*", "*", "SUN"],
        "@daily" | "@midnight" => ["0", "0", "0", "*", "*", "*"],
        "@hourly" => ["0", "0", "*", "*", "*", "*"],
        _ => {
            return Err(ScheduleError::UnknownMacro {
                name: name.to_string(),
                position,
            })
        }
    };
    if let Some(&(extra, word)) = words.get(1) {
        return Err(ScheduleError::InvalidField {
            field: FieldKind::Second,
            text: word.to_string(),
            position: extra,
            reason: format!("{name} takes no fields after it"),
        });
    }
    let fields = KINDS[..6]
        .iter()
        .zip(spec)
        .map(|(&kind, text)| {
            // The macro texts above are valid in both dialects.
            Field::parse(kind, text, 0, dialect).expect("macro expansion parses")
        })
        .collect();
    Ok(Parsed {
        expr: Expr::Fields(fields),
        written_fields: 0,
    })
}

const UNITS: [(&str, i64); 5] = [
    ("d", 86_400_000),
    ("h", 3_600_000),
    ("m", 60_000),
    ("s", 1_000),
    ("ms", 1),
];

/// `90s`, `1h30m`, `500ms`, `2d`: whole numbers with units d, h, m, s, ms.
fn parse_duration(text: &str) -> Result<i64, String> {
    let mut total: i64 = 0;
    let mut rest = text;
    if rest.is_empty() {
        return Err("the duration is empty".into());
    }
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(format!(
                "expected a number at `{rest}`; write it like 90s, 1h30m or 500ms"
            ));
        }
        let unit_len = rest[digits..]
            .bytes()
            .take_while(u8::is_ascii_alphabetic)
            .count();
        let unit = &rest[digits..digits + unit_len];
        let Some(&(_, scale)) = UNITS.iter().find(|(u, _)| *u == unit) else {
            return Err(if unit.is_empty() {
                format!("`{}` needs a unit (d, h, m, s or ms)", &rest[..digits])
            } else {
                format!("unknown unit `{unit}`: expected d, h, m, s or ms")
            });
        };
        let too_long = || "the duration is too long".to_string();
        let n: i64 = rest[..digits].parse().map_err(|_| too_long())?;
        total = n
            .checked_mul(scale)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(too_long)?;
        rest = &rest[digits + unit_len..];
    }
    if total == 0 {
        return Err("the duration must be longer than zero".into());
    }
    // A period beyond ten thousand years cannot be represented as an instant.
    if total > 10_000 * 365 * 86_400_000 {
        return Err("the duration is too long".into());
    }
    Ok(total)
}

/// A period in milliseconds as `@every` would take it: `1h30m`, `500ms`.
pub fn render_duration(mut ms: i64) -> String {
    let mut out = String::new();
    for (unit, scale) in UNITS {
        if ms >= scale {
            out.push_str(&format!("{}{unit}", ms / scale));
            ms %= scale;
        }
    }
    out
}

/// The normalized form: the expression in its dialect with seconds first,
/// the year only when restricted, names as numbers, macros expanded.
pub fn render(parsed: &Parsed) -> String {
    match &parsed.expr {
        Expr::Every { period_ms } => format!("@every {}", render_duration(*period_ms)),
        Expr::Fields(fields) => fields
            .iter()
            .filter(|f| !(f.kind == FieldKind::Year && f.is_any()))
            .map(Field::render)
            .collect::<Vec<_>>()
            .join(" "),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s"), Ok(90_000));
        assert_eq!(parse_duration("1h30m"), Ok(5_400_000));
        assert_eq!(parse_duration("500ms"), Ok(500));
        assert_eq!(parse_duration("1d"), Ok(86_400_000));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("10").is_err());
        assert!(parse_duration("5y").is_err());
        assert!(parse_duration("h").is_err());
        assert!(parse_duration("99999999999999999999s").is_err());
        assert_eq!(render_duration(5_400_000), "1h30m");
        assert_eq!(render_duration(90_500), "1m30s500ms");
    }

    #[test]
    fn normalized_forms() {
        let n = |t: &str, d| render(&parse(t, d).unwrap());
        assert_eq!(
            n("*/15 9-17 * * mon-fri", Dialect::Cron),
            "0 */15 9-17 * * 1-5"
        );
        assert_eq!(n("0 0 12 ? * FRI#2", Dialect::Quartz), "0 0 12 ? * 6#2");
        assert_eq!(n("@daily", Dialect::Cron), "0 0 0 * * *");
        assert_eq!(n("@weekly", Dialect::Quartz), "0 0 0 * * 1");
        assert_eq!(n("@every 90s", Dialect::Cron), "@every 1m30s");
        assert_eq!(n("0 0 0 l-3 * * 2030", Dialect::Cron), "0 0 0 L-3 * * 2030");
        assert_eq!(n(" 0  0 0 1 * ?   * ", Dialect::Quartz), "0 0 0 1 * ?");
    }

    #[test]
    fn field_errors_carry_positions() {
        let err = parse("0 61 * * *", Dialect::Cron).unwrap_err();
        assert_eq!(err.position(), Some(2));
        assert!(err.to_string().contains("hour field `61`"), "{err}");
        let err = parse("0 0 * * * * * *", Dialect::Cron).unwrap_err();
        assert_eq!(err.code(), "invalid_expression");
        assert!(parse("* * * * *", Dialect::Quartz).is_err());
        assert!(parse("@reboot", Dialect::Cron).is_err());
        assert!(parse("@daily 5", Dialect::Cron).is_err());
        assert!(parse("@every", Dialect::Cron).is_err());
    }
}
