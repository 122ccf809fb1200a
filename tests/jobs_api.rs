//! The jobs API and `gnomon job …` against a running node: definitions,
//! versions, validation by field, pause, resume, trigger and listings.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::support::TestCluster;

fn body() -> Value {
    json!({
        "schedule": "0 30 2 * * *",
        "timezone": "Europe/Berlin",
        "target": { "type": "http", "url": "http://127.0.0.1:9/hook" },
        "labels": { "team": "billing" }
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn jobs_are_created_versioned_paused_resumed_and_deleted() {
    let cluster = TestCluster::start(3, &[]).await;
    let (status, job) = cluster.put(1, "/v1/jobs/nightly", body()).await;
    assert_eq!(status, StatusCode::CREATED, "{job}");
    assert_eq!(job["version"], 1);
    assert_eq!(job["enabled"], true);
    // Defaults of SPEC §4/§5 are filled in.
    assert_eq!(job["concurrency"], "forbid");
    assert_eq!(job["misfire"], "run_once");
    assert_eq!(job["dst"], "once");
    assert_eq!(
        job["retry"]["backoff_ms"],
        json!([0, 300_000, 3_600_000, 86_400_000])
    );
    // Next fire times: 02:30 wall-clock time in Berlin (UTC+1 in winter,
    // UTC+2 in summer), and `utc` is the same instant.
    let next = job["next"].as_array().unwrap();
    assert_eq!(next.len(), 5);
    for t in next {
        let local = chrono::DateTime::parse_from_rfc3339(t["local"].as_str().unwrap()).unwrap();
        let utc = chrono::DateTime::parse_from_rfc3339(t["utc"].as_str().unwrap()).unwrap();
        assert_eq!(local, utc);
        assert_eq!(local.format("%H:%M:%S").to_string(), "02:30:00", "{t}");
        assert!(
            [3600, 7200].contains(&local.offset().local_minus_utc()),
            "{t}"
        );
    }

    // The same body again changes nothing; another one bumps the version.
    let (status, same) = cluster.put(2, "/v1/jobs/nightly", body()).await;
    assert_eq!(
        (status, same["version"].clone()),
        (StatusCode::OK, json!(1))
    );
    let mut changed = body();
    changed["labels"]["team"] = json!("ops");
    let (_, v2) = cluster.put(0, "/v1/jobs/nightly", changed).await;
    assert_eq!(v2["version"], 2);
    assert_eq!(v2["labels"]["team"], "ops");

    let (_, paused) = cluster.post(2, "/v1/jobs/nightly/pause", json!({})).await;
    assert_eq!(
        (paused["enabled"].clone(), paused["version"].clone()),
        (json!(false), json!(3))
    );
    assert_eq!(paused["next"], json!([]));
    let (_, resumed) = cluster.post(1, "/v1/jobs/nightly/resume", json!({})).await;
    assert_eq!(
        (resumed["enabled"].clone(), resumed["version"].clone()),
        (json!(true), json!(4))
    );

    // A trigger makes a manual run and leaves the cursor where it was.
    let cursor = resumed["cursor"].clone();
    let (status, run) = cluster.post(0, "/v1/jobs/nightly/trigger", json!({})).await;
    assert_eq!(status, StatusCode::CREATED, "{run}");
    assert_eq!(run["manual"], true);
    assert_eq!(run["job"], "nightly");
    let (_, after) = cluster.get(1, "/v1/jobs/nightly").await;
    assert_eq!(after["cursor"], cursor);
    let (_, runs) = cluster.get(2, "/v1/jobs/nightly/runs").await;
    assert_eq!(runs["runs"][0]["id"], run["id"]);
    assert_eq!(after["last_run"]["id"], run["id"]);
    let (_, one) = cluster
        .get(1, &format!("/v1/runs/{}", run["id"].as_str().unwrap()))
        .await;
    assert_eq!(one["id"], run["id"]);

    let (_, list) = cluster.get(2, "/v1/jobs").await;
    let names: Vec<&str> = list["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["nightly"]);

    let (status, deleted) = cluster.delete(1, "/v1/jobs/nightly").await;
    assert_eq!(status, StatusCode::OK, "{deleted}");
    assert_eq!(deleted["cancelled_runs"], 1);
    for path in ["/v1/jobs/nightly", "/v1/jobs/nightly/runs"] {
        let (status, err) = cluster.get(0, path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(err["error"]["code"], "job_not_found");
    }
    let (status, err) = cluster
        .get(0, &format!("/v1/runs/{}", run["id"].as_str().unwrap()))
        .await;
    assert_eq!(
        (status, err["error"]["code"].clone()),
        (StatusCode::NOT_FOUND, json!("run_not_found"))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_job_bodies_are_refused_by_field_and_change_nothing() {
    let cluster = TestCluster::start(1, &[]).await;
    let with = |k: &str, v: Value| {
        let mut b = body();
        b[k] = v;
        b
    };
    let cases = [
        (
            with("schedule", json!("0 0 30 2 *")),
            StatusCode::UNPROCESSABLE_ENTITY,
            "never_fires",
            "schedule",
        ),
        (
            with("schedule", json!("99 * * * *")),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_expression",
            "schedule",
        ),
        (
            with("timezone", json!("Europe/Atlantis")),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_timezone",
            "timezone",
        ),
        (
            with("dialect", json!("unix")),
            StatusCode::BAD_REQUEST,
            "invalid_field",
            "dialect",
        ),
        (
            with("concurrency", json!("sometimes")),
            StatusCode::BAD_REQUEST,
            "invalid_field",
            "concurrency",
        ),
        (
            with("misfire", json!("later")),
            StatusCode::BAD_REQUEST,
            "invalid_field",
            "misfire",
        ),
        (
            with("colour", json!("red")),
            StatusCode::BAD_REQUEST,
            "invalid_field",
            "colour",
        ),
        (
            with("retry", json!({ "backoff_ms": "soon" })),
            StatusCode::BAD_REQUEST,
            "invalid_field",
            "retry.backoff_ms",
        ),
        (
            with("target", json!({ "type": "http", "url": "not a url" })),
            StatusCode::BAD_REQUEST,
            "invalid_field",
            "target.url",
        ),
        (
            with("target", json!({ "type": "carrier-pigeon" })),
            StatusCode::BAD_REQUEST,
            "invalid_field",
            "target",
        ),
        (
            with("history_limit", json!(0)),
            StatusCode::BAD_REQUEST,
            "invalid_field",
            "history_limit",
        ),
    ];
    for (b, status, code, field) in cases {
        let (got, err) = cluster.put(0, "/v1/jobs/j", b.clone()).await;
        assert_eq!(got, status, "{b}: {err}");
        assert_eq!(err["error"]["code"], code, "{b}: {err}");
        assert!(
            err["error"]["message"].as_str().unwrap().contains(field),
            "{err} should name {field}"
        );
    }
    let long = "j".repeat(201);
    let (status, err) = cluster.put(0, &format!("/v1/jobs/{long}"), body()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{err}");
    assert!(err["error"]["message"].as_str().unwrap().contains("name"));
    let (status, err) = cluster.post_raw(0, "/v1/jobs/j/trigger", "").await;
    assert_eq!(
        (status, err["error"]["code"].clone()),
        (StatusCode::NOT_FOUND, json!("job_not_found"))
    );
    for (query, field) in [
        ("", "state"),
        ("?state=sleeping", "state"),
        ("?state=dead&limit=0", "limit"),
    ] {
        let (status, err) = cluster.get(0, &format!("/v1/runs{query}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {err}");
        assert!(
            err["error"]["message"].as_str().unwrap().starts_with(field),
            "{err}"
        );
    }
    let (_, list) = cluster.get(0, "/v1/jobs").await;
    assert_eq!(list["jobs"], json!([]));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_job_subcommands_drive_a_node() {
    let cluster = TestCluster::start(1, &[]).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("job.json");
    std::fs::write(&file, body().to_string()).unwrap();
    let server = cluster.nodes[0].url();
    let gnomon = |args: &[&str]| -> (bool, Value, String) {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_gnomon"))
            .args(args)
            .args(["--server", &server])
            .output()
            .unwrap();
        let json = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        (
            out.status.success(),
            json,
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, job, err) = gnomon(&["job", "put", "nightly", "--file", file.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert_eq!(job["version"], 1);
    let (ok, list, _) = gnomon(&["job", "list"]);
    assert!(ok);
    assert_eq!(list["jobs"][0]["name"], "nightly");
    let (_, paused, _) = gnomon(&["job", "pause", "nightly"]);
    assert_eq!(paused["enabled"], false);
    let (_, resumed, _) = gnomon(&["job", "resume", "nightly"]);
    assert_eq!(resumed["enabled"], true);
    let (ok, run, _) = gnomon(&["job", "run", "nightly"]);
    assert!(ok);
    let (_, runs, _) = gnomon(&["job", "runs", "nightly", "--limit", "5"]);
    assert_eq!(runs["runs"][0]["id"], run["id"]);
    let (_, got, _) = gnomon(&["job", "get", "nightly"]);
    assert_eq!(got["labels"]["team"], "billing");
    let (ok, _, _) = gnomon(&["job", "delete", "nightly"]);
    assert!(ok);
    let (ok, _, err) = gnomon(&["job", "get", "nightly"]);
    assert!(!ok);
    assert!(err.contains("job_not_found"), "{err}");
}
