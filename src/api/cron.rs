//! `POST /v1/cron/validate`: parse, describe and preview a schedule.
//!
//! A valid schedule answers 200 with the body of SPEC §4. Anything wrong with
//! the schedule itself (expression, zone, dialect, policy, never firing)
//! answers 422 `{"valid":false,"error":{"code","message","position"}}`, so a
//! form can point at the field; a body that is not the documented JSON
//! answers 400 through [`ApiJson`].

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::json;

use super::error::ApiError;
use super::json::ApiJson;
use crate::schedule::validate::MAX_COUNT;
use crate::schedule::{validate, Dialect, DstPolicy, ScheduleError};

/// Routes of the schedule validation API.
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new().route("/cron/validate", post(validate_handler))
}

/// The request body. `from` (RFC 3339, exclusive, default now) is an
/// extension to SPEC §4 so previews can be reproduced.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ValidateRequest {
    expr: String,
    timezone: Option<String>,
    dialect: Option<String>,
    dst: Option<String>,
    count: Option<usize>,
    from: Option<String>,
}

#[tracing::instrument(skip_all, fields(expr = %req.expr))]
async fn validate_handler(ApiJson(req): ApiJson<ValidateRequest>) -> Result<Response, ApiError> {
    let count = req.count.unwrap_or(5);
    if count > MAX_COUNT {
        return Err(ApiError::bad_request(
            "invalid_field",
            format!("count: {count} is more than the maximum of {MAX_COUNT}"),
        ));
    }
    let from = match &req.from {
        Some(text) => DateTime::parse_from_rfc3339(text)
            .map_err(|e| ApiError::bad_request("invalid_field", format!("from: {e}")))?
            .with_timezone(&Utc),
        None => Utc::now(),
    };
    let result = (|| {
        let dialect = req
            .dialect
            .as_deref()
            .map_or(Ok(Dialect::default()), str::parse)?;
        let dst = req
            .dst
            .as_deref()
            .map_or(Ok(DstPolicy::default()), str::parse)?;
        let tz = req.timezone.as_deref().unwrap_or("UTC");
        validate(&req.expr, dialect, tz, dst, from, count)
    })();
    Ok(match result {
        Ok(v) => Json(v).into_response(),
        Err(e) => invalid(&e),
    })
}

/// 422 with the error's code, message (which names the field) and position.
fn invalid(e: &ScheduleError) -> Response {
    let field = match e {
        ScheduleError::UnknownTimezone(_) => "timezone: ",
        ScheduleError::UnknownDialect(_) => "dialect: ",
        ScheduleError::UnknownDstPolicy(_) => "dst: ",
        _ => "expr: ",
    };
    let body = json!({
        "valid": false,
        "error": {
            "code": e.code(),
            "message": format!("{field}{e}"),
            "position": e.position(),
        }
    });
    (StatusCode::UNPROCESSABLE_ENTITY, Json(body)).into_response()
}
