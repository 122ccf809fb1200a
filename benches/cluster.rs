//! Cluster benchmark: a three-node loopback cluster of real `gnomon serve`
//! processes, driven over HTTP. Prints one JSON document on stdout.
//!
//!   cargo bench --bench cluster            # the full run (about a minute)
//!   cargo bench --bench cluster -- --test  # a seconds-long smoke run (CI)
//!
//! Measured: lock acquire+release cycles per second with 1 and 16 clients
//! on distinct locks and with 8 contenders on one lock, p50/p99 latency of
//! one acquire, and the time from `kill -9` of the leader to the first
//! granted acquire on a survivor (median of several runs).

#[path = "../tests/support/mod.rs"]
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};
use support::TestCluster;
use tokio::sync::Mutex;

struct Settings {
    run_for: Duration,
    failovers: usize,
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

/// `clients` tasks, each cycling acquire+release on `lock(client)` through
/// node `client % 3`, for `run_for`.
async fn cycles(
    cluster: &TestCluster,
    clients: usize,
    run_for: Duration,
    lock: fn(usize) -> String,
) -> Value {
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let http = cluster.http.clone();
        let base = cluster.nodes[c % cluster.nodes.len()].url();
        let latencies = latencies.clone();
        let name = lock(c);
        tasks.push(tokio::spawn(async move {
            let owner = format!("client-{c}");
            let mut done = 0u64;
            let mut mine = Vec::new();
            while started.elapsed() < run_for {
                let t = Instant::now();
                let r = http
                    .post(format!("{base}/v1/locks/{name}/acquire"))
                    .json(&json!({ "owner": owner, "ttl_ms": 10_000, "wait_ms": 10_000 }))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), StatusCode::OK);
                let token = r.json::<Value>().await.unwrap()["token"].as_u64().unwrap();
                mine.push(t.elapsed());
                let r = http
                    .post(format!("{base}/v1/locks/{name}/release"))
                    .json(&json!({ "owner": owner, "token": token }))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), StatusCode::OK);
                done += 1;
            }
            latencies.lock().await.extend(mine);
            done
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    let elapsed = started.elapsed().as_secs_f64();
    let mut lat = latencies.lock().await.clone();
    lat.sort();
    json!({
        "clients": clients,
        "cycles": total,
        "cycles_per_s": (total as f64 / elapsed).round(),
        "acquire_p50_ms": percentile(&lat, 0.5),
        "acquire_p99_ms": percentile(&lat, 0.99),
    })
}

/// Kill the leader with SIGKILL and time the first granted acquire through a
/// survivor; then restart the killed node and wait for the cluster to heal.
async fn failover(cluster: &mut TestCluster, run: usize) -> f64 {
    let leader = cluster.leader().await;
    let survivor = (leader + 1) % 3;
    let url = format!(
        "{}/v1/locks/failover-{run}/acquire",
        cluster.nodes[survivor].url()
    );
    let http = gnomon_raft::http_client::builder()
        .timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let killed_at = Instant::now();
    cluster.nodes[leader].kill();
    loop {
        let r = http
            .post(&url)
            .json(&json!({ "owner": "prober", "ttl_ms": 60_000 }))
            .send()
            .await;
        if r.is_ok_and(|r| r.status() == StatusCode::OK) {
            break;
        }
    }
    let took = killed_at.elapsed().as_secs_f64() * 1000.0;
    cluster.nodes[leader].start(&[]);
    cluster.wait_converged(3).await;
    took
}

#[tokio::main]
async fn main() {
    let smoke = std::env::args().any(|a| a == "--test");
    let settings = if smoke {
        Settings {
            run_for: Duration::from_millis(500),
            failovers: 1,
        }
    } else {
        Settings {
            run_for: Duration::from_secs(10),
            failovers: 5,
        }
    };
    let mut cluster = TestCluster::start(3, &[]).await;
    let one = cycles(&cluster, 1, settings.run_for, |_| "bench-solo".into()).await;
    let sixteen = cycles(&cluster, 16, settings.run_for, |c| format!("bench-{c}")).await;
    let contended = cycles(&cluster, 8, settings.run_for, |_| "bench-shared".into()).await;
    let mut failovers = Vec::new();
    for run in 0..settings.failovers {
        failovers.push(failover(&mut cluster, run).await);
    }
    let mut sorted = failovers.clone();
    sorted.sort_by(f64::total_cmp);
    let report = json!({
        "benchmark": "locks",
        "nodes": 3,
        "smoke": smoke,
        "run_for_s": settings.run_for.as_secs_f64(),
        "distinct_locks_1_client": one,
        "distinct_locks_16_clients": sixteen,
        "one_lock_8_contenders": contended,
        "failover_to_first_grant_ms": {
            "runs": failovers,
            "median": sorted[sorted.len() / 2],
        },
    });
    println!("{}", serde_json::to_string_pretty(&report).unwrap());
}
