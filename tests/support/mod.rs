//! A harness that runs real `gnomon serve` processes on loopback ports,
//! each with its own data directory, and talks to them over real HTTP.
//!
//! Nothing here sleeps in place of a condition: every wait polls a
//! condition until a deadline and fails the test with what it waited for.

#![allow(dead_code)] // each test module uses a different part of the harness

pub mod receiver;

use std::future::Future;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};
use tempfile::TempDir;

/// How many clusters may run at once: the machines CI runs on are small,
/// and overloaded nodes miss heartbeats.
const MAX_CLUSTERS: usize = 2;

static RUNNING: (Mutex<usize>, Condvar) = (Mutex::new(0), Condvar::new());

/// Held while a cluster runs; frees a slot when dropped.
struct Slot;

impl Slot {
    fn take() -> Self {
        let (lock, cvar) = &RUNNING;
        let mut running = lock.lock().unwrap();
        while *running >= MAX_CLUSTERS {
            running = cvar.wait(running).unwrap();
        }
        *running += 1;
        Slot
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let (lock, cvar) = &RUNNING;
        *lock.lock().unwrap() -= 1;
        cvar.notify_one();
    }
}

/// A free loopback port. The listener is closed before the node binds it;
/// the gap is short and the kernel does not hand the port out again at once.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Poll `check` every 50 ms until it returns `Some`, or panic after `timeout`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One `gnomon serve` process and its data directory.
pub struct TestNode {
    pub id: u64,
    pub addr: String,
    pub data_dir: PathBuf,
    log: PathBuf,
    args: Vec<String>,
    env: Vec<(String, PathBuf)>,
    child: Option<Child>,
    starts: usize,
}

impl TestNode {
    fn new(root: &std::path::Path, id: u64, args: Vec<String>) -> Self {
        Self {
            id,
            addr: format!("127.0.0.1:{}", free_port()),
            data_dir: root.join(format!("node-{id}")),
            log: root.join(format!("node-{id}.log")),
            args,
            env: Vec::new(),
            child: None,
            starts: 0,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// The process id while the node runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Set `key` to `path` in the environment of every later start.
    pub fn set_env(&mut self, key: &str, path: &std::path::Path) {
        self.env.push((key.to_owned(), path.to_owned()));
    }

    /// Start the process with `extra` arguments after the usual ones.
    pub fn start(&mut self, extra: &[&str]) {
        assert!(self.child.is_none(), "node {} is already running", self.id);
        self.starts += 1;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_gnomon"))
            .arg("serve")
            .args(["--id", &self.id.to_string()])
            .args(["--listen", &self.addr])
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(&self.args)
            .args(extra)
            .env("RUST_LOG", "info,openraft=info")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
    }

    /// `kill -9`: no chance to flush or say goodbye.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    /// SIGTERM, then wait for the exit status.
    pub fn terminate(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("node is not running");
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        child.wait().unwrap()
    }

    /// The node's log so far, for failure messages.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for TestNode {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A cluster of real processes plus an HTTP client.
pub struct TestCluster {
    pub nodes: Vec<TestNode>,
    pub http: reqwest::Client,
    token: Option<String>,
    dir: TempDir,
    _slot: Slot,
}

impl TestCluster {
    /// Start `n` nodes, each with `args`: node 1 bootstraps, the others
    /// start with `--no-bootstrap` and are added over the HTTP API. Returns
    /// once every node reports the same leader and `n` voters.
    pub async fn start(n: usize, args: &[&str]) -> Self {
        let mut cluster = Self::empty(n, args);
        cluster.nodes[0].start(&[]);
        cluster.wait_ready(0).await;
        for i in 1..n {
            cluster.nodes[i].start(&["--no-bootstrap"]);
            cluster.wait_healthy(i).await;
            let (id, addr) = (cluster.nodes[i].id, cluster.nodes[i].addr.clone());
            let (status, body) = cluster
                .post(0, "/v1/cluster/members", json!({ "id": id, "addr": addr }))
                .await;
            assert_eq!(status, StatusCode::OK, "adding node {id}: {body}");
        }
        cluster.wait_converged(n).await;
        cluster
    }

    /// `n` nodes that are configured but not started.
    pub fn empty(n: usize, args: &[&str]) -> Self {
        let slot = Slot::take();
        let dir = tempfile::tempdir().unwrap();
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let token = args
            .iter()
            .position(|a| a == "--token")
            .map(|i| args[i + 1].clone());
        let nodes = (1..=n as u64)
            .map(|id| TestNode::new(dir.path(), id, args.clone()))
            .collect();
        Self {
            nodes,
            http: gnomon_raft::http_client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            token,
            dir,
            _slot: slot,
        }
    }

    fn request(&self, method: reqwest::Method, node: usize, path: &str) -> reqwest::RequestBuilder {
        let request = self
            .http
            .request(method, format!("{}{}", self.nodes[node].url(), path));
        match &self.token {
            Some(t) => request.bearer_auth(t),
            None => request,
        }
    }

    async fn send(request: reqwest::RequestBuilder) -> (StatusCode, Value) {
        match request.send().await {
            Ok(response) => {
                let status = response.status();
                let text = response.text().await.unwrap_or_default();
                (
                    status,
                    serde_json::from_str(&text).unwrap_or(Value::String(text)),
                )
            }
            // A node that is down answers nothing; tests treat it like a 503.
            Err(e) => (
                StatusCode::SERVICE_UNAVAILABLE,
                Value::String(e.to_string()),
            ),
        }
    }

    pub async fn get(&self, node: usize, path: &str) -> (StatusCode, Value) {
        Self::send(self.request(reqwest::Method::GET, node, path)).await
    }

    pub async fn post(&self, node: usize, path: &str, body: Value) -> (StatusCode, Value) {
        Self::send(self.request(reqwest::Method::POST, node, path).json(&body)).await
    }

    pub async fn post_raw(
        &self,
        node: usize,
        path: &str,
        body: &'static str,
    ) -> (StatusCode, Value) {
        Self::send(
            self.request(reqwest::Method::POST, node, path)
                .header("content-type", "application/json")
                .body(body),
        )
        .await
    }

    pub async fn put(&self, node: usize, path: &str, body: Value) -> (StatusCode, Value) {
        Self::send(self.request(reqwest::Method::PUT, node, path).json(&body)).await
    }

    pub async fn delete(&self, node: usize, path: &str) -> (StatusCode, Value) {
        Self::send(self.request(reqwest::Method::DELETE, node, path)).await
    }

    /// Wait until node `i` answers `/healthz` (its process is serving).
    pub async fn wait_healthy(&self, i: usize) {
        self.wait_ok(i, "/healthz", "serve").await
    }

    /// Wait until node `i` answers `/readyz` with 200.
    pub async fn wait_ready(&self, i: usize) {
        self.wait_ok(i, "/readyz", "be ready").await
    }

    async fn wait_ok(&self, i: usize, path: &str, what: &str) {
        let what = format!("node {} to {what}", self.nodes[i].id);
        let url = format!("{}{path}", self.nodes[i].url());
        wait_for(&what, Duration::from_secs(30), || async {
            let r = self.http.get(&url).send().await;
            r.ok().filter(|r| r.status() == StatusCode::OK).map(drop)
        })
        .await;
    }

    /// Node `i`'s `/metrics` text, if it answers.
    pub async fn metrics(&self, i: usize) -> Option<String> {
        let url = format!("{}/metrics", self.nodes[i].url());
        self.http.get(url).send().await.ok()?.text().await.ok()
    }

    /// `GET /v1/cluster` from node `i`, if it answers.
    pub async fn status(&self, i: usize) -> Option<Value> {
        let (code, body) = self.get(i, "/v1/cluster").await;
        (code == StatusCode::OK).then_some(body)
    }

    /// Wait until every running node reports the same leader and `voters`
    /// voters; returns the leader's id.
    pub async fn wait_converged(&self, voters: usize) -> u64 {
        self.agree(Some(voters)).await
    }

    /// The leader the running nodes agree on, by index in `nodes`.
    pub async fn leader(&self) -> usize {
        let id = self.agree(None).await;
        self.index_of(id)
    }

    async fn agree(&self, voters: Option<usize>) -> u64 {
        wait_for(
            "the running nodes to agree on a leader",
            Duration::from_secs(30),
            || async {
                let mut leader = None;
                for (i, node) in self.nodes.iter().enumerate() {
                    if !node.is_running() {
                        continue;
                    }
                    let status = self.status(i).await?;
                    let this = status["leader_id"].as_u64()?;
                    let n_voters = status["members"]
                        .as_array()?
                        .iter()
                        .filter(|m| m["voter"] == true)
                        .count();
                    if voters.is_some_and(|v| v != n_voters) || leader.is_some_and(|l| l != this) {
                        return None;
                    }
                    leader = Some(this);
                }
                // A dead leader may still be named until the survivors elect another.
                leader.filter(|id| self.nodes.iter().any(|n| n.id == *id && n.is_running()))
            },
        )
        .await
    }

    /// The index in `nodes` of the node with id `id`.
    pub fn index_of(&self, id: u64) -> usize {
        self.nodes.iter().position(|n| n.id == id).unwrap()
    }

    /// Dump every node's log; call before failing with a cluster problem.
    pub fn logs(&self) -> String {
        self.nodes
            .iter()
            .map(|n| format!("----- node {} -----\n{}", n.id, n.log_text()))
            .collect()
    }

    pub fn root(&self) -> &std::path::Path {
        self.dir.path()
    }
}

impl Drop for TestCluster {
    /// A failing test shows what the nodes logged last (the data dir and its
    /// logs go with the temp dir).
    fn drop(&mut self) {
        if std::thread::panicking() {
            for node in &self.nodes {
                let log = node.log_text();
                let tail: Vec<&str> = log.lines().rev().take(60).collect();
                eprintln!("----- node {} (last {} lines) -----", node.id, tail.len());
                for line in tail.iter().rev() {
                    eprintln!("{line}");
                }
            }
        }
    }
}
