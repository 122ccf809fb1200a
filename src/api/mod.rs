//! The public HTTP API under `/v1`: one `router()` per feature, merged by [`app`].

pub mod cron;
pub mod error;
pub mod json;

use axum::Router;

/// The whole public API, ready to serve or to call in tests without a socket.
pub fn app() -> Router {
    Router::new().nest("/v1", cron::router())
}
