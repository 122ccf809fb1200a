//! Locks with fencing tokens on a cluster of real processes.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::support::{wait_for, TestCluster};

async fn acquire(
    cluster: &TestCluster,
    node: usize,
    name: &str,
    body: Value,
) -> (StatusCode, Value) {
    cluster
        .post(node, &format!("/v1/locks/{name}/acquire"), body)
        .await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lock_taken_through_a_follower_is_seen_by_every_node() {
    let cluster = TestCluster::start(3, &[]).await;
    let leader = cluster.leader().await;
    let follower = (leader + 1) % 3;
    let (status, body) = acquire(
        &cluster,
        follower,
        "door",
        json!({ "owner": "alice", "ttl_ms": 60_000 }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["acquired"], true);
    let token = body["token"].as_u64().unwrap();

    // Linearizable reads: every node reports the holder at once.
    for i in 0..3 {
        let (status, lock) = cluster.get(i, "/v1/locks/door").await;
        assert_eq!(status, StatusCode::OK, "node {}: {lock}", i + 1);
        assert_eq!(lock["owner"], "alice");
        assert_eq!(lock["token"], token);
    }
    // A second owner is refused with the holder named, through another follower.
    let other = (leader + 2) % 3;
    let (status, body) = acquire(
        &cluster,
        other,
        "door",
        json!({ "owner": "bob", "ttl_ms": 60_000 }),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["acquired"], false);
    assert_eq!(body["owner"], "alice");
    assert_eq!(
        body["expires_at_ms"],
        body["expires_at_ms"].as_u64().unwrap()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_holder_that_stops_renewing_loses_the_lock_to_a_greater_token() {
    let cluster = TestCluster::start(3, &[]).await;
    let (status, first) =
        acquire(&cluster, 0, "job", json!({ "owner": "a", "ttl_ms": 1_500 })).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let token = first["token"].as_u64().unwrap();

    // Renewing extends the lease while a holds it.
    let (status, renewed) = cluster
        .post(
            1,
            "/v1/locks/job/renew",
            json!({ "owner": "a", "token": token, "ttl_ms": 1_500 }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{renewed}");
    assert!(renewed["expires_at_ms"].as_u64() > first["expires_at_ms"].as_u64());

    // a stops renewing; b waits for the lease to lapse and gets a greater token.
    let (status, second) = acquire(
        &cluster,
        2,
        "job",
        json!({ "owner": "b", "ttl_ms": 5_000, "wait_ms": 10_000 }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{second}");
    assert!(second["token"].as_u64().unwrap() > token);
    assert!(second["acquired_at_ms"].as_u64() >= renewed["expires_at_ms"].as_u64());

    // a's renewal and release now fail: it no longer holds the lock.
    let (status, body) = cluster
        .post(
            0,
            "/v1/locks/job/renew",
            json!({ "owner": "a", "token": token, "ttl_ms": 1_000 }),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "lock_not_held");
    assert_eq!(body["error"]["details"]["owner"], "b");
    let (status, _) = cluster
        .post(
            0,
            "/v1/locks/job/release",
            json!({ "owner": "a", "token": token }),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_waiting_acquire_is_granted_as_soon_as_the_holder_releases() {
    let cluster = TestCluster::start(3, &[]).await;
    let (_, held) = acquire(&cluster, 0, "q", json!({ "owner": "a", "ttl_ms": 60_000 })).await;
    let token = held["token"].as_u64().unwrap();

    let waiter = {
        let http = cluster.http.clone();
        let url = format!("{}/v1/locks/q/acquire", cluster.nodes[1].url());
        tokio::spawn(async move {
            let r = http
                .post(url)
                .json(&json!({ "owner": "b", "ttl_ms": 60_000, "wait_ms": 30_000 }))
                .send()
                .await
                .unwrap();
            (r.status(), r.json::<Value>().await.unwrap(), Instant::now())
        })
    };
    // The waiter is parked on the lock: it has been refused at least once.
    wait_for(
        "the waiter to be refused once",
        Duration::from_secs(10),
        || async {
            let (_, lock) = cluster.get(2, "/v1/locks/q").await;
            (lock["owner"] == "a").then_some(())
        },
    )
    .await;
    let (status, released) = cluster
        .post(
            2,
            "/v1/locks/q/release",
            json!({ "owner": "a", "token": token }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{released}");
    let released_at = Instant::now();
    let (status, granted, granted_at) = waiter.await.unwrap();
    assert_eq!(status, StatusCode::OK, "{granted}");
    assert_eq!(granted["token"].as_u64().unwrap(), token + 1);
    assert!(granted["acquired_at_ms"].as_u64() >= released["released_at_ms"].as_u64());
    // Woken by the release, not by the 60 s lease or the 30 s wait running out.
    assert!(granted_at.duration_since(released_at) < Duration::from_secs(10));
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_lock_requests_are_refused_by_field_and_change_nothing() {
    let cluster = TestCluster::start(1, &[]).await;
    let long = "n".repeat(201);
    let cases = [
        (
            long.as_str(),
            json!({ "owner": "a", "ttl_ms": 1000 }),
            "name",
        ),
        (
            "has%20space",
            json!({ "owner": "a", "ttl_ms": 1000 }),
            "name",
        ),
        ("ok", json!({ "owner": "", "ttl_ms": 1000 }), "owner"),
        ("ok", json!({ "owner": "a", "ttl_ms": 0 }), "ttl_ms"),
        ("ok", json!({ "owner": "a", "ttl_ms": -5 }), "ttl_ms"),
        (
            "ok",
            json!({ "owner": "a", "ttl_ms": 1000, "wait_ms": 999_999_999 }),
            "wait_ms",
        ),
        (
            "ok",
            json!({ "owner": "a", "ttl_ms": 1000, "colour": "red" }),
            "colour",
        ),
        ("ok", json!({ "ttl_ms": 1000 }), "owner"),
    ];
    for (name, body, field) in cases {
        let (status, err) = acquire(&cluster, 0, name, body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{name} {body}: {err}");
        let message = err["error"]["message"].as_str().unwrap();
        assert!(
            message.contains(field),
            "{body}: {message} should name {field}"
        );
    }
    let (status, err) = cluster
        .post_raw(0, "/v1/locks/ok/acquire", "{not json")
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(err["error"]["code"], "malformed_json");
    let (_, locks) = cluster.get(0, "/v1/locks").await;
    assert_eq!(locks["locks"], json!([]));
}

/// One grant as a contender saw it, and how its hold ended.
#[derive(Debug, Clone)]
struct Grant {
    owner: String,
    token: u64,
    acquired_at: u64,
    /// Log time at which the lock was free again: the release, or the
    /// lease's expiry when the release found it lapsed. `None` when the
    /// release's outcome is unknown (its node died mid-request).
    ended_at: Option<u64>,
}

#[tokio::test(flavor = "multi_thread")]
async fn contenders_never_overlap_and_tokens_only_grow_through_leader_failover() {
    let mut cluster = TestCluster::start(3, &[]).await;
    let grants = Arc::new(Mutex::new(Vec::<Grant>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let urls: Vec<String> = cluster.nodes.iter().map(|n| n.url()).collect();

    let mut contenders = Vec::new();
    for c in 0..9usize {
        let (http, urls, grants, stop) = (
            cluster.http.clone(),
            urls.clone(),
            grants.clone(),
            stop.clone(),
        );
        contenders.push(tokio::spawn(async move {
            let owner = format!("contender-{c}");
            let mut node = c % 3;
            while !stop.load(Ordering::Relaxed) {
                let base = &urls[node];
                let body = json!({ "owner": owner, "ttl_ms": 400, "wait_ms": 1_000 });
                let reply = http
                    .post(format!("{base}/v1/locks/mutex/acquire"))
                    .json(&body)
                    .send()
                    .await;
                let Ok(reply) = reply else {
                    node = (node + 1) % 3; // that node is down: use another
                    continue;
                };
                if reply.status() != StatusCode::OK {
                    continue;
                }
                let g: Value = reply.json().await.unwrap();
                let (token, acquired_at, expires_at) = (
                    g["token"].as_u64().unwrap(),
                    g["acquired_at_ms"].as_u64().unwrap(),
                    g["expires_at_ms"].as_u64().unwrap(),
                );
                // Hold the lock for a while (the critical section), then release.
                tokio::time::sleep(Duration::from_millis(50 + 20 * c as u64)).await;
                let release = json!({ "owner": owner, "token": token });
                let ended_at = match http
                    .post(format!("{base}/v1/locks/mutex/release"))
                    .json(&release)
                    .send()
                    .await
                {
                    Ok(r) if r.status() == StatusCode::OK => {
                        r.json::<Value>().await.unwrap()["released_at_ms"].as_u64()
                    }
                    // It lapsed before the release arrived: free from expiry on.
                    Ok(r) if r.status() == StatusCode::CONFLICT => Some(expires_at),
                    _ => None,
                };
                grants.lock().unwrap().push(Grant {
                    owner: owner.clone(),
                    token,
                    acquired_at,
                    ended_at,
                });
            }
        }));
    }

    // Let them contend, then kill the leader, and later restart it.
    let count = || grants.lock().unwrap().len();
    wait_for(
        "some grants before the kill",
        Duration::from_secs(30),
        || async { (count() >= 10).then_some(()) },
    )
    .await;
    let leader = cluster.leader().await;
    cluster.nodes[leader].kill();
    let before_kill = count();
    wait_for(
        "grants under the new leader",
        Duration::from_secs(30),
        || async { (count() >= before_kill + 10).then_some(()) },
    )
    .await;
    cluster.nodes[leader].start(&[]);
    cluster.wait_converged(3).await;
    let after_restart = count();
    wait_for(
        "grants after the restart",
        Duration::from_secs(30),
        || async { (count() >= after_restart + 10).then_some(()) },
    )
    .await;
    stop.store(true, Ordering::Relaxed);
    for c in contenders {
        c.await.unwrap();
    }

    let mut grants = grants.lock().unwrap().clone();
    grants.sort_by_key(|g| g.token);
    assert!(grants.len() >= 30, "only {} grants", grants.len());
    for pair in grants.windows(2) {
        let (prev, next) = (&pair[0], &pair[1]);
        assert!(
            next.token > prev.token,
            "token {} granted twice: {pair:?}",
            prev.token
        );
        // Tokens grow in the order the grants were made (log time)...
        assert!(next.acquired_at >= prev.acquired_at, "{pair:?}");
        // ...and no grant began before the previous holder's hold ended.
        if let Some(ended) = prev.ended_at {
            assert!(
                next.acquired_at >= ended,
                "{} and {} overlap: {pair:?}",
                prev.owner,
                next.owner
            );
        }
    }
}
