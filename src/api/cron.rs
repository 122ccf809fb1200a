//! `POST /v1/cron/validate`: parse, describe and preview a schedule.

use axum::Router;

/// Routes of the schedule validation API.
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
}
