//! The delay queue on a cluster of real processes.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::Rng;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::support::{wait_for, TestCluster};

async fn enqueue(cluster: &TestCluster, node: usize, queue: &str, body: Value) -> Value {
    let (status, reply) = cluster
        .post(node, &format!("/v1/queues/{queue}/messages"), body)
        .await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    reply
}

async fn lease(cluster: &TestCluster, node: usize, queue: &str, body: Value) -> Vec<Value> {
    let (status, reply) = cluster
        .post(node, &format!("/v1/queues/{queue}/lease"), body)
        .await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    reply["messages"].as_array().unwrap().clone()
}

async fn counts(cluster: &TestCluster, node: usize, queue: &str) -> Value {
    let (status, body) = cluster.get(node, &format!("/v1/queues/{queue}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

fn wall_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("{v} is not a number"))
}

#[tokio::test(flavor = "multi_thread")]
async fn messages_become_leasable_at_their_due_time_in_due_order_through_any_node() {
    let cluster = TestCluster::start(3, &[]).await;
    let later = enqueue(
        &cluster,
        0,
        "mail",
        json!({ "payload": { "to": "later" }, "delay_ms": 1_500 }),
    )
    .await;
    let sooner = enqueue(
        &cluster,
        1,
        "mail",
        json!({ "payload": { "to": "sooner" }, "delay_ms": 1_000 }),
    )
    .await;
    let now = enqueue(&cluster, 2, "mail", json!({ "payload": "now" })).await;
    assert_eq!(later["duplicate"], false);
    assert!(u(&sooner["due_at_ms"]) < u(&later["due_at_ms"]));

    let c = counts(&cluster, 0, "mail").await;
    assert_eq!(
        (u(&c["ready"]), u(&c["delayed"]), u(&c["leased"])),
        (1, 2, 0),
        "{c}"
    );

    // Only the undelayed one is due; a lease takes it and nothing else.
    let got = lease(
        &cluster,
        1,
        "mail",
        json!({ "worker": "w", "max": 10, "visibility_ms": 30_000 }),
    )
    .await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["id"], now["id"]);
    assert_eq!(got[0]["payload"], "now");
    assert_eq!(got[0]["attempt"], 1);

    // A long-polling lease wakes when the next message becomes due, not before.
    let started = Instant::now();
    let got = lease(
        &cluster,
        2,
        "mail",
        json!({ "worker": "w", "max": 10, "visibility_ms": 30_000, "wait_ms": 10_000 }),
    )
    .await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0]["id"], sooner["id"]);
    assert_eq!(got[0]["payload"], json!({ "to": "sooner" }));
    assert!(
        u(&got[0]["leased_at_ms"]) >= u(&sooner["due_at_ms"]),
        "{got:?}"
    );
    assert!(
        u(&got[0]["leased_at_ms"]) < u(&sooner["due_at_ms"]) + 1_000,
        "leased long after it was due: {got:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    let got = lease(
        &cluster,
        0,
        "mail",
        json!({ "worker": "w", "visibility_ms": 30_000, "wait_ms": 10_000 }),
    )
    .await;
    assert_eq!(got[0]["id"], later["id"]);
    assert!(u(&got[0]["leased_at_ms"]) >= u(&later["due_at_ms"]));

    // Ack through a third node: acked, gone from the counts, never leased again.
    let token = got[0]["lease_token"].as_str().unwrap();
    let id = got[0]["id"].as_str().unwrap();
    let (status, acked) = cluster
        .post(
            1,
            &format!("/v1/queues/mail/messages/{id}/ack"),
            json!({ "lease_token": token }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{acked}");
    let (status, message) = cluster
        .get(2, &format!("/v1/queues/mail/messages/{id}"))
        .await;
    assert_eq!(status, StatusCode::OK, "{message}");
    assert_eq!(message["state"], "acked");
    let c = counts(&cluster, 2, "mail").await;
    assert_eq!(
        (
            u(&c["ready"]),
            u(&c["delayed"]),
            u(&c["leased"]),
            u(&c["dead"])
        ),
        (0, 0, 2, 0),
        "{c}"
    );
    let (_, all) = cluster.get(0, "/v1/queues").await;
    assert_eq!(all["queues"][0]["name"], "mail");

    // A repeated dedup key returns the first message's id.
    let first = enqueue(
        &cluster,
        0,
        "mail",
        json!({ "payload": 1, "dedup_key": "invoice-7" }),
    )
    .await;
    let again = enqueue(
        &cluster,
        1,
        "mail",
        json!({ "payload": 2, "dedup_key": "invoice-7" }),
    )
    .await;
    assert_eq!(again["id"], first["id"]);
    assert_eq!(again["duplicate"], true);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lapsed_lease_comes_back_with_the_next_attempt_and_dies_after_max_attempts() {
    let cluster = TestCluster::start(3, &[]).await;
    let sent = enqueue(
        &cluster,
        0,
        "work",
        json!({ "payload": "p", "max_attempts": 2 }),
    )
    .await;
    let id = sent["id"].as_str().unwrap().to_string();
    let lease_body = json!({ "worker": "w", "visibility_ms": 600, "wait_ms": 10_000 });

    let first = lease(&cluster, 0, "work", lease_body.clone()).await;
    assert_eq!(first[0]["attempt"], 1);
    // The worker extends once (a heartbeat), then drops the message.
    let (status, extended) = cluster
        .post(
            1,
            &format!("/v1/queues/work/messages/{id}/extend"),
            json!({ "lease_token": first[0]["lease_token"], "visibility_ms": 600 }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{extended}");
    let expires = u(&extended["expires_at_ms"]);
    assert!(expires > u(&first[0]["expires_at_ms"]));

    let second = lease(&cluster, 1, "work", lease_body.clone()).await;
    assert_eq!(second.len(), 1);
    assert_eq!(second[0]["id"], id.as_str());
    assert_eq!(second[0]["attempt"], 2);
    assert!(
        u(&second[0]["leased_at_ms"]) >= expires,
        "re-leased before the extended lease lapsed"
    );
    assert_ne!(second[0]["lease_token"], first[0]["lease_token"]);
    // The first worker's token is stale now.
    let (status, err) = cluster
        .post(
            2,
            &format!("/v1/queues/work/messages/{id}/ack"),
            json!({ "lease_token": first[0]["lease_token"] }),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{err}");
    assert_eq!(err["error"]["code"], "lease_not_held");
    assert!(err["error"]["message"]
        .as_str()
        .unwrap()
        .contains("lease_token"));

    // The second delivery lapses too: two deliveries, so it is dead.
    let dead = wait_for(
        "the message to be dead-lettered",
        Duration::from_secs(10),
        || async {
            let (_, dead) = cluster.get(2, "/v1/queues/work/dead").await;
            let messages = dead["messages"].as_array()?.clone();
            (!messages.is_empty()).then_some(messages)
        },
    )
    .await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0]["id"], id.as_str());
    assert_eq!(dead[0]["attempt"], 2);
    assert_eq!(dead[0]["reason"], "lease_lapsed");
    assert_eq!(dead[0]["payload"], "p");
    assert!(u(&dead[0]["died_at_ms"]) >= u(&second[0]["expires_at_ms"]));
    assert!(lease(
        &cluster,
        0,
        "work",
        json!({ "worker": "w", "visibility_ms": 600 })
    )
    .await
    .is_empty());
    let c = counts(&cluster, 0, "work").await;
    assert_eq!(
        (u(&c["ready"]), u(&c["leased"]), u(&c["dead"])),
        (0, 0, 1),
        "{c}"
    );

    // A nack with a delay gives a message back for later.
    let sent = enqueue(&cluster, 0, "work", json!({ "payload": "q" })).await;
    let got = lease(&cluster, 0, "work", lease_body.clone()).await;
    assert_eq!(got[0]["id"], sent["id"]);
    let (status, nacked) = cluster
        .post(
            1,
            &format!(
                "/v1/queues/work/messages/{}/nack",
                sent["id"].as_str().unwrap()
            ),
            json!({ "lease_token": got[0]["lease_token"], "delay_ms": 800 }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{nacked}");
    assert_eq!(nacked["dead"], false);
    let again = lease(&cluster, 2, "work", lease_body).await;
    assert_eq!(again[0]["attempt"], 2);
    assert!(u(&again[0]["leased_at_ms"]) >= u(&nacked["due_at_ms"]));
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_queue_requests_are_refused_by_field_and_change_nothing() {
    let cluster = TestCluster::start(1, &[]).await;
    let sent = enqueue(&cluster, 0, "q", json!({ "payload": 1 })).await;
    let got = lease(
        &cluster,
        0,
        "q",
        json!({ "worker": "w", "visibility_ms": 60_000 }),
    )
    .await;
    let id = sent["id"].as_str().unwrap();
    let token = got[0]["lease_token"].as_str().unwrap();
    let before = counts(&cluster, 0, "q").await;
    let (_, all_before) = cluster.get(0, "/v1/queues").await;

    let long = "q".repeat(201);
    let huge = "x".repeat(1 << 20); // with its quotes, 2 bytes over the limit
    let ack = format!("/v1/queues/q/messages/{id}/ack");
    let cases: Vec<(String, Value, StatusCode, &str, &str)> = vec![
        (
            "/v1/queues/gnomon:attempts/messages".into(),
            json!({ "payload": 1 }),
            StatusCode::BAD_REQUEST,
            "reserved_name",
            "queue",
        ),
        (
            "/v1/queues/gnomon:attempts/lease".into(),
            json!({ "worker": "w", "visibility_ms": 100 }),
            StatusCode::BAD_REQUEST,
            "reserved_name",
            "queue",
        ),
        (
            format!("/v1/queues/gnomon:attempts/messages/{id}/ack"),
            json!({ "lease_token": token }),
            StatusCode::BAD_REQUEST,
            "reserved_name",
            "queue",
        ),
        (
            format!("/v1/queues/{long}/messages"),
            json!({ "payload": 1 }),
            StatusCode::BAD_REQUEST,
            "invalid_field",
            "queue",
        ),
        (
            "/v1/queues/a%20b/messages".into(),
            json!({ "payload": 1 }),
            StatusCode::BAD_REQUEST,
            "invalid_field",
            "queue",
        ),
        (
            "/v1/queues/q/messages".into(),
            json!({ "payload": huge }),
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "payload",
        ),
        (
            "/v1/queues/q/messages".into(),
            json!({ "delay_ms": 5 }),
            StatusCode::BAD_REQUEST,
            "invalid_body",
            "payload",
        ),
        (
            "/v1/queues/q/messages".into(),
            json!({ "payload": 1, "priority": 9 }),
            StatusCode::BAD_REQUEST,
            "invalid_field",
            "priority",
        ),
        (
            "/v1/queues/q/messages".into(),
            json!({ "payload": 1, "max_attempts": 0 }),
            StatusCode::BAD_REQUEST,
            "invalid_field",
            "max_attempts",
        ),
        (
            "/v1/queues/q/messages".into(),
            json!({ "payload": 1, "delay_ms": -1 }),
            StatusCode::BAD_REQUEST,
            "invalid_field",
            "delay_ms",
        ),
        (
            "/v1/queues/q/messages".into(),
            json!({ "payload": 1, "dedup_key": "" }),
            StatusCode::BAD_REQUEST,
            "invalid_field",
            "dedup_key",
        ),
        (
            "/v1/queues/q/lease".into(),
            json!({ "worker": "w", "max": 0, "visibility_ms": 100 }),
            StatusCode::BAD_REQUEST,
            "invalid_field",
            "max",
        ),
        (
            "/v1/queues/q/lease".into(),
            json!({ "worker": "w", "visibility_ms": 0 }),
            StatusCode::BAD_REQUEST,
            "invalid_field",
            "visibility_ms",
        ),
        (
            "/v1/queues/q/lease".into(),
            json!({ "worker": "w", "visibility_ms": 100, "wait_ms": 999_999_999 }),
            StatusCode::BAD_REQUEST,
            "invalid_field",
            "wait_ms",
        ),
        (
            "/v1/queues/q/lease".into(),
            json!({ "visibility_ms": 100 }),
            StatusCode::BAD_REQUEST,
            "invalid_body",
            "worker",
        ),
        (
            format!("/v1/queues/nope/messages/{id}/ack"),
            json!({ "lease_token": token }),
            StatusCode::NOT_FOUND,
            "queue_not_found",
            "queue",
        ),
        (
            "/v1/queues/q/messages/nope/ack".into(),
            json!({ "lease_token": token }),
            StatusCode::NOT_FOUND,
            "message_not_found",
            "id",
        ),
        (
            ack.clone(),
            json!({ "lease_token": "stale-1" }),
            StatusCode::CONFLICT,
            "lease_not_held",
            "lease_token",
        ),
        (
            ack.clone(),
            json!({ "lease_token": token, "extra": true }),
            StatusCode::BAD_REQUEST,
            "invalid_field",
            "extra",
        ),
        (
            format!("/v1/queues/q/messages/{id}/nack"),
            json!({ "lease_token": "stale-1" }),
            StatusCode::CONFLICT,
            "lease_not_held",
            "lease_token",
        ),
        (
            format!("/v1/queues/q/messages/{id}/extend"),
            json!({ "lease_token": token, "visibility_ms": 0 }),
            StatusCode::BAD_REQUEST,
            "invalid_field",
            "visibility_ms",
        ),
    ];
    for (path, body, want, code, field) in cases {
        let (status, err) = cluster.post(0, &path, body.clone()).await;
        let short = &path[..path.len().min(60)];
        assert_eq!(status, want, "{short} {body}: {err}");
        assert_eq!(err["error"]["code"], code, "{short} {body}: {err}");
        let message = err["error"]["message"].as_str().unwrap();
        assert!(
            message.contains(field),
            "{short}: {message} should name {field}"
        );
    }
    // Reserved queues may be read.
    let (status, internal) = cluster.get(0, "/v1/queues/gnomon:attempts").await;
    assert_eq!(status, StatusCode::OK, "{internal}");
    assert_eq!(u(&internal["ready"]), 0);
    // Nothing changed: same counts, and the lease still acks.
    assert_eq!(counts(&cluster, 0, "q").await, before);
    let (_, all_after) = cluster.get(0, "/v1/queues").await;
    assert_eq!(all_before, all_after);
    let (status, acked) = cluster.post(0, &ack, json!({ "lease_token": token })).await;
    assert_eq!(status, StatusCode::OK, "{acked}");
}

/// Everything a worker saw of one lease.
#[derive(Debug, Clone)]
struct Delivery {
    token: String,
    attempt: u64,
    due_at: u64,
    leased_at: u64,
    expires_at: u64,
    /// How the delivery ended as far as the worker knows.
    end: End,
}

#[derive(Debug, Clone, PartialEq)]
enum End {
    Acked,
    /// Given back at this log time.
    Nacked(u64),
    /// Dropped: the worker let the lease lapse.
    Dropped,
    /// The ack or nack was refused: the lease had lapsed by then.
    Refused,
    /// A nack whose first try may have been applied, at an unknown time.
    Unknown,
}

/// POST `body` to `path` on `urls[*node]`, moving to the next node while the
/// one asked is down or has no leader; the status and body of the first
/// definitive answer, and whether an earlier try may have taken effect.
async fn post_any(
    http: &reqwest::Client,
    urls: &[String],
    node: &mut usize,
    path: &str,
    body: &Value,
) -> (StatusCode, Value, bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut retried = false;
    loop {
        assert!(
            Instant::now() < deadline,
            "no node answered {path} for 60 s"
        );
        let reply = http
            .post(format!("{}{path}", urls[*node]))
            .json(body)
            .send()
            .await;
        match reply {
            Ok(r) if !r.status().is_server_error() => {
                let status = r.status();
                return (status, r.json().await.unwrap_or(Value::Null), retried);
            }
            _ => {
                retried = true;
                *node = (*node + 1) % urls.len();
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn thousands_of_messages_are_acked_once_through_a_leader_kill() {
    const MESSAGES: usize = 2_000;
    const MAX_ATTEMPTS: u64 = 3;
    const VISIBILITY_MS: u64 = 1_000;
    let mut cluster = TestCluster::start(3, &[]).await;
    let urls: Vec<String> = cluster.nodes.iter().map(|n| n.url()).collect();
    let http = cluster.http.clone();

    // Producers on every node; every 40th message is poison (always dropped).
    // A dedup key per message makes a retried enqueue harmless.
    let sent = Arc::new(Mutex::new(BTreeMap::<String, (u64, bool)>::new())); // id -> (due_at, poison)
    let mut producers = Vec::new();
    for p in 0..6usize {
        let (http, urls, sent) = (http.clone(), urls.clone(), sent.clone());
        producers.push(tokio::spawn(async move {
            let mut node = p % 3;
            for i in (p..MESSAGES).step_by(6) {
                let poison = i % 40 == 0;
                let delay_ms = rand::rng().random_range(0..3_000u64);
                let body = json!({
                    "payload": { "n": i, "poison": poison },
                    "delay_ms": delay_ms,
                    "dedup_key": format!("m-{i}"),
                    "max_attempts": MAX_ATTEMPTS,
                });
                let (status, reply, _) =
                    post_any(&http, &urls, &mut node, "/v1/queues/chaos/messages", &body).await;
                assert_eq!(status, StatusCode::OK, "{reply}");
                let id = reply["id"].as_str().unwrap().to_string();
                let previous = sent
                    .lock()
                    .unwrap()
                    .insert(id, (u(&reply["due_at_ms"]), poison));
                assert!(previous.is_none() || reply["duplicate"] == true);
            }
        }));
    }

    // Workers on every node: lease, then ack (most), nack (a few), or drop.
    let deliveries = Arc::new(Mutex::new(BTreeMap::<String, Vec<Delivery>>::new()));
    let acked = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for w in 0..6usize {
        let (http, urls, deliveries, acked, stop) = (
            http.clone(),
            urls.clone(),
            deliveries.clone(),
            acked.clone(),
            stop.clone(),
        );
        workers.push(tokio::spawn(async move {
            let mut node = w % 3;
            let worker = format!("worker-{w}");
            while !stop.load(Ordering::Relaxed) {
                let body = json!({ "worker": worker, "max": 10, "visibility_ms": VISIBILITY_MS, "wait_ms": 500 });
                let (status, reply, _) = post_any(&http, &urls, &mut node, "/v1/queues/chaos/lease", &body).await;
                assert_eq!(status, StatusCode::OK, "{reply}");
                for m in reply["messages"].as_array().unwrap() {
                    let id = m["id"].as_str().unwrap().to_string();
                    let token = m["lease_token"].as_str().unwrap().to_string();
                    let poison = m["payload"]["poison"] == true;
                    let roll = rand::rng().random_range(0..100);
                    let end = if poison || roll < 8 {
                        End::Dropped
                    } else if roll < 12 {
                        let path = format!("/v1/queues/chaos/messages/{id}/nack");
                        let (status, reply, retried) = post_any(&http, &urls, &mut node, &path, &json!({ "lease_token": token })).await;
                        match status {
                            StatusCode::OK => End::Nacked(u(&reply["nacked_at_ms"])),
                            // An earlier try may have nacked it: when is unknown.
                            StatusCode::CONFLICT if retried => End::Unknown,
                            StatusCode::CONFLICT => End::Refused,
                            other => panic!("nack: {other}: {reply}"),
                        }
                    } else {
                        let path = format!("/v1/queues/chaos/messages/{id}/ack");
                        // A retried ack is answered as the first: this is definitive.
                        let (status, reply, _) = post_any(&http, &urls, &mut node, &path, &json!({ "lease_token": token })).await;
                        match status {
                            StatusCode::OK => {
                                acked.fetch_add(1, Ordering::Relaxed);
                                End::Acked
                            }
                            StatusCode::CONFLICT => End::Refused,
                            other => panic!("ack: {other}: {reply}"),
                        }
                    };
                    deliveries.lock().unwrap().entry(id).or_default().push(Delivery {
                        token,
                        attempt: u(&m["attempt"]),
                        due_at: u(&m["due_at_ms"]),
                        leased_at: u(&m["leased_at_ms"]),
                        expires_at: u(&m["expires_at_ms"]),
                        end,
                    });
                }
            }
        }));
    }

    // Kill the leader part-way through, and bring it back later.
    let acked_count = || acked.load(Ordering::Relaxed);
    wait_for(
        "a third of the messages acked",
        Duration::from_secs(120),
        || async { (acked_count() >= MESSAGES / 3).then_some(()) },
    )
    .await;
    let leader = cluster.leader().await;
    cluster.nodes[leader].kill();
    let at_kill = acked_count();
    wait_for(
        "acks under the new leader",
        Duration::from_secs(60),
        || async { (acked_count() >= at_kill + MESSAGES / 5).then_some(()) },
    )
    .await;
    cluster.nodes[leader].start(&[]);
    for p in producers {
        p.await.unwrap();
    }
    cluster.wait_converged(3).await;
    // Run until nothing is waiting or leased: every message is acked or dead.
    let done = wait_for(
        "every message to be acked or dead",
        Duration::from_secs(120),
        || async {
            let (status, c) = cluster.get(0, "/v1/queues/chaos").await;
            let settled = status == StatusCode::OK
                && u(&c["ready"]) + u(&c["delayed"]) + u(&c["leased"]) == 0;
            settled.then_some(c)
        },
    )
    .await;
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.unwrap();
    }

    let sent = sent.lock().unwrap().clone();
    let deliveries = deliveries.lock().unwrap().clone();
    assert_eq!(sent.len(), MESSAGES, "a dedup key produced two messages");
    let (status, dead) = cluster.get(1, "/v1/queues/chaos/dead?limit=1000").await;
    assert_eq!(status, StatusCode::OK, "{dead}");
    let dead: BTreeMap<String, Value> = dead["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["id"].as_str().unwrap().to_string(), m.clone()))
        .collect();
    assert_eq!(u(&done["dead"]), dead.len() as u64);

    for (id, (due_at, poison)) in &sent {
        let mine = deliveries.get(id).cloned().unwrap_or_default();
        let acks: BTreeSet<&str> = mine
            .iter()
            .filter(|d| d.end == End::Acked)
            .map(|d| d.token.as_str())
            .collect();
        // Acked exactly once, or dead; never both.
        match dead.get(id) {
            Some(d) => {
                assert!(acks.is_empty(), "{id} is dead but was acked: {mine:?}");
                assert_eq!(u(&d["attempt"]), MAX_ATTEMPTS, "{d}");
            }
            None => assert_eq!(acks.len(), 1, "{id} acked {} times: {mine:?}", acks.len()),
        }
        if *poison {
            assert!(
                dead.contains_key(id),
                "poison message {id} is not dead: {mine:?}"
            );
        }
        let mut mine = mine;
        mine.sort_by_key(|d| (d.leased_at, d.attempt));
        for d in &mine {
            // Never leased before it was due.
            assert!(
                d.leased_at >= *due_at,
                "{id} leased before due {due_at}: {d:?}"
            );
            assert!(d.leased_at >= d.due_at, "{id}: {d:?}");
        }
        for pair in mine.windows(2) {
            let (prev, next) = (&pair[0], &pair[1]);
            // An acked message is never delivered again...
            assert_ne!(
                prev.end,
                End::Acked,
                "{id} delivered after its ack: {pair:?}"
            );
            // ...and a delivery starts only once the previous lease ended.
            let ended = match prev.end {
                End::Nacked(at) => at,
                End::Unknown => prev.leased_at,
                _ => prev.expires_at,
            };
            assert!(
                next.leased_at >= ended,
                "{id} leased twice at once: {pair:?}"
            );
            assert!(next.attempt > prev.attempt, "{id}: {pair:?}");
            assert_ne!(next.token, prev.token);
        }
    }
    assert!(
        dead.len() >= MESSAGES / 40,
        "too few dead letters: {}",
        dead.len()
    );
    let all: Vec<&Delivery> = deliveries.values().flatten().collect();
    let count = |f: fn(&End) -> bool| all.iter().filter(|d| f(&d.end)).count();
    eprintln!(
        "{} deliveries: {} acked, {} nacked, {} dropped, {} refused, {} unknown; {} dead",
        all.len(),
        count(|e| *e == End::Acked),
        count(|e| matches!(e, End::Nacked(_))),
        count(|e| *e == End::Dropped),
        count(|e| *e == End::Refused),
        count(|e| *e == End::Unknown),
        dead.len(),
    );
}

/// Everything a client can see of queue `keep` and ledger keys `key-0..6`.
async fn observe(cluster: &TestCluster, ids: &[String]) -> Vec<Value> {
    let mut out = vec![counts(cluster, 0, "keep").await];
    for id in ids {
        let (status, m) = cluster
            .get(1, &format!("/v1/queues/keep/messages/{id}"))
            .await;
        assert_eq!(status, StatusCode::OK, "{m}");
        out.push(m);
    }
    for k in 0..6 {
        let (status, r) = cluster.get(2, &format!("/v1/idempotency/key-{k}")).await;
        assert_eq!(status, StatusCode::OK, "{r}");
        out.push(r);
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restart_of_the_whole_cluster_keeps_every_message_and_ledger_record() {
    let mut cluster = TestCluster::start(3, &[]).await;
    let mut ids = Vec::new();
    for i in 0..30 {
        let delay = if i % 3 == 0 { 3_600_000 } else { 0 };
        let sent = enqueue(
            &cluster,
            i % 3,
            "keep",
            json!({ "payload": { "i": i }, "delay_ms": delay }),
        )
        .await;
        ids.push(sent["id"].as_str().unwrap().to_string());
    }
    let leased = lease(
        &cluster,
        1,
        "keep",
        json!({ "worker": "w", "max": 8, "visibility_ms": 3_600_000 }),
    )
    .await;
    assert_eq!(leased.len(), 8);
    for m in &leased[..3] {
        let path = format!("/v1/queues/keep/messages/{}/ack", m["id"].as_str().unwrap());
        let (status, body) = cluster
            .post(2, &path, json!({ "lease_token": m["lease_token"] }))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let mut tokens = Vec::new();
    for k in 0..6 {
        let (status, claimed) = cluster
            .post(
                k % 3,
                &format!("/v1/idempotency/key-{k}/claim"),
                json!({ "owner": "o", "ttl_ms": 3_600_000 }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{claimed}");
        tokens.push(claimed["claim_token"].as_str().unwrap().to_string());
    }
    for (k, token) in tokens.iter().enumerate().take(3) {
        let (status, body) = cluster
            .post(
                0,
                &format!("/v1/idempotency/key-{k}/complete"),
                json!({ "claim_token": token, "result": [k] }),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }

    let before = observe(&cluster, &ids).await;
    assert_eq!(
        (
            u(&before[0]["ready"]),
            u(&before[0]["delayed"]),
            u(&before[0]["leased"])
        ),
        (12, 10, 5)
    );

    for node in &mut cluster.nodes {
        node.kill();
    }
    for node in &mut cluster.nodes {
        node.start(&[]);
    }
    cluster.wait_converged(3).await;
    let after = observe(&cluster, &ids).await;
    assert_eq!(before, after);

    // The state works on: a held lease still acks, ready messages lease,
    // a claimed key completes.
    let path = format!(
        "/v1/queues/keep/messages/{}/ack",
        leased[5]["id"].as_str().unwrap()
    );
    let (status, body) = cluster
        .post(0, &path, json!({ "lease_token": leased[5]["lease_token"] }))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let more = lease(
        &cluster,
        2,
        "keep",
        json!({ "worker": "w", "max": 100, "visibility_ms": 60_000 }),
    )
    .await;
    assert_eq!(more.len(), 12);
    let (status, body) = cluster
        .post(
            1,
            "/v1/idempotency/key-4/complete",
            json!({ "claim_token": tokens[4], "result": "after" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_leader_ticks_only_while_something_waits_on_time() {
    let cluster = TestCluster::start(1, &[]).await;
    let commit_index = || async { u(&cluster.status(0).await.unwrap()["commit_index"]) };
    // Things that wait on time: a lease that will lapse, and a claim that
    // will expire. A message due in an hour needs no tick.
    enqueue(
        &cluster,
        0,
        "t",
        json!({ "payload": "later", "delay_ms": 3_600_000 }),
    )
    .await;
    let sent = enqueue(&cluster, 0, "t", json!({ "payload": "now" })).await;
    let got = lease(
        &cluster,
        0,
        "t",
        json!({ "worker": "w", "visibility_ms": 400 }),
    )
    .await;
    assert_eq!(got[0]["id"], sent["id"]);
    let (status, claimed) = cluster
        .post(
            0,
            "/v1/idempotency/brief/claim",
            json!({ "owner": "o", "ttl_ms": 600 }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{claimed}");
    let before = commit_index().await;

    // The lease lapses and the record expires and is collected, by ticks.
    let collected_by = (u(&claimed["expires_at_ms"]).div_ceil(1000) + 1) * 1000;
    let id = sent["id"].as_str().unwrap();
    wait_for(
        "the lapse and the collection",
        Duration::from_secs(10),
        || async {
            let (_, m) = cluster.get(0, &format!("/v1/queues/t/messages/{id}")).await;
            (m["state"] == "ready" && wall_ms() > collected_by).then_some(())
        },
    )
    .await;
    let after_ticks = commit_index().await;
    assert!(
        after_ticks >= before + 2,
        "no ticks: {before} -> {after_ticks}"
    );
    // Now nothing waits on time: the cluster writes nothing.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(
        commit_index().await,
        after_ticks,
        "an idle cluster wrote entries"
    );
}
