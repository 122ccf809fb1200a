//! `/v1/queues`: the delay queue (SPEC §4).
//!
//! Message ids and lease tokens are generated here, before proposing. Queue
//! names starting with `gnomon:` belong to gnomon itself: they may be read
//! but not written through this API. A lease with `wait_ms` sleeps until
//! the earliest waiting message is due (read from local state) or the queue
//! changes, instead of polling.

use std::time::Duration;

use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use gnomon_storage::command::{
    Command, Outcome, QueueAck, QueueEnqueue, QueueExtend, QueueLease, QueueNack,
};
use gnomon_storage::delay_queue::{
    self, DeathReason, LeasedMessage, MessageRecord, MessageState, NotHeld, QueueOutcome,
    QueueStats, DEFAULT_MAX_ATTEMPTS, RESERVED_PREFIX,
};
use gnomon_storage::limits::check_name;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{json, Value};
use tokio::time::Instant;

use super::error::ApiError;
use super::json::{ApiJson, ApiQuery};
use super::wait::{instant_at, until};
use super::{check_payload, new_token, AppState, ReadQuery};

/// Longest a lease may long-poll.
const MAX_WAIT_MS: u64 = 300_000;

/// Stop adding messages to one lease once their payloads reach this size.
const LEASE_MAX_BYTES: u64 = 4 << 20;

/// Most dead letters one request lists.
const MAX_DEAD_LIMIT: usize = 1_000;

/// Queue routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/queues", get(list))
        .route("/queues/{queue}", get(get_one))
        .route("/queues/{queue}/dead", get(dead))
        .route("/queues/{queue}/lease", post(lease))
        .route("/queues/{queue}/messages", post(enqueue))
        .route("/queues/{queue}/messages/{id}", get(get_message))
        .route("/queues/{queue}/messages/{id}/ack", post(ack))
        .route("/queues/{queue}/messages/{id}/nack", post(nack))
        .route("/queues/{queue}/messages/{id}/extend", post(extend))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EnqueueBody {
    payload: Box<RawValue>,
    #[serde(default)]
    delay_ms: u64,
    #[serde(default)]
    dedup_key: Option<String>,
    #[serde(default)]
    max_attempts: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LeaseBody {
    worker: String,
    #[serde(default = "one")]
    max: u32,
    visibility_ms: u64,
    #[serde(default)]
    wait_ms: u64,
}

fn one() -> u32 {
    1
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AckBody {
    lease_token: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NackBody {
    lease_token: String,
    #[serde(default)]
    delay_ms: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExtendBody {
    lease_token: String,
    visibility_ms: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeadQuery {
    #[serde(default)]
    stale: bool,
    #[serde(default)]
    limit: Option<usize>,
}

/// A leased message as the worker gets it.
#[derive(Debug, Serialize)]
struct LeasedView {
    id: String,
    payload: Box<RawValue>,
    attempt: u32,
    max_attempts: u32,
    lease_token: String,
    due_at_ms: u64,
    leased_at_ms: u64,
    expires_at_ms: u64,
    enqueued_at_ms: u64,
}

impl From<LeasedMessage> for LeasedView {
    fn from(m: LeasedMessage) -> Self {
        Self {
            id: m.id,
            payload: raw(m.payload),
            attempt: m.attempt,
            max_attempts: m.max_attempts,
            lease_token: m.lease_token,
            due_at_ms: m.due_at_ms,
            leased_at_ms: m.leased_at_ms,
            expires_at_ms: m.expires_at_ms,
            enqueued_at_ms: m.enqueued_at_ms,
        }
    }
}

/// Stored payloads were valid JSON when they were accepted.
fn raw(text: String) -> Box<RawValue> {
    RawValue::from_string(text)
        .or_else(|_| RawValue::from_string("null".into()))
        .unwrap_or_default()
}

/// A message in any state, as `GET …/messages/{id}` and the dead letters
/// show it. Lease tokens are never shown.
fn message_view(queue: &str, id: &str, r: MessageRecord, now_ms: u64) -> Value {
    let state = match &r.state {
        MessageState::Waiting if r.due_at_ms <= now_ms => "ready",
        MessageState::Waiting => "delayed",
        MessageState::Leased { .. } => "leased",
        MessageState::Dead { .. } => "dead",
        MessageState::Acked { .. } => "acked",
    };
    let mut view = json!({
        "queue": queue,
        "id": id,
        "state": state,
        "attempt": r.attempt,
        "max_attempts": r.max_attempts,
        "due_at_ms": r.due_at_ms,
        "enqueued_at_ms": r.enqueued_at_ms,
        "dedup_key": r.dedup_key,
    });
    match r.state {
        MessageState::Acked { acked_at_ms, .. } => view["acked_at_ms"] = json!(acked_at_ms),
        MessageState::Leased {
            worker,
            leased_at_ms,
            expires_at_ms,
            ..
        } => {
            view["worker"] = json!(worker);
            view["leased_at_ms"] = json!(leased_at_ms);
            view["expires_at_ms"] = json!(expires_at_ms);
        }
        MessageState::Dead {
            died_at_ms,
            reason,
            last_worker,
            ..
        } => {
            view["died_at_ms"] = json!(died_at_ms);
            view["reason"] = json!(match reason {
                DeathReason::Nacked => "nacked",
                DeathReason::LeaseLapsed => "lease_lapsed",
            });
            view["last_worker"] = json!(last_worker);
        }
        MessageState::Waiting => {}
    }
    if state != "acked" {
        view["payload"] = json!(raw(r.payload));
    }
    view
}

fn stats_view(s: &QueueStats) -> Value {
    json!({
        "name": s.name,
        "ready": s.ready,
        "delayed": s.delayed,
        "leased": s.leased,
        "dead": s.dead,
    })
}

/// A write to a queue: the name must be valid and not reserved.
fn check_writable(queue: &str) -> Result<(), ApiError> {
    check_name("queue", queue)?;
    if delay_queue::is_reserved(queue) {
        return Err(ApiError::bad_request(
            "reserved_name",
            format!("queue: names starting with {RESERVED_PREFIX:?} are reserved for gnomon's own use, got {queue:?}"),
        ));
    }
    Ok(())
}

fn queue_outcome(outcome: Outcome) -> Result<QueueOutcome, ApiError> {
    match outcome {
        Outcome::Queue(o) => Ok(o),
        Outcome::Invalid(invalid) => Err(invalid.into()),
        other => Err(ApiError::internal(format!("unexpected outcome {other:?}"))),
    }
}

/// The refusals of ack, nack and extend.
fn refusal(queue: &str, id: &str, outcome: QueueOutcome) -> ApiError {
    match outcome {
        QueueOutcome::QueueNotFound => ApiError::not_found(
            "queue_not_found",
            format!("queue: {queue:?} has no messages"),
        ),
        QueueOutcome::MessageNotFound => ApiError::not_found(
            "message_not_found",
            format!("id: queue {queue:?} has no message {id:?}"),
        ),
        QueueOutcome::LeaseNotHeld(why) => {
            let (reason, says) = match why {
                NotHeld::Lapsed => ("lapsed", "its lease lapsed"),
                NotHeld::LeasedByAnother => {
                    ("leased_by_another", "it is leased under another token")
                }
                NotHeld::Waiting => (
                    "waiting",
                    "it is not leased (its lease lapsed or was given back)",
                ),
                NotHeld::Acked => ("acked", "it was acked under another lease"),
                NotHeld::Dead => ("dead", "it is in the dead letters"),
            };
            ApiError::conflict(
                "lease_not_held",
                format!("lease_token: does not hold message {id:?} of queue {queue:?}: {says}"),
            )
            .with_details(json!({ "reason": reason }))
        }
        other => ApiError::internal(format!("unexpected queue outcome {other:?}")),
    }
}

async fn enqueue(
    State(state): State<AppState>,
    Path(queue): Path<String>,
    ApiJson(body): ApiJson<EnqueueBody>,
) -> Result<Json<Value>, ApiError> {
    check_writable(&queue)?;
    check_payload(&state, "payload", body.payload.get().len())?;
    let command = QueueEnqueue {
        queue,
        id: new_token(),
        payload: body.payload.get().to_string(),
        delay_ms: body.delay_ms,
        dedup_key: body.dedup_key,
        max_attempts: body.max_attempts.unwrap_or(DEFAULT_MAX_ATTEMPTS),
    };
    Command::from(command.clone()).validate()?;
    match queue_outcome(state.consensus.propose_one(command).await?)? {
        QueueOutcome::Enqueued {
            id,
            due_at_ms,
            duplicate,
        } => Ok(Json(json!({
            "id": id,
            "due_at_ms": due_at_ms,
            "duplicate": duplicate,
        }))),
        other => Err(ApiError::internal(format!(
            "unexpected queue outcome {other:?}"
        ))),
    }
}

/// Lease, long-polling up to `wait_ms` while nothing is due.
async fn lease(
    State(state): State<AppState>,
    Path(queue): Path<String>,
    ApiJson(body): ApiJson<LeaseBody>,
) -> Result<Json<Value>, ApiError> {
    check_writable(&queue)?;
    if body.wait_ms > MAX_WAIT_MS {
        return Err(gnomon_storage::limits::InvalidInput::new(
            "wait_ms",
            format!("must be at most {MAX_WAIT_MS}, got {}", body.wait_ms),
        )
        .into());
    }
    let command = |lease_token| QueueLease {
        queue: queue.clone(),
        worker: body.worker.clone(),
        max: body.max,
        max_bytes: LEASE_MAX_BYTES,
        visibility_ms: body.visibility_ms,
        lease_token,
    };
    Command::from(command(new_token())).validate()?;
    let deadline = Instant::now() + Duration::from_millis(body.wait_ms);
    let mut backoff = Duration::from_millis(5);
    loop {
        let outcome = queue_outcome(state.consensus.propose_one(command(new_token())).await?)?;
        let QueueOutcome::Leased {
            leased_at_ms,
            messages,
        } = outcome
        else {
            return Err(ApiError::internal(format!(
                "unexpected queue outcome {outcome:?}"
            )));
        };
        if !messages.is_empty() || Instant::now() >= deadline {
            let messages: Vec<LeasedView> = messages.into_iter().map(LeasedView::from).collect();
            return Ok(Json(json!({
                "messages": messages,
                "leased_at_ms": leased_at_ms,
            })));
        }
        // Sleep until the earliest waiting message is due, or the queue's
        // front changes (an enqueue, a lapse, another worker's lease).
        let next_due = |consensus: &gnomon_raft::Consensus| {
            consensus
                .read()
                .ok()
                .and_then(|v| v.queue_next_due(&queue).ok().flatten())
        };
        let seen = next_due(&state.consensus);
        let wake_at = match seen {
            // Due already by this node's clock, yet not leased: this node's
            // state or the leader's clock lags a little. Back off briefly.
            Some(due) if due <= gnomon_raft::wall_clock_ms() => {
                let at = Instant::now() + backoff;
                backoff = (backoff * 2).min(Duration::from_millis(100));
                at
            }
            Some(due) => instant_at(due),
            None => deadline,
        };
        let consensus = state.consensus.clone();
        until(&state.consensus, wake_at.min(deadline), || {
            next_due(&consensus) != seen
        })
        .await;
    }
}

async fn settle(
    state: &AppState,
    queue: &str,
    id: &str,
    command: Command,
) -> Result<QueueOutcome, ApiError> {
    check_writable(queue)?;
    command.validate()?;
    let outcome = queue_outcome(state.consensus.propose_one(command).await?)?;
    match outcome {
        QueueOutcome::Acked { .. }
        | QueueOutcome::Nacked { .. }
        | QueueOutcome::Extended { .. } => Ok(outcome),
        other => Err(refusal(queue, id, other)),
    }
}

async fn ack(
    State(state): State<AppState>,
    Path((queue, id)): Path<(String, String)>,
    ApiJson(body): ApiJson<AckBody>,
) -> Result<Json<Value>, ApiError> {
    let command = QueueAck {
        queue: queue.clone(),
        id: id.clone(),
        lease_token: body.lease_token,
    };
    match settle(&state, &queue, &id, command.into()).await? {
        QueueOutcome::Acked { acked_at_ms } => Ok(Json(json!({
            "acked": true,
            "id": id,
            "acked_at_ms": acked_at_ms,
        }))),
        other => Err(ApiError::internal(format!(
            "unexpected queue outcome {other:?}"
        ))),
    }
}

async fn nack(
    State(state): State<AppState>,
    Path((queue, id)): Path<(String, String)>,
    ApiJson(body): ApiJson<NackBody>,
) -> Result<Json<Value>, ApiError> {
    let command = QueueNack {
        queue: queue.clone(),
        id: id.clone(),
        lease_token: body.lease_token,
        delay_ms: body.delay_ms,
    };
    match settle(&state, &queue, &id, command.into()).await? {
        QueueOutcome::Nacked {
            nacked_at_ms,
            due_at_ms,
        } => Ok(Json(json!({
            "nacked": true,
            "id": id,
            "nacked_at_ms": nacked_at_ms,
            "dead": due_at_ms.is_none(),
            "due_at_ms": due_at_ms,
        }))),
        other => Err(ApiError::internal(format!(
            "unexpected queue outcome {other:?}"
        ))),
    }
}

async fn extend(
    State(state): State<AppState>,
    Path((queue, id)): Path<(String, String)>,
    ApiJson(body): ApiJson<ExtendBody>,
) -> Result<Json<Value>, ApiError> {
    let command = QueueExtend {
        queue: queue.clone(),
        id: id.clone(),
        lease_token: body.lease_token,
        visibility_ms: body.visibility_ms,
    };
    match settle(&state, &queue, &id, command.into()).await? {
        QueueOutcome::Extended { expires_at_ms } => Ok(Json(json!({
            "extended": true,
            "id": id,
            "expires_at_ms": expires_at_ms,
        }))),
        other => Err(ApiError::internal(format!(
            "unexpected queue outcome {other:?}"
        ))),
    }
}

async fn list(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<ReadQuery>,
) -> Result<Json<Value>, ApiError> {
    let (view, now) = state.read(&query).await?;
    let queues: Vec<Value> = view.queues(now)?.iter().map(stats_view).collect();
    Ok(Json(json!({ "queues": queues })))
}

/// A queue's counts. Queues exist implicitly, so a valid name without
/// messages has all counts zero.
async fn get_one(
    State(state): State<AppState>,
    Path(queue): Path<String>,
    ApiQuery(query): ApiQuery<ReadQuery>,
) -> Result<Json<Value>, ApiError> {
    check_name("queue", &queue)?;
    let (view, now) = state.read(&query).await?;
    let stats = view.queue_stats(&queue, now)?.unwrap_or(QueueStats {
        name: queue.clone(),
        ready: 0,
        delayed: 0,
        leased: 0,
        dead: 0,
    });
    let mut body = stats_view(&stats);
    body["next_due_at_ms"] = json!(view.queue_next_due(&queue)?);
    Ok(Json(body))
}

async fn get_message(
    State(state): State<AppState>,
    Path((queue, id)): Path<(String, String)>,
    ApiQuery(query): ApiQuery<ReadQuery>,
) -> Result<Json<Value>, ApiError> {
    check_name("queue", &queue)?;
    check_name("id", &id)?;
    let (view, now) = state.read(&query).await?;
    match view.queue_message(&queue, &id)? {
        Some(r) => Ok(Json(message_view(&queue, &id, r, now))),
        None => Err(refusal(&queue, &id, QueueOutcome::MessageNotFound)),
    }
}

async fn dead(
    State(state): State<AppState>,
    Path(queue): Path<String>,
    ApiQuery(query): ApiQuery<DeadQuery>,
) -> Result<Json<Value>, ApiError> {
    check_name("queue", &queue)?;
    let limit = query.limit.unwrap_or(100);
    if limit == 0 || limit > MAX_DEAD_LIMIT {
        return Err(ApiError::bad_request(
            "invalid_query",
            format!("limit: must be between 1 and {MAX_DEAD_LIMIT}, got {limit}"),
        ));
    }
    let (view, now) = state.read(&ReadQuery { stale: query.stale }).await?;
    let messages: Vec<Value> = view
        .dead_letters(&queue, limit)?
        .into_iter()
        .map(|(id, r)| message_view(&queue, &id, r, now))
        .collect();
    Ok(Json(json!({ "messages": messages })))
}
