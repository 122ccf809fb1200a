//! The one error type every handler returns, rendered as SPEC §4 prescribes:
//! a 4xx/5xx status and `{"error":{"code","message","details"?}}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

/// An error for an HTTP caller. `code` is a stable snake_case string and part
/// of the API: clients and tests match on it, so never change an existing one.
#[derive(Debug)]
pub struct ApiError {
    /// The HTTP status; never 2xx.
    pub status: StatusCode,
    /// Stable, machine-readable snake_case code.
    pub code: &'static str,
    /// A sentence for humans that names the offending field where there is one.
    pub message: String,
    /// Optional structured context (for example the current holder of a lock).
    pub details: Option<Value>,
}

impl ApiError {
    /// An error with the given status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        debug_assert!(!status.is_success(), "an error must not carry a 2xx status");
        Self {
            status,
            code,
            message: message.into(),
            details: None,
        }
    }

    /// 400: the request is malformed or a field is invalid.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 404: the named thing does not exist.
    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, message)
    }

    /// 409: the request conflicts with the current state.
    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }

    /// 422: well-formed, but the content cannot be accepted.
    pub fn unprocessable(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }

    /// 500: something failed inside this node. The cause is logged in full
    /// here and the caller gets a generic message, so internals do not leak.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; see the node's log",
        )
    }

    /// Name the offending field in `details.field` too, so clients need not
    /// parse the message (which also starts with it).
    pub fn for_field(self, field: &str) -> Self {
        self.with_details(json!({ "field": field }))
    }

    /// Attach structured details to the error body.
    pub fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut error = json!({ "code": self.code, "message": self.message });
        if let Some(details) = self.details {
            error["details"] = details;
        }
        (self.status, Json(json!({ "error": error }))).into_response()
    }
}

impl From<gnomon_storage::limits::InvalidInput> for ApiError {
    fn from(invalid: gnomon_storage::limits::InvalidInput) -> Self {
        ApiError::bad_request("invalid_field", invalid.to_string()).for_field(&invalid.field)
    }
}

impl From<gnomon_raft::ConsensusError> for ApiError {
    fn from(e: gnomon_raft::ConsensusError) -> Self {
        use gnomon_raft::{ConsensusError as C, MembershipError as M};
        let message = e.to_string();
        match e {
            C::NoLeader { .. } | C::NotLeader => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "no_leader", message)
            }
            C::Unknown(_) => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "outcome_unknown", message)
            }
            C::Membership(m) => match m {
                M::InvalidAddr { .. } | M::InvalidId(_) => {
                    ApiError::bad_request("invalid_field", message)
                }
                M::UnknownMember(_) => ApiError::not_found("unknown_member", message),
                M::IdTaken { .. } => ApiError::conflict("member_exists", message),
                M::Unreachable { .. } => ApiError::unprocessable("member_unreachable", message),
                M::IdMismatch { .. } => ApiError::unprocessable("member_id_mismatch", message),
                M::AlreadyInitialized { .. } => ApiError::conflict("member_has_state", message),
                M::CatchUpTimeout { .. } => {
                    ApiError::new(StatusCode::GATEWAY_TIMEOUT, "catch_up_timeout", message)
                }
                M::LastVoter(_) => ApiError::conflict("last_voter", message),
                M::Refused(_) => ApiError::conflict("membership_change_refused", message),
                _ => ApiError::conflict("membership_change_refused", message),
            },
            _ => ApiError::internal(message),
        }
    }
}

impl From<gnomon_storage::Error> for ApiError {
    fn from(e: gnomon_storage::Error) -> Self {
        ApiError::internal(e)
    }
}
