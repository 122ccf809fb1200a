//! The public HTTP API under `/v1`, plus `/healthz` and `/readyz`, and the
//! web UI (`/` and `/ui/*`, see [`ui`]).
//!
//! Each feature exposes a `router()`; [`app`] merges them, so tests can call
//! the whole API without a socket. Only this module knows the public HTTP
//! API and its error JSON.

pub mod auth;
pub mod cluster;
pub mod cron;
pub mod error;
pub mod health;
pub mod jobs;
pub mod json;
pub mod ledger;
pub mod locks;
pub mod queues;
pub mod ui;
pub mod views;
pub(crate) mod wait;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::Router;
use gnomon_raft::Consensus;
use gnomon_storage::sm::ReadView;
use serde::Deserialize;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// The node's replica: proposals, linearizable reads, membership.
    pub consensus: Consensus,
    /// What the node counts for `/metrics`.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Largest queue payload or ledger result accepted, in bytes (SPEC §7).
    pub max_payload_bytes: usize,
    /// Whether this node accepts jobs with shell targets (`--allow-shell`).
    pub allow_shell: bool,
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
    /// A view of the state for a read (linearizable unless the caller asked
    /// for a stale one) and the instant to judge leases and due times at:
    /// the later of the log's clock and this node's, so that a lease that
    /// lapsed while the cluster was idle reads as lapsed.
    pub async fn read(&self, query: &ReadQuery) -> Result<(ReadView, u64), error::ApiError> {
        self.read_barrier(query).await?;
        let view = self.consensus.read()?;
        let now = view.vars()?.log_now_ms.max(gnomon_raft::wall_clock_ms());
        Ok((view, now))
    }

    /// Make the next read linearizable unless the caller asked for a stale one.
    pub async fn read_barrier(&self, query: &ReadQuery) -> Result<(), error::ApiError> {
        if !query.stale {
            self.consensus.linearize().await?;
        }
        Ok(())
    }
}

/// Room for the JSON around a payload: a request carrying a payload of
/// exactly the limit is still read, so the refusal of a larger one can name
/// the `payload` field instead of the whole body.
const ENVELOPE_BYTES: usize = 64 << 10;

/// A fresh random id or token (128 bits, hex): message ids, claim tokens
/// and lease tokens are made here, before proposing, never inside `apply`.
pub(crate) fn new_token() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// Refuse a payload (or result) larger than the node's limit: 413 naming `field`.
pub(crate) fn check_payload(
    state: &AppState,
    field: &str,
    len: usize,
) -> Result<(), error::ApiError> {
    gnomon_storage::limits::check_payload(field, len, state.max_payload_bytes).map_err(|e| {
        error::ApiError::new(
            axum::http::StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            e.to_string(),
        )
    })
}

/// The whole public API with a body limit of `max_body_bytes` (and room for
/// the envelope around payloads of `state.max_payload_bytes`).
pub fn app(state: AppState, max_body_bytes: usize) -> Router {
    let payload_routes = Router::new()
        .merge(ledger::router())
        .merge(queues::router())
        .layer(DefaultBodyLimit::max(
            state.max_payload_bytes.saturating_add(ENVELOPE_BYTES),
        ));
    let v1 = Router::new()
        .merge(cluster::router())
        .merge(locks::router())
        .merge(cron::router())
        .merge(jobs::router())
        .merge(payload_routes);
    Router::new()
        .nest("/v1", v1)
        .merge(health::router())
        .merge(ui::router())
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .with_state(state)
}
