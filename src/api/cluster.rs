//! `/v1/cluster`: the cluster's state and its membership.

use axum::extract::{Path, State};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use gnomon_raft::ClusterStatus;
use serde::Deserialize;

use super::error::ApiError;
use super::json::ApiJson;
use super::AppState;

/// Cluster routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/cluster", get(status))
        .route("/cluster/members", post(add_member))
        .route("/cluster/members/{id}", delete(remove_member))
}

async fn status(State(state): State<AppState>) -> Json<ClusterStatus> {
    Json(state.consensus.status().await)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AddMember {
    id: u64,
    addr: String,
}

/// Add a node: as a learner, then as a voter once it has caught up.
async fn add_member(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<AddMember>,
) -> Result<Json<ClusterStatus>, ApiError> {
    state.consensus.add_member(body.id, body.addr).await?;
    Ok(Json(state.consensus.status().await))
}

async fn remove_member(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ClusterStatus>, ApiError> {
    let id: u64 = id.parse().map_err(|_| {
        ApiError::bad_request("invalid_field", format!("id: {id:?} is not a node id"))
    })?;
    state.consensus.remove_member(id).await?;
    Ok(Json(state.consensus.status().await))
}
