//! Prometheus metrics: what the node counts, and `GET /metrics`.
//!
//! Counters and histograms are updated where things happen; the Raft
//! gauges are read from openraft's metrics when a scrape arrives, so they
//! are never stale and cost nothing between scrapes.

use std::sync::Arc;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use gnomon_raft::Consensus;
use gnomon_storage::runs::{AttemptResult, RunState};
use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Labels of `gnomon_http_requests_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    /// The matched route, e.g. `/v1/locks/{name}/acquire` (never the raw path,
    /// which would make one series per lock name).
    pub route: String,
    /// The HTTP method.
    pub method: String,
    /// The response status code.
    pub status: u16,
}

/// Labels of counters split by one outcome or state.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// The outcome or state, as the API spells it.
    pub outcome: String,
}

/// Labels of the queue-depth gauge.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QueueLabels {
    /// The queue.
    pub queue: String,
    /// `ready`, `delayed`, `leased` or `dead`.
    pub state: String,
}

/// Every metric the node exports.
pub struct Metrics {
    registry: Registry,
    http_requests: Family<HttpLabels, Counter>,
    schedule_lag: Histogram,
    slots: Family<OutcomeLabels, Counter>,
    runs: Family<OutcomeLabels, Counter>,
    attempts: Family<OutcomeLabels, Counter>,
    retries: Counter,
    dead_runs: Counter,
    attempts_running: Gauge,
    queue_depth: Family<QueueLabels, Gauge>,
    is_leader: Gauge,
    term: Gauge,
    commit_index: Gauge,
    applied_index: Gauge,
    leader_id: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("gnomon");
        let http_requests = Family::<HttpLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests by route, method and status",
            http_requests.clone(),
        );
        let gauge = |registry: &mut Registry, name: &str, help: &str| {
            let g = Gauge::default();
            registry.register(name, help, g.clone());
            g
        };
        let schedule_lag = Histogram::new([
            0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
        ]);
        registry.register(
            "schedule_lag_seconds",
            "Time from a slot to its run being made (fired minus scheduled), on the leader",
            schedule_lag.clone(),
        );
        let slots = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "slots",
            "Slots handled by this node as leader: fired, skipped or missed",
            slots.clone(),
        );
        let runs = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "runs",
            "Runs this node's workers moved to a state (succeeded, retrying, dead, …)",
            runs.clone(),
        );
        let attempts = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "attempts",
            "Attempts run on this node, by outcome",
            attempts.clone(),
        );
        let retries = Counter::default();
        registry.register(
            "retries",
            "Failed attempts that will be retried",
            retries.clone(),
        );
        let dead_runs = Counter::default();
        registry.register(
            "dead_runs",
            "Runs whose last attempt failed",
            dead_runs.clone(),
        );
        let queue_depth = Family::<QueueLabels, Gauge>::default();
        registry.register(
            "queue_messages",
            "Messages per queue and state",
            queue_depth.clone(),
        );
        let attempts_running = gauge(
            &mut registry,
            "attempts_running",
            "Attempts running on this node now",
        );
        let is_leader = gauge(
            &mut registry,
            "raft_is_leader",
            "1 if this node is the Raft leader",
        );
        let term = gauge(&mut registry, "raft_term", "The current Raft term");
        let commit_index = gauge(
            &mut registry,
            "raft_commit_index",
            "The highest log index known to be committed",
        );
        let applied_index = gauge(
            &mut registry,
            "raft_applied_index",
            "The highest log index this node has applied",
        );
        let leader_id = gauge(
            &mut registry,
            "raft_leader_id",
            "The id of the leader this node knows of (0: none)",
        );
        Self {
            registry,
            http_requests,
            schedule_lag,
            slots,
            runs,
            attempts,
            retries,
            dead_runs,
            attempts_running,
            queue_depth,
            is_leader,
            term,
            commit_index,
            applied_index,
            leader_id,
        }
    }
}

fn as_gauge(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl Metrics {
    /// The leader handled `count` slots, ending in `state`, `lag_ms` after
    /// the (first) slot.
    pub fn slot_handled(&self, state: RunState, count: u64, lag_ms: u64) {
        let decision = match state {
            RunState::Skipped => "skipped",
            RunState::Missed => "missed",
            _ => {
                self.schedule_lag.observe(lag_ms as f64 / 1000.0);
                "fired"
            }
        };
        self.slots
            .get_or_create(&OutcomeLabels {
                outcome: decision.into(),
            })
            .inc_by(count);
    }

    /// A worker began an attempt.
    pub fn attempt_started(&self) {
        self.attempts_running.inc();
    }

    /// A worker's attempt ended with `result`.
    pub fn attempt_finished(&self, result: AttemptResult) {
        self.attempts_running.dec();
        self.attempts
            .get_or_create(&OutcomeLabels {
                outcome: result.as_str().into(),
            })
            .inc();
    }

    /// An attempt's report moved its run to `state`.
    pub fn run_moved(&self, state: RunState) {
        match state {
            RunState::Retrying => {
                self.retries.inc();
            }
            RunState::Dead => {
                self.dead_runs.inc();
            }
            _ => {}
        }
        self.runs
            .get_or_create(&OutcomeLabels {
                outcome: state.as_str().into(),
            })
            .inc();
    }

    /// Render every metric in the Prometheus text format, refreshing the
    /// Raft gauges from `consensus` first.
    pub async fn render(&self, consensus: &Consensus) -> String {
        let status = consensus.status_local().await;
        self.is_leader
            .set(i64::from(status.leader_id == Some(status.node_id)));
        self.term.set(as_gauge(status.term));
        self.commit_index.set(as_gauge(status.commit_index));
        self.applied_index.set(as_gauge(status.applied_index));
        self.leader_id.set(as_gauge(status.leader_id.unwrap_or(0)));
        if let Ok(view) = consensus.read() {
            let now = view
                .vars()
                .map_or(0, |v| v.log_now_ms)
                .max(gnomon_raft::wall_clock_ms());
            self.queue_depth.clear();
            for q in view.queues(now).unwrap_or_default() {
                for (state, n) in [
                    ("ready", q.ready),
                    ("delayed", q.delayed),
                    ("leased", q.leased),
                    ("dead", q.dead),
                ] {
                    self.queue_depth
                        .get_or_create(&QueueLabels {
                            queue: q.name.clone(),
                            state: state.into(),
                        })
                        .set(as_gauge(n));
                }
            }
        }
        let mut out = String::new();
        // Encoding into a String cannot fail: fmt::Write for String is infallible.
        encode(&mut out, &self.registry).expect("encoding metrics into a String");
        out
    }
}

/// Count every routed request by its matched route, method and status.
pub async fn track_http(
    State(metrics): State<Arc<Metrics>>,
    request: Request,
    next: Next,
) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let method = request.method().to_string();
    let response = next.run(request).await;
    metrics
        .http_requests
        .get_or_create(&HttpLabels {
            route,
            method,
            status: response.status().as_u16(),
        })
        .inc();
    response
}

/// `GET /metrics`.
pub async fn serve(
    State((metrics, consensus)): State<(Arc<Metrics>, Consensus)>,
) -> impl IntoResponse {
    (
        [(
            CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        metrics.render(&consensus).await,
    )
}
