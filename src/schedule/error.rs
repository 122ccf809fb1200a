//! Why a schedule was refused. Each error has a stable snake_case code (part
//! of the HTTP API), a message that names the offending field and, where one
//! applies, the byte offset of that field in the expression.

use super::field::FieldKind;

/// A schedule that cannot be accepted.
///
/// Codes, as [`ScheduleError::code`] returns them:
/// * `invalid_expression`: a syntax error (field count, a malformed or
///   out-of-range field, an unknown macro, a bad `@every` duration);
/// * `unknown_timezone`: not an IANA zone name known to the tz database;
/// * `never_fires`: the expression is well-formed but matches no instant;
/// * `unknown_dialect`, `unknown_dst_policy`: a value other than the
///   documented ones.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ScheduleError {
    /// Nothing but whitespace.
    #[error("the cron expression is empty")]
    Empty,
    /// Too few or too many fields for the dialect.
    #[error("expected {expected} fields for the {dialect} dialect, found {found}")]
    FieldCount {
        /// The dialect the expression was read in.
        dialect: &'static str,
        /// How many fields it has.
        found: usize,
        /// What the dialect accepts, in words.
        expected: &'static str,
    },
    /// One field is malformed or out of range.
    #[error("{field} field `{text}` at byte {position}: {reason}")]
    InvalidField {
        /// Which field.
        field: FieldKind,
        /// The field's text.
        text: String,
        /// Byte offset of the field in the expression.
        position: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// An `@name` that is not one of the macros.
    #[error(
        "unknown macro `{name}` at byte {position}: expected @yearly, @annually, @monthly, \
         @weekly, @daily, @midnight, @hourly or @every DURATION"
    )]
    UnknownMacro {
        /// The macro as written.
        name: String,
        /// Byte offset of the macro.
        position: usize,
    },
    /// The duration of `@every` is malformed.
    #[error("@every duration `{text}` at byte {position}: {reason}")]
    InvalidDuration {
        /// The duration as written.
        text: String,
        /// Byte offset of the duration.
        position: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// The zone is not in the tz database.
    #[error("unknown time zone `{0}`: expected an IANA name such as Europe/Berlin or UTC")]
    UnknownTimezone(String),
    /// A well-formed expression that matches no instant.
    #[error("`{expr}` can never fire: {reason}")]
    NeverFires {
        /// The expression.
        expr: String,
        /// Why.
        reason: String,
        /// The field to blame, when one is.
        position: Option<usize>,
    },
    /// A dialect other than `cron` or `quartz`.
    #[error("unknown dialect `{0}`: expected cron or quartz")]
    UnknownDialect(String),
    /// A DST policy other than `once` or `literal`.
    #[error("unknown dst policy `{0}`: expected once or literal")]
    UnknownDstPolicy(String),
}

impl ScheduleError {
    /// The stable snake_case code of the error.
    pub fn code(&self) -> &'static str {
        match self {
            ScheduleError::Empty
            | ScheduleError::FieldCount { .. }
            | ScheduleError::InvalidField { .. }
            | ScheduleError::UnknownMacro { .. }
            | ScheduleError::InvalidDuration { .. } => "invalid_expression",
            ScheduleError::UnknownTimezone(_) => "unknown_timezone",
            ScheduleError::NeverFires { .. } => "never_fires",
            ScheduleError::UnknownDialect(_) => "unknown_dialect",
            ScheduleError::UnknownDstPolicy(_) => "unknown_dst_policy",
        }
    }

    /// Byte offset in the expression of the field at fault, if one is.
    pub fn position(&self) -> Option<usize> {
        match self {
            ScheduleError::InvalidField { position, .. }
            | ScheduleError::UnknownMacro { position, .. }
            | ScheduleError::InvalidDuration { position, .. } => Some(*position),
            ScheduleError::NeverFires { position, .. } => *position,
            _ => None,
        }
    }
}
