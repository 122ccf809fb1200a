//! The web UI as a running node serves it: the page and its assets, with
//! their content types, open even when the API needs a token.

use reqwest::header::{CACHE_CONTROL, CONTENT_TYPE};
use reqwest::StatusCode;

use crate::support::TestCluster;

/// `GET path` on node 0 without any `Authorization` header: status, content
/// type, `Cache-Control` and body.
async fn fetch_open(cluster: &TestCluster, path: &str) -> (StatusCode, String, String, String) {
    let response = cluster
        .http
        .get(format!("{}{path}", cluster.nodes[0].url()))
        .send()
        .await
        .unwrap();
    let header = |name| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let (content_type, cache) = (header(CONTENT_TYPE), header(CACHE_CONTROL));
    let status = response.status();
    (status, content_type, cache, response.text().await.unwrap())
}

/// The page and both assets answer 200 with the right types and a body
/// that is the asset (the page links the other two).
async fn assert_ui_served(cluster: &TestCluster) {
    let (status, content_type, cache, page) = fetch_open(cluster, "/").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(content_type, "text/html; charset=utf-8");
    assert!(!cache.is_empty(), "/ has no Cache-Control");
    assert!(page.contains("<title>gnomon</title>"), "{page}");
    assert!(page.contains(r#"src="/ui/app.js""#), "{page}");
    assert!(page.contains(r#"href="/ui/style.css""#), "{page}");

    let (status, content_type, cache, script) = fetch_open(cluster, "/ui/app.js").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(content_type, "text/javascript; charset=utf-8");
    assert!(!cache.is_empty(), "/ui/app.js has no Cache-Control");
    assert!(script.contains("/v1/jobs"), "not the UI's script");

    let (status, content_type, cache, style) = fetch_open(cluster, "/ui/style.css").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(content_type, "text/css; charset=utf-8");
    assert!(!cache.is_empty(), "/ui/style.css has no Cache-Control");
    assert!(style.contains(".badge"), "not the UI's style sheet");

    let (status, ..) = fetch_open(cluster, "/ui/missing.js").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_serves_the_page_and_its_assets() {
    let cluster = TestCluster::start(1, &[]).await;
    assert_ui_served(&cluster).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn with_a_token_the_page_still_loads_and_the_api_needs_the_token() {
    let cluster = TestCluster::start(1, &["--token", "s3cret"]).await;
    assert_ui_served(&cluster).await;

    // The page's first call, without the token: the API's 401 JSON, which
    // is what makes the page ask for the token.
    let (status, content_type, _, body) = fetch_open(&cluster, "/v1/jobs").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["error"]["code"], "unauthorized", "{body}");

    // The same call with `Authorization: Bearer s3cret`.
    let (status, body) = cluster.get(0, "/v1/jobs").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["jobs"], serde_json::json!([]));
}
