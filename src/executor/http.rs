//! HTTP targets: one request with the SPEC §5 headers, bounded by the
//! target's timeout and abandoned on cancellation.

use std::collections::BTreeMap;
use std::error::Error as _;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::Method;
use tokio_util::sync::CancellationToken;

use super::output::CappedOutput;
use super::{AttemptContext, AttemptOutcome, AttemptReport};

/// The request part of an HTTP target.
pub(super) struct Request<'a> {
    pub(super) url: &'a str,
    pub(super) method: &'a str,
    pub(super) headers: &'a BTreeMap<String, String>,
    pub(super) body: Option<&'a str>,
}

pub(super) async fn run(
    client: &reqwest::Client,
    request: Request<'_>,
    timeout: Duration,
    ctx: &AttemptContext,
    cancel: &CancellationToken,
) -> AttemptReport {
    let request = match build(client, &request, ctx) {
        Ok(request) => request,
        Err(error) => return AttemptReport::failed(error),
    };
    let deadline = tokio::time::Instant::now() + timeout;
    let mut status = None;
    let mut output = CappedOutput::new();

    // The block ends the borrows of `status` and `output`; leaving it drops
    // the request future, which aborts the request if it is still running.
    let ended = {
        let exchange = async {
            let mut response = client.execute(request).await?;
            status = Some(i64::from(response.status().as_u16()));
            let success = response.status().is_success();
            while let Some(chunk) = response.chunk().await? {
                if output.is_full() {
                    // Keep the attempt short: a large body is not read to its end.
                    output.push(&chunk);
                    output.mark_incomplete();
                    break;
                }
                output.push(&chunk);
            }
            Ok::<bool, reqwest::Error>(success)
        };
        tokio::select! {
            biased;
            () = cancel.cancelled() => Ended::Cancelled,
            () = tokio::time::sleep_until(deadline) => Ended::TimedOut,
            result = exchange => Ended::Done(result),
        }
    };

    let output = output.finish();
    match ended {
        Ended::Done(Ok(true)) => AttemptReport::new(AttemptOutcome::Succeeded, status, output),
        Ended::Done(Ok(false)) => AttemptReport::new(AttemptOutcome::Failed, status, output),
        Ended::Done(Err(error)) => {
            AttemptReport::new(AttemptOutcome::Failed, status, output).with_error(describe(&error))
        }
        Ended::TimedOut => AttemptReport::new(AttemptOutcome::TimedOut, status, output)
            .with_error(format!("timed out after {} ms", timeout.as_millis())),
        Ended::Cancelled => AttemptReport::new(AttemptOutcome::Cancelled, status, output)
            .with_error("cancelled; the request was abandoned"),
    }
}

enum Ended {
    Done(Result<bool, reqwest::Error>),
    TimedOut,
    Cancelled,
}

fn build(
    client: &reqwest::Client,
    request: &Request<'_>,
    ctx: &AttemptContext,
) -> Result<reqwest::Request, String> {
    let method = Method::from_bytes(request.method.to_ascii_uppercase().as_bytes())
        .map_err(|_| format!("invalid method {:?}", request.method))?;
    let mut headers = HeaderMap::new();
    for (name, value) in request.headers {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("invalid header name {name:?}"))?;
        let value =
            HeaderValue::from_str(value).map_err(|_| format!("invalid value for header {name}"))?;
        headers.append(name, value);
    }
    let gnomon = [
        ("idempotency-key", ctx.run_id.clone()),
        ("gnomon-run-id", ctx.run_id.clone()),
        ("gnomon-job", ctx.job.clone()),
        ("gnomon-scheduled-for", ctx.scheduled_for()),
        ("gnomon-attempt", ctx.attempt.to_string()),
        ("gnomon-fencing-token", ctx.fencing_token.to_string()),
    ];
    for (name, value) in gnomon {
        let value = HeaderValue::from_str(&value)
            .map_err(|_| format!("{value:?} cannot be sent as {name}"))?;
        // `insert` replaces every job header of the same name.
        headers.insert(HeaderName::from_static(name), value);
    }
    let mut builder = client.request(method, request.url).headers(headers);
    if let Some(body) = request.body {
        builder = builder.body(body.to_owned());
    }
    builder.build().map_err(|e| describe(&e))
}

/// The error and its causes on one line, down to the OS error, so the run
/// history says "Connection refused" rather than "error sending request".
fn describe(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use axum::body::Bytes;
    use axum::extract::{Path, State};
    use axum::http::{HeaderMap as AxumHeaders, Method as AxumMethod, StatusCode};
    use axum::routing::any;
    use axum::Router;
    use tokio::sync::mpsc;

    use super::super::{execute, http_client, Target, OUTPUT_LIMIT, TRUNCATION_MARKER};
    use super::*;

    /// One request as the receiver saw it.
    #[derive(Debug)]
    struct Seen {
        method: AxumMethod,
        path: String,
        headers: AxumHeaders,
        body: Bytes,
    }

    #[derive(Clone)]
    struct Receiver {
        seen: mpsc::UnboundedSender<Seen>,
        /// Told when a `/hang` handler is dropped, i.e. the client went away.
        hung_up: mpsc::UnboundedSender<()>,
    }

    struct Server {
        base: String,
        seen: mpsc::UnboundedReceiver<Seen>,
        hung_up: mpsc::UnboundedReceiver<()>,
    }

    impl Server {
        async fn next(&mut self) -> Seen {
            tokio::time::timeout(Duration::from_secs(10), self.seen.recv())
                .await
                .expect("the receiver saw no request within 10 s")
                .expect("the receiver stopped")
        }
    }

    struct DropSignal(mpsc::UnboundedSender<()>);

    impl Drop for DropSignal {
        fn drop(&mut self) {
            let _ = self.0.send(());
        }
    }

    /// A real HTTP server on a loopback port that records every request.
    /// `/status/{code}` answers with that status and body `status {code}`,
    /// `/hang` never answers, `/big` answers 200 with 1 MiB, anything else
    /// answers 200 `ok`.
    async fn receiver() -> Server {
        async fn record(
            state: &Receiver,
            method: AxumMethod,
            path: &str,
            headers: AxumHeaders,
            body: Bytes,
        ) {
            let seen = Seen {
                method,
                path: path.to_owned(),
                headers,
                body,
            };
            let _ = state.seen.send(seen);
        }
        async fn status(
            State(state): State<Receiver>,
            Path(code): Path<u16>,
            method: AxumMethod,
            headers: AxumHeaders,
            body: Bytes,
        ) -> (StatusCode, String) {
            record(&state, method, "/status", headers, body).await;
            (
                StatusCode::from_u16(code).unwrap(),
                format!("status {code}"),
            )
        }
        async fn hang(
            State(state): State<Receiver>,
            method: AxumMethod,
            headers: AxumHeaders,
            body: Bytes,
        ) -> &'static str {
            let _signal = DropSignal(state.hung_up.clone());
            record(&state, method, "/hang", headers, body).await;
            std::future::pending::<()>().await;
            "never"
        }
        async fn moved(
            State(state): State<Receiver>,
            method: AxumMethod,
            headers: AxumHeaders,
        ) -> (
            StatusCode,
            [(axum::http::header::HeaderName, &'static str); 1],
        ) {
            record(&state, method, "/moved", headers, Bytes::new()).await;
            (
                StatusCode::TEMPORARY_REDIRECT,
                [(axum::http::header::LOCATION, "/")],
            )
        }
        async fn big(
            State(state): State<Receiver>,
            method: AxumMethod,
            headers: AxumHeaders,
        ) -> Vec<u8> {
            record(&state, method, "/big", headers, Bytes::new()).await;
            vec![b'b'; 1024 * 1024]
        }
        async fn ok(
            State(state): State<Receiver>,
            method: AxumMethod,
            headers: AxumHeaders,
            body: Bytes,
        ) -> &'static str {
            record(&state, method, "/", headers, body).await;
            "ok"
        }

        let (seen_tx, seen) = mpsc::unbounded_channel();
        let (hung_tx, hung_up) = mpsc::unbounded_channel();
        let state = Receiver {
            seen: seen_tx,
            hung_up: hung_tx,
        };
        let app = Router::new()
            .route("/status/{code}", any(status))
            .route("/hang", any(hang))
            .route("/big", any(big))
            .route("/moved", any(moved))
            .fallback(ok)
            .with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Server {
            base,
            seen,
            hung_up,
        }
    }

    fn target(url: String) -> Target {
        Target::Http {
            url,
            method: "POST".to_owned(),
            headers: BTreeMap::new(),
            body: None,
            timeout_ms: 5_000,
        }
    }

    fn ctx() -> AttemptContext {
        AttemptContext {
            run_id: "nightly@1774746000000".to_owned(),
            job: "nightly".to_owned(),
            scheduled_for_ms: 1_774_746_000_000,
            attempt: 3,
            fencing_token: 42,
        }
    }

    async fn run(target: &Target) -> AttemptReport {
        let client = http_client().unwrap();
        execute(&client, target, &ctx(), CancellationToken::new()).await
    }

    fn header<'a>(seen: &'a Seen, name: &str) -> Vec<&'a str> {
        seen.headers
            .get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect()
    }

    #[tokio::test]
    async fn sends_the_spec_headers_job_headers_method_and_body() {
        let mut server = receiver().await;
        let target = Target::Http {
            url: format!("{}/hook?x=1", server.base),
            method: "put".to_owned(),
            headers: BTreeMap::from([
                ("X-Team".to_owned(), "billing".to_owned()),
                ("Content-Type".to_owned(), "application/json".to_owned()),
                // Both must be replaced by the attempt's own values.
                ("idempotency-key".to_owned(), "forged".to_owned()),
                ("Gnomon-Attempt".to_owned(), "99".to_owned()),
            ]),
            body: Some(r#"{"hello":"world"}"#.to_owned()),
            timeout_ms: 5_000,
        };
        let report = run(&target).await;
        assert_eq!(report.outcome, AttemptOutcome::Succeeded, "{report:?}");
        assert_eq!(report.status, Some(200));
        assert_eq!(report.output, "ok");
        assert_eq!(report.error, None);

        let seen = server.next().await;
        assert_eq!(seen.method, AxumMethod::PUT);
        assert_eq!(seen.path, "/");
        assert_eq!(&seen.body[..], br#"{"hello":"world"}"#);
        assert_eq!(header(&seen, "idempotency-key"), ["nightly@1774746000000"]);
        assert_eq!(header(&seen, "gnomon-run-id"), ["nightly@1774746000000"]);
        assert_eq!(header(&seen, "gnomon-job"), ["nightly"]);
        assert_eq!(
            header(&seen, "gnomon-scheduled-for"),
            ["2026-03-29T01:00:00Z"]
        );
        assert_eq!(header(&seen, "gnomon-attempt"), ["3"]);
        assert_eq!(header(&seen, "gnomon-fencing-token"), ["42"]);
        assert_eq!(header(&seen, "x-team"), ["billing"]);
        assert_eq!(header(&seen, "content-type"), ["application/json"]);
    }

    #[tokio::test]
    async fn method_defaults_to_post_without_a_body() {
        let mut server = receiver().await;
        let target: Target = serde_json::from_value(serde_json::json!({
            "type": "http", "url": format!("{}/x", server.base)
        }))
        .unwrap();
        assert_eq!(run(&target).await.outcome, AttemptOutcome::Succeeded);
        let seen = server.next().await;
        assert_eq!(seen.method, AxumMethod::POST);
        assert!(seen.body.is_empty());
    }

    #[tokio::test]
    async fn a_non_2xx_status_is_a_failure_with_that_status() {
        let mut server = receiver().await;
        for code in [503_i64, 404, 409] {
            let report = run(&target(format!("{}/status/{code}", server.base))).await;
            assert_eq!(report.outcome, AttemptOutcome::Failed, "{report:?}");
            assert_eq!(report.status, Some(code));
            assert_eq!(report.output, format!("status {code}"));
            server.next().await;
        }
        let report = run(&target(format!("{}/status/204", server.base))).await;
        assert_eq!(report.outcome, AttemptOutcome::Succeeded, "{report:?}");
        assert_eq!(report.status, Some(204));
    }

    #[tokio::test]
    async fn a_redirect_is_a_failure_and_is_not_followed() {
        let mut server = receiver().await;
        let report = run(&target(format!("{}/moved", server.base))).await;
        assert_eq!(report.outcome, AttemptOutcome::Failed, "{report:?}");
        assert_eq!(report.status, Some(307));
        assert_eq!(server.next().await.path, "/moved");
        // Following it would have made a second request before `execute` returned.
        assert!(server.seen.try_recv().is_err());
    }

    #[tokio::test]
    async fn a_slow_server_times_out() {
        let mut server = receiver().await;
        let mut slow = target(format!("{}/hang", server.base));
        if let Target::Http { timeout_ms, .. } = &mut slow {
            *timeout_ms = 300;
        }
        let started = Instant::now();
        let report = run(&slow).await;
        let took = started.elapsed();
        assert_eq!(report.outcome, AttemptOutcome::TimedOut, "{report:?}");
        assert_eq!(report.status, None);
        assert!(report.error.unwrap().contains("300 ms"));
        assert!(took >= Duration::from_millis(300), "{took:?}");
        assert!(took < Duration::from_secs(5), "{took:?}");
        server.next().await;
    }

    #[tokio::test]
    async fn connection_refused_is_a_failure_with_an_error() {
        // A port that was just free: nothing listens on it now.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let report = run(&target(format!("http://{addr}/"))).await;
        assert_eq!(report.outcome, AttemptOutcome::Failed, "{report:?}");
        assert_eq!(report.status, None);
        let error = report.error.expect("an error message");
        assert!(
            error.to_lowercase().contains("connection refused"),
            "{error}"
        );
    }

    #[tokio::test]
    async fn cancel_aborts_the_request_promptly() {
        let mut server = receiver().await;
        let cancel = CancellationToken::new();
        let attempt = {
            let cancel = cancel.clone();
            let slow = target(format!("{}/hang", server.base));
            tokio::spawn(async move {
                let client = http_client().unwrap();
                execute(&client, &slow, &ctx(), cancel).await
            })
        };
        // Cancel only once the request is in flight.
        server.next().await;
        let cancelled_at = Instant::now();
        cancel.cancel();
        let report = tokio::time::timeout(Duration::from_secs(2), attempt)
            .await
            .expect("execute returned within 2 s of the cancel")
            .unwrap();
        assert!(cancelled_at.elapsed() < Duration::from_secs(1));
        assert_eq!(report.outcome, AttemptOutcome::Cancelled, "{report:?}");
        // The connection was closed, so the server dropped its handler.
        tokio::time::timeout(Duration::from_secs(5), server.hung_up.recv())
            .await
            .expect("the server saw the client go away");
    }

    #[tokio::test]
    async fn a_large_response_is_capped_and_marked() {
        let mut server = receiver().await;
        let report = run(&target(format!("{}/big", server.base))).await;
        assert_eq!(report.outcome, AttemptOutcome::Succeeded, "{report:?}");
        assert!(
            report.output.len() <= OUTPUT_LIMIT,
            "{}",
            report.output.len()
        );
        assert!(report.output.starts_with("bbbb"));
        assert!(report.output.contains(TRUNCATION_MARKER));
        server.next().await;
    }

    #[tokio::test]
    async fn head_requests_succeed_without_a_body() {
        let mut server = receiver().await;
        let mut head = target(format!("{}/", server.base));
        if let Target::Http { method, .. } = &mut head {
            *method = "HEAD".to_owned();
        }
        let report = run(&head).await;
        assert_eq!(report.outcome, AttemptOutcome::Succeeded, "{report:?}");
        assert_eq!(report.output, "");
        assert_eq!(server.next().await.method, AxumMethod::HEAD);
    }
}
