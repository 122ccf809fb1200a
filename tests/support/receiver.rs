//! A real HTTP receiver for job targets: it records every call (headers and
//! when it arrived and ended) and behaves as a test tells it per path.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use rustls::pki_types::PrivatePkcs8KeyDer;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

/// How the receiver answers calls to one path.
#[derive(Debug, Clone, Default)]
pub struct Behavior {
    /// Answer 500 to attempts numbered up to this (`Gnomon-Attempt`).
    pub fail_first: u32,
    /// Hold each call this long before answering.
    pub delay_ms: u64,
}

/// One call as the receiver saw it.
#[derive(Debug, Clone)]
pub struct Call {
    pub path: String,
    pub idempotency_key: String,
    pub run_id: String,
    pub job: String,
    pub scheduled_for: String,
    pub attempt: u32,
    pub fencing_token: u64,
    /// Wall clock, Unix ms, when the call arrived.
    pub arrived_ms: u64,
    /// When the receiver answered; `None` if the caller went away first.
    pub answered_ms: Option<u64>,
    pub status: u16,
}

#[derive(Default)]
struct Shared {
    calls: Vec<Call>,
    behavior: BTreeMap<String, Behavior>,
}

/// The receiver: a server on a loopback port, alive while this lives.
pub struct Receiver {
    pub base: String,
    shared: Arc<Mutex<Shared>>,
    server: tokio::task::JoinHandle<()>,
}

fn now_ms() -> u64 {
    gnomon_raft::wall_clock_ms()
}

/// Marks the call unanswered if the handler is dropped (the caller hung up).
struct Pending {
    shared: Arc<Mutex<Shared>>,
    index: usize,
    done: bool,
}

impl Drop for Pending {
    fn drop(&mut self) {
        if !self.done {
            self.shared.lock().unwrap().calls[self.index].status = 0;
        }
    }
}

async fn hook(
    State(shared): State<Arc<Mutex<Shared>>>,
    Path(path): Path<String>,
    headers: HeaderMap,
) -> StatusCode {
    let h = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let attempt: u32 = h("gnomon-attempt").parse().unwrap_or(0);
    let (behavior, index) = {
        let mut s = shared.lock().unwrap();
        let behavior = s.behavior.get(&path).cloned().unwrap_or_default();
        let status = if attempt <= behavior.fail_first {
            500
        } else {
            200
        };
        s.calls.push(Call {
            path: path.clone(),
            idempotency_key: h("idempotency-key"),
            run_id: h("gnomon-run-id"),
            job: h("gnomon-job"),
            scheduled_for: h("gnomon-scheduled-for"),
            attempt,
            fencing_token: h("gnomon-fencing-token").parse().unwrap_or(0),
            arrived_ms: now_ms(),
            answered_ms: None,
            status,
        });
        (behavior, s.calls.len() - 1)
    };
    let mut pending = Pending {
        shared: shared.clone(),
        index,
        done: false,
    };
    if behavior.delay_ms > 0 {
        tokio::time::sleep(Duration::from_millis(behavior.delay_ms)).await;
    }
    pending.done = true;
    let mut s = shared.lock().unwrap();
    let call = &mut s.calls[index];
    call.answered_ms = Some(now_ms());
    StatusCode::from_u16(call.status).unwrap()
}

/// Accepts TLS connections with one certificate; a failed handshake (a
/// client that does not trust it) is dropped and the next one awaited.
struct TlsListener {
    tcp: TcpListener,
    acceptor: TlsAcceptor,
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((tcp, addr)) = self.tcp.accept().await else {
                continue;
            };
            if let Ok(tls) = self.acceptor.accept(tcp).await {
                return (tls, addr);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

impl Receiver {
    /// A receiver over plain HTTP.
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        Self::serve(base, listener).await
    }

    /// A receiver over HTTPS with a fresh self-signed certificate for
    /// 127.0.0.1; returns it too, in PEM, for the client to trust.
    pub async fn start_tls() -> (Self, String) {
        let key = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![key.cert.der().clone()],
                PrivatePkcs8KeyDer::from(key.signing_key.serialize_der()).into(),
            )
            .unwrap();
        let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("https://{}", tcp.local_addr().unwrap());
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let receiver = Self::serve(base, TlsListener { tcp, acceptor }).await;
        (receiver, key.cert.pem())
    }

    async fn serve<L: axum::serve::Listener>(base: String, listener: L) -> Self
    where
        L::Addr: std::fmt::Debug,
    {
        let shared = Arc::new(Mutex::new(Shared::default()));
        let app = Router::new()
            .route("/hook/{path}", post(hook))
            .with_state(shared.clone());
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self {
            base,
            shared,
            server,
        }
    }

    /// The URL jobs call for `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}/hook/{path}", self.base)
    }

    pub fn set(&self, path: &str, behavior: Behavior) {
        self.shared
            .lock()
            .unwrap()
            .behavior
            .insert(path.to_string(), behavior);
    }

    /// Every call so far to `path`, in arrival order.
    pub fn calls(&self, path: &str) -> Vec<Call> {
        self.shared
            .lock()
            .unwrap()
            .calls
            .iter()
            .filter(|c| c.path == path)
            .cloned()
            .collect()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.server.abort();
    }
}
