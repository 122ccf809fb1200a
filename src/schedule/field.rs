//! One field of a cron expression: its kind, its parsed items, and the set of
//! values it allows. Items are kept as written (`*/15` stays a step over `*`)
//! so the normalized form, the description and the daylight-saving rule (does
//! the field start with `*`?) can all be derived from them; the value sets are
//! what the evaluator searches.

use std::fmt;

use super::Dialect;

/// Which field of the expression a value belongs to; names a field in errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FieldKind {
    /// Seconds, 0–59 (the first of 6 or 7 fields).
    Second,
    /// Minutes, 0–59.
    Minute,
    /// Hours, 0–23.
    Hour,
    /// Day of the month, 1–31, with `L`, `L-n`, `nW` and `LW`.
    DayOfMonth,
    /// Month, 1–12 or `JAN`–`DEC`.
    Month,
    /// Day of the week; numbering depends on the dialect. Also `dL` and `d#n`.
    DayOfWeek,
    /// Year, 1970–2099 (the optional seventh field).
    Year,
}

impl FieldKind {
    /// The field's name as errors and descriptions print it.
    pub fn name(self) -> &'static str {
        match self {
            FieldKind::Second => "second",
            FieldKind::Minute => "minute",
            FieldKind::Hour => "hour",
            FieldKind::DayOfMonth => "day-of-month",
            FieldKind::Month => "month",
            FieldKind::DayOfWeek => "day-of-week",
            FieldKind::Year => "year",
        }
    }

    /// Smallest and largest value as written in `dialect`.
    pub(crate) fn bounds(self, dialect: Dialect) -> (u32, u32) {
        match self {
            FieldKind::Second | FieldKind::Minute => (0, 59),
            FieldKind::Hour => (0, 23),
            FieldKind::DayOfMonth => (1, 31),
            FieldKind::Month => (1, 12),
            FieldKind::DayOfWeek => match dialect {
                Dialect::Cron => (0, 7),
                Dialect::Quartz => (1, 7),
            },
            FieldKind::Year => (MIN_YEAR, MAX_YEAR),
        }
    }
}

impl fmt::Display for FieldKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// First year the year field accepts (as Quartz).
pub const MIN_YEAR: u32 = 1970;
/// Last year the year field accepts (as Quartz; also where the bundled tz
/// database stops listing transitions).
pub const MAX_YEAR: u32 = 2099;

const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const DAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

/// What a step applies to: `*/n`, `a/n` (from a to the field's end) or `a-b/n`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepBase {
    /// `*/n`.
    Star,
    /// `a/n`.
    From(u32),
    /// `a-b/n`.
    Range(u32, u32),
}

/// One comma-separated item of a field, as written but with names replaced
/// by numbers in the dialect's numbering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Item {
    /// `*`.
    Star,
    /// `?` (any; day fields only).
    Question,
    /// A single value.
    Value(u32),
    /// `a-b`; `a > b` wraps around the field's end (`22-2`, `FRI-MON`).
    Range(u32, u32),
    /// A step over a base.
    Step(StepBase, u32),
    /// `L` or `L-n` in day-of-month: n days before the month's last day.
    Last(u32),
    /// `nW`: the weekday nearest day n, within the month.
    NearestWeekday(u32),
    /// `LW`: the month's last weekday.
    LastWeekday,
    /// `dL` in day-of-week: the month's last such weekday.
    LastOf(u32),
    /// `d#n` in day-of-week: the month's n-th such weekday.
    Nth(u32, u32),
}

/// A parsed field: its items and where it stood in the expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    /// Which field this is.
    pub kind: FieldKind,
    /// The items, in the order written.
    pub items: Vec<Item>,
    /// Byte offset of the field in the expression (0 for macro expansions).
    pub position: usize,
    /// Whether the text starts with `*` (the Vixie/cronie "star" flag that
    /// makes a day field unrestricted and a time field follow the clock).
    pub starts_with_star: bool,
}

/// Why a field failed to parse; the caller adds the field's name and position.
pub type FieldResult<T> = Result<T, String>;

impl Field {
    /// Parse the text of one field.
    pub fn parse(
        kind: FieldKind,
        text: &str,
        position: usize,
        dialect: Dialect,
    ) -> FieldResult<Field> {
        if text.is_empty() {
            return Err("the field is empty".into());
        }
        let items = text
            .split(',')
            .map(|item| parse_item(kind, item, dialect))
            .collect::<FieldResult<Vec<_>>>()?;
        if items.len() > 1 && items.iter().any(|i| matches!(i, Item::Question)) {
            return Err("`?` cannot be combined with other items".into());
        }
        Ok(Field {
            kind,
            items,
            position,
            starts_with_star: text.starts_with('*'),
        })
    }

    /// A field built from items rather than text (macro expansions).
    pub fn from_items(kind: FieldKind, items: Vec<Item>) -> Field {
        let starts_with_star = matches!(
            items.first(),
            Some(Item::Star | Item::Step(StepBase::Star, _))
        );
        Field {
            kind,
            items,
            position: 0,
            starts_with_star,
        }
    }

    /// True when the field places no restriction: `*`, `?`, or a step of one
    /// over the whole range. Day fields use [`Field::starts_with_star`] instead.
    pub fn is_any(&self) -> bool {
        self.items.iter().any(|i| {
            matches!(
                i,
                Item::Star | Item::Question | Item::Step(StepBase::Star, 1)
            )
        })
    }

    /// True for `?`.
    pub fn is_question(&self) -> bool {
        matches!(self.items.as_slice(), [Item::Question])
    }

    /// The plain values the field allows, as a bit set in internal numbering
    /// (day-of-week: 0 = Sunday … 6 = Saturday; year: bit `y - 1970`, so a
    /// year set needs 130 bits and takes two words). Special day items (`L`,
    /// `W`, `#`, `dL`) are not included.
    pub fn plain_bits(&self, dialect: Dialect) -> [u128; 2] {
        let (min, max) = self.kind.bounds(dialect);
        let mut bits = [0u128; 2];
        let mut set = |v: u32| {
            let i = self.internal(v, dialect);
            bits[(i / 128) as usize] |= 1u128 << (i % 128);
        };
        for item in &self.items {
            match *item {
                Item::Star | Item::Question => (min..=max).for_each(&mut set),
                Item::Value(v) => set(v),
                Item::Range(a, b) => range_values(a, b, min, max, 1).for_each(&mut set),
                Item::Step(base, step) => {
                    let (a, b) = match base {
                        StepBase::Star => (min, max),
                        StepBase::From(a) => (a, max),
                        StepBase::Range(a, b) => (a, b),
                    };
                    range_values(a, b, min, max, step).for_each(&mut set);
                }
                Item::Last(_)
                | Item::NearestWeekday(_)
                | Item::LastWeekday
                | Item::LastOf(_)
                | Item::Nth(_, _) => {}
            }
        }
        bits
    }

    /// Map a value as written to the internal numbering.
    fn internal(&self, v: u32, dialect: Dialect) -> u32 {
        match self.kind {
            FieldKind::DayOfWeek => dow_internal(v, dialect),
            FieldKind::Year => v - MIN_YEAR,
            _ => v,
        }
    }

    /// The field rendered canonically: numbers for names, items as written.
    pub fn render(&self) -> String {
        self.items
            .iter()
            .map(render_item)
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// Day of week as written in `dialect` → 0 = Sunday … 6 = Saturday.
pub fn dow_internal(v: u32, dialect: Dialect) -> u32 {
    match dialect {
        Dialect::Cron => v % 7,
        Dialect::Quartz => v - 1,
    }
}

/// Values a..=b stepping by `step`, wrapping past `max` back to `min` when a > b.
fn range_values(a: u32, b: u32, min: u32, max: u32, step: u32) -> impl Iterator<Item = u32> {
    let span = max - min + 1;
    let len = if a <= b {
        b - a + 1
    } else {
        (max - a + 1) + (b - min + 1)
    };
    (0..len)
        .step_by(step as usize)
        .map(move |k| min + (a - min + k) % span)
}

fn render_item(item: &Item) -> String {
    match *item {
        Item::Star => "*".into(),
        Item::Question => "?".into(),
        Item::Value(v) => v.to_string(),
        Item::Range(a, b) => format!("{a}-{b}"),
        Item::Step(StepBase::Star, n) => format!("*/{n}"),
        Item::Step(StepBase::From(a), n) => format!("{a}/{n}"),
        Item::Step(StepBase::Range(a, b), n) => format!("{a}-{b}/{n}"),
        Item::Last(0) => "L".into(),
        Item::Last(n) => format!("L-{n}"),
        Item::NearestWeekday(d) => format!("{d}W"),
        Item::LastWeekday => "LW".into(),
        Item::LastOf(d) => format!("{d}L"),
        Item::Nth(d, n) => format!("{d}#{n}"),
    }
}

fn parse_item(kind: FieldKind, text: &str, dialect: Dialect) -> FieldResult<Item> {
    let (min, max) = kind.bounds(dialect);
    let upper = text.to_ascii_uppercase();
    let t = upper.as_str();
    if t.is_empty() {
        return Err("empty item in a list".into());
    }
    if t == "?" {
        return if matches!(kind, FieldKind::DayOfMonth | FieldKind::DayOfWeek) {
            Ok(Item::Question)
        } else {
            Err("`?` is allowed only in the day-of-month and day-of-week fields".into())
        };
    }
    if kind == FieldKind::DayOfMonth {
        if let Some(item) = parse_dom_special(t)? {
            return Ok(item);
        }
    }
    if kind == FieldKind::DayOfWeek {
        if let Some(item) = parse_dow_special(t, dialect)? {
            return Ok(item);
        }
    }
    if let Some((base, step)) = t.split_once('/') {
        let step = parse_number(step)?;
        let span = max - min + 1;
        if step == 0 || step > span {
            return Err(format!("step {step} must be between 1 and {span}"));
        }
        let base = if base == "*" {
            StepBase::Star
        } else if let Some((a, b)) = base.split_once('-') {
            let (a, b) = (value(kind, a, dialect)?, value(kind, b, dialect)?);
            check_range(kind, a, b)?;
            StepBase::Range(a, b)
        } else {
            StepBase::From(value(kind, base, dialect)?)
        };
        return Ok(Item::Step(base, step));
    }
    if t == "*" {
        return Ok(Item::Star);
    }
    if let Some((a, b)) = t.split_once('-') {
        let (a, b) = (value(kind, a, dialect)?, value(kind, b, dialect)?);
        check_range(kind, a, b)?;
        return Ok(Item::Range(a, b));
    }
    Ok(Item::Value(value(kind, t, dialect)?))
}

fn check_range(kind: FieldKind, a: u32, b: u32) -> FieldResult<()> {
    if a > b && kind == FieldKind::Year {
        return Err(format!("range {a}-{b} runs backwards"));
    }
    Ok(())
}

/// `L`, `L-n`, `LW`, `nW`; `None` for anything else.
fn parse_dom_special(t: &str) -> FieldResult<Option<Item>> {
    if t == "L" {
        return Ok(Some(Item::Last(0)));
    }
    if t == "LW" {
        return Ok(Some(Item::LastWeekday));
    }
    if let Some(n) = t.strip_prefix("L-") {
        let n = parse_number(n)?;
        if n > 30 {
            return Err(format!("L-{n}: the offset must be between 0 and 30"));
        }
        return Ok(Some(Item::Last(n)));
    }
    if let Some(d) = t.strip_suffix('W') {
        let d = parse_number(d)?;
        if !(1..=31).contains(&d) {
            return Err(format!("{d}W: the day must be between 1 and 31"));
        }
        return Ok(Some(Item::NearestWeekday(d)));
    }
    if t.contains('L') && !t.chars().any(|c| c.is_ascii_alphabetic() && c != 'L') {
        return Err(format!("`{t}`: expected L, L-n, LW or nW"));
    }
    Ok(None)
}

/// `dL`, `d#n` (and bare `L` = Saturday in Quartz); `None` for anything else.
fn parse_dow_special(t: &str, dialect: Dialect) -> FieldResult<Option<Item>> {
    if t == "L" {
        return match dialect {
            Dialect::Quartz => Ok(Some(Item::Value(7))),
            Dialect::Cron => Err("a bare `L` needs a weekday before it, as in `5L`".into()),
        };
    }
    if let Some((d, n)) = t.split_once('#') {
        let d = value(FieldKind::DayOfWeek, d, dialect)?;
        let n = parse_number(n)?;
        if !(1..=5).contains(&n) {
            return Err(format!("#{n}: the week must be between 1 and 5"));
        }
        return Ok(Some(Item::Nth(d, n)));
    }
    if let Some(d) = t.strip_suffix('L') {
        let d = value(FieldKind::DayOfWeek, d, dialect)?;
        return Ok(Some(Item::LastOf(d)));
    }
    Ok(None)
}

/// A number or a name, checked against the field's bounds.
fn value(kind: FieldKind, t: &str, dialect: Dialect) -> FieldResult<u32> {
    let (min, max) = kind.bounds(dialect);
    let names: &[&str] = match kind {
        FieldKind::Month => &MONTHS,
        FieldKind::DayOfWeek => &DAYS,
        _ => &[],
    };
    if let Some(i) = names.iter().position(|n| *n == t) {
        let i = i as u32;
        return Ok(match (kind, dialect) {
            (FieldKind::Month, _) => i + 1,
            (_, Dialect::Cron) => i,
            (_, Dialect::Quartz) => i + 1,
        });
    }
    let v = parse_number(t)?;
    if v < min || v > max {
        return Err(format!("{v} is out of range {min}-{max}"));
    }
    Ok(v)
}

fn parse_number(t: &str) -> FieldResult<u32> {
    if t.is_empty() {
        return Err("a number is missing".into());
    }
    if !t.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("`{t}` is not a number or a known name"));
    }
    if t.len() > 9 {
        return Err(format!("{t} is out of range"));
    }
    // Nine ASCII digits at most always fit in a u32.
    t.parse::<u32>().map_err(|e| format!("`{t}`: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bits(kind: FieldKind, text: &str, dialect: Dialect) -> u128 {
        Field::parse(kind, text, 0, dialect)
            .unwrap()
            .plain_bits(dialect)[0]
    }

    fn set(values: &[u32]) -> u128 {
        values.iter().fold(0, |b, v| b | 1 << v)
    }

    #[test]
    fn steps_ranges_and_lists() {
        let c = Dialect::Cron;
        assert_eq!(bits(FieldKind::Minute, "*/15", c), set(&[0, 15, 30, 45]));
        assert_eq!(bits(FieldKind::Minute, "0/15", c), set(&[0, 15, 30, 45]));
        assert_eq!(bits(FieldKind::Minute, "20-35/15", c), set(&[20, 35]));
        assert_eq!(bits(FieldKind::Minute, "5/20", c), set(&[5, 25, 45]));
        assert_eq!(bits(FieldKind::Hour, "22-2", c), set(&[22, 23, 0, 1, 2]));
        assert_eq!(bits(FieldKind::Hour, "1,3,5-6", c), set(&[1, 3, 5, 6]));
        assert_eq!(
            bits(FieldKind::DayOfMonth, "*/10", c),
            set(&[1, 11, 21, 31])
        );
    }

    #[test]
    fn day_of_week_numbering() {
        assert_eq!(bits(FieldKind::DayOfWeek, "7", Dialect::Cron), set(&[0]));
        assert_eq!(
            bits(FieldKind::DayOfWeek, "0-7", Dialect::Cron),
            set(&[0, 1, 2, 3, 4, 5, 6])
        );
        assert_eq!(
            bits(FieldKind::DayOfWeek, "mon-fri", Dialect::Cron),
            set(&[1, 2, 3, 4, 5])
        );
        assert_eq!(
            bits(FieldKind::DayOfWeek, "2-6", Dialect::Quartz),
            set(&[1, 2, 3, 4, 5])
        );
        assert_eq!(
            bits(FieldKind::DayOfWeek, "Sun", Dialect::Quartz),
            set(&[0])
        );
        assert_eq!(
            bits(FieldKind::DayOfWeek, "FRI-MON", Dialect::Cron),
            set(&[5, 6, 0, 1])
        );
    }

    #[test]
    fn names_in_any_case() {
        assert_eq!(
            bits(FieldKind::Month, "jan,Jul,DEC", Dialect::Cron),
            set(&[1, 7, 12])
        );
    }

    #[test]
    fn malformed_items_are_rejected() {
        for (kind, text) in [
            (FieldKind::Minute, "60"),
            (FieldKind::Minute, "*/0"),
            (FieldKind::Minute, "*/61"),
            (FieldKind::Minute, "1-"),
            (FieldKind::Minute, "a"),
            (FieldKind::Minute, "1,,2"),
            (FieldKind::Hour, "?"),
            (FieldKind::DayOfMonth, "0"),
            (FieldKind::DayOfMonth, "L-31"),
            (FieldKind::DayOfMonth, "32W"),
            (FieldKind::DayOfWeek, "8"),
            (FieldKind::DayOfWeek, "FRI#6"),
            (FieldKind::DayOfWeek, "L"),
            (FieldKind::Year, "2100"),
            (FieldKind::Year, "2030-2020"),
            (FieldKind::DayOfMonth, "?,1"),
        ] {
            assert!(
                Field::parse(kind, text, 0, Dialect::Cron).is_err(),
                "{kind} `{text}` should be rejected"
            );
        }
    }
}
