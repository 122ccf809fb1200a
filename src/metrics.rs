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
use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
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

/// Every metric the node exports.
pub struct Metrics {
    registry: Registry,
    http_requests: Family<HttpLabels, Counter>,
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
