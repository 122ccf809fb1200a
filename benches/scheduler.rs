//! Scheduler benchmark: a three-node loopback cluster of real `gnomon serve`
//! processes (the release binary), jobs defined over HTTP, and a real HTTP
//! receiver recording every call. Prints one JSON document on stdout;
//! progress goes to stderr.
//!
//! ```sh
//! scripts/bench-scheduler.sh            # or: cargo bench --bench scheduler
//! cargo bench --bench scheduler -- --test   # a seconds-long smoke run (CI)
//! ```
//!
//! Measured, each part on a fresh cluster:
//!
//! * `every_second`: 1,000 jobs firing every second (`concurrency: allow`);
//!   over a one-minute window of slots, the schedule lag (a run's
//!   `fired_at` − `scheduled_for`) and the delivery lag (arrival of the
//!   first call at the receiver − `scheduled_for`), p50/p99/max; how many
//!   slots fired, were skipped, missed or never recorded; and whether any
//!   slot has two runs.
//! * `same_second`: 10,000 jobs that all fire at one second: the schedule
//!   lag of that slot and how long until every call reached the receiver.
//!   The jobs are first defined with a yearly schedule (which times the
//!   definition), then replaced with the one-second schedule, picked far
//!   enough ahead for the replacement to finish before it.
//! * `memory`: VmRSS (and peak VmHWM) of each node with no jobs, with
//!   10,000 jobs defined, after their schedules were replaced, and after
//!   they fired; plus each data dir's size.
//! * `leader_kill`: 1,000 jobs firing every second while the leader is
//!   killed with SIGKILL and restarted, three times (attempt leases of 3 s,
//!   so attempts the killed node held are soon run elsewhere): the longest
//!   gap between consecutive `fired_at` of a job's runs across each kill,
//!   and whether any slot was missed, recorded twice, or never recorded.
//!
//! Every node runs with `--workers 64`. Where it helps to read the figures,
//! the CPU seconds each node used in a phase are reported too, with which
//! node led.
//!
//! Options (after `--`): `--test`, `--workers N` (per node, default 64),
//! `--jobs N` (every-second jobs), `--window-s N`, `--same-second-jobs N`,
//! `--failover-jobs N`, `--failovers N`, `--concurrency N` (parallel HTTP
//! requests when defining and reading jobs), `--only PARTS` (a comma list
//! of `every_second`, `same_second`, `leader_kill`).

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Timelike, Utc};
use reqwest::StatusCode;
use serde_json::{json, Value};
use support::receiver::{Call, Receiver};
use support::{wait_for, TestCluster};

/// The receiver path every job calls; calls are told apart by `Gnomon-Job`.
const HOOK: &str = "bench";

/// Every part of the benchmark and its size.
struct Settings {
    smoke: bool,
    workers: usize,
    concurrency: usize,
    every_second_jobs: usize,
    window_s: i64,
    same_second_jobs: usize,
    failover_jobs: usize,
    failovers: usize,
    /// `--attempt-lease-ms` in the leader-kill part, so that attempts the
    /// killed node was running are taken over soon.
    failover_lease_ms: u64,
    /// How long after the definitions the measured window starts.
    warmup_ms: i64,
    only: Option<BTreeSet<String>>,
}

impl Settings {
    fn from_args() -> Self {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let smoke = args.iter().any(|a| a == "--test");
        let mut s = if smoke {
            Settings {
                smoke,
                workers: 16,
                concurrency: 16,
                every_second_jobs: 5,
                window_s: 3,
                same_second_jobs: 20,
                failover_jobs: 3,
                failovers: 1,
                failover_lease_ms: 1_500,
                warmup_ms: 1_000,
                only: None,
            }
        } else {
            Settings {
                smoke,
                workers: 64,
                concurrency: 64,
                every_second_jobs: 1_000,
                window_s: 60,
                same_second_jobs: 10_000,
                failover_jobs: 1_000,
                failovers: 3,
                failover_lease_ms: 3_000,
                warmup_ms: 3_000,
                only: None,
            }
        };
        let value = |i: usize| -> &str {
            args.get(i + 1)
                .unwrap_or_else(|| panic!("{} needs a value", args[i]))
        };
        let number = |i: usize| -> usize {
            value(i)
                .parse()
                .unwrap_or_else(|_| panic!("{} needs a number", args[i]))
        };
        for (i, arg) in args.iter().enumerate() {
            match arg.as_str() {
                "--workers" => s.workers = number(i),
                "--concurrency" => s.concurrency = number(i).max(1),
                "--jobs" => s.every_second_jobs = number(i),
                "--window-s" => s.window_s = number(i) as i64,
                "--same-second-jobs" => s.same_second_jobs = number(i),
                "--failover-jobs" => s.failover_jobs = number(i),
                "--failovers" => s.failovers = number(i),
                "--only" => {
                    s.only = Some(value(i).split(',').map(str::to_string).collect());
                }
                _ => {}
            }
        }
        s
    }

    fn runs(&self, part: &str) -> bool {
        self.only.as_ref().is_none_or(|o| o.contains(part))
    }
}

fn progress(what: impl std::fmt::Display) {
    eprintln!("[{}] {what}", Utc::now().format("%H:%M:%S%.3f"));
}

fn now_ms() -> i64 {
    i64::try_from(gnomon_raft::wall_clock_ms()).unwrap_or(i64::MAX)
}

/// The first whole second at or after `ms`.
fn whole_second_from(ms: i64) -> i64 {
    (ms + 999).div_euclid(1000) * 1000
}

/// Unix ms of an RFC 3339 time.
fn parse_ms(t: &str) -> Option<i64> {
    DateTime::parse_from_rfc3339(t)
        .ok()
        .map(|t| t.timestamp_millis())
}

fn load_average() -> Value {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let l: Vec<f64> = text
        .split_whitespace()
        .take(3)
        .filter_map(|x| x.parse().ok())
        .collect();
    json!(l)
}

/// p50/p99/max (and count, min) of a set of milliseconds.
fn summary(mut v: Vec<i64>) -> Value {
    if v.is_empty() {
        return json!({ "n": 0 });
    }
    v.sort_unstable();
    let at = |p: f64| v[((v.len() - 1) as f64 * p).round() as usize];
    json!({
        "n": v.len(),
        "min": v[0],
        "p50": at(0.5),
        "p99": at(0.99),
        "max": v[v.len() - 1],
    })
}

fn client() -> reqwest::Client {
    gnomon_raft::http_client::builder()
        .timeout(Duration::from_secs(60))
        .pool_max_idle_per_host(512)
        .build()
        .unwrap()
}

fn urls(cluster: &TestCluster) -> Arc<Vec<String>> {
    Arc::new(cluster.nodes.iter().map(|n| n.url()).collect())
}

/// Run `f(0..n)` with at most `concurrency` at once; results in index order.
async fn for_each<T, F, Fut>(n: usize, concurrency: usize, f: F) -> Vec<T>
where
    T: Send + 'static,
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = T> + Send,
{
    let f = Arc::new(f);
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..concurrency.min(n) {
        let (f, next) = (f.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut done = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return done;
                }
                done.push((i, f(i).await));
            }
        }));
    }
    let mut all = Vec::with_capacity(n);
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort_by_key(|(i, _)| *i);
    all.into_iter().map(|(_, t)| t).collect()
}

/// Send a request until it gets an answer that is not a 5xx or 429 (the
/// cluster may be busy or electing); panic on a 4xx. Returns the body and
/// how many tries failed.
async fn send(
    what: &str,
    request: impl Fn() -> reqwest::RequestBuilder,
) -> (StatusCode, Value, u32) {
    let mut failed = 0;
    loop {
        match request().send().await {
            Ok(r) => {
                let status = r.status();
                let text = r.text().await.unwrap_or_default();
                let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
                if status.is_success() {
                    return (status, body, failed);
                }
                if !status.is_server_error() && status != StatusCode::TOO_MANY_REQUESTS {
                    panic!("{what}: {status} {body}");
                }
            }
            Err(e) if failed >= 100 => panic!("{what}: {e}"),
            Err(_) => {}
        }
        failed += 1;
        assert!(failed <= 100, "{what}: failed 100 times");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// PUT `body` as each of `names`, spread over the nodes, `concurrency` at a time.
async fn define(
    http: &reqwest::Client,
    urls: &Arc<Vec<String>>,
    names: &Arc<Vec<String>>,
    body: &Value,
    concurrency: usize,
) -> (Duration, Value) {
    let started = Instant::now();
    let (http2, urls2, names2, body) = (
        http.clone(),
        urls.clone(),
        names.clone(),
        Arc::new(body.clone()),
    );
    let results = for_each(names.len(), concurrency, move |i| {
        let (http, urls, names, body) =
            (http2.clone(), urls2.clone(), names2.clone(), body.clone());
        async move {
            let url = format!("{}/v1/jobs/{}", urls[i % urls.len()], names[i]);
            let t = Instant::now();
            let (_, _, failed) = send(&format!("PUT {url}"), || http.put(&url).json(&*body)).await;
            (t.elapsed().as_millis() as i64, failed)
        }
    })
    .await;
    let took = started.elapsed();
    let retries: u32 = results.iter().map(|r| r.1).sum();
    let latency = summary(results.iter().map(|r| r.0).collect());
    let report = json!({
        "jobs": names.len(),
        "concurrent_requests": concurrency,
        "took_s": took.as_secs_f64(),
        "jobs_per_s": (names.len() as f64 / took.as_secs_f64()).round(),
        "put_latency_ms": latency,
        "retried_requests": retries,
    });
    progress(format!("defined {} jobs: {report}", names.len()));
    (took, report)
}

/// POST `/v1/jobs/{name}/{action}` for each job.
async fn act_on_all(
    http: &reqwest::Client,
    urls: &Arc<Vec<String>>,
    names: &Arc<Vec<String>>,
    action: &'static str,
    concurrency: usize,
) -> Duration {
    let started = Instant::now();
    let (http, urls, names2) = (http.clone(), urls.clone(), names.clone());
    for_each(names.len(), concurrency, move |i| {
        let (http, urls, names) = (http.clone(), urls.clone(), names2.clone());
        async move {
            let url = format!("{}/v1/jobs/{}/{action}", urls[i % urls.len()], names[i]);
            send(&format!("POST {url}"), || http.post(&url).json(&json!({}))).await;
        }
    })
    .await;
    started.elapsed()
}

/// One run as the API shows it.
#[derive(Debug, Clone)]
struct Run {
    id: String,
    slot: i64,
    fired: i64,
    state: String,
    /// Slots this record stands for (a range of missed slots is one record).
    slots: i64,
}

impl Run {
    fn fired(&self) -> bool {
        !matches!(self.state.as_str(), "missed" | "skipped")
    }
}

/// Every job's runs, oldest slot first.
async fn read_runs(
    http: &reqwest::Client,
    urls: &Arc<Vec<String>>,
    names: &Arc<Vec<String>>,
    concurrency: usize,
) -> Vec<Vec<Run>> {
    let started = Instant::now();
    let (http, urls2, names2) = (http.clone(), urls.clone(), names.clone());
    let all = for_each(names.len(), concurrency, move |i| {
        let (http, urls, names) = (http.clone(), urls2.clone(), names2.clone());
        async move {
            let url = format!(
                "{}/v1/jobs/{}/runs?limit=1000",
                urls[i % urls.len()],
                names[i]
            );
            let (_, body, _) = send(&format!("GET {url}"), || http.get(&url)).await;
            let mut runs: Vec<Run> = body["runs"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| Run {
                    id: r["id"].as_str().unwrap_or("").to_string(),
                    slot: parse_ms(r["scheduled_for"].as_str().unwrap()).unwrap(),
                    fired: parse_ms(r["fired_at"].as_str().unwrap()).unwrap(),
                    state: r["state"].as_str().unwrap().to_string(),
                    slots: r["missed_slots"].as_i64().unwrap_or(1),
                })
                .collect();
            runs.sort_by_key(|r| r.slot);
            runs
        }
    })
    .await;
    progress(format!(
        "read the runs of {} jobs in {:.1} s",
        names.len(),
        started.elapsed().as_secs_f64()
    ));
    all
}

/// Wait until no run anywhere is pending, running or retrying; returns how long it took.
async fn settle(cluster: &TestCluster, timeout: Duration) -> f64 {
    let started = Instant::now();
    wait_for("every run to finish", timeout, || async {
        for state in ["pending", "running", "retrying"] {
            let (status, body) = cluster
                .get(0, &format!("/v1/runs?state={state}&limit=1"))
                .await;
            if status != StatusCode::OK || !body["runs"].as_array()?.is_empty() {
                return None;
            }
        }
        Some(())
    })
    .await;
    started.elapsed().as_secs_f64()
}

/// User+system CPU seconds each node's process has used so far, by node id.
fn cpu_seconds(cluster: &TestCluster) -> BTreeMap<u64, f64> {
    // SAFETY: sysconf only reads a system constant.
    let ticks = match unsafe { libc::sysconf(libc::_SC_CLK_TCK) } {
        t if t > 0 => t as f64,
        _ => 100.0,
    };
    cluster
        .nodes
        .iter()
        .filter_map(|n| {
            let stat = std::fs::read_to_string(format!("/proc/{}/stat", n.pid()?)).ok()?;
            // Fields after the parenthesised command: state is field 3, utime 14, stime 15.
            let rest = &stat[stat.rfind(')')? + 2..];
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let utime: f64 = fields.get(11)?.parse().ok()?;
            let stime: f64 = fields.get(12)?.parse().ok()?;
            Some((n.id, (utime + stime) / ticks))
        })
        .collect()
}

/// CPU seconds each node used between two [`cpu_seconds`] readings, and
/// which node led.
fn cpu_used(before: &BTreeMap<u64, f64>, after: &BTreeMap<u64, f64>, leader: u64) -> Value {
    let nodes: Vec<Value> = after
        .iter()
        .map(|(id, t)| {
            json!({
                "node": id,
                "leader": *id == leader,
                "cpu_s": ((t - before.get(id).copied().unwrap_or(0.0)) * 100.0).round() / 100.0,
            })
        })
        .collect();
    json!(nodes)
}

/// The number of runs fired at each distinct `fired_at`, as lag from the
/// slot, earliest first (at most `max` groups).
fn fired_groups(runs: &[&Run], max: usize) -> Value {
    let mut groups: BTreeMap<i64, usize> = BTreeMap::new();
    for r in runs {
        *groups.entry(r.fired - r.slot).or_default() += 1;
    }
    let n = groups.len();
    let mut list: Vec<Value> = groups
        .into_iter()
        .take(max)
        .map(|(lag, runs)| json!({ "lag_ms": lag, "runs": runs }))
        .collect();
    if n > max {
        list.push(json!({ "more_groups": n - max }));
    }
    json!(list)
}

/// VmRSS and VmHWM of each running node, and the size of its data dir.
fn memory(cluster: &TestCluster, leader: u64) -> Value {
    let mib = |kb: u64| (kb as f64 / 1024.0 * 10.0).round() / 10.0;
    let nodes: Vec<Value> = cluster
        .nodes
        .iter()
        .filter_map(|n| {
            let pid = n.pid()?;
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
            let field = |name: &str| -> u64 {
                status
                    .lines()
                    .find(|l| l.starts_with(name))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0)
            };
            Some(json!({
                "node": n.id,
                "leader": n.id == leader,
                "vm_rss_mib": mib(field("VmRSS:")),
                "vm_hwm_mib": mib(field("VmHWM:")),
                "data_dir_mib": mib(dir_size(&n.data_dir) / 1024),
            }))
        })
        .collect();
    json!(nodes)
}

fn dir_size(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => dir_size(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}

/// The calls the receiver got, by run id: (slot, first arrival, calls).
fn calls_by_run(calls: &[Call]) -> HashMap<String, (i64, i64, usize)> {
    let mut by_run: HashMap<String, (i64, i64, usize)> = HashMap::new();
    for c in calls {
        let Some(slot) = parse_ms(&c.scheduled_for) else {
            continue;
        };
        let arrived = c.arrived_ms as i64;
        let e = by_run.entry(c.run_id.clone()).or_insert((slot, arrived, 0));
        e.1 = e.1.min(arrived);
        e.2 += 1;
    }
    by_run
}

fn job_body(receiver: &Receiver, schedule: &str) -> Value {
    json!({
        "schedule": schedule,
        "target": { "type": "http", "url": receiver.url(HOOK), "timeout_ms": 10_000 },
        "concurrency": "allow",
        "history_limit": 1_000,
    })
}

fn names(prefix: &str, n: usize) -> Arc<Vec<String>> {
    Arc::new((0..n).map(|i| format!("{prefix}-{i:05}")).collect())
}

/// A three-node cluster and the id of its leader.
async fn start_cluster(args: &[&str]) -> (TestCluster, u64) {
    let cluster = TestCluster::start(3, args).await;
    let leader = cluster.nodes[cluster.leader().await].id;
    progress(format!(
        "cluster up ({}), leader node {leader}",
        args.join(" ")
    ));
    (cluster, leader)
}

/// Part 1: `jobs` jobs firing every second; one window of `window_s` slots.
async fn every_second(s: &Settings) -> Value {
    let workers = s.workers.to_string();
    let (cluster, leader) = start_cluster(&["--workers", &workers]).await;
    let receiver = Receiver::start().await;
    let (http, urls) = (client(), urls(&cluster));
    let names = names("every", s.every_second_jobs);
    let load_before = load_average();
    let cpu_start = cpu_seconds(&cluster);
    let (_, defined) = define(
        &http,
        &urls,
        &names,
        &job_body(&receiver, "* * * * * *"),
        s.concurrency,
    )
    .await;
    let first = whole_second_from(now_ms() + s.warmup_ms);
    let end = first + s.window_s * 1000;
    let cpu_defined = cpu_seconds(&cluster);
    progress(format!(
        "window: {} slots from {}",
        s.window_s,
        views_time(first)
    ));

    // Every window slot is decided once each job was called for a later slot
    // (a job's slots are decided in order); then stop the jobs.
    let deadline = Duration::from_millis((end - now_ms()).max(0) as u64 + 120_000);
    let mut past_end: BTreeSet<String> = BTreeSet::new();
    let mut seen = 0;
    let caught_up = tokio::time::timeout(deadline, async {
        tokio::time::sleep(Duration::from_millis((end - now_ms()).max(0) as u64)).await;
        while past_end.len() < names.len() {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let calls = receiver.calls(HOOK);
            for c in &calls[seen..] {
                if parse_ms(&c.scheduled_for).is_some_and(|t| t >= end) {
                    past_end.insert(c.job.clone());
                }
            }
            seen = calls.len();
        }
    })
    .await
    .is_ok();
    let load_window = load_average();
    let cpu_window = cpu_seconds(&cluster);
    let paused_in = act_on_all(&http, &urls, &names, "pause", s.concurrency).await;
    progress(format!(
        "paused every job in {:.1} s",
        paused_in.as_secs_f64()
    ));
    let settled_in = settle(&cluster, Duration::from_secs(180)).await;
    let all_runs = read_runs(&http, &urls, &names, s.concurrency).await;
    let calls = receiver.calls(HOOK);

    let in_window = |slot: i64| (first..end).contains(&slot);
    let mut lag = Vec::new();
    let mut lag_by_10s: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
    let mut states: BTreeMap<String, i64> = BTreeMap::new();
    let (mut twice, mut unrecorded, mut missed_in_ranges) = (0, 0, 0);
    let mut run_ids = BTreeSet::new();
    for runs in &all_runs {
        let mut slots = BTreeSet::new();
        for r in runs.iter().filter(|r| in_window(r.slot)) {
            if !slots.insert(r.slot) {
                twice += 1;
            }
            *states.entry(r.state.clone()).or_default() += 1;
            missed_in_ranges += r.slots - 1;
            if r.fired() {
                lag.push(r.fired - r.slot);
                lag_by_10s
                    .entry((r.slot - first) / 10_000)
                    .or_default()
                    .push(r.fired - r.slot);
                run_ids.insert(r.id.clone());
            }
        }
        unrecorded += s.window_s - slots.len() as i64;
    }
    unrecorded -= missed_in_ranges;
    let by_run = calls_by_run(&calls);
    let delivered: Vec<i64> = by_run
        .iter()
        .filter(|(id, (slot, _, _))| in_window(*slot) && run_ids.contains(*id))
        .map(|(_, (slot, arrived, _))| arrived - slot)
        .collect();
    let called_twice = by_run
        .values()
        .filter(|(slot, _, n)| in_window(*slot) && *n > 1)
        .count();
    let expected = s.every_second_jobs as i64 * s.window_s;
    let fired = lag.len() as i64;
    json!({
        "jobs": s.every_second_jobs,
        "window_s": s.window_s,
        "define": defined,
        "slots": {
            "expected": expected,
            "fired": fired,
            "by_state": states,
            "missed_in_ranges": missed_in_ranges,
            "never_recorded": unrecorded,
            "slots_with_two_runs": twice,
        },
        "fired_per_s": (fired as f64 / s.window_s as f64).round(),
        "schedule_lag_ms": summary(lag),
        "schedule_lag_p50_ms_by_10s_of_window": lag_by_10s
            .into_values()
            .map(|v| summary(v)["p50"].clone())
            .collect::<Vec<_>>(),
        "delivery_lag_ms": summary(delivered),
        "runs_called_more_than_once": called_twice,
        "window_caught_up": caught_up,
        "cpu_s_defining": cpu_used(&cpu_start, &cpu_defined, leader),
        "cpu_s_window_and_after": cpu_used(&cpu_defined, &cpu_window, leader),
        "pause_all_s": paused_in.as_secs_f64(),
        "settle_s": settled_in,
        "load_avg_before": load_before,
        "load_avg_after_window": load_window,
    })
}

fn views_time(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339())
        .unwrap_or_default()
}

/// Parts 2 and 4: `jobs` jobs that fire at one second; memory of each node.
async fn same_second(s: &Settings) -> (Value, Value) {
    let workers = s.workers.to_string();
    let (cluster, leader) = start_cluster(&["--workers", &workers]).await;
    let receiver = Receiver::start().await;
    let (http, urls) = (client(), urls(&cluster));
    let names = names("same", s.same_second_jobs);
    let idle = memory(&cluster, leader);
    let load_before = load_average();
    let cpu_start = cpu_seconds(&cluster);

    // First with a yearly schedule: times the definitions and leaves the
    // jobs defined but idle.
    let (took, parked) = define(
        &http,
        &urls,
        &names,
        &job_body(&receiver, "0 0 0 1 1 *"),
        s.concurrency,
    )
    .await;
    let defined = memory(&cluster, leader);
    let cpu_defined = cpu_seconds(&cluster);

    let margin = if s.smoke { 2_000 } else { 10_000 };
    let slot = whole_second_from(now_ms() + (took.as_millis() as i64) * 3 / 2 + margin);
    let at = DateTime::<Utc>::from_timestamp_millis(slot).unwrap();
    let schedule = format!("{} {} {} * * *", at.second(), at.minute(), at.hour());
    progress(format!(
        "replacing the schedules with {schedule:?} (UTC), {}",
        views_time(slot)
    ));
    let (_, replaced) = define(
        &http,
        &urls,
        &names,
        &job_body(&receiver, &schedule),
        s.concurrency,
    )
    .await;
    let ready_before_slot_ms = slot - now_ms();
    let replaced_memory = memory(&cluster, leader);
    let cpu_replaced = cpu_seconds(&cluster);

    // Until every job's call for the slot arrived.
    let deadline = Duration::from_millis((slot - now_ms()).max(0) as u64 + 300_000);
    let mut jobs_called: BTreeSet<String> = BTreeSet::new();
    let mut seen = 0;
    let all_arrived = tokio::time::timeout(deadline, async {
        tokio::time::sleep(Duration::from_millis((slot - now_ms()).max(0) as u64)).await;
        while jobs_called.len() < names.len() {
            tokio::time::sleep(Duration::from_millis(250)).await;
            let calls = receiver.calls(HOOK);
            for c in &calls[seen..] {
                if parse_ms(&c.scheduled_for) == Some(slot) {
                    jobs_called.insert(c.job.clone());
                }
            }
            seen = calls.len();
        }
    })
    .await
    .is_ok();
    let load_after = load_average();
    let cpu_delivered = cpu_seconds(&cluster);
    let settled_in = settle(&cluster, Duration::from_secs(300)).await;
    let fired_memory = memory(&cluster, leader);
    let all_runs = read_runs(&http, &urls, &names, s.concurrency).await;
    let calls = receiver.calls(HOOK);

    let mut lag = Vec::new();
    let mut states: BTreeMap<String, i64> = BTreeMap::new();
    let (mut twice, mut unrecorded) = (0, 0);
    let mut fired_first_last = (i64::MAX, i64::MIN);
    let mut fired_runs = Vec::new();
    for runs in &all_runs {
        let at_slot: Vec<&Run> = runs.iter().filter(|r| r.slot == slot).collect();
        match at_slot.len() {
            0 => unrecorded += 1,
            1 => {}
            _ => twice += 1,
        }
        fired_runs.extend(at_slot.iter().copied().filter(|r| r.fired()));
        for r in at_slot {
            *states.entry(r.state.clone()).or_default() += 1;
            if r.fired() {
                lag.push(r.fired - r.slot);
                fired_first_last.0 = fired_first_last.0.min(r.fired);
                fired_first_last.1 = fired_first_last.1.max(r.fired);
            }
        }
    }
    let by_run = calls_by_run(&calls);
    let delivered: Vec<i64> = by_run
        .values()
        .filter(|(t, _, _)| *t == slot)
        .map(|(_, arrived, _)| arrived - slot)
        .collect();
    let all_delivered_after = delivered.iter().copied().max();
    let fired = lag.len();
    let report = json!({
        "jobs": s.same_second_jobs,
        "slot": views_time(slot),
        "define_yearly": parked,
        "replace_with_one_second": replaced,
        "replaced_ms_before_the_slot": ready_before_slot_ms,
        "slots": {
            "fired": fired,
            "by_state": states,
            "never_recorded": unrecorded,
            "slots_with_two_runs": twice,
        },
        "schedule_lag_ms": summary(lag),
        "fired_over_ms": if fired > 0 { fired_first_last.1 - fired_first_last.0 } else { 0 },
        "runs_by_fired_at": fired_groups(&fired_runs, 10),
        "delivery_lag_ms": summary(delivered),
        "all_calls_arrived": all_arrived,
        "all_calls_arrived_after_slot_ms": all_delivered_after,
        "runs_called_more_than_once": by_run.values().filter(|(t, _, n)| *t == slot && *n > 1).count(),
        "settle_s": settled_in,
        "cpu_s_defining": cpu_used(&cpu_start, &cpu_defined, leader),
        "cpu_s_replacing": cpu_used(&cpu_defined, &cpu_replaced, leader),
        "cpu_s_until_all_delivered": cpu_used(&cpu_replaced, &cpu_delivered, leader),
        "load_avg_before": load_before,
        "load_avg_after": load_after,
    });
    let memory = json!({
        "jobs": s.same_second_jobs,
        "no_jobs": idle,
        "jobs_defined": defined,
        "jobs_replaced": replaced_memory,
        "after_they_fired": fired_memory,
    });
    (report, memory)
}

/// Part 3: jobs firing every second while the leader is killed and restarted.
async fn leader_kill(s: &Settings) -> Value {
    let (workers, lease) = (s.workers.to_string(), s.failover_lease_ms.to_string());
    let (mut cluster, _) =
        start_cluster(&["--workers", &workers, "--attempt-lease-ms", &lease]).await;
    let receiver = Receiver::start().await;
    let (http, urls) = (client(), urls(&cluster));
    let names = names("failover", s.failover_jobs);
    let load_before = load_average();
    let (_, defined) = define(
        &http,
        &urls,
        &names,
        &job_body(&receiver, "* * * * * *"),
        s.concurrency,
    )
    .await;
    let first = whole_second_from(now_ms() + s.warmup_ms);
    let steady = if s.smoke { 2_000 } else { 5_000 };

    called_for(
        &cluster,
        &names[0],
        first + steady,
        "slots before the first kill",
    )
    .await;
    let mut kills = Vec::new();
    for k in 0..s.failovers {
        let leader = cluster.leader().await;
        let old_id = cluster.nodes[leader].id;
        let killed_at = now_ms();
        cluster.nodes[leader].kill();
        let new_id = cluster.nodes[cluster.leader().await].id;
        let elected_after = now_ms() - killed_at;
        progress(format!(
            "kill {k}: killed leader node {old_id}; node {new_id} leads after {elected_after} ms"
        ));
        called_for(
            &cluster,
            &names[0],
            killed_at + steady,
            "slots under the new leader",
        )
        .await;
        cluster.nodes[leader].start(&[]);
        cluster.wait_converged(3).await;
        let restarted_at = now_ms();
        called_for(
            &cluster,
            &names[0],
            restarted_at + steady,
            "slots after the restart",
        )
        .await;
        kills.push((killed_at, old_id, new_id, elected_after, restarted_at));
    }
    let end = now_ms().div_euclid(1000) * 1000;
    let load_after = load_average();
    act_on_all(&http, &urls, &names, "pause", s.concurrency).await;
    let settled_in = settle(&cluster, Duration::from_secs(180)).await;
    let all_runs = read_runs(&http, &urls, &names, s.concurrency).await;
    let calls = receiver.calls(HOOK);

    let in_window = |slot: i64| (first..end).contains(&slot);
    let window_slots = (end - first) / 1000;
    let (mut twice, mut unrecorded, mut not_succeeded) = (0, 0, 0);
    let mut states: BTreeMap<String, i64> = BTreeMap::new();
    let mut gaps = Vec::new();
    let mut worst_gap = (0, String::new());
    for (name, runs) in names.iter().zip(&all_runs) {
        let window: Vec<&Run> = runs.iter().filter(|r| in_window(r.slot)).collect();
        let slots: BTreeSet<i64> = window.iter().map(|r| r.slot).collect();
        twice += window.len() - slots.len();
        unrecorded += window_slots - slots.len() as i64;
        for r in &window {
            *states.entry(r.state.clone()).or_default() += 1;
            if r.state != "succeeded" {
                not_succeeded += 1;
            }
        }
        let fired: Vec<i64> = window
            .iter()
            .filter(|r| r.fired())
            .map(|r| r.fired)
            .collect();
        for pair in fired.windows(2) {
            let gap = pair[1] - pair[0];
            gaps.push(gap);
            if gap > worst_gap.0 {
                worst_gap = (gap, format!("{name} after {}", views_time(pair[0])));
            }
        }
    }
    // Across each kill: consecutive fired_at of one job with the kill between them.
    let per_kill: Vec<Value> = kills
        .iter()
        .map(|(killed_at, old, new, elected, restarted)| {
            let mut gap = Vec::new();
            let mut lag_after = Vec::new();
            for runs in &all_runs {
                let fired: Vec<&Run> = runs
                    .iter()
                    .filter(|r| in_window(r.slot) && r.fired())
                    .collect();
                for pair in fired.windows(2) {
                    if pair[0].fired <= *killed_at && *killed_at < pair[1].fired {
                        gap.push(pair[1].fired - pair[0].fired);
                    }
                }
                lag_after.extend(
                    fired
                        .iter()
                        .filter(|r| r.fired > *killed_at && r.slot < killed_at + 10_000)
                        .map(|r| r.fired - r.slot),
                );
            }
            let first_after = runs_first_fired_after(&all_runs, *killed_at);
            json!({
                "killed_leader": old,
                "new_leader": new,
                "new_leader_agreed_after_ms": elected,
                "first_slot_fired_after_kill_ms": first_after.map(|t| t - killed_at),
                "gap_across_kill_ms": summary(gap),
                "schedule_lag_of_slots_up_to_10s_after_kill_ms": summary(lag_after),
                "restart_converged_after_kill_ms": restarted - killed_at,
            })
        })
        .collect();
    let by_run = calls_by_run(&calls);
    let undelivered = all_runs
        .iter()
        .flatten()
        .filter(|r| in_window(r.slot) && r.fired() && !by_run.contains_key(&r.id))
        .count();
    json!({
        "jobs": s.failover_jobs,
        "attempt_lease_ms": s.failover_lease_ms,
        "define": defined,
        "window_s": window_slots,
        "kills": per_kill,
        "longest_gap_between_fired_slots_ms": worst_gap.0,
        "longest_gap_at": worst_gap.1,
        "gap_between_fired_slots_ms": summary(gaps),
        "slots": {
            "expected": window_slots * s.failover_jobs as i64,
            "by_state": states,
            "not_succeeded": not_succeeded,
            "never_recorded": unrecorded,
            "slots_with_two_runs": twice,
            "fired_but_never_called": undelivered,
        },
        "runs_called_more_than_once": by_run
            .values()
            .filter(|(t, _, n)| in_window(*t) && *n > 1)
            .count(),
        "settle_s": settled_in,
        "load_avg_before": load_before,
        "load_avg_after": load_after,
    })
}

/// Wait until `job` has a run for a slot at or after `t` (asked of a running
/// node, without a read barrier, every 200 ms).
async fn called_for(cluster: &TestCluster, job: &str, t: i64, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let path = format!("/v1/jobs/{job}/runs?limit=1&stale=true");
    loop {
        let node = cluster.nodes.iter().position(|n| n.is_running()).unwrap();
        let (status, body) = cluster.get(node, &path).await;
        let newest = body["runs"][0]["scheduled_for"].as_str().and_then(parse_ms);
        if status == StatusCode::OK && newest.is_some_and(|slot| slot >= t) {
            return;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn runs_first_fired_after(all_runs: &[Vec<Run>], t: i64) -> Option<i64> {
    all_runs
        .iter()
        .flatten()
        .filter(|r| r.fired() && r.fired > t)
        .map(|r| r.fired)
        .min()
}

#[tokio::main]
async fn main() {
    let s = Settings::from_args();
    let started = Instant::now();
    let mut report = json!({
        "benchmark": "scheduler",
        "nodes": 3,
        "smoke": s.smoke,
        "workers_per_node": s.workers,
        "cpus": std::thread::available_parallelism().map_or(0, |n| n.get()),
        "load_avg_at_start": load_average(),
    });
    if s.runs("every_second") {
        progress("part every_second");
        report["every_second"] = every_second(&s).await;
    }
    if s.runs("same_second") {
        progress("part same_second");
        let (same, memory) = same_second(&s).await;
        report["same_second"] = same;
        report["memory"] = memory;
    }
    if s.runs("leader_kill") {
        progress("part leader_kill");
        report["leader_kill"] = leader_kill(&s).await;
    }
    report["load_avg_at_end"] = load_average();
    report["took_s"] = json!(started.elapsed().as_secs_f64().round());
    println!("{}", serde_json::to_string_pretty(&report).unwrap());
}
