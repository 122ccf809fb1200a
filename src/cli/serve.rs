//! `gnomon serve`: run a node (SPEC §3).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::bail;
use clap::Args;
use gnomon_raft::Settings;

use crate::node::{self, NodeConfig};

/// Arguments of `gnomon serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// This node's id (1 or more). An existing data dir keeps its stored id.
    #[arg(long)]
    id: Option<u64>,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:7700")]
    listen: SocketAddr,
    /// Address peers and clients use to reach this node [default: the listen address].
    #[arg(long)]
    advertise: Option<String>,
    /// Where this node keeps its redb file.
    #[arg(long, default_value = "./gnomon-data")]
    data_dir: PathBuf,
    /// URL of a cluster member to ask to add this node; retried until it succeeds. Repeatable.
    #[arg(long, value_name = "URL")]
    join: Vec<String>,
    /// Start empty and wait to be added through the HTTP API.
    #[arg(long)]
    no_bootstrap: bool,
    /// Bearer token required on every /v1 and /raft request, and sent to peers.
    #[arg(long, env = "GNOMON_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Allow listening on a non-loopback address without a token.
    #[arg(long)]
    insecure: bool,
    /// Accept and run jobs with shell targets.
    #[arg(long)]
    allow_shell: bool,
    /// Most attempts this node runs at once. HTTP attempts are cheap; lower
    /// it on small machines that run many shell targets.
    #[arg(long, default_value_t = 64)]
    workers: usize,
    /// How long an attempt's lease lasts between heartbeats, in ms: a worker
    /// that dies is noticed after this long and its attempt runs elsewhere.
    #[arg(long, default_value_t = 15_000)]
    attempt_lease_ms: u64,
    /// How long running attempts may finish at shutdown before they are handed back, in ms.
    #[arg(long, default_value_t = 10_000)]
    shutdown_grace_ms: u64,
    /// Largest request body accepted, in bytes; also the largest queue payload or ledger result.
    #[arg(long, default_value_t = 1 << 20)]
    max_body_bytes: usize,
    /// Raft heartbeat interval, in ms.
    #[arg(long, default_value_t = Settings::default().heartbeat_ms)]
    heartbeat_ms: u64,
    /// Raft election timeout, in ms: a follower stands for election after
    /// hearing nothing for about twice this long. Raise it on slow disks or
    /// busy machines; keep it well above --heartbeat-ms.
    #[arg(long, default_value_t = Settings::default().election_ms.0)]
    election_timeout_ms: u64,
    /// Build a Raft snapshot after this many log entries.
    #[arg(long, default_value_t = Settings::default().snapshot_every, hide = true)]
    snapshot_every: u64,
    /// Log entries kept behind a snapshot for slightly lagging followers.
    #[arg(long, default_value_t = Settings::default().keep_behind_snapshot, hide = true)]
    keep_behind_snapshot: u64,
}

impl ServeArgs {
    fn into_config(self) -> anyhow::Result<NodeConfig> {
        if !self.listen.ip().is_loopback() && self.token.is_none() && !self.insecure {
            bail!(
                "refusing to listen on {} without a token: pass --token (or set GNOMON_TOKEN), or --insecure to allow it",
                self.listen
            );
        }
        if self.election_timeout_ms < self.heartbeat_ms * 3 {
            bail!(
                "--election-timeout-ms ({}) must be at least three heartbeats (--heartbeat-ms {})",
                self.election_timeout_ms,
                self.heartbeat_ms
            );
        }
        if self.workers == 0 {
            bail!("--workers must be at least 1");
        }
        if self.attempt_lease_ms < 300 {
            bail!("--attempt-lease-ms must be at least 300 (heartbeats renew it every third)");
        }
        let token = self.token.filter(|t| !t.is_empty());
        Ok(NodeConfig {
            id: self.id,
            listen: self.listen,
            advertise: self.advertise,
            data_dir: self.data_dir,
            join: self.join,
            no_bootstrap: self.no_bootstrap,
            token,
            max_body_bytes: self.max_body_bytes,
            allow_shell: self.allow_shell,
            workers: self.workers,
            attempt_lease_ms: self.attempt_lease_ms,
            shutdown_grace: std::time::Duration::from_millis(self.shutdown_grace_ms),
            raft: Settings {
                heartbeat_ms: self.heartbeat_ms,
                election_ms: (self.election_timeout_ms, self.election_timeout_ms * 2),
                snapshot_every: self.snapshot_every,
                keep_behind_snapshot: self.keep_behind_snapshot,
            },
        })
    }
}

/// Run `gnomon serve` until SIGTERM or SIGINT.
pub fn run(args: ServeArgs) -> ExitCode {
    super::init_logging();
    let result = args.into_config().and_then(|config| {
        let runtime = tokio::runtime::Runtime::new()?;
        runtime.block_on(node::run(config, shutdown_signal()))
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => super::report(&e),
    }
}

/// Resolves on the first SIGTERM or SIGINT.
async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
