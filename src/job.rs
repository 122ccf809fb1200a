//! The job body of SPEC §4, as users send it: parsing, validation by
//! field, the canonical form the cluster stores, and run ids.
//!
//! The state machine keeps the body as canonical JSON and acts only on the
//! few fields it needs (see `gnomon_storage::jobs`); the scheduler and the
//! workers read the rest back from it with [`JobSpec::parse_stored`].

use std::collections::BTreeMap;

use gnomon_storage::command::{JobPut, MAX_HISTORY, MAX_RETRY_TIERS};
use gnomon_storage::jobs::Concurrency;
use gnomon_storage::limits::MAX_DELAY_MS;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::executor::Target;
use crate::schedule::{Dialect, DstPolicy, Schedule, ScheduleError};
use crate::scheduler::plan::{Misfire, Policy};

/// Longest a label key or value may be, in bytes.
const MAX_LABEL_BYTES: usize = 256;

/// Most labels a job may carry.
const MAX_LABELS: usize = 64;

/// Retry tiers when a job names none: at once, 5 minutes, 1 hour, 24 hours.
pub const DEFAULT_BACKOFF_MS: [u64; 4] = [0, 300_000, 3_600_000, 86_400_000];

/// The job body (SPEC §4), with every default filled in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobSpec {
    /// The cron expression.
    pub schedule: String,
    /// The IANA zone the expression is read in.
    #[serde(default = "utc")]
    pub timezone: String,
    /// `cron` or `quartz`.
    #[serde(default)]
    pub dialect: Dialect,
    /// What to call.
    pub target: Target,
    /// `forbid`, `allow` or `replace`.
    #[serde(default)]
    pub concurrency: Concurrency,
    /// `run_once`, `skip` or `run_all`.
    #[serde(default)]
    pub misfire: Misfire,
    /// `once` or `literal`.
    #[serde(default)]
    pub dst: DstPolicy,
    /// Retry tiers.
    #[serde(default)]
    pub retry: Retry,
    /// False to create it paused.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Free-form labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// How late a slot may fire and still count as on time.
    #[serde(default = "default_misfire_threshold")]
    pub misfire_threshold_ms: u64,
    /// How far back `run_all` catches up.
    #[serde(default = "default_catchup_window")]
    pub catchup_window_ms: u64,
    /// How many runs the history keeps.
    #[serde(default = "default_history_limit")]
    pub history_limit: u32,
}

/// The `retry` object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Retry {
    /// `backoff_ms[i]` is the delay before attempt `i + 2`; after the last
    /// the run is dead. Empty: one attempt only.
    #[serde(default = "default_backoff")]
    pub backoff_ms: Vec<u64>,
}

impl Default for Retry {
    fn default() -> Self {
        Self {
            backoff_ms: default_backoff(),
        }
    }
}

fn utc() -> String {
    "UTC".into()
}
fn yes() -> bool {
    true
}
fn default_misfire_threshold() -> u64 {
    60_000
}
fn default_catchup_window() -> u64 {
    3_600_000
}
fn default_history_limit() -> u32 {
    100
}
fn default_backoff() -> Vec<u64> {
    DEFAULT_BACKOFF_MS.to_vec()
}

/// Why a job body was refused: the field, how serious, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecError {
    /// The field as the body spells it (`schedule`, `target.url`, …).
    pub field: String,
    /// A stable code: `invalid_field`, or the schedule engine's code.
    pub code: &'static str,
    /// What is wrong, naming the field.
    pub message: String,
    /// Whether the body was well-formed but cannot be accepted (422).
    pub unprocessable: bool,
}

impl SpecError {
    fn field(field: &str, message: impl std::fmt::Display) -> Self {
        Self {
            field: field.to_string(),
            code: "invalid_field",
            message: format!("{field}: {message}"),
            unprocessable: false,
        }
    }

    fn schedule(field: &str, e: &ScheduleError) -> Self {
        Self {
            field: field.to_string(),
            code: e.code(),
            message: format!("{field}: {e}"),
            unprocessable: true,
        }
    }
}

impl JobSpec {
    /// Check every field; returns the parsed schedule. `allow_shell` is
    /// this node's `--allow-shell`.
    pub fn validate(&self, allow_shell: bool) -> Result<Schedule, SpecError> {
        let schedule = self.schedule().map_err(|e| {
            let field = match e {
                ScheduleError::UnknownTimezone(_) => "timezone",
                _ => "schedule",
            };
            SpecError::schedule(field, &e)
        })?;
        self.target.validate(allow_shell).map_err(|e| {
            let mut err = SpecError::field(&e.field, &e.message);
            if e.field == "target" && matches!(self.target, Target::Shell { .. }) {
                err.code = "shell_not_allowed";
                err.unprocessable = true;
            }
            err
        })?;
        let backoff = &self.retry.backoff_ms;
        if backoff.len() > MAX_RETRY_TIERS {
            return Err(SpecError::field(
                "retry.backoff_ms",
                format!("at most {MAX_RETRY_TIERS} tiers, got {}", backoff.len()),
            ));
        }
        if let Some(bad) = backoff.iter().find(|d| **d > MAX_DELAY_MS) {
            return Err(SpecError::field(
                "retry.backoff_ms",
                format!("each delay must be at most {MAX_DELAY_MS} ms, got {bad}"),
            ));
        }
        if self.labels.len() > MAX_LABELS {
            return Err(SpecError::field(
                "labels",
                format!("at most {MAX_LABELS} labels"),
            ));
        }
        if let Some((k, v)) = self
            .labels
            .iter()
            .find(|(k, v)| k.is_empty() || k.len() > MAX_LABEL_BYTES || v.len() > MAX_LABEL_BYTES)
        {
            return Err(SpecError::field(
                &format!("labels.{k}"),
                format!("keys must be 1 to {MAX_LABEL_BYTES} bytes and values at most {MAX_LABEL_BYTES} (value is {} bytes)", v.len()),
            ));
        }
        if self.misfire_threshold_ms == 0 || self.misfire_threshold_ms > MAX_DELAY_MS {
            return Err(SpecError::field(
                "misfire_threshold_ms",
                format!("must be between 1 and {MAX_DELAY_MS}"),
            ));
        }
        if self.catchup_window_ms > MAX_DELAY_MS {
            return Err(SpecError::field(
                "catchup_window_ms",
                format!("must be at most {MAX_DELAY_MS}"),
            ));
        }
        if self.history_limit == 0 || self.history_limit > MAX_HISTORY {
            return Err(SpecError::field(
                "history_limit",
                format!("must be between 1 and {MAX_HISTORY}"),
            ));
        }
        Ok(schedule)
    }

    /// The parsed schedule.
    pub fn schedule(&self) -> Result<Schedule, ScheduleError> {
        Schedule::parse(&self.schedule, self.dialect, &self.timezone, self.dst)
    }

    /// The misfire policy.
    pub fn policy(&self) -> Policy {
        Policy {
            misfire: self.misfire,
            threshold_ms: self.misfire_threshold_ms,
            catchup_window_ms: self.catchup_window_ms,
        }
    }

    /// Read a definition the cluster stored (it was validated when put).
    pub fn parse_stored(definition: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(definition)
    }

    /// The command that stores this job as `name`.
    pub fn to_put(&self, name: &str) -> JobPut {
        JobPut {
            name: name.to_string(),
            // Serialising a struct of strings, numbers and maps cannot fail.
            definition: serde_json::to_string(self).expect("a job body serialises"),
            schedule_key: format!(
                "{}|{}|{}|{}",
                self.schedule,
                self.timezone,
                self.dialect.as_str(),
                self.dst.as_str()
            ),
            enabled: self.enabled,
            concurrency: self.concurrency,
            backoff_ms: self.retry.backoff_ms.clone(),
            history_limit: self.history_limit,
        }
    }
}

/// The id of the run of `job` at `slot_ms`: the same on every node, every
/// time, so one slot can only ever have one run.
pub fn slot_run_id(job: &str, slot_ms: i64) -> String {
    digest_id(&["slot", job, &slot_ms.to_string()])
}

/// A fresh id for a manual run of `job`.
pub fn trigger_run_id(job: &str) -> String {
    digest_id(&["trigger", job, &rand::random::<u128>().to_string()])
}

/// 32 hex digits of SHA-256 over the NUL-separated parts.
fn digest_id(parts: &[&str]) -> String {
    let mut hash = Sha256::new();
    for part in parts {
        hash.update(part.as_bytes());
        hash.update([0]);
    }
    hash.finalize()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: serde_json::Value) -> JobSpec {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn defaults_fill_in_what_the_body_leaves_out() {
        let s = spec(serde_json::json!({
            "schedule": "0 30 2 * * *",
            "target": {"type": "http", "url": "http://127.0.0.1:9000/hook"}
        }));
        assert_eq!(s.timezone, "UTC");
        assert_eq!(s.concurrency, Concurrency::Forbid);
        assert_eq!(s.misfire, Misfire::RunOnce);
        assert_eq!(s.dst, DstPolicy::Once);
        assert_eq!(s.retry.backoff_ms, vec![0, 300_000, 3_600_000, 86_400_000]);
        assert!(s.enabled);
        assert_eq!(s.misfire_threshold_ms, 60_000);
        assert!(s.validate(false).is_ok());
        // The stored form reads back as the same job.
        let put = s.to_put("a");
        assert_eq!(JobSpec::parse_stored(&put.definition).unwrap(), s);
        assert_eq!(put.schedule_key, "0 30 2 * * *|UTC|cron|once");
    }

    #[test]
    fn each_bad_field_is_named() {
        let base = serde_json::json!({
            "schedule": "*/5 * * * *",
            "timezone": "Europe/Berlin",
            "target": {"type": "http", "url": "http://127.0.0.1:9000/"}
        });
        let with = |k: &str, v: serde_json::Value| {
            let mut b = base.clone();
            b[k] = v;
            spec(b)
        };
        let cases = [
            (
                with("schedule", "0 0 30 2 *".into()),
                "schedule",
                "never_fires",
            ),
            (
                with("schedule", "61 * * * *".into()),
                "schedule",
                "invalid_expression",
            ),
            (
                with("timezone", "Mars/Olympus".into()),
                "timezone",
                "unknown_timezone",
            ),
            (
                with("history_limit", 0.into()),
                "history_limit",
                "invalid_field",
            ),
            (
                with("retry", serde_json::json!({"backoff_ms": [1u64 << 60]})),
                "retry.backoff_ms",
                "invalid_field",
            ),
            (
                with(
                    "target",
                    serde_json::json!({"type": "http", "url": "ftp://x/"}),
                ),
                "target.url",
                "invalid_field",
            ),
            (
                with(
                    "target",
                    serde_json::json!({"type": "shell", "command": "true"}),
                ),
                "target",
                "shell_not_allowed",
            ),
        ];
        for (s, field, code) in cases {
            let e = s.validate(false).unwrap_err();
            assert_eq!((e.field.as_str(), e.code), (field, code), "{e:?}");
            assert!(e.message.starts_with(field), "{}", e.message);
        }
    }

    #[test]
    fn run_ids_depend_on_job_and_slot_only() {
        assert_eq!(slot_run_id("a", 1_000), slot_run_id("a", 1_000));
        assert_ne!(slot_run_id("a", 1_000), slot_run_id("a", 2_000));
        assert_ne!(slot_run_id("a", 1_000), slot_run_id("b", 1_000));
        // NUL separation: ("ab", 1) and ("a", "b1")-like mixes cannot collide.
        assert_ne!(slot_run_id("a1", 0), slot_run_id("a", 10));
        assert_eq!(slot_run_id("a", 1_000).len(), 32);
        assert_ne!(trigger_run_id("a"), trigger_run_id("a"));
    }
}
