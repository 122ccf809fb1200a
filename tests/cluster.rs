//! Forming, changing and surviving a three-node cluster of real processes.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::support::{free_port, wait_for, TestCluster};

/// The set of lock names every running node holds, read from its local state.
async fn lock_names(cluster: &TestCluster, node: usize) -> Option<Vec<String>> {
    let (status, body) = cluster.get(node, "/v1/locks?stale=true").await;
    (status == StatusCode::OK).then(|| {
        body["locks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["name"].as_str().unwrap().to_string())
            .collect()
    })
}

async fn acquire(
    cluster: &TestCluster,
    node: usize,
    name: &str,
    owner: &str,
    ttl_ms: u64,
) -> (StatusCode, Value) {
    cluster
        .post(
            node,
            &format!("/v1/locks/{name}/acquire"),
            json!({ "owner": owner, "ttl_ms": ttl_ms }),
        )
        .await
}

#[tokio::test(flavor = "multi_thread")]
async fn three_processes_form_one_cluster_over_http() {
    let cluster = TestCluster::start(3, &[]).await;
    let leader = cluster.wait_converged(3).await;
    for i in 0..3 {
        let status = cluster.status(i).await.unwrap();
        assert_eq!(status["node_id"], cluster.nodes[i].id);
        assert_eq!(status["leader_id"], leader);
        assert!(status["term"].as_u64().unwrap() >= 1);
        assert!(status["commit_index"].as_u64().unwrap() >= 1);
        assert!(status["applied_index"].is_u64());
        let members = status["members"].as_array().unwrap();
        assert_eq!(members.len(), 3);
        for (m, node) in members.iter().zip(&cluster.nodes) {
            assert_eq!(m["id"], node.id);
            assert_eq!(m["addr"], node.addr.as_str());
            assert_eq!(m["voter"], true);
        }
    }
    // Exactly one node reports itself leader on /metrics; all name the same one.
    let mut leaders = 0;
    for i in 0..cluster.nodes.len() {
        let text = cluster.metrics(i).await.unwrap();
        let value = |name: &str| -> u64 {
            let line = text
                .lines()
                .find(|l| l.starts_with(&format!("{name} ")))
                .unwrap();
            line.rsplit(' ').next().unwrap().parse().unwrap()
        };
        leaders += value("gnomon_raft_is_leader");
        assert_eq!(value("gnomon_raft_leader_id"), leader);
        assert!(text.contains(
            r#"gnomon_http_requests_total{route="/v1/cluster",method="GET",status="200"}"#
        ));
    }
    assert_eq!(leaders, 1);
    // Queue depth is exported per queue and state.
    let (status, body) = cluster
        .post(
            1,
            "/v1/queues/work/messages",
            json!({ "payload": {"n": 1}, "delay_ms": 3_600_000 }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Every node exports it, once it has applied the enqueue.
    for i in 0..cluster.nodes.len() {
        wait_for(
            "the queue depth on /metrics",
            Duration::from_secs(10),
            || async {
                let text = cluster.metrics(i).await?;
                text.contains(r#"gnomon_queue_messages{queue="work",state="delayed"} 1"#)
                    .then_some(())
            },
        )
        .await;
    }
    // Every member is reachable from the leader's point of view, as every node reports it.
    wait_for(
        "every member to be reported reachable",
        Duration::from_secs(10),
        || async {
            let status = cluster.status(2).await?;
            let all = status["members"]
                .as_array()?
                .iter()
                .all(|m| m["reachable"] == true);
            all.then_some(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn killing_the_leader_loses_nothing_acknowledged() {
    let mut cluster = TestCluster::start(3, &[]).await;
    let mut acknowledged = Vec::new();
    for i in 0..20 {
        let name = format!("before-{i}");
        let (status, body) = acquire(&cluster, i % 3, &name, "writer", 3_600_000).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        acknowledged.push(name);
    }

    let old_leader = cluster.leader().await;
    cluster.nodes[old_leader].kill();
    let new_leader = cluster.leader().await;
    assert_ne!(new_leader, old_leader);

    // The survivors accept writes, through either of them.
    for i in 0..20 {
        let name = format!("after-{i}");
        let node = [0, 1, 2]
            .into_iter()
            .filter(|n| *n != old_leader)
            .nth(i % 2)
            .unwrap();
        let (status, body) = acquire(&cluster, node, &name, "writer", 3_600_000).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        acknowledged.push(name);
    }

    // The killed node restarts from its data dir and catches up.
    cluster.nodes[old_leader].start(&[]);
    acknowledged.sort();
    wait_for(
        "the restarted node to hold every acknowledged lock",
        Duration::from_secs(30),
        || async {
            let names = lock_names(&cluster, old_leader).await?;
            (names == acknowledged).then_some(())
        },
    )
    .await;
    for i in 0..3 {
        assert_eq!(
            lock_names(&cluster, i).await.unwrap(),
            acknowledged,
            "node {}",
            i + 1
        );
    }
    cluster.wait_converged(3).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_behind_the_purge_point_catches_up_from_a_snapshot() {
    let args = ["--snapshot-every", "50", "--keep-behind-snapshot", "10"];
    let mut cluster = TestCluster::start(3, &args).await;
    let leader = cluster.leader().await;
    let lagging = (leader + 1) % 3;
    let stopped_at = cluster.status(lagging).await.unwrap()["applied_index"]
        .as_u64()
        .unwrap();
    cluster.nodes[lagging].kill();

    let writer = (leader + 2) % 3;
    let mut acknowledged = Vec::new();
    for i in 0..200 {
        let name = format!("lock-{i:03}");
        let (status, body) = acquire(
            &cluster,
            if i % 2 == 0 { leader } else { writer },
            &name,
            "w",
            3_600_000,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        acknowledged.push(name);
    }
    // The leader has purged the log past where the stopped node was, so it
    // can only catch up through a snapshot.
    let purged = wait_for(
        "the leader to purge its log",
        Duration::from_secs(30),
        || async {
            let status = cluster.status(leader).await?;
            let purged = status["purged_index"].as_u64()?;
            (purged > stopped_at).then_some(purged)
        },
    )
    .await;
    assert!(purged > stopped_at);

    cluster.nodes[lagging].start(&[]);
    wait_for(
        "the restarted node to catch up",
        Duration::from_secs(30),
        || async {
            let names = lock_names(&cluster, lagging).await?;
            (names == acknowledged).then_some(())
        },
    )
    .await;
    let status = cluster.status(lagging).await.unwrap();
    assert!(
        status["snapshot_index"].as_u64().unwrap() > stopped_at,
        "{status}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_membership_requests_change_nothing() {
    let cluster = TestCluster::start(3, &[]).await;
    let before = cluster.status(0).await.unwrap()["members"].clone();

    let (status, body) = cluster.delete(1, "/v1/cluster/members/9").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["error"]["code"], "unknown_member");

    let (status, body) = cluster
        .post_raw(1, "/v1/cluster/members", "{\"id\": 4,")
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["code"], "malformed_json");

    let (status, body) = cluster
        .post(
            1,
            "/v1/cluster/members",
            json!({ "id": "four", "addr": "x:1" }),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("id"),
        "{body}"
    );

    let (status, body) = cluster
        .post(
            1,
            "/v1/cluster/members",
            json!({ "id": 4, "addr": "no-port" }),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("addr"),
        "{body}"
    );

    // Nothing listens on this port.
    let silent = format!("127.0.0.1:{}", free_port());
    let (status, body) = cluster
        .post(2, "/v1/cluster/members", json!({ "id": 4, "addr": silent }))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["code"], "member_unreachable");

    // An id already taken by another address.
    let (status, body) = cluster
        .post(0, "/v1/cluster/members", json!({ "id": 2, "addr": silent }))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "member_exists");

    for i in 0..3 {
        assert_eq!(
            cluster.status(i).await.unwrap()["members"],
            before,
            "node {}",
            i + 1
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn members_join_with_join_and_can_be_removed() {
    let mut cluster = TestCluster::empty(3, &[]);
    cluster.nodes[0].start(&[]);
    cluster.wait_ready(0).await;
    let seed = cluster.nodes[0].url();
    cluster.nodes[1].start(&["--join", &seed]);
    cluster.nodes[2].start(&["--join", &seed]);
    cluster.wait_converged(3).await;

    // Remove node 3 with the command-line client, through a follower or the leader.
    let server = cluster.nodes[1].url();
    let gnomon = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_gnomon"))
            .args(args)
            .args(["--server", &server])
            .output()
            .unwrap()
    };
    let out = gnomon(&["cluster", "remove", "3"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    cluster.nodes[2].kill();
    cluster.wait_converged(2).await;
    let out = gnomon(&["cluster", "status"]);
    assert!(out.status.success());
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    let ids: Vec<u64> = status["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, vec![1, 2]);
    // Removing it again names the problem and exits non-zero.
    let out = gnomon(&["cluster", "remove", "3"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown_member"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_guards_v1_and_raft_and_peers_use_it() {
    let cluster = TestCluster::start(3, &["--token", "s3cret"]).await;
    for path in ["/v1/cluster", "/v1/locks"] {
        let r = cluster
            .http
            .get(format!("{}{path}", cluster.nodes[1].url()))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], "unauthorized");
    }
    let r = cluster
        .http
        .post(format!("{}/raft/vote", cluster.nodes[1].url()))
        .bearer_auth("wrong")
        .body(vec![1u8])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // Health stays open; the cluster (which needs peers to authenticate) works.
    let r = cluster
        .http
        .get(format!("{}/healthz", cluster.nodes[1].url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let (status, body) = acquire(&cluster, 2, "guarded", "a", 10_000).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_exits_cleanly_and_the_data_dir_keeps_its_identity() {
    let mut cluster = TestCluster::empty(1, &[]);
    cluster.nodes[0].start(&[]);
    cluster.wait_ready(0).await;
    let (status, _) = acquire(&cluster, 0, "kept", "a", 3_600_000).await;
    assert_eq!(status, StatusCode::OK);
    let exit = cluster.nodes[0].terminate();
    assert!(exit.success(), "exit status {exit:?}");

    // The data dir remembers its node: another id is refused with a hint.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gnomon"))
        .args([
            "serve",
            "--id",
            "2",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(&cluster.nodes[0].data_dir)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("belongs to node 1"), "{stderr}");

    // Restarted, it resumes with its state.
    cluster.nodes[0].start(&[]);
    cluster.wait_ready(0).await;
    assert_eq!(
        lock_names(&cluster, 0).await.unwrap(),
        vec!["kept".to_string()]
    );
}

#[test]
fn refuses_a_public_address_without_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gnomon"))
        .args(["serve", "--listen", "0.0.0.0:0", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--token") && stderr.contains("--insecure"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_killed_mid_write_keeps_everything_it_acknowledged() {
    let mut cluster = TestCluster::empty(1, &[]);
    cluster.nodes[0].start(&[]);
    cluster.wait_ready(0).await;
    let url = cluster.nodes[0].url();
    // Sixteen writers hammer the node; it is killed while they are mid-flight.
    let mut writers = Vec::new();
    for w in 0..16 {
        let (http, url) = (cluster.http.clone(), url.clone());
        writers.push(tokio::spawn(async move {
            let mut acknowledged = Vec::new();
            for i in 0.. {
                let name = format!("w{w}-{i}");
                let body = json!({ "owner": "w", "ttl_ms": 3_600_000 });
                match http
                    .post(format!("{url}/v1/locks/{name}/acquire"))
                    .json(&body)
                    .send()
                    .await
                {
                    Ok(r) if r.status() == StatusCode::OK => acknowledged.push(name),
                    _ => break, // the node is gone
                }
            }
            acknowledged
        }));
    }
    wait_for("a few hundred writes", Duration::from_secs(30), || async {
        let (_, body) = cluster.get(0, "/v1/locks?stale=true").await;
        (body["locks"].as_array().map_or(0, Vec::len) >= 300).then_some(())
    })
    .await;
    cluster.nodes[0].kill();
    let mut acknowledged = Vec::new();
    for w in writers {
        acknowledged.extend(w.await.unwrap());
    }
    acknowledged.sort();

    cluster.nodes[0].start(&[]);
    cluster.wait_ready(0).await;
    let held = lock_names(&cluster, 0).await.unwrap();
    let missing: Vec<_> = acknowledged.iter().filter(|n| !held.contains(n)).collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged writes lost: {missing:?}",
        missing.len()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn entries_larger_than_a_default_body_limit_replicate() {
    // Eight concurrent near-1-MiB payloads: group commit packs several into
    // one entry, and one append to a follower carries megabytes.
    let cluster = TestCluster::start(3, &[]).await;
    let payload = "x".repeat(900 * 1024);
    let mut writers = Vec::new();
    for i in 0..8 {
        let (http, url, payload) = (
            cluster.http.clone(),
            cluster.nodes[i % 3].url(),
            payload.clone(),
        );
        writers.push(tokio::spawn(async move {
            let body = json!({ "payload": payload, "dedup_key": format!("big-{i}") });
            let r = http
                .post(format!("{url}/v1/queues/big/messages"))
                .json(&body)
                .send()
                .await
                .unwrap();
            r.status()
        }));
    }
    for w in writers {
        assert_eq!(w.await.unwrap(), StatusCode::OK);
    }
    for i in 0..3 {
        wait_for(
            "every node to hold all eight",
            Duration::from_secs(30),
            || async {
                let (_, q) = cluster.get(i, "/v1/queues/big?stale=true").await;
                (q["ready"] == 8).then_some(())
            },
        )
        .await;
    }
}
