//! How jobs and runs look in the API: the JSON of SPEC §4, with times as
//! RFC 3339 in UTC.

use chrono::{DateTime, SecondsFormat, Utc};
use gnomon_storage::jobs::JobRecord;
use gnomon_storage::runs::{Attempt, RunRecord};
use serde_json::{json, Map, Value};

use crate::job::JobSpec;
use crate::schedule::validate::fire_time;

/// How many fire times a job view previews.
const NEXT_PREVIEW: usize = 5;

/// Unix milliseconds as RFC 3339 UTC, with milliseconds.
pub fn rfc3339(ms: u64) -> String {
    let t = i64::try_from(ms)
        .ok()
        .and_then(DateTime::<Utc>::from_timestamp_millis)
        .unwrap_or(DateTime::<Utc>::MAX_UTC);
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// A job: its body with every default, plus what the cluster knows of it,
/// a summary of its latest run, and its next fire times after `now_ms`
/// (none while paused).
pub fn job(name: &str, record: &JobRecord, last_run: Option<&RunRecord>, now_ms: u64) -> Value {
    let mut view = Map::new();
    view.insert("name".into(), json!(name));
    view.insert("version".into(), json!(record.version));
    // The stored body was validated when put; show it as stored.
    let spec = JobSpec::parse_stored(&record.definition).ok();
    if let Ok(Value::Object(body)) = serde_json::from_str::<Value>(&record.definition) {
        view.extend(body);
    }
    view.insert("enabled".into(), json!(record.enabled));
    view.insert("created_at".into(), json!(rfc3339(record.created_at_ms)));
    view.insert("updated_at".into(), json!(rfc3339(record.updated_at_ms)));
    view.insert("cursor".into(), json!(rfc3339(record.cursor_ms)));
    view.insert("unfinished_runs".into(), json!(record.unfinished));
    view.insert(
        "last_run".into(),
        json!(last_run.map(|r| json!({
            "id": r.id,
            "state": r.state.as_str(),
            "scheduled_for": rfc3339(r.scheduled_for_ms),
        }))),
    );
    let next: Vec<Value> = match (record.enabled, spec.and_then(|s| s.schedule().ok())) {
        (true, Some(schedule)) => {
            let from = i64::try_from(now_ms.max(record.cursor_ms))
                .ok()
                .and_then(DateTime::<Utc>::from_timestamp_millis)
                .unwrap_or_default();
            schedule
                .fire_times(from)
                .take(NEXT_PREVIEW)
                .map(|t| json!(fire_time(&schedule, t)))
                .collect()
        }
        _ => Vec::new(),
    };
    view.insert("next".into(), json!(next));
    Value::Object(view)
}

fn attempt(a: &Attempt) -> Value {
    json!({
        "n": a.n,
        "node": a.node,
        "started_at": rfc3339(a.started_at_ms),
        "finished_at": a.finished_at_ms.map(rfc3339),
        "outcome": a.result.map(|r| r.as_str()),
        "status": a.status,
        "output": a.output,
        "error": a.error,
        "fencing_token": a.fencing_token,
        "job_version": a.job_version,
    })
}

/// A run with every attempt.
pub fn run(r: &RunRecord) -> Value {
    let mut view = json!({
        "id": r.id,
        "job": r.job,
        "scheduled_for": rfc3339(r.scheduled_for_ms),
        "fired_at": rfc3339(r.fired_at_ms),
        "state": r.state.as_str(),
        "reason": r.reason,
        "manual": r.manual,
        "job_version": r.job_version,
        "next_attempt_at": r.next_attempt_at_ms.map(rfc3339),
        "finished_at": r.finished_at_ms.map(rfc3339),
        "attempts": r.attempts.iter().map(attempt).collect::<Vec<_>>(),
    });
    if r.slots > 1 {
        view["missed_slots"] = json!(r.slots);
        view["last_slot"] = json!(rfc3339(r.last_slot_ms));
    }
    view
}

#[cfg(test)]
mod tests {
    use super::rfc3339;

    #[test]
    fn times_are_rfc3339_utc_with_milliseconds() {
        // 1 774 746 000 000 ms = 2026-03-29T01:00:00Z (29 March 2026 is
        // day 20 541 since 1970-01-01: 20 541 × 86 400 s + 3 600 s).
        assert_eq!(rfc3339(1_774_746_000_000), "2026-03-29T01:00:00.000Z");
        assert_eq!(rfc3339(1), "1970-01-01T00:00:00.001Z");
    }
}
