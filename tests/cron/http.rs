//! `POST /v1/cron/validate` through the router, without a socket (SPEC §4).

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

async fn post(body: &str) -> (StatusCode, Value) {
    let request = Request::post("/v1/cron/validate")
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .expect("request");
    // The validate route needs no node state, so its router is served alone.
    let app = axum::Router::new().nest("/v1", gnomon::api::cron::router::<()>());
    let response = app.oneshot(request).await.expect("response");
    let status = response.status();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    (status, serde_json::from_slice(&bytes).expect("json body"))
}

async fn validate(body: Value) -> (StatusCode, Value) {
    post(&body.to_string()).await
}

fn codes(v: &Value) -> Vec<&str> {
    v["warnings"]
        .as_array()
        .expect("warnings")
        .iter()
        .map(|w| w["code"].as_str().expect("code"))
        .collect()
}

#[tokio::test]
async fn valid_schedule_previews_local_and_utc() {
    let (status, v) = validate(json!({
        "expr": "30 2 * * *", "timezone": "America/New_York", "count": 2,
        "from": "2026-03-07T12:00:00-05:00"
    }))
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["valid"], true);
    assert_eq!(v["normalized"], "0 30 2 * * *");
    assert_eq!(v["description"], "at 02:30, every day");
    // New York skips 02:00-03:00 on 2026-03-08 (zoneinfo): once fires at 03:00 EDT.
    assert_eq!(
        v["next"],
        json!([
            {"local": "2026-03-08T03:00:00-04:00", "utc": "2026-03-08T07:00:00Z"},
            {"local": "2026-03-09T02:30:00-04:00", "utc": "2026-03-09T06:30:00Z"}
        ])
    );
    // Within a year of the start only 2026-03-08 skips 02:30 (2027's change is
    // on 03-14); the fall-back on 2026-11-01 repeats 01:00-02:00, no fire time.
    assert_eq!(codes(&v), vec!["dst_moved"], "{v}");
}

#[tokio::test]
async fn literal_policy_warns_skipped_and_doubled() {
    let (status, v) = validate(json!({
        "expr": "30 2 * * *", "timezone": "Europe/Berlin", "dst": "literal",
        "from": "2026-01-01T00:00:00Z"
    }))
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(codes(&v), vec!["dst_skipped", "dst_doubled"]);
    let skipped = v["warnings"][0]["message"].as_str().expect("message");
    assert!(
        skipped.contains("2026-03-29") && skipped.contains("02:30"),
        "{skipped}"
    );
}

#[tokio::test]
async fn clock_jobs_warn_as_following_the_clock() {
    let (_, v) = validate(json!({
        "expr": "*/15 * * * *", "timezone": "Australia/Lord_Howe",
        "from": "2026-01-01T00:00:00Z"
    }))
    .await;
    // Lord Howe repeats 01:30-02:00 on 04-05 and skips 02:00-02:30 on 10-04.
    assert_eq!(codes(&v), vec!["dst_doubled", "dst_skipped"]);
    let doubled = v["warnings"][0]["message"].as_str().expect("message");
    assert!(doubled.contains("fire times 01:30 and 01:45"), "{doubled}");
}

#[tokio::test]
async fn other_warnings_have_stable_codes() {
    for (body, code) in [
        (json!({"expr": "0 9 1 * MON"}), "day_or_rule"),
        (json!({"expr": "*/7 * * * *"}), "uneven_step"),
        (json!({"expr": "0 0 */2 * *"}), "uneven_step"),
        (json!({"expr": "0 0 12 * * *"}), "six_fields_may_be_year"),
        (json!({"expr": "@every 250ms"}), "sub_second"),
        (
            json!({"expr": "0 0 0 1 1 ? 2020", "dialect": "quartz"}),
            "no_future_fire_times",
        ),
    ] {
        let (status, v) = validate(body.clone()).await;
        assert_eq!(status, StatusCode::OK, "{body}: {v}");
        assert!(codes(&v).contains(&code), "{body}: {v}");
    }
    for quiet in ["*/15 * * * *", "0 30 2 * * MON-FRI", "0 12 * * *"] {
        let (_, v) = validate(json!({"expr": quiet})).await;
        assert_eq!(codes(&v), Vec::<&str>::new(), "{quiet}: {v}");
    }
}

#[tokio::test]
async fn invalid_schedules_are_422_with_code_and_position() {
    for (body, code, position, needle) in [
        (
            json!({"expr": "0 0 61 * *"}),
            "invalid_expression",
            json!(4),
            "day-of-month field `61`",
        ),
        (
            json!({"expr": "0 0 * * * * * *"}),
            "invalid_expression",
            Value::Null,
            "found 8",
        ),
        (
            json!({"expr": "0 0 30 2 *"}),
            "never_fires",
            json!(4),
            "day-of-month",
        ),
        (
            json!({"expr": "0 0 0 31 4 ?", "dialect": "quartz"}),
            "never_fires",
            json!(6),
            "never fire",
        ),
        (
            json!({"expr": "* * * * *", "timezone": "Europe/Atlantis"}),
            "unknown_timezone",
            Value::Null,
            "timezone",
        ),
        (
            json!({"expr": "* * * * *", "dialect": "unix"}),
            "unknown_dialect",
            Value::Null,
            "dialect",
        ),
        (
            json!({"expr": "* * * * *", "dst": "never"}),
            "unknown_dst_policy",
            Value::Null,
            "dst",
        ),
        (
            json!({"expr": "@every 1y"}),
            "invalid_expression",
            json!(7),
            "unknown unit",
        ),
    ] {
        let (status, v) = validate(body.clone()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {v}");
        assert_eq!(v["valid"], false, "{body}: {v}");
        assert_eq!(v["error"]["code"], code, "{body}: {v}");
        assert_eq!(v["error"]["position"], position, "{body}: {v}");
        let message = v["error"]["message"].as_str().expect("message");
        assert!(message.contains(needle), "{body}: {message}");
    }
}

#[tokio::test]
async fn malformed_bodies_are_400_naming_the_field() {
    let (status, v) = validate(json!({"expr": "* * * * *", "colour": "red"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["error"]["code"], "invalid_field");
    assert!(
        v["error"]["message"]
            .as_str()
            .expect("message")
            .contains("colour"),
        "{v}"
    );

    let (status, v) = validate(json!({"expr": 5})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .expect("message")
            .starts_with("expr"),
        "{v}"
    );

    let (status, v) = validate(json!({"expr": "* * * * *", "count": 1000})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .expect("message")
            .starts_with("count"),
        "{v}"
    );

    let (status, v) = post("{not json").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["error"]["code"], "malformed_json");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_running_node_serves_validate() {
    let cluster = crate::support::TestCluster::start(1, &[]).await;
    let (status, body) = cluster
        .post(
            0,
            "/v1/cron/validate",
            json!({ "expr": "30 2 * * *", "timezone": "Europe/Berlin", "count": 1 }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["valid"], true);
    let (status, body) = cluster
        .post(0, "/v1/cron/validate", json!({ "expr": "0 0 30 2 *" }))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["code"], "never_fires");
}
