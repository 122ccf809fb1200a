//! The idempotency ledger on a cluster of real processes.

use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::sync::Barrier;

use crate::support::{wait_for, TestCluster};

async fn claim(
    cluster: &TestCluster,
    node: usize,
    key: &str,
    owner: &str,
    ttl_ms: u64,
) -> (StatusCode, Value) {
    cluster
        .post(
            node,
            &format!("/v1/idempotency/{key}/claim"),
            json!({ "owner": owner, "ttl_ms": ttl_ms }),
        )
        .await
}

#[tokio::test(flavor = "multi_thread")]
async fn racing_claims_through_every_node_yield_exactly_one_claimed() {
    let cluster = TestCluster::start(3, &[]).await;
    let urls: Vec<String> = cluster.nodes.iter().map(|n| n.url()).collect();
    for round in 0..3 {
        let key = format!("race-{round}");
        let contenders = 45;
        let barrier = Arc::new(Barrier::new(contenders));
        let mut tasks = Vec::new();
        for c in 0..contenders {
            let (http, url, barrier, key) = (
                cluster.http.clone(),
                urls[c % 3].clone(),
                barrier.clone(),
                key.clone(),
            );
            tasks.push(tokio::spawn(async move {
                let owner = format!("contender-{c}");
                barrier.wait().await;
                let reply = http
                    .post(format!("{url}/v1/idempotency/{key}/claim"))
                    .json(&json!({ "owner": owner, "ttl_ms": 60_000 }))
                    .send()
                    .await
                    .unwrap();
                (owner, reply.status(), reply.json::<Value>().await.unwrap())
            }));
        }
        let mut winners = Vec::new();
        let mut others = Vec::new();
        for task in tasks {
            let (owner, status, body) = task.await.unwrap();
            match status {
                StatusCode::CREATED => winners.push((owner, body)),
                StatusCode::OK => others.push(body),
                other => panic!("{owner}: unexpected {other}: {body}"),
            }
        }
        assert_eq!(winners.len(), 1, "round {round}: {winners:?}");
        let (winner, claimed) = &winners[0];
        assert_eq!(claimed["status"], "claimed");
        assert_eq!(claimed["owner"], winner.as_str());
        let token = claimed["claim_token"].as_str().unwrap().to_string();
        assert!(!token.is_empty());
        for body in &others {
            assert_eq!(body["status"], "in_progress", "{body}");
            assert_eq!(body["owner"], winner.as_str(), "{body}");
            assert!(body.get("claim_token").is_none(), "token leaked: {body}");
        }

        // The winner completes through another node; everyone sees the result.
        let (status, done) = cluster
            .post(
                (round + 1) % 3,
                &format!("/v1/idempotency/{key}/complete"),
                json!({ "claim_token": token, "result": { "charged": 42, "ok": true } }),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{done}");
        assert_eq!(done["status"], "completed");
        for i in 0..3 {
            let (status, record) = cluster.get(i, &format!("/v1/idempotency/{key}")).await;
            assert_eq!(status, StatusCode::OK, "{record}");
            assert_eq!(record["status"], "completed");
            assert_eq!(record["result"], json!({ "charged": 42, "ok": true }));
            assert_eq!(record["owner"], winner.as_str());
            let (status, again) = claim(&cluster, i, &key, "late", 60_000).await;
            assert_eq!(status, StatusCode::OK, "{again}");
            assert_eq!(again["status"], "completed");
            assert_eq!(again["result"]["charged"], 42);
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_tokens_unknown_keys_and_bad_input_are_refused_and_change_nothing() {
    let cluster = TestCluster::start(1, &[]).await;
    let (status, claimed) = claim(&cluster, 0, "order-9", "a", 60_000).await;
    assert_eq!(status, StatusCode::CREATED, "{claimed}");
    let token = claimed["claim_token"].as_str().unwrap().to_string();
    let (_, before) = cluster.get(0, "/v1/idempotency/order-9").await;

    let (status, err) = cluster
        .post(
            0,
            "/v1/idempotency/order-9/complete",
            json!({ "claim_token": "not-the-token", "result": 1 }),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{err}");
    assert_eq!(err["error"]["code"], "wrong_claim_token");
    assert!(err["error"]["message"]
        .as_str()
        .unwrap()
        .contains("claim_token"));
    let (status, err) = cluster
        .post(
            0,
            "/v1/idempotency/order-9/abandon",
            json!({ "claim_token": "not-the-token" }),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{err}");
    assert_eq!(err["error"]["code"], "wrong_claim_token");

    let (status, err) = cluster
        .post(
            0,
            "/v1/idempotency/never-claimed/complete",
            json!({ "claim_token": token, "result": 1 }),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{err}");
    assert_eq!(err["error"]["code"], "key_not_found");
    let (status, err) = cluster.get(0, "/v1/idempotency/never-claimed").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{err}");
    assert_eq!(err["error"]["code"], "key_not_found");

    let long = "k".repeat(201);
    let huge = "x".repeat((1 << 20) + 1);
    let cases: Vec<(String, &str, Value, StatusCode, &str)> = vec![
        (
            long.clone(),
            "claim",
            json!({ "owner": "a", "ttl_ms": 1000 }),
            StatusCode::BAD_REQUEST,
            "key",
        ),
        (
            "has%20space".into(),
            "claim",
            json!({ "owner": "a", "ttl_ms": 1000 }),
            StatusCode::BAD_REQUEST,
            "key",
        ),
        (
            "order-9".into(),
            "claim",
            json!({ "owner": "", "ttl_ms": 1000 }),
            StatusCode::BAD_REQUEST,
            "owner",
        ),
        (
            "order-9".into(),
            "claim",
            json!({ "owner": "a", "ttl_ms": 0 }),
            StatusCode::BAD_REQUEST,
            "ttl_ms",
        ),
        (
            "order-9".into(),
            "claim",
            json!({ "owner": "a", "ttl_ms": "soon" }),
            StatusCode::BAD_REQUEST,
            "ttl_ms",
        ),
        (
            "order-9".into(),
            "claim",
            json!({ "owner": "a", "ttl_ms": 1000, "colour": 1 }),
            StatusCode::BAD_REQUEST,
            "colour",
        ),
        (
            "order-9".into(),
            "complete",
            json!({ "claim_token": token }),
            StatusCode::BAD_REQUEST,
            "result",
        ),
        (
            "order-9".into(),
            "complete",
            json!({ "claim_token": token, "result": huge }),
            StatusCode::PAYLOAD_TOO_LARGE,
            "result",
        ),
        (
            "order-9".into(),
            "complete",
            json!({ "claim_token": token, "result": 1, "ttl_ms": 0 }),
            StatusCode::BAD_REQUEST,
            "ttl_ms",
        ),
        (
            "order-9".into(),
            "abandon",
            json!({ "claim_token": "" }),
            StatusCode::BAD_REQUEST,
            "claim_token",
        ),
    ];
    for (key, op, body, want, field) in cases {
        let path = format!("/v1/idempotency/{key}/{op}");
        let (status, err) = cluster.post(0, &path, body).await;
        let message = err["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert_eq!(status, want, "{op} {}: {err}", &key[..key.len().min(20)]);
        assert!(
            message.contains(field),
            "{op}: {message} should name {field}"
        );
    }
    // Nothing changed: the claim is still in progress, untouched.
    let (_, after) = cluster.get(0, "/v1/idempotency/order-9").await;
    assert_eq!(before, after);
    assert_eq!(after["status"], "in_progress");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_abandoned_or_expired_claim_can_be_claimed_again() {
    let cluster = TestCluster::start(3, &[]).await;
    let (status, first) = claim(&cluster, 0, "job-1", "a", 60_000).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    let (status, abandoned) = cluster
        .post(
            1,
            "/v1/idempotency/job-1/abandon",
            json!({ "claim_token": first["claim_token"] }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{abandoned}");
    assert_eq!(abandoned["status"], "abandoned");

    // Freed: b claims it, with a short TTL, and never completes it.
    let (status, second) = claim(&cluster, 2, "job-1", "b", 700).await;
    assert_eq!(status, StatusCode::CREATED, "{second}");
    assert_ne!(second["claim_token"], first["claim_token"]);
    let expires_at = second["expires_at_ms"].as_u64().unwrap();
    let (status, held) = claim(&cluster, 0, "job-1", "c", 60_000).await;
    assert_eq!(status, StatusCode::OK, "{held}");
    assert_eq!(held["owner"], "b");

    // Once b's claim has expired, c's claim wins, after the expiry by log time.
    let third = wait_for(
        "the expired claim to be claimable",
        Duration::from_secs(10),
        || async {
            let (status, body) = claim(&cluster, 1, "job-1", "c", 60_000).await;
            (status == StatusCode::CREATED).then_some(body)
        },
    )
    .await;
    let (_, record) = cluster.get(0, "/v1/idempotency/job-1").await;
    assert_eq!(record["owner"], "c");
    assert!(
        record["created_at_ms"].as_u64().unwrap() >= expires_at,
        "{record}"
    );
    // b's late completion is refused: its claim is gone.
    let (status, err) = cluster
        .post(
            0,
            "/v1/idempotency/job-1/complete",
            json!({ "claim_token": second["claim_token"], "result": "late" }),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{err}");
    assert_eq!(err["error"]["code"], "wrong_claim_token");
    assert_ne!(third["claim_token"], second["claim_token"]);
}
