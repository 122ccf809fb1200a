//! Peer transport: Raft RPCs and forwarded requests over HTTP on the same
//! listener as the public API, under `/raft/`.
//!
//! Bodies are postcard behind a version byte (see `gnomon_storage::codec`);
//! a response body is always the encoded `Result` of the call, so errors that
//! openraft raises on the remote side reach the local openraft intact. Every
//! request has a connect timeout and a request timeout, and carries the
//! cluster token when one is configured. The client also remembers when
//! each peer last answered, which is what `GET /v1/cluster` reports as
//! `reachable`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use gnomon_storage::codec;
use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::types::{Node, NodeId, Raft, TypeConfig};

/// How long to wait for a TCP connection to a peer.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);

/// Why a call to a peer failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PeerError {
    /// No connection could be made: the request was certainly not sent.
    #[error("peer {addr} is unreachable: {reason}")]
    Unreachable {
        /// The peer's address.
        addr: String,
        /// What the connection attempt said.
        reason: String,
    },
    /// The request may have been sent, but no usable answer came back.
    #[error("call to peer {addr} failed: {reason}")]
    Failed {
        /// The peer's address.
        addr: String,
        /// What went wrong.
        reason: String,
    },
}

/// An HTTP client for `/raft/` calls to peers. Cheap to clone.
#[derive(Clone)]
pub struct PeerClient {
    http: reqwest::Client,
    token: Option<Arc<str>>,
    last_answer: Arc<Mutex<BTreeMap<NodeId, Instant>>>,
}

impl PeerClient {
    /// A client that sends `token` as a bearer token when given.
    pub fn new(token: Option<String>) -> Self {
        let http = crate::http_client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .pool_idle_timeout(Duration::from_secs(30))
            .tcp_nodelay(true)
            .build()
            // Building fails only when the TLS settings or a proxy cannot
            // be set up; ours are built in and this client uses no proxy.
            .expect("an HTTP client with gnomon's TLS settings always builds");
        Self {
            http,
            token: token.map(Arc::from),
            last_answer: Arc::default(),
        }
    }

    /// Call `path` on the peer at `addr` with `req`, waiting at most `timeout`.
    pub async fn call<Req, Resp>(
        &self,
        addr: &str,
        path: &str,
        req: &Req,
        timeout: Duration,
    ) -> Result<Resp, PeerError>
    where
        Req: Serialize + ?Sized,
        Resp: DeserializeOwned,
    {
        let failed = |reason: String| PeerError::Failed {
            addr: addr.to_string(),
            reason,
        };
        let mut request = self
            .http
            .post(format!("http://{addr}{path}"))
            .timeout(timeout)
            .header(header::CONTENT_TYPE, "application/octet-stream")
            .body(codec::encode(req));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.map_err(|e| {
            if e.is_connect() {
                PeerError::Unreachable {
                    addr: addr.to_string(),
                    reason: e.to_string(),
                }
            } else {
                failed(e.to_string())
            }
        })?;
        let status = response.status();
        let body = response.bytes().await.map_err(|e| failed(e.to_string()))?;
        if !status.is_success() {
            return Err(failed(format!(
                "status {status}: {}",
                String::from_utf8_lossy(&body)
            )));
        }
        codec::decode("peer response", &body).map_err(|e| failed(e.to_string()))
    }

    fn record_answer(&self, target: NodeId) {
        if let Ok(mut map) = self.last_answer.lock() {
            map.insert(target, Instant::now());
        }
    }

    /// When each peer last answered a Raft RPC from this node.
    pub fn last_answers(&self) -> BTreeMap<NodeId, Instant> {
        self.last_answer
            .lock()
            .map(|m| m.clone())
            .unwrap_or_default()
    }
}

/// openraft's view of the network: one [`PeerConnection`] per target.
#[derive(Clone)]
pub struct Network {
    client: PeerClient,
}

impl Network {
    /// A network that calls peers through `client`.
    pub fn new(client: PeerClient) -> Self {
        Self { client }
    }
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = PeerConnection;

    async fn new_client(&mut self, target: NodeId, node: &Node) -> Self::Network {
        PeerConnection {
            target,
            addr: node.addr.clone(),
            client: self.client.clone(),
        }
    }
}

/// Raft RPCs to one peer.
pub struct PeerConnection {
    target: NodeId,
    addr: String,
    client: PeerClient,
}

impl PeerConnection {
    async fn rpc<Req, Resp, E>(
        &self,
        path: &str,
        req: &Req,
        option: &RPCOption,
    ) -> Result<Resp, RPCError<NodeId, Node, E>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let result: Result<Resp, E> = self
            .client
            .call(&self.addr, path, req, option.hard_ttl())
            .await
            .map_err(|e| match e {
                PeerError::Unreachable { .. } => RPCError::Unreachable(Unreachable::new(&e)),
                PeerError::Failed { .. } => RPCError::Network(NetworkError::new(&e)),
            })?;
        self.client.record_answer(self.target);
        result.map_err(|e| {
            RPCError::RemoteError(RemoteError::new_with_node(
                self.target,
                Node::new(&self.addr),
                e,
            ))
        })
    }
}

impl RaftNetwork<TypeConfig> for PeerConnection {
    async fn append_entries(
        &mut self,
        req: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, Node, RaftError<NodeId>>> {
        self.rpc("/raft/append", &req, &option).await
    }

    async fn install_snapshot(
        &mut self,
        req: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, Node, RaftError<NodeId, InstallSnapshotError>>,
    > {
        self.rpc("/raft/snapshot", &req, &option).await
    }

    async fn vote(
        &mut self,
        req: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, Node, RaftError<NodeId>>> {
        self.rpc("/raft/vote", &req, &option).await
    }
}

/// Encode a handler's result as the response body.
pub(crate) fn reply<T: Serialize>(result: &T) -> Response {
    (
        [(header::CONTENT_TYPE, "application/octet-stream")],
        codec::encode(result),
    )
        .into_response()
}

/// Decode a request body, or answer 400.
pub(crate) fn decode_body<T: DeserializeOwned>(body: &Bytes) -> Result<T, Response> {
    codec::decode("peer request", body)
        .map_err(|e| (StatusCode::BAD_REQUEST, e.to_string()).into_response())
}

async fn append(State(raft): State<Raft>, body: Bytes) -> Response {
    match decode_body::<AppendEntriesRequest<TypeConfig>>(&body) {
        Ok(req) => reply(&raft.append_entries(req).await),
        Err(bad) => bad,
    }
}

async fn vote(State(raft): State<Raft>, body: Bytes) -> Response {
    match decode_body::<VoteRequest<NodeId>>(&body) {
        Ok(req) => reply(&raft.vote(req).await),
        Err(bad) => bad,
    }
}

async fn snapshot(State(raft): State<Raft>, body: Bytes) -> Response {
    match decode_body::<InstallSnapshotRequest<TypeConfig>>(&body) {
        Ok(req) => reply(&raft.install_snapshot(req).await),
        Err(bad) => bad,
    }
}

/// The Raft RPC routes a peer calls: `/raft/append`, `/raft/vote`, `/raft/snapshot`.
pub fn rpc_routes(raft: Raft) -> Router {
    Router::new()
        .route("/raft/append", post(append))
        .route("/raft/vote", post(vote))
        .route("/raft/snapshot", post(snapshot))
        .with_state(raft)
}
