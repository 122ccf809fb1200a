//! The public HTTP API under `/v1`, plus `/healthz` and `/readyz`.
//!
//! Each feature exposes a `router()`; [`app`] merges them, so tests can call
//! the whole API without a socket. Only this module knows the public HTTP
//! API and its error JSON.

pub mod auth;
pub mod cluster;
pub mod cron;
pub mod error;
pub mod health;
pub mod json;
pub mod locks;
mod wait;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::Router;
use gnomon_raft::Consensus;
use serde::Deserialize;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// The node's replica: proposals, linearizable reads, membership.
    pub consensus: Consensus,
    /// What the node counts for `/metrics`.
    pub metrics: Arc<crate::metrics::Metrics>,
}

/// `?stale=true` skips the read-index round trip: the answer is this node's
/// applied state, which may lag the leader.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadQuery {
    /// Serve from local state without confirming leadership first.
    #[serde(default)]
    pub stale: bool,
}

impl AppState {
    /// Make the next read linearizable unless the caller asked for a stale one.
    pub async fn read_barrier(&self, query: &ReadQuery) -> Result<(), error::ApiError> {
        if !query.stale {
            self.consensus.linearize().await?;
        }
        Ok(())
    }
}

/// The whole public API with a body limit of `max_body_bytes`.
pub fn app(state: AppState, max_body_bytes: usize) -> Router {
    let v1 = Router::new()
        .merge(cluster::router())
        .merge(locks::router())
        .merge(cron::router());
    Router::new()
        .nest("/v1", v1)
        .merge(health::router())
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .with_state(state)
}
