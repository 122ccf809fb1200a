//! `/v1/jobs` and `/v1/runs`: define jobs, pause, resume and trigger them,
//! and read their runs (SPEC §4).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use gnomon_storage::command::{JobDelete, JobSetEnabled, JobTrigger, Outcome};
use gnomon_storage::jobs::JobOutcome;
use gnomon_storage::limits::check_name;
use gnomon_storage::runs::{RunOutcome, RunState};
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::ApiError;
use super::json::{ApiJson, ApiQuery};
use super::{views, AppState, ReadQuery};
use crate::job::{trigger_run_id, JobSpec, SpecError};

/// Runs a listing returns unless `limit` says otherwise, and at most.
const DEFAULT_LIMIT: usize = 20;
const MAX_LIMIT: usize = 1_000;

/// Job and run routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/jobs", get(list))
        .route("/jobs/{name}", get(get_one).put(put).delete(delete))
        .route("/jobs/{name}/pause", post(pause))
        .route("/jobs/{name}/resume", post(resume))
        .route("/jobs/{name}/trigger", post(trigger))
        .route("/jobs/{name}/runs", get(job_runs))
        .route("/runs", get(runs_by_state))
        .route("/runs/{id}", get(one_run))
}

impl From<SpecError> for ApiError {
    fn from(e: SpecError) -> Self {
        let status = if e.unprocessable {
            StatusCode::UNPROCESSABLE_ENTITY
        } else {
            StatusCode::BAD_REQUEST
        };
        ApiError::new(status, e.code, e.message).for_field(&e.field)
    }
}

fn job_not_found(name: &str) -> ApiError {
    ApiError::not_found("job_not_found", format!("no job is named {name:?}"))
}

fn unexpected(outcome: impl std::fmt::Debug) -> ApiError {
    ApiError::internal(format!("unexpected outcome {outcome:?}"))
}

/// A job as the API shows it, read after the change that just applied.
async fn job_view(state: &AppState, name: &str) -> Result<Value, ApiError> {
    let (view, now) = state.read(&ReadQuery::default()).await?;
    let record = view.job(name)?.ok_or_else(|| job_not_found(name))?;
    let last = view.job_runs(name, 1)?;
    Ok(views::job(name, &record, last.first(), now))
}

async fn put(
    State(state): State<AppState>,
    Path(name): Path<String>,
    ApiJson(spec): ApiJson<JobSpec>,
) -> Result<Response, ApiError> {
    check_name("name", &name)?;
    spec.validate(state.allow_shell)?;
    match state.consensus.propose_one(spec.to_put(&name)).await? {
        Outcome::Job(JobOutcome::Saved { created, .. }) => {
            let status = if created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            Ok((status, Json(job_view(&state, &name).await?)).into_response())
        }
        Outcome::Invalid(invalid) => Err(invalid.into()),
        other => Err(unexpected(other)),
    }
}

async fn get_one(
    State(state): State<AppState>,
    Path(name): Path<String>,
    ApiQuery(query): ApiQuery<ReadQuery>,
) -> Result<Json<Value>, ApiError> {
    check_name("name", &name)?;
    let (view, now) = state.read(&query).await?;
    let record = view.job(&name)?.ok_or_else(|| job_not_found(&name))?;
    let last = view.job_runs(&name, 1)?;
    Ok(Json(views::job(&name, &record, last.first(), now)))
}

async fn list(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<ReadQuery>,
) -> Result<Json<Value>, ApiError> {
    let (view, now) = state.read(&query).await?;
    let mut jobs = Vec::new();
    for (name, record) in view.jobs()? {
        let last = view.job_runs(&name, 1)?;
        jobs.push(views::job(&name, &record, last.first(), now));
    }
    Ok(Json(json!({ "jobs": jobs })))
}

async fn delete(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    check_name("name", &name)?;
    match state
        .consensus
        .propose_one(JobDelete { name: name.clone() })
        .await?
    {
        Outcome::Job(JobOutcome::Deleted { cancelled }) => Ok(Json(json!({
            "deleted": true, "name": name, "cancelled_runs": cancelled
        }))),
        Outcome::Job(JobOutcome::NotFound) => Err(job_not_found(&name)),
        other => Err(unexpected(other)),
    }
}

async fn set_enabled(
    state: AppState,
    name: String,
    enabled: bool,
) -> Result<Json<Value>, ApiError> {
    check_name("name", &name)?;
    match state
        .consensus
        .propose_one(JobSetEnabled {
            name: name.clone(),
            enabled,
        })
        .await?
    {
        Outcome::Job(JobOutcome::Saved { .. }) => Ok(Json(job_view(&state, &name).await?)),
        Outcome::Job(JobOutcome::NotFound) => Err(job_not_found(&name)),
        other => Err(unexpected(other)),
    }
}

async fn pause(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    set_enabled(state, name, false).await
}

async fn resume(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    set_enabled(state, name, true).await
}

/// A manual run: it does not move the cursor (SPEC §4).
async fn trigger(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    check_name("name", &name)?;
    let command = JobTrigger {
        job: name.clone(),
        run_id: trigger_run_id(&name),
    };
    match state.consensus.propose_one(command).await? {
        Outcome::Run(RunOutcome::Recorded { run_id, .. }) => {
            state.consensus.linearize().await?;
            let run = state.consensus.read()?.run(&run_id)?;
            let body = run.map_or_else(|| json!({ "id": run_id }), |r| views::run(&r));
            Ok((StatusCode::CREATED, Json(body)).into_response())
        }
        Outcome::Run(RunOutcome::JobNotFound) => Err(job_not_found(&name)),
        other => Err(unexpected(other)),
    }
}

/// `?limit=N&stale=true` on run listings.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RunsQuery {
    #[serde(default)]
    limit: Option<usize>,
    #[serde(default)]
    stale: bool,
    #[serde(default)]
    state: Option<String>,
}

impl RunsQuery {
    fn limit(&self) -> Result<usize, ApiError> {
        match self.limit {
            None => Ok(DEFAULT_LIMIT),
            Some(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
            Some(n) => Err(ApiError::bad_request(
                "invalid_query",
                format!("limit: must be between 1 and {MAX_LIMIT}, got {n}"),
            )),
        }
    }

    async fn barrier(&self, state: &AppState) -> Result<(), ApiError> {
        state.read_barrier(&ReadQuery { stale: self.stale }).await
    }
}

async fn job_runs(
    State(state): State<AppState>,
    Path(name): Path<String>,
    ApiQuery(query): ApiQuery<RunsQuery>,
) -> Result<Json<Value>, ApiError> {
    check_name("name", &name)?;
    if query.state.is_some() {
        return Err(ApiError::bad_request(
            "invalid_query",
            "state: filter runs by state with GET /v1/runs?state=…",
        ));
    }
    let limit = query.limit()?;
    query.barrier(&state).await?;
    let view = state.consensus.read()?;
    if view.job(&name)?.is_none() {
        return Err(job_not_found(&name));
    }
    let runs: Vec<Value> = view
        .job_runs(&name, limit)?
        .iter()
        .map(views::run)
        .collect();
    Ok(Json(json!({ "runs": runs })))
}

async fn runs_by_state(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<RunsQuery>,
) -> Result<Json<Value>, ApiError> {
    let names = || RunState::ALL.map(RunState::as_str).join(", ");
    let run_state = match query.state.as_deref() {
        Some(s) => RunState::parse(s).ok_or_else(|| {
            ApiError::bad_request(
                "invalid_query",
                format!("state: {s:?} is not one of {}", names()),
            )
        })?,
        None => {
            return Err(ApiError::bad_request(
                "invalid_query",
                format!("state: required, one of {}", names()),
            ))
        }
    };
    let limit = query.limit()?;
    query.barrier(&state).await?;
    let runs: Vec<Value> = state
        .consensus
        .read()?
        .runs_in_state(run_state, limit)?
        .iter()
        .map(views::run)
        .collect();
    Ok(Json(json!({ "runs": runs })))
}

async fn one_run(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiQuery(query): ApiQuery<ReadQuery>,
) -> Result<Json<Value>, ApiError> {
    state.read_barrier(&query).await?;
    match state.consensus.read()?.run(&id)? {
        Some(run) => Ok(Json(views::run(&run))),
        None => Err(ApiError::not_found(
            "run_not_found",
            format!("no run has id {id:?}"),
        )),
    }
}
