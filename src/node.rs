//! A running gnomon node: the redb file, consensus, and the HTTP listener
//! that serves the API and the peer routes, wired together.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use axum::http::{HeaderName, Request};
use axum::routing::get;
use axum::Router;
use gnomon_raft::{Consensus, Settings};
use gnomon_storage::tables::RAFT_META;
use redb::{Database, ReadableDatabase};
use tokio_util::sync::CancellationToken;
use tower_http::request_id::{
    MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::trace::TraceLayer;

use crate::api::{self, AppState};
use crate::metrics::Metrics;
use crate::worker::{WorkerSettings, Workers};

/// Everything `gnomon serve` needs to start a node.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// The node id given on the command line, if any.
    pub id: Option<u64>,
    /// Where to listen.
    pub listen: SocketAddr,
    /// Where peers and clients reach this node; the listen address if unset.
    pub advertise: Option<String>,
    /// The data directory, created if missing.
    pub data_dir: PathBuf,
    /// Nodes to ask to add this one, tried in turn until one succeeds.
    pub join: Vec<String>,
    /// Start empty and wait to be added instead of bootstrapping.
    pub no_bootstrap: bool,
    /// The bearer token every `/v1` and `/raft` request must carry.
    pub token: Option<String>,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Raft tunables.
    pub raft: Settings,
    /// Accept and run shell targets (`--allow-shell`).
    pub allow_shell: bool,
    /// Most attempts this node runs at once (`--workers`).
    pub workers: usize,
    /// How long an attempt's lease lasts between heartbeats.
    pub attempt_lease_ms: u64,
    /// How long running attempts may finish at shutdown before they are handed back.
    pub shutdown_grace: std::time::Duration,
}

/// Keys of this node's own (not replicated) identity in `RAFT_META`.
const NODE_ID_KEY: &str = "node_id";
const AWAITING_KEY: &str = "awaiting_membership";

/// The node's id: the stored one for an existing data dir, else the given
/// one (default 1). A mismatch is an error rather than a silent identity change.
fn resolve_identity(
    db: &Database,
    given: Option<u64>,
    wait_for_membership: bool,
) -> anyhow::Result<(u64, bool)> {
    let (stored, awaiting) = {
        let txn = db.begin_read()?;
        let meta = txn.open_table(RAFT_META)?;
        let id = meta.get(NODE_ID_KEY)?.map(|v| {
            let bytes: [u8; 8] = v.value().try_into().unwrap_or_default();
            u64::from_be_bytes(bytes)
        });
        (id, meta.get(AWAITING_KEY)?.is_some())
    };
    let id = match (stored, given) {
        (Some(s), Some(g)) if s != g => {
            bail!("the data dir belongs to node {s}, but --id {g} was given; pass --id {s} or use another --data-dir")
        }
        (Some(s), _) => s,
        (None, g) => g.unwrap_or(1),
    };
    if id == 0 {
        bail!("--id must be 1 or more");
    }
    let txn = db.begin_write()?;
    {
        let mut meta = txn.open_table(RAFT_META)?;
        meta.insert(NODE_ID_KEY, id.to_be_bytes().as_slice())?;
        if wait_for_membership {
            meta.insert(AWAITING_KEY, [1u8].as_slice())?;
        }
    }
    txn.commit()?;
    Ok((id, awaiting || wait_for_membership))
}

/// Request ids for the trace span: a per-process counter is enough to
/// correlate the lines of one request.
#[derive(Clone, Default)]
struct Counter(Arc<AtomicU64>);

impl MakeRequestId for Counter {
    fn make_request_id<B>(&mut self, _: &Request<B>) -> Option<RequestId> {
        let n = self.0.fetch_add(1, Ordering::Relaxed);
        Some(RequestId::new(n.to_string().parse().ok()?))
    }
}

/// Run a node until `shutdown` resolves. Then, in order: take no new work,
/// let running attempts finish or hand them back, stop serving, and shut
/// Raft down (SPEC §3).
pub async fn run(
    config: NodeConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create data dir {}", config.data_dir.display()))?;
    let db_path = config.data_dir.join("gnomon.redb");
    let db = gnomon_storage::db::open(&db_path)
        .with_context(|| format!("cannot open {}", db_path.display()))?;
    let wait_for_membership = config.no_bootstrap || !config.join.is_empty();
    let (id, awaiting) = resolve_identity(&db, config.id, wait_for_membership)
        .context("cannot read the node's identity")?;

    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let local = listener.local_addr()?;
    let advertise = config
        .advertise
        .clone()
        .unwrap_or_else(|| local.to_string());

    let consensus = Consensus::start(
        id,
        advertise.clone(),
        db,
        config.token.clone(),
        &config.raft,
    )
    .await
    .context("cannot start consensus")?;
    let metrics = Arc::new(Metrics::default());
    let app = router(&config, consensus.clone(), metrics.clone());

    let initialized = consensus.is_initialized().await?;
    if !initialized {
        if !config.join.is_empty() {
            let client = gnomon_raft::http_client::builder().build()?;
            tokio::spawn(join(
                client,
                config.join.clone(),
                id,
                advertise.clone(),
                config.token.clone(),
            ));
        } else if awaiting {
            tracing::info!(
                node_id = id,
                "waiting to be added to a cluster (POST /v1/cluster/members on a member)"
            );
        } else {
            consensus
                .bootstrap()
                .await
                .context("cannot bootstrap a one-node cluster")?;
            tracing::info!(node_id = id, "bootstrapped a one-node cluster");
        }
    }
    tracing::info!(node_id = id, listen = %local, %advertise, "gnomon is serving");

    let stop_serving = CancellationToken::new();
    let graceful = stop_serving.clone().cancelled_owned();
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(graceful)
            .await
    });
    let ticks = crate::timers::spawn(consensus.clone());
    let scheduler = crate::scheduler::spawn(consensus.clone(), metrics.clone());
    let workers = Workers::spawn(
        consensus.clone(),
        WorkerSettings {
            node_id: id,
            workers: config.workers,
            allow_shell: config.allow_shell,
            lease_ms: config.attempt_lease_ms,
            shutdown_grace: config.shutdown_grace,
        },
        metrics,
    );

    // Run until the signal, or until the server stops on its own (a failure).
    tokio::pin!(server);
    let early_exit = tokio::select! {
        () = shutdown => None,
        result = &mut server => Some(result),
    };
    tracing::info!(node_id = id, "shutting down: taking no new work");
    scheduler.abort();
    workers.shutdown().await;
    ticks.abort();
    stop_serving.cancel();
    let served = match early_exit {
        Some(result) => result,
        None => server.await,
    };
    consensus.shutdown().await;
    served
        .context("the HTTP server task failed")?
        .context("the HTTP server failed")?;
    tracing::info!(node_id = id, "stopped");
    Ok(())
}

fn router(config: &NodeConfig, consensus: Consensus, metrics: Arc<Metrics>) -> Router {
    let state = AppState {
        consensus: consensus.clone(),
        metrics: metrics.clone(),
        max_payload_bytes: config.max_body_bytes,
        allow_shell: config.allow_shell,
    };
    let request_id = HeaderName::from_static("x-request-id");
    let mut app = api::app(state, config.max_body_bytes)
        .merge(consensus.router())
        .route(
            "/metrics",
            get(crate::metrics::serve).with_state((metrics.clone(), consensus)),
        )
        .route_layer(axum::middleware::from_fn_with_state(
            metrics,
            crate::metrics::track_http,
        ));
    if let Some(token) = &config.token {
        let token: Arc<str> = Arc::from(token.as_str());
        app = app.layer(axum::middleware::from_fn_with_state(
            token,
            api::auth::require_token,
        ));
    }
    app.layer(
        tower::ServiceBuilder::new()
            .layer(SetRequestIdLayer::new(request_id.clone(), Counter::default()))
            .layer(
                TraceLayer::new_for_http().make_span_with(|req: &Request<_>| {
                    let id = req
                        .headers()
                        .get("x-request-id")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("");
                    tracing::debug_span!("http", method = %req.method(), path = %req.uri().path(), request_id = id)
                }),
            )
            .layer(PropagateRequestIdLayer::new(request_id)),
    )
}

/// Ask the nodes in `urls` to add this node until one says yes.
async fn join(
    client: reqwest::Client,
    urls: Vec<String>,
    id: u64,
    addr: String,
    token: Option<String>,
) {
    let body = serde_json::json!({ "id": id, "addr": addr });
    let mut backoff = Duration::from_millis(200);
    loop {
        for url in &urls {
            let endpoint = format!("{}/v1/cluster/members", url.trim_end_matches('/'));
            let mut request = client
                .post(&endpoint)
                .json(&body)
                .timeout(Duration::from_secs(90));
            if let Some(token) = &token {
                request = request.bearer_auth(token);
            }
            match request.send().await {
                Ok(r) if r.status().is_success() => {
                    tracing::info!(node_id = id, via = %url, "joined the cluster");
                    return;
                }
                Ok(r) => {
                    let status = r.status();
                    let text = r.text().await.unwrap_or_default();
                    tracing::warn!(via = %url, %status, body = %text, "join refused; retrying");
                }
                Err(e) => tracing::warn!(via = %url, error = %e, "join failed; retrying"),
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}
