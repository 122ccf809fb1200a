//! Delay-queue and idempotency-ledger throughput and latency on a real
//! three-node loopback cluster of the release binary.
//!
//! ```sh
//! scripts/bench-queue.sh            # or: cargo bench --bench queue
//! cargo bench --bench queue -- --test   # a quick smoke run
//! ```
//!
//! Prints one JSON object: for 1 and 16 concurrent clients (spread over the
//! three nodes, so most requests are forwarded to the leader), the rate of
//! enqueue+lease+ack and claim+complete cycles and p50/p99 latency per
//! operation; the latency of a long-polling lease after its message became
//! due, by the wall clock and by the log's clock; and 1-client cycles on a
//! queue holding thousands of delayed messages.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

/// One node process; killed when dropped.
struct Node {
    child: Child,
    url: String,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

fn start_node(dir: &Path, id: u64, extra: &[&str]) -> Node {
    let addr = format!("127.0.0.1:{}", free_port());
    let log = std::fs::File::create(dir.join(format!("node-{id}.log"))).expect("log file");
    let child = Command::new(env!("CARGO_BIN_EXE_gnomon"))
        .arg("serve")
        .args(["--id", &id.to_string(), "--listen", &addr])
        .arg("--data-dir")
        .arg(dir.join(format!("node-{id}")))
        .args(extra)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start gnomon");
    Node {
        child,
        url: format!("http://{addr}"),
    }
}

async fn wait_200(http: &reqwest::Client, url: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(r) = http.get(url).send().await {
            if r.status().is_success() {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{url} did not answer 200 within 30 s");
}

async fn start_cluster(dir: &Path, http: &reqwest::Client) -> Vec<Node> {
    let mut nodes = vec![start_node(dir, 1, &[])];
    wait_200(http, &format!("{}/readyz", nodes[0].url)).await;
    for id in 2..=3 {
        let node = start_node(dir, id, &["--no-bootstrap"]);
        wait_200(http, &format!("{}/healthz", node.url)).await;
        let addr = node.url.trim_start_matches("http://").to_string();
        let r = http
            .post(format!("{}/v1/cluster/members", nodes[0].url))
            .json(&json!({ "id": id, "addr": addr }))
            .send()
            .await
            .expect("add member");
        assert!(r.status().is_success(), "adding node {id}: {}", r.status());
        nodes.push(node);
    }
    for node in &nodes {
        wait_200(http, &format!("{}/readyz", node.url)).await;
    }
    nodes
}

async fn post(http: &reqwest::Client, url: String, body: Value) -> (Value, Duration) {
    let started = Instant::now();
    let r = http.post(&url).json(&body).send().await.expect("request");
    let status = r.status();
    let body: Value = r.json().await.expect("json reply");
    assert!(status.is_success(), "{url}: {status} {body}");
    (body, started.elapsed())
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

fn summary(mut samples: Vec<Duration>) -> Value {
    samples.sort();
    json!({
        "p50_ms": (percentile(&samples, 0.50) * 100.0).round() / 100.0,
        "p99_ms": (percentile(&samples, 0.99) * 100.0).round() / 100.0,
        "n": samples.len(),
    })
}

/// Each client runs `cycles` enqueue+lease+ack cycles on a queue of its
/// own, or on `shared` if given.
async fn queue_cycles(
    http: &reqwest::Client,
    urls: &[String],
    clients: usize,
    cycles: usize,
    shared: Option<&str>,
) -> Value {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (http, url) = (http.clone(), urls[c % urls.len()].clone());
        let queue = shared.map_or_else(|| format!("bench-{clients}-{c}"), str::to_string);
        tasks.push(tokio::spawn(async move {
            let mut times = [Vec::new(), Vec::new(), Vec::new()];
            for _ in 0..cycles {
                let (_, t) = post(
                    &http,
                    format!("{url}/v1/queues/{queue}/messages"),
                    json!({ "payload": { "job": "x" } }),
                )
                .await;
                times[0].push(t);
                let (leased, t) = post(
                    &http,
                    format!("{url}/v1/queues/{queue}/lease"),
                    json!({ "worker": "bench", "visibility_ms": 30_000, "wait_ms": 1_000 }),
                )
                .await;
                times[1].push(t);
                let m = &leased["messages"][0];
                let id = m["id"].as_str().expect("a leased message");
                let (_, t) = post(
                    &http,
                    format!("{url}/v1/queues/{queue}/messages/{id}/ack"),
                    json!({ "lease_token": m["lease_token"] }),
                )
                .await;
                times[2].push(t);
            }
            times
        }));
    }
    let mut all = [Vec::new(), Vec::new(), Vec::new()];
    for task in tasks {
        for (into, from) in all.iter_mut().zip(task.await.expect("client")) {
            into.extend(from);
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let [enqueue, lease, ack] = all;
    json!({
        "clients": clients,
        "cycles": clients * cycles,
        "cycles_per_s": ((clients * cycles) as f64 / elapsed).round(),
        "enqueue": summary(enqueue),
        "lease": summary(lease),
        "ack": summary(ack),
    })
}

/// Each client runs `cycles` claim+complete cycles on keys of its own.
async fn ledger_cycles(
    http: &reqwest::Client,
    urls: &[String],
    clients: usize,
    cycles: usize,
) -> Value {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (http, url) = (http.clone(), urls[c % urls.len()].clone());
        tasks.push(tokio::spawn(async move {
            let mut times = [Vec::new(), Vec::new()];
            for i in 0..cycles {
                let key = format!("bench-{clients}-{c}-{i}");
                let (claimed, t) = post(
                    &http,
                    format!("{url}/v1/idempotency/{key}/claim"),
                    json!({ "owner": "bench", "ttl_ms": 600_000 }),
                )
                .await;
                times[0].push(t);
                let (_, t) = post(
                    &http,
                    format!("{url}/v1/idempotency/{key}/complete"),
                    json!({ "claim_token": claimed["claim_token"], "result": { "ok": true } }),
                )
                .await;
                times[1].push(t);
            }
            times
        }));
    }
    let mut all = [Vec::new(), Vec::new()];
    for task in tasks {
        for (into, from) in all.iter_mut().zip(task.await.expect("client")) {
            into.extend(from);
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let [claim, complete] = all;
    json!({
        "clients": clients,
        "cycles": clients * cycles,
        "cycles_per_s": ((clients * cycles) as f64 / elapsed).round(),
        "claim": summary(claim),
        "complete": summary(complete),
    })
}

/// Fill queue `backlog` with `delayed` messages due in an hour (32 clients
/// at once), then time 1-client cycles on it: leases and acks should cost
/// what they cost on an empty queue.
async fn with_delayed_backlog(
    http: &reqwest::Client,
    urls: &[String],
    delayed: usize,
    cycles: usize,
) -> Value {
    let mut tasks = Vec::new();
    for c in 0..32 {
        let (http, url) = (http.clone(), urls[c % urls.len()].clone());
        tasks.push(tokio::spawn(async move {
            for _ in (c..delayed).step_by(32) {
                post(
                    &http,
                    format!("{url}/v1/queues/backlog/messages"),
                    json!({ "payload": { "job": "later" }, "delay_ms": 3_600_000 }),
                )
                .await;
            }
        }));
    }
    for task in tasks {
        task.await.expect("filler");
    }
    let mut result = queue_cycles(http, urls, 1, cycles, Some("backlog")).await;
    result["delayed_backlog"] = json!(delayed);
    result
}

fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A worker long-polls a lease on one node while the message, delayed by
/// 300 ms, is enqueued through another: how long after its due time does
/// the worker have it?
async fn lease_after_due(http: &reqwest::Client, urls: &[String], rounds: usize) -> Value {
    let mut by_wall = Vec::new();
    let mut by_log = Vec::new();
    for r in 0..rounds {
        let queue = format!("due-{r}");
        let worker = {
            let (http, url, queue) = (
                http.clone(),
                urls[(r + 1) % urls.len()].clone(),
                queue.clone(),
            );
            tokio::spawn(async move {
                let (reply, _) = post(
                    &http,
                    format!("{url}/v1/queues/{queue}/lease"),
                    json!({ "worker": "bench", "visibility_ms": 30_000, "wait_ms": 10_000 }),
                )
                .await;
                (reply, wall_ms())
            })
        };
        let (sent, _) = post(
            http,
            format!("{}/v1/queues/{queue}/messages", urls[r % urls.len()]),
            json!({ "payload": r, "delay_ms": 300 }),
        )
        .await;
        let (reply, got_at) = worker.await.expect("worker");
        let due = sent["due_at_ms"].as_u64().expect("due_at_ms");
        let leased_at = reply["messages"][0]["leased_at_ms"]
            .as_u64()
            .expect("a leased message");
        assert!(leased_at >= due, "leased before due");
        by_wall.push(Duration::from_millis(got_at.saturating_sub(due)));
        by_log.push(Duration::from_millis(leased_at - due));
    }
    let mut samples: Vec<u128> = by_wall.iter().map(Duration::as_millis).collect();
    samples.sort_unstable();
    json!({ "wall_clock": summary(by_wall), "log_clock": summary(by_log), "wall_clock_samples_ms": samples })
}

#[tokio::main]
async fn main() {
    let quick = std::env::args().any(|a| a == "--test");
    let (cycles_1, cycles_16, rounds, backlog) = if quick {
        (5, 2, 2, 50)
    } else {
        (400, 60, 30, 5_000)
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let http = gnomon_raft::http_client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("http client");
    let nodes = start_cluster(dir.path(), &http).await;
    let urls: Vec<String> = nodes.iter().map(|n| n.url.clone()).collect();

    let mut queue = Vec::new();
    let mut ledger = Vec::new();
    for (clients, cycles) in [(1, cycles_1), (16, cycles_16)] {
        queue.push(queue_cycles(&http, &urls, clients, cycles, None).await);
        ledger.push(ledger_cycles(&http, &urls, clients, cycles).await);
    }
    let due = lease_after_due(&http, &urls, rounds).await;
    let backlog = with_delayed_backlog(&http, &urls, backlog, cycles_1).await;
    let report = json!({
        "cluster": "3 nodes on loopback, release build, clients spread over all nodes",
        "queue_enqueue_lease_ack": queue,
        "ledger_claim_complete": ledger,
        "lease_latency_after_due": due,
        "queue_cycles_with_delayed_backlog": backlog,
    });
    println!("{}", serde_json::to_string_pretty(&report).expect("json"));
    drop(nodes);
}
