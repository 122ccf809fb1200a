//! `/v1/locks`: leases with fencing tokens (SPEC §4).

use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use gnomon_storage::command::{LockAcquire, LockRelease, LockRenew, Outcome};
use gnomon_storage::limits::{check_name, InvalidInput};
use gnomon_storage::locks::{LockOutcome, LockRecord};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::time::Instant;

use super::error::ApiError;
use super::json::{ApiJson, ApiQuery};
use super::wait::{instant_at, until};
use super::{AppState, ReadQuery};

/// Longest an acquire may long-poll.
const MAX_WAIT_MS: u64 = 300_000;

/// Lock routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/locks", get(list))
        .route("/locks/{name}", get(get_one))
        .route("/locks/{name}/acquire", post(acquire))
        .route("/locks/{name}/renew", post(renew))
        .route("/locks/{name}/release", post(release))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AcquireBody {
    owner: String,
    ttl_ms: u64,
    #[serde(default)]
    wait_ms: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RenewBody {
    owner: String,
    token: u64,
    ttl_ms: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReleaseBody {
    owner: String,
    token: u64,
}

/// A held lock as the API shows it.
#[derive(Debug, Serialize)]
struct LockView {
    name: String,
    owner: String,
    token: u64,
    acquired_at_ms: u64,
    expires_at_ms: u64,
}

impl LockView {
    fn new(name: String, r: LockRecord) -> Self {
        Self {
            name,
            owner: r.owner,
            token: r.token,
            acquired_at_ms: r.acquired_at_ms,
            expires_at_ms: r.expires_at_ms,
        }
    }
}

fn lock_outcome(outcome: Outcome) -> Result<LockOutcome, ApiError> {
    match outcome {
        Outcome::Lock(o) => Ok(o),
        Outcome::Invalid(invalid) => Err(invalid.into()),
        #[allow(unreachable_patterns)]
        other => Err(ApiError::internal(format!("unexpected outcome {other:?}"))),
    }
}

fn not_holder(name: &str, holder: Option<LockRecord>) -> ApiError {
    let details = holder.map(|h| json!({ "owner": h.owner, "expires_at_ms": h.expires_at_ms }));
    let err = ApiError::conflict(
        "lock_not_held",
        format!("the caller does not hold lock {name:?} (its lease lapsed, or the owner or token is wrong)"),
    );
    match details {
        Some(d) => err.with_details(d),
        None => err,
    }
}

/// Acquire, long-polling up to `wait_ms` while someone else holds it.
async fn acquire(
    State(state): State<AppState>,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<AcquireBody>,
) -> Result<Response, ApiError> {
    if body.wait_ms > MAX_WAIT_MS {
        return Err(InvalidInput::new("wait_ms", format!("must be at most {MAX_WAIT_MS}")).into());
    }
    let command = LockAcquire {
        name: name.clone(),
        owner: body.owner,
        ttl_ms: body.ttl_ms,
    };
    gnomon_storage::command::Command::from(command.clone()).validate()?;
    let deadline = Instant::now() + Duration::from_millis(body.wait_ms);
    loop {
        match lock_outcome(state.consensus.propose_one(command.clone()).await?)? {
            LockOutcome::Granted {
                token,
                acquired_at_ms,
                expires_at_ms,
            } => {
                let body = json!({
                    "acquired": true,
                    "token": token,
                    "acquired_at_ms": acquired_at_ms,
                    "expires_at_ms": expires_at_ms,
                });
                return Ok(Json(body).into_response());
            }
            LockOutcome::Held {
                owner,
                expires_at_ms,
            } if Instant::now() < deadline => {
                // Wake when the lock is released or lapses, or at the deadline.
                let wake_at = deadline.min(instant_at(expires_at_ms));
                let consensus = state.consensus.clone();
                until(&state.consensus, wake_at, || {
                    let current = consensus
                        .read()
                        .ok()
                        .and_then(|v| v.lock(&name).ok().flatten());
                    current.is_none_or(|h| h.owner != owner)
                })
                .await;
            }
            LockOutcome::Held {
                owner,
                expires_at_ms,
            } => {
                let body = json!({
                    "acquired": false,
                    "owner": owner,
                    "expires_at_ms": expires_at_ms,
                    "error": {
                        "code": "lock_held",
                        "message": format!("lock {name:?} is held by {owner:?} until {expires_at_ms}"),
                    },
                });
                return Ok((StatusCode::CONFLICT, Json(body)).into_response());
            }
            other => {
                return Err(ApiError::internal(format!(
                    "unexpected lock outcome {other:?}"
                )))
            }
        }
    }
}

async fn renew(
    State(state): State<AppState>,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<RenewBody>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let command = LockRenew {
        name: name.clone(),
        owner: body.owner,
        token: body.token,
        ttl_ms: body.ttl_ms,
    };
    match lock_outcome(state.consensus.propose_one(command).await?)? {
        LockOutcome::Renewed {
            token,
            expires_at_ms,
        } => Ok(Json(json!({
            "renewed": true, "token": token, "expires_at_ms": expires_at_ms
        }))),
        LockOutcome::NotHolder { holder } => Err(not_holder(&name, holder)),
        other => Err(ApiError::internal(format!(
            "unexpected lock outcome {other:?}"
        ))),
    }
}

async fn release(
    State(state): State<AppState>,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<ReleaseBody>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let command = LockRelease {
        name: name.clone(),
        owner: body.owner,
        token: body.token,
    };
    match lock_outcome(state.consensus.propose_one(command).await?)? {
        LockOutcome::Released { released_at_ms } => Ok(Json(json!({
            "released": true, "released_at_ms": released_at_ms
        }))),
        LockOutcome::NotHolder { holder } => Err(not_holder(&name, holder)),
        other => Err(ApiError::internal(format!(
            "unexpected lock outcome {other:?}"
        ))),
    }
}

async fn list(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<ReadQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let (view, now) = state.read(&query).await?;
    let locks: Vec<LockView> = view
        .locks()?
        .into_iter()
        .filter(|(_, r)| r.is_live(now))
        .map(|(name, r)| LockView::new(name, r))
        .collect();
    Ok(Json(json!({ "locks": locks })))
}

async fn get_one(
    State(state): State<AppState>,
    Path(name): Path<String>,
    ApiQuery(query): ApiQuery<ReadQuery>,
) -> Result<Json<LockView>, ApiError> {
    check_name("name", &name)?;
    let (view, now) = state.read(&query).await?;
    match view.lock(&name)? {
        Some(r) if r.is_live(now) => Ok(Json(LockView::new(name, r))),
        _ => Err(ApiError::not_found(
            "lock_not_found",
            format!("lock {name:?} is not held"),
        )),
    }
}
