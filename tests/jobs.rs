//! Jobs and runs on real clusters: exactly one run per slot through
//! failover, retries, overlap, misfires, lost workers and shell targets.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::support::receiver::{Behavior, Receiver};
use crate::support::{wait_for, TestCluster};

/// Every-second job calling the receiver at `path`, with extra body fields.
fn every_second(receiver: &Receiver, path: &str, extra: Value) -> Value {
    let mut body = json!({
        "schedule": "* * * * * *",
        "target": { "type": "http", "url": receiver.url(path), "timeout_ms": 5_000 },
    });
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    body
}

/// A job that only runs when triggered (its schedule fires once a year).
fn manual(receiver: &Receiver, path: &str, extra: Value) -> Value {
    let mut body = every_second(receiver, path, extra);
    body["schedule"] = json!("0 0 1 1 *");
    body
}

async fn put_job(cluster: &TestCluster, node: usize, name: &str, body: Value) -> Value {
    let (status, job) = cluster.put(node, &format!("/v1/jobs/{name}"), body).await;
    assert!(status.is_success(), "PUT {name}: {status} {job}");
    job
}

/// All of a job's runs, oldest first.
async fn runs(cluster: &TestCluster, node: usize, name: &str) -> Vec<Value> {
    let (status, body) = cluster
        .get(node, &format!("/v1/jobs/{name}/runs?limit=1000"))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let mut runs = body["runs"].as_array().unwrap().clone();
    runs.reverse();
    runs
}

async fn run(cluster: &TestCluster, node: usize, id: &str) -> Value {
    let (status, body) = cluster.get(node, &format!("/v1/runs/{id}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

/// Unix ms of an RFC 3339 time as the API writes it.
fn ms(t: &Value) -> i64 {
    chrono::DateTime::parse_from_rfc3339(t.as_str().unwrap())
        .unwrap()
        .timestamp_millis()
}

/// Wait until `name` has no unfinished run.
async fn settled(cluster: &TestCluster, node: usize, name: &str) {
    wait_for(
        &format!("{name} to have no unfinished run"),
        Duration::from_secs(60),
        || async {
            let (_, job) = cluster.get(node, &format!("/v1/jobs/{name}")).await;
            (job["unfinished_runs"].as_array()?.is_empty()).then_some(())
        },
    )
    .await;
}

async fn pause(cluster: &TestCluster, node: usize, name: &str) {
    let (status, body) = cluster
        .post(node, &format!("/v1/jobs/{name}/pause"), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["enabled"], false);
}

/// The sum over every running node of the Prometheus samples whose line
/// starts with `series` (a name, with labels if given).
async fn metric_sum(cluster: &TestCluster, series: &str) -> f64 {
    let mut sum = 0.0;
    for i in (0..cluster.nodes.len()).filter(|&i| cluster.nodes[i].is_running()) {
        let text = cluster.metrics(i).await.unwrap();
        sum += text
            .lines()
            .filter(|l| l.starts_with(series))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>();
    }
    sum
}

/// Check that `runs` cover every second from the first to the last, once.
fn assert_every_second_once(name: &str, runs: &[Value]) -> Vec<i64> {
    let slots: Vec<i64> = runs.iter().map(|r| ms(&r["scheduled_for"])).collect();
    let unique: BTreeSet<i64> = slots.iter().copied().collect();
    assert_eq!(unique.len(), slots.len(), "{name}: a slot has two runs");
    let (first, last) = (slots[0], *slots.last().unwrap());
    let expected: BTreeSet<i64> = (0..=(last - first) / 1000)
        .map(|i| first + i * 1000)
        .collect();
    assert_eq!(
        unique, expected,
        "{name}: a slot is missing between {first} and {last}"
    );
    slots
}

#[tokio::test(flavor = "multi_thread")]
async fn every_slot_fires_once_through_a_leader_kill() {
    let mut cluster = TestCluster::start(3, &["--attempt-lease-ms", "1500"]).await;
    let receiver = Receiver::start().await;
    let names = ["alpha", "beta", "gamma"];
    // `allow`: the killed node may be running an attempt, whose run stays
    // unfinished until its lease lapses; under `forbid` the next slots would
    // (rightly) be skipped as overlapping. This test is about delivery.
    for (i, name) in names.iter().enumerate() {
        let body = every_second(&receiver, name, json!({ "concurrency": "allow" }));
        put_job(&cluster, i, name, body).await;
    }
    let received = |n: usize| receiver.calls("alpha").len() >= n;
    wait_for(
        "a few slots before the kill",
        Duration::from_secs(20),
        || async { received(3).then_some(()) },
    )
    .await;
    let leader = cluster.leader().await;
    let killed_at = gnomon_raft::wall_clock_ms() as i64;
    cluster.nodes[leader].kill();
    let survivor = (leader + 1) % 3;
    let before = receiver.calls("alpha").len();
    wait_for(
        "slots under the new leader",
        Duration::from_secs(30),
        || async { received(before + 3).then_some(()) },
    )
    .await;
    cluster.nodes[leader].start(&[]);
    cluster.wait_converged(3).await;
    let restarted_at = gnomon_raft::wall_clock_ms() as i64;
    let after = receiver.calls("alpha").len();
    wait_for(
        "slots after the restart",
        Duration::from_secs(30),
        || async { received(after + 2).then_some(()) },
    )
    .await;
    for name in names {
        pause(&cluster, survivor, name).await;
        settled(&cluster, survivor, name).await;
    }

    // Leaders counted a schedule lag for every fired slot (the killed
    // leader's counts died with it, so at least those since).
    assert!(metric_sum(&cluster, "gnomon_schedule_lag_seconds_count").await >= 3.0);
    assert!(metric_sum(&cluster, r#"gnomon_slots_total{outcome="fired"}"#).await >= 3.0);
    for name in names {
        let runs = runs(&cluster, survivor, name).await;
        let slots = assert_every_second_once(name, &runs);
        // The window spans the kill and the restart.
        assert!(slots[0] < killed_at, "{name}: no slot before the kill");
        assert!(
            *slots.last().unwrap() > restarted_at,
            "{name}: no slot after the restart"
        );
        for r in &runs {
            // Late is not missed: the failover took well under the 60 s threshold.
            assert_eq!(r["state"], "succeeded", "{name}: {r}");
        }
        // The receiver got every slot, and each run's calls shared one key.
        let calls = receiver.calls(name);
        let received: BTreeSet<i64> = calls
            .iter()
            .map(|c| {
                chrono::DateTime::parse_from_rfc3339(&c.scheduled_for)
                    .unwrap()
                    .timestamp_millis()
            })
            .collect();
        assert_eq!(
            received,
            slots.iter().copied().collect::<BTreeSet<_>>(),
            "{name}"
        );
        let mut keys: BTreeMap<i64, BTreeSet<String>> = BTreeMap::new();
        for c in &calls {
            assert_eq!(c.idempotency_key, c.run_id);
            assert_eq!(c.job, name);
            let slot = chrono::DateTime::parse_from_rfc3339(&c.scheduled_for)
                .unwrap()
                .timestamp_millis();
            keys.entry(slot)
                .or_default()
                .insert(c.idempotency_key.clone());
        }
        for (slot, k) in keys {
            assert_eq!(
                k.len(),
                1,
                "{name}: slot {slot} was sent under two keys: {k:?}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn failed_attempts_retry_with_backoff_then_the_run_is_dead() {
    let cluster = TestCluster::start(3, &[]).await;
    let receiver = Receiver::start().await;
    // Three attempts in all: 1 s, then 2 s between them.
    let retry = json!({ "retry": { "backoff_ms": [1000, 2000] } });
    receiver.set(
        "flaky",
        Behavior {
            fail_first: 2,
            ..Behavior::default()
        },
    );
    receiver.set(
        "broken",
        Behavior {
            fail_first: u32::MAX,
            ..Behavior::default()
        },
    );
    put_job(
        &cluster,
        0,
        "flaky",
        manual(&receiver, "flaky", retry.clone()),
    )
    .await;
    put_job(&cluster, 1, "broken", manual(&receiver, "broken", retry)).await;
    let (status, flaky_run) = cluster.post(2, "/v1/jobs/flaky/trigger", json!({})).await;
    assert_eq!(status, StatusCode::CREATED, "{flaky_run}");
    let (_, broken_run) = cluster.post(1, "/v1/jobs/broken/trigger", json!({})).await;
    settled(&cluster, 0, "flaky").await;
    settled(&cluster, 0, "broken").await;

    for (path, final_state) in [("flaky", "succeeded"), ("broken", "dead")] {
        let calls = receiver.calls(path);
        assert_eq!(
            calls.iter().map(|c| c.attempt).collect::<Vec<_>>(),
            vec![1, 2, 3],
            "{path}"
        );
        assert!(
            calls
                .windows(2)
                .all(|w| w[1].fencing_token > w[0].fencing_token),
            "{path}: {calls:?}"
        );
        assert!(calls
            .iter()
            .all(|c| c.idempotency_key == calls[0].idempotency_key));
        // The gaps follow the tiers (the receiver's clock; a little slack for
        // the time between a failure and the retry being recorded).
        let gaps: Vec<u64> = calls
            .windows(2)
            .map(|w| w[1].arrived_ms - w[0].answered_ms.unwrap())
            .collect();
        assert!(gaps[0] >= 1000 && gaps[0] < 3000, "{path}: gaps {gaps:?}");
        assert!(gaps[1] >= 2000 && gaps[1] < 4000, "{path}: gaps {gaps:?}");
        let id = calls[0].run_id.clone();
        let r = run(&cluster, 0, &id).await;
        assert_eq!(r["state"], final_state, "{r}");
        let outcomes: Vec<&str> = r["attempts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["outcome"].as_str().unwrap())
            .collect();
        let expected_last = if final_state == "dead" {
            "failed"
        } else {
            "succeeded"
        };
        assert_eq!(outcomes, vec!["failed", "failed", expected_last]);
        assert_eq!(r["attempts"][0]["status"], 500);
    }
    // What the workers counted: 5 failed attempts (2 + 3), 1 success, 4
    // retries, 1 dead run.
    assert_eq!(
        metric_sum(&cluster, r#"gnomon_attempts_total{outcome="failed"}"#).await,
        5.0
    );
    assert_eq!(
        metric_sum(&cluster, r#"gnomon_attempts_total{outcome="succeeded"}"#).await,
        1.0
    );
    assert_eq!(metric_sum(&cluster, "gnomon_retries_total").await, 4.0);
    assert_eq!(metric_sum(&cluster, "gnomon_dead_runs_total").await, 1.0);
    let (_, dead) = cluster.get(2, "/v1/runs?state=dead").await;
    let dead_ids: Vec<&str> = dead["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(dead_ids, vec![broken_run["id"].as_str().unwrap()]);
    assert_ne!(flaky_run["id"], broken_run["id"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn forbid_skips_overlapping_slots_and_replace_cancels_the_slow_attempt() {
    let cluster = TestCluster::start(3, &[]).await;
    let receiver = Receiver::start().await;
    receiver.set(
        "forbid",
        Behavior {
            delay_ms: 2_500,
            ..Behavior::default()
        },
    );
    receiver.set(
        "replace",
        Behavior {
            delay_ms: 30_000,
            ..Behavior::default()
        },
    );
    put_job(
        &cluster,
        0,
        "forbid",
        every_second(&receiver, "forbid", json!({})),
    )
    .await;
    let replace = json!({ "concurrency": "replace", "schedule": "*/2 * * * * *" });
    let mut body = every_second(&receiver, "replace", replace.clone());
    body["schedule"] = replace["schedule"].clone();
    body["target"]["timeout_ms"] = json!(60_000);
    put_job(&cluster, 1, "replace", body).await;

    wait_for("a skipped slot", Duration::from_secs(30), || async {
        let runs = runs(&cluster, 2, "forbid").await;
        runs.iter().any(|r| r["state"] == "skipped").then_some(())
    })
    .await;
    wait_for("a replaced run", Duration::from_secs(30), || async {
        let runs = runs(&cluster, 2, "replace").await;
        runs.iter().any(|r| r["state"] == "cancelled").then_some(())
    })
    .await;
    pause(&cluster, 0, "forbid").await;
    pause(&cluster, 0, "replace").await;

    let forbid = runs(&cluster, 0, "forbid").await;
    let skipped: Vec<&Value> = forbid.iter().filter(|r| r["state"] == "skipped").collect();
    for r in &skipped {
        assert!(r["reason"].as_str().unwrap().starts_with("overlap"), "{r}");
        assert!(r["attempts"].as_array().unwrap().is_empty());
    }
    // Every slot got one record, run or skipped; never two runs in flight.
    assert_every_second_once("forbid", &forbid);
    let mut in_flight = receiver.calls("forbid");
    in_flight.sort_by_key(|c| c.arrived_ms);
    for w in in_flight.windows(2) {
        assert!(
            w[1].arrived_ms >= w[0].answered_ms.unwrap_or(u64::MAX) - 50,
            "overlapping calls: {w:?}"
        );
    }

    let replaced = runs(&cluster, 0, "replace").await;
    let cancelled = replaced.iter().find(|r| r["state"] == "cancelled").unwrap();
    assert!(
        cancelled["reason"]
            .as_str()
            .unwrap()
            .starts_with("replaced by run"),
        "{cancelled}"
    );
    assert_eq!(cancelled["attempts"][0]["outcome"], "cancelled");
    // The worker stopped the slow call: the receiver saw the caller hang up
    // long before its 30 s answer.
    let id = cancelled["id"].as_str().unwrap();
    wait_for(
        "the cancelled call to be dropped",
        Duration::from_secs(10),
        || async {
            let calls = receiver.calls("replace");
            let call = calls.iter().find(|c| c.run_id == id)?;
            (call.status == 0).then_some(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_worker_loses_its_attempt_to_another_node() {
    let mut cluster = TestCluster::start(3, &["--attempt-lease-ms", "1500"]).await;
    let receiver = Receiver::start().await;
    // The first call hangs (its worker is killed mid-call); later ones answer at once.
    receiver.set(
        "slow",
        Behavior {
            delay_ms: 60_000,
            ..Behavior::default()
        },
    );
    put_job(&cluster, 0, "slow", manual(&receiver, "slow", json!({ "target": { "type": "http", "url": receiver.url("slow"), "timeout_ms": 120_000 } }))).await;
    let (_, triggered) = cluster.post(0, "/v1/jobs/slow/trigger", json!({})).await;
    let id = triggered["id"].as_str().unwrap().to_string();
    let worker = wait_for("the attempt to start", Duration::from_secs(20), || async {
        let r = run(&cluster, 0, &id).await;
        r["attempts"][0]["node"].as_u64()
    })
    .await;
    wait_for("the call to arrive", Duration::from_secs(20), || async {
        (!receiver.calls("slow").is_empty()).then_some(())
    })
    .await;
    receiver.set("slow", Behavior::default());
    let killed = cluster.index_of(worker);
    cluster.nodes[killed].kill();
    let other = (killed + 1) % 3;
    let r = wait_for(
        "the attempt to run again elsewhere",
        Duration::from_secs(40),
        || async {
            let r = run(&cluster, other, &id).await;
            (r["state"] == "succeeded").then_some(r)
        },
    )
    .await;
    let attempts = r["attempts"].as_array().unwrap();
    assert_eq!(attempts[0]["outcome"], "lost", "{r}");
    assert_ne!(
        attempts.last().unwrap()["node"].as_u64().unwrap(),
        worker,
        "{r}"
    );
    let calls = receiver.calls("slow");
    assert_eq!(calls.len(), attempts.len());
    assert!(calls.iter().all(|c| c.idempotency_key == id));
    assert_eq!(calls.last().unwrap().attempt as usize, attempts.len());
}

/// The slots of a job paused for a while: `(scheduled_for, fired_at, state)`.
fn slot_records(runs: &[Value]) -> Vec<(i64, i64, String, u64)> {
    runs.iter()
        .map(|r| {
            (
                ms(&r["scheduled_for"]),
                ms(&r["fired_at"]),
                r["state"].as_str().unwrap().to_string(),
                r["missed_slots"].as_u64().unwrap_or(1),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn after_a_whole_cluster_outage_each_misfire_policy_accounts_for_every_slot() {
    let mut cluster = TestCluster::start(3, &[]).await;
    let receiver = Receiver::start().await;
    let policies = ["run_once", "skip", "run_all"];
    for (i, policy) in policies.iter().enumerate() {
        let extra =
            json!({ "misfire": policy, "misfire_threshold_ms": 2_000, "catchup_window_ms": 5_000 });
        put_job(&cluster, i, policy, every_second(&receiver, policy, extra)).await;
    }
    wait_for("a few runs", Duration::from_secs(20), || async {
        (receiver.calls("skip").len() >= 2).then_some(())
    })
    .await;
    for node in &mut cluster.nodes {
        assert!(node.terminate().success());
    }
    let outage = std::time::Instant::now();
    // The outage must outlast the 2 s threshold and the 5 s catch-up window.
    wait_for("an outage of 9 s", Duration::from_secs(20), || async {
        (outage.elapsed() >= Duration::from_secs(9)).then_some(())
    })
    .await;
    for node in &mut cluster.nodes {
        node.start(&[]);
    }
    cluster.wait_converged(3).await;
    let back = receiver.calls("skip").len();
    wait_for("runs after the outage", Duration::from_secs(30), || async {
        (receiver.calls("skip").len() >= back + 2).then_some(())
    })
    .await;
    for policy in policies {
        pause(&cluster, 0, policy).await;
        settled(&cluster, 0, policy).await;
    }

    for policy in policies {
        let records = slot_records(&runs(&cluster, 1, policy).await);
        // Every second from the first slot to the last is accounted for once.
        let mut expected = records[0].0;
        for (slot, _, _, count) in &records {
            assert_eq!(
                *slot, expected,
                "{policy}: a gap or overlap at {slot}: {records:?}"
            );
            expected = slot + 1000 * *count as i64;
        }
        // The catch-up: every slot handled in the first batch after the outage.
        let catch_up = records.iter().map(|r| r.1 - r.0).max().unwrap();
        assert!(
            catch_up > 5_000,
            "{policy}: no slot waited out the outage: {records:?}"
        );
        let late: Vec<&(i64, i64, String, u64)> =
            records.iter().filter(|r| r.1 - r.0 > 2_000).collect();
        let fired_late: Vec<i64> = late
            .iter()
            .filter(|r| r.2 != "missed")
            .map(|r| r.0)
            .collect();
        let missed: u64 = late.iter().filter(|r| r.2 == "missed").map(|r| r.3).sum();
        assert!(missed > 0, "{policy}: nothing recorded missed: {records:?}");
        match policy {
            // One run for the most recent misfired slot.
            "run_once" => {
                assert_eq!(fired_late.len(), 1, "{policy}: {records:?}");
                assert_eq!(fired_late[0], late.iter().map(|r| r.0).max().unwrap());
            }
            "skip" => assert!(fired_late.is_empty(), "{policy}: {records:?}"),
            // Each misfired slot within the 5 s window runs; older ones are missed.
            _ => {
                for r in &late {
                    let within = r.1 - r.0 <= 5_000;
                    assert_eq!(
                        r.2 != "missed",
                        within,
                        "{policy}: slot {} (lag {} ms) is {}",
                        r.0,
                        r.1 - r.0,
                        r.2
                    );
                }
                assert!(!fired_late.is_empty(), "{policy}: {records:?}");
            }
        }
        // What fired late was received; missed slots never were.
        let received: BTreeSet<String> = receiver
            .calls(policy)
            .iter()
            .map(|c| c.scheduled_for.clone())
            .collect();
        for r in &late {
            let key = chrono::DateTime::from_timestamp_millis(r.0)
                .unwrap()
                .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true);
            assert_eq!(
                received.contains(&key),
                r.2 != "missed",
                "{policy}: slot {key} ({})",
                r.2
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn shell_targets_need_allow_shell_and_are_killed_with_their_children_on_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("child.pid");
    let body = json!({
        "schedule": "0 0 1 1 *",
        "target": {
            "type": "shell",
            "command": format!("sleep 300 & echo $! > {}; wait", pidfile.display()),
            "timeout_ms": 1_000
        },
        "retry": { "backoff_ms": [] }
    });
    let refusing = TestCluster::start(1, &[]).await;
    let (status, err) = refusing.put(0, "/v1/jobs/sh", body.clone()).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{err}");
    assert_eq!(err["error"]["code"], "shell_not_allowed");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("--allow-shell"),
        "{err}"
    );
    drop(refusing);

    let cluster = TestCluster::start(1, &["--allow-shell"]).await;
    put_job(&cluster, 0, "sh", body).await;
    let (_, triggered) = cluster.post(0, "/v1/jobs/sh/trigger", json!({})).await;
    let id = triggered["id"].as_str().unwrap();
    let r = wait_for(
        "the attempt to time out",
        Duration::from_secs(30),
        || async {
            let r = run(&cluster, 0, id).await;
            (r["state"] == "dead").then_some(r)
        },
    )
    .await;
    assert_eq!(r["attempts"][0]["outcome"], "timed_out", "{r}");
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // The backgrounded child is gone (or a zombie awaiting a reaper), not sleeping on.
    let status = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let state = status
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .next();
    assert!(
        matches!(state, None | Some("Z") | Some("X")),
        "child {pid} still runs: {status}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn https_targets_succeed_only_when_their_certificate_is_trusted() {
    let (trusted, cert_pem) = Receiver::start_tls().await;
    let (untrusted, _) = Receiver::start_tls().await;
    let mut cluster = TestCluster::empty(1, &[]);
    // The node's whole CA bundle is the first receiver's certificate: the
    // way a private CA is trusted (SSL_CERT_FILE).
    let bundle = cluster.root().join("ca.pem");
    std::fs::write(&bundle, cert_pem).unwrap();
    cluster.nodes[0].set_env("SSL_CERT_FILE", &bundle);
    cluster.nodes[0].start(&[]);
    cluster.wait_ready(0).await;

    let once = json!({ "retry": { "backoff_ms": [] } });
    put_job(&cluster, 0, "trusted", manual(&trusted, "t", once.clone())).await;
    put_job(&cluster, 0, "untrusted", manual(&untrusted, "u", once)).await;
    let mut finished = BTreeMap::new();
    for name in ["trusted", "untrusted"] {
        let (status, triggered) = cluster
            .post(0, &format!("/v1/jobs/{name}/trigger"), json!({}))
            .await;
        assert!(status.is_success(), "{triggered}");
        let id = triggered["id"].as_str().unwrap().to_owned();
        let done = wait_for(
            &format!("the {name} run to finish"),
            Duration::from_secs(30),
            || async {
                let r = run(&cluster, 0, &id).await;
                matches!(r["state"].as_str(), Some("succeeded" | "dead")).then_some(r)
            },
        )
        .await;
        finished.insert(name, done);
    }

    let ok = &finished["trusted"];
    assert_eq!(ok["state"], "succeeded", "{ok}");
    assert_eq!(ok["attempts"][0]["status"], 200, "{ok}");
    let calls = trusted.calls("t");
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0].run_id, ok["id"].as_str().unwrap());

    let refused = &finished["untrusted"];
    assert_eq!(refused["state"], "dead", "{refused}");
    assert_eq!(refused["attempts"][0]["outcome"], "failed", "{refused}");
    let error = refused["attempts"][0]["error"].as_str().unwrap_or("");
    assert!(error.contains("certificate"), "{refused}");
    assert!(untrusted.calls("u").is_empty(), "the handshake must fail");
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_hands_back_a_running_attempt_and_exits_cleanly() {
    // Long leases: a handed-back attempt must run again at once, not when
    // its lease would have lapsed.
    let mut cluster = TestCluster::start(
        3,
        &["--attempt-lease-ms", "20000", "--shutdown-grace-ms", "500"],
    )
    .await;
    let receiver = Receiver::start().await;
    receiver.set(
        "long",
        Behavior {
            delay_ms: 60_000,
            ..Behavior::default()
        },
    );
    let mut job = manual(&receiver, "long", json!({}));
    job["target"]["timeout_ms"] = json!(120_000);
    put_job(&cluster, 0, "long", job).await;
    let (_, triggered) = cluster.post(0, "/v1/jobs/long/trigger", json!({})).await;
    let id = triggered["id"].as_str().unwrap().to_string();
    wait_for("the call to arrive", Duration::from_secs(20), || async {
        (!receiver.calls("long").is_empty()).then_some(())
    })
    .await;
    receiver.set("long", Behavior::default());
    let worker = run(&cluster, 0, &id).await["attempts"][0]["node"]
        .as_u64()
        .unwrap();
    let node = cluster.index_of(worker);
    let exit = cluster.nodes[node].terminate();
    assert!(exit.success(), "exit status {exit:?}");
    let other = (node + 1) % 3;
    // Well within the 20 s lease: it was handed back, not left to lapse.
    let r = wait_for(
        "the handed-back attempt to run again",
        Duration::from_secs(15),
        || async {
            let r = run(&cluster, other, &id).await;
            (r["state"] == "succeeded").then_some(r)
        },
    )
    .await;
    let attempts = r["attempts"].as_array().unwrap();
    assert_eq!(attempts[0]["outcome"], "handed_back", "{r}");
    assert_ne!(attempts[1]["node"].as_u64().unwrap(), worker);
    // The handed-back call was stopped: the receiver saw its caller hang up.
    assert_eq!(receiver.calls("long")[0].status, 0);
}
