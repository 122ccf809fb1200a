//! The web UI: `GET /` and its script and style sheet under `/ui/`, embedded
//! from `web/` at build time so the binary is the whole deployment.
//!
//! The pages talk only to the public `/v1` API, from the browser; nothing
//! here reads cluster state. The routes stay outside `/v1`, so they answer
//! without a token (the page asks for one when the API does).

use std::sync::LazyLock;

use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, ETAG, IF_NONE_MATCH};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use sha2::{Digest, Sha256};

/// Browsers revalidate on every load (the assets change with the binary)
/// and get a 304 while the `ETag` still matches.
const CACHE: &str = "no-cache";

/// The page loads only its own script and style sheet and talks only to
/// this node, so injected markup could neither run nor send anything away.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
                   connect-src 'self'; img-src 'self' data:; base-uri 'none'; \
                   form-action 'none'; frame-ancestors 'none'";

/// One embedded file and the validator browsers send back.
struct Asset {
    body: &'static str,
    content_type: &'static str,
    etag: LazyLock<HeaderValue>,
}

macro_rules! asset {
    ($file:literal, $content_type:literal) => {
        Asset {
            body: include_str!(concat!("../../web/", $file)),
            content_type: $content_type,
            etag: LazyLock::new(|| etag(include_str!(concat!("../../web/", $file)))),
        }
    };
}

static INDEX: Asset = asset!("index.html", "text/html; charset=utf-8");
static SCRIPT: Asset = asset!("app.js", "text/javascript; charset=utf-8");
static STYLE: Asset = asset!("style.css", "text/css; charset=utf-8");

/// A strong validator: the first 128 bits of the body's SHA-256, in hex.
fn etag(body: &str) -> HeaderValue {
    let digest = Sha256::digest(body.as_bytes());
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    // Hex digits in quotes are visible ASCII: always a valid header value.
    HeaderValue::from_str(&format!("\"{hex}\"")).expect("a quoted hex string")
}

/// UI routes. They need no state, so they merge into any router.
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(index))
        .route("/ui/app.js", get(script))
        .route("/ui/style.css", get(style))
}

async fn index(request: HeaderMap) -> Response {
    serve(&INDEX, &request)
}

async fn script(request: HeaderMap) -> Response {
    serve(&SCRIPT, &request)
}

async fn style(request: HeaderMap) -> Response {
    serve(&STYLE, &request)
}

fn serve(asset: &'static Asset, request: &HeaderMap) -> Response {
    let etag: &HeaderValue = &asset.etag;
    let fresh = request
        .get(IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| *etag == t.trim() || t.trim() == "*"));
    let headers = [
        (CONTENT_TYPE, HeaderValue::from_static(asset.content_type)),
        (CACHE_CONTROL, HeaderValue::from_static(CACHE)),
        (ETAG, etag.clone()),
        (
            HeaderName::from_static("x-content-type-options"),
            HeaderValue::from_static("nosniff"),
        ),
        (
            HeaderName::from_static("content-security-policy"),
            HeaderValue::from_static(CSP),
        ),
    ];
    if fresh {
        (StatusCode::NOT_MODIFIED, headers).into_response()
    } else {
        (headers, asset.body).into_response()
    }
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    use super::*;

    async fn get(path: &str, if_none_match: Option<&str>) -> Response {
        let mut request = Request::get(path);
        if let Some(tag) = if_none_match {
            request = request.header(IF_NONE_MATCH, tag);
        }
        router::<()>()
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn serves_each_asset_with_its_type() {
        for (path, prefix) in [
            ("/", "text/html"),
            ("/ui/app.js", "text/javascript"),
            ("/ui/style.css", "text/css"),
        ] {
            let response = get(path, None).await;
            assert_eq!(response.status(), StatusCode::OK, "{path}");
            let content_type = response.headers()[CONTENT_TYPE].to_str().unwrap();
            assert!(content_type.starts_with(prefix), "{path}: {content_type}");
            assert_eq!(response.headers()[CACHE_CONTROL], CACHE);
        }
    }

    #[tokio::test]
    async fn a_matching_etag_gets_not_modified() {
        let first = get("/ui/app.js", None).await;
        let tag = first.headers()[ETAG].to_str().unwrap().to_owned();
        let again = get("/ui/app.js", Some(&tag)).await;
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
        let other = get("/ui/app.js", Some("\"stale\"")).await;
        assert_eq!(other.status(), StatusCode::OK);
    }

    #[test]
    fn the_page_links_the_served_assets() {
        assert!(INDEX.body.contains("/ui/app.js"));
        assert!(INDEX.body.contains("/ui/style.css"));
    }
}
