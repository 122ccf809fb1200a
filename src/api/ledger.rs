//! `/v1/idempotency`: claim a key once, cluster-wide, and remember the
//! result (SPEC §4).
//!
//! Claim tokens are generated here, before proposing, so the state machine
//! stays deterministic and a retried claim recognises itself.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use gnomon_storage::command::{Command, LedgerAbandon, LedgerClaim, LedgerComplete, Outcome};
use gnomon_storage::ledger::{LedgerOutcome, LedgerRecord, LedgerState};
use gnomon_storage::limits::check_name;
use serde::{Deserialize, Serialize};
use serde_json::json;
use serde_json::value::RawValue;

use super::error::ApiError;
use super::json::{ApiJson, ApiQuery};
use super::{check_payload, new_token, AppState, ReadQuery};

/// Idempotency-ledger routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/idempotency/{key}", get(get_one))
        .route("/idempotency/{key}/claim", post(claim))
        .route("/idempotency/{key}/complete", post(complete))
        .route("/idempotency/{key}/abandon", post(abandon))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClaimBody {
    owner: String,
    ttl_ms: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CompleteBody {
    claim_token: String,
    result: Box<RawValue>,
    /// The completed record's lifetime; the claim's `ttl_ms` if absent.
    #[serde(default)]
    ttl_ms: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AbandonBody {
    claim_token: String,
}

/// A record as anyone may see it: everything but the claim token.
#[derive(Debug, Serialize)]
struct RecordView {
    key: String,
    status: &'static str,
    owner: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    result: Option<Box<RawValue>>,
    created_at_ms: u64,
    updated_at_ms: u64,
    expires_at_ms: u64,
}

impl RecordView {
    fn new(key: &str, r: LedgerRecord) -> Self {
        let (status, result) = match r.state {
            LedgerState::InProgress => ("in_progress", None),
            // Stored results were valid JSON when they were accepted.
            LedgerState::Completed { result } => (
                "completed",
                Some(RawValue::from_string(result).unwrap_or_else(|_| null())),
            ),
        };
        Self {
            key: key.to_string(),
            status,
            owner: r.owner,
            result,
            created_at_ms: r.created_at_ms,
            updated_at_ms: r.updated_at_ms,
            expires_at_ms: r.expires_at_ms,
        }
    }
}

fn null() -> Box<RawValue> {
    RawValue::from_string("null".into()).unwrap_or_default()
}

fn ledger_outcome(outcome: Outcome) -> Result<LedgerOutcome, ApiError> {
    match outcome {
        Outcome::Ledger(o) => Ok(o),
        Outcome::Invalid(invalid) => Err(invalid.into()),
        other => Err(ApiError::internal(format!("unexpected outcome {other:?}"))),
    }
}

/// The refusals every command on an existing claim can meet.
fn refusal(key: &str, outcome: LedgerOutcome) -> ApiError {
    match outcome {
        LedgerOutcome::NotFound => ApiError::not_found(
            "key_not_found",
            format!("idempotency key {key:?} has no record (never claimed, abandoned, or expired)"),
        ),
        LedgerOutcome::WrongToken(r) => ApiError::conflict(
            "wrong_claim_token",
            format!("claim_token: is not the token idempotency key {key:?} was claimed with"),
        )
        .with_details(json!(RecordView::new(key, r))),
        LedgerOutcome::AlreadyCompleted(r) => ApiError::conflict(
            "already_completed",
            format!("idempotency key {key:?} is already completed (with the result in details)"),
        )
        .with_details(json!(RecordView::new(key, r))),
        other => ApiError::internal(format!("unexpected ledger outcome {other:?}")),
    }
}

async fn claim(
    State(state): State<AppState>,
    Path(key): Path<String>,
    ApiJson(body): ApiJson<ClaimBody>,
) -> Result<Response, ApiError> {
    let command = LedgerClaim {
        key: key.clone(),
        owner: body.owner,
        ttl_ms: body.ttl_ms,
        claim_token: new_token(),
    };
    Command::from(command.clone()).validate()?;
    let owner = command.owner.clone();
    match ledger_outcome(state.consensus.propose_one(command).await?)? {
        LedgerOutcome::Claimed {
            claim_token,
            expires_at_ms,
        } => {
            let body = json!({
                "status": "claimed",
                "key": key,
                "owner": owner,
                "claim_token": claim_token,
                "expires_at_ms": expires_at_ms,
            });
            Ok((StatusCode::CREATED, Json(body)).into_response())
        }
        LedgerOutcome::Exists(r) => Ok(Json(RecordView::new(&key, r)).into_response()),
        other => Err(ApiError::internal(format!(
            "unexpected ledger outcome {other:?}"
        ))),
    }
}

async fn complete(
    State(state): State<AppState>,
    Path(key): Path<String>,
    ApiJson(body): ApiJson<CompleteBody>,
) -> Result<Json<RecordView>, ApiError> {
    check_name("key", &key)?;
    check_payload(&state, "result", body.result.get().len())?;
    let command = LedgerComplete {
        key: key.clone(),
        claim_token: body.claim_token,
        result: body.result.get().to_string(),
        ttl_ms: body.ttl_ms,
    };
    Command::from(command.clone()).validate()?;
    match ledger_outcome(state.consensus.propose_one(command).await?)? {
        LedgerOutcome::Completed(r) => Ok(Json(RecordView::new(&key, r))),
        other => Err(refusal(&key, other)),
    }
}

async fn abandon(
    State(state): State<AppState>,
    Path(key): Path<String>,
    ApiJson(body): ApiJson<AbandonBody>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let command = LedgerAbandon {
        key: key.clone(),
        claim_token: body.claim_token,
    };
    Command::from(command.clone()).validate()?;
    match ledger_outcome(state.consensus.propose_one(command).await?)? {
        LedgerOutcome::Abandoned { abandoned_at_ms } => Ok(Json(json!({
            "status": "abandoned",
            "key": key,
            "abandoned_at_ms": abandoned_at_ms,
        }))),
        other => Err(refusal(&key, other)),
    }
}

async fn get_one(
    State(state): State<AppState>,
    Path(key): Path<String>,
    ApiQuery(query): ApiQuery<ReadQuery>,
) -> Result<Json<RecordView>, ApiError> {
    check_name("key", &key)?;
    // Judged at the later clock: a record that expired while the cluster
    // was idle is shown as gone.
    let (view, now) = state.read(&query).await?;
    match view.ledger(&key)? {
        Some(r) if r.is_live(now) => Ok(Json(RecordView::new(&key, r))),
        _ => Err(refusal(&key, LedgerOutcome::NotFound)),
    }
}
