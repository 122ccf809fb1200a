//! A job's target as the job body gives it (SPEC §4), its defaults and its
//! validation.

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::header::{HeaderName, HeaderValue};
use serde::{Deserialize, Deserializer, Serialize};

/// The method an HTTP target uses when the job body names none.
pub const DEFAULT_HTTP_METHOD: &str = "POST";
/// How long an HTTP attempt may take when the job body does not say: 10 s.
pub const DEFAULT_HTTP_TIMEOUT_MS: u64 = 10_000;
/// How long a shell attempt may take when the job body does not say: 60 s.
/// Longer jobs must say so, so that a hung command cannot hold a worker (and,
/// under `forbid`, every later slot of its job) indefinitely.
pub const DEFAULT_SHELL_TIMEOUT_MS: u64 = 60_000;
/// The longest timeout a job may ask for: 24 h.
pub const MAX_TIMEOUT_MS: u64 = 86_400_000;
/// The largest HTTP request body a target may carry: 1 MiB (SPEC §7).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// The longest shell command: 64 KiB.
pub const MAX_COMMAND_BYTES: usize = 64 * 1024;
/// The methods an HTTP target may use.
pub const HTTP_METHODS: [&str; 6] = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"];

/// Headers that describe the connection or the message framing. The HTTP
/// client sets them itself; a job that set them could corrupt the request.
const RESERVED_HEADERS: [&str; 8] = [
    "connection",
    "content-length",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// What a job runs: a JSON object with an internal `"type"` tag, `"http"` or
/// `"shell"`. Omitted fields take the `DEFAULT_*` constants of this module.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum Target {
    /// Call a URL; a 2xx response is success.
    Http {
        /// An `http` or `https` URL with a host.
        url: String,
        /// One of [`HTTP_METHODS`]; accepted in any case and stored upper case.
        #[serde(
            default = "default_http_method",
            deserialize_with = "deserialize_method"
        )]
        method: String,
        /// Sent with every attempt. The SPEC §5 headers (`Idempotency-Key`,
        /// `Gnomon-*`) replace any of the same name given here.
        #[serde(default)]
        headers: BTreeMap<String, String>,
        /// The request body, sent as given.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        body: Option<String>,
        /// Covers connecting, the response and reading its body.
        #[serde(default = "default_http_timeout_ms")]
        timeout_ms: u64,
    },
    /// Run a command with `/bin/sh -c`; exit status 0 is success. Only nodes
    /// started with `--allow-shell` accept these.
    Shell {
        /// The command line, handed to `/bin/sh -c` as one argument.
        command: String,
        /// After this the command's whole process group is killed.
        #[serde(default = "default_shell_timeout_ms")]
        timeout_ms: u64,
    },
}

fn default_http_method() -> String {
    DEFAULT_HTTP_METHOD.to_owned()
}

fn default_http_timeout_ms() -> u64 {
    DEFAULT_HTTP_TIMEOUT_MS
}

fn default_shell_timeout_ms() -> u64 {
    DEFAULT_SHELL_TIMEOUT_MS
}

fn deserialize_method<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    String::deserialize(deserializer).map(|method| method.to_ascii_uppercase())
}

/// A target field that cannot be accepted. `field` is the path the API shows,
/// such as `target.url` or `target.headers.X-Foo`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
#[non_exhaustive]
pub struct TargetError {
    /// Where in the job body the problem is.
    pub field: String,
    /// What is wrong and what would be accepted.
    pub message: String,
}

impl TargetError {
    fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl Target {
    /// Checks every field against the limits above. `allow_shell` is whether
    /// this node runs with `--allow-shell`; without it shell targets are
    /// refused, with a message telling the operator how to enable them.
    pub fn validate(&self, allow_shell: bool) -> Result<(), TargetError> {
        match self {
            Target::Http {
                url,
                method,
                headers,
                body,
                timeout_ms,
            } => {
                validate_url(url)?;
                if !HTTP_METHODS.contains(&method.to_ascii_uppercase().as_str()) {
                    return Err(TargetError::new(
                        "target.method",
                        format!("{method:?} is not one of {}", HTTP_METHODS.join(", ")),
                    ));
                }
                for (name, value) in headers {
                    validate_header(name, value)?;
                }
                if let Some(body) = body {
                    if body.len() > MAX_BODY_BYTES {
                        return Err(TargetError::new(
                            "target.body",
                            format!("is {} bytes; at most {MAX_BODY_BYTES}", body.len()),
                        ));
                    }
                }
                validate_timeout(*timeout_ms)
            }
            Target::Shell {
                command,
                timeout_ms,
            } => {
                if !allow_shell {
                    return Err(TargetError::new(
                        "target",
                        "shell targets are disabled on this cluster; start every node \
                         with --allow-shell to accept them",
                    ));
                }
                if command.trim().is_empty() {
                    return Err(TargetError::new("target.command", "must not be empty"));
                }
                if command.len() > MAX_COMMAND_BYTES {
                    return Err(TargetError::new(
                        "target.command",
                        format!("is {} bytes; at most {MAX_COMMAND_BYTES}", command.len()),
                    ));
                }
                if command.contains('\0') {
                    return Err(TargetError::new(
                        "target.command",
                        "must not contain a NUL character",
                    ));
                }
                validate_timeout(*timeout_ms)
            }
        }
    }

    /// How long one attempt may take.
    pub fn timeout(&self) -> Duration {
        match self {
            Target::Http { timeout_ms, .. } | Target::Shell { timeout_ms, .. } => {
                Duration::from_millis(*timeout_ms)
            }
        }
    }

    /// `"http"` or `"shell"`, as the `type` tag reads; for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Target::Http { .. } => "http",
            Target::Shell { .. } => "shell",
        }
    }
}

fn validate_url(url: &str) -> Result<(), TargetError> {
    let parsed = reqwest::Url::parse(url)
        .map_err(|e| TargetError::new("target.url", format!("{url:?} is not a URL: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(TargetError::new(
            "target.url",
            format!("must use http or https, not {:?}", parsed.scheme()),
        ));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(TargetError::new("target.url", "must name a host"));
    }
    Ok(())
}

fn validate_header(name: &str, value: &str) -> Result<(), TargetError> {
    let field = format!("target.headers.{name}");
    let parsed = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
        TargetError::new(
            &field,
            "is not a valid HTTP header name (letters, digits and !#$%&'*+-.^_`|~)",
        )
    })?;
    if RESERVED_HEADERS.contains(&parsed.as_str()) {
        return Err(TargetError::new(
            &field,
            "is set by the HTTP client from the connection and body; remove it",
        ));
    }
    HeaderValue::from_str(value).map_err(|_| {
        TargetError::new(
            &field,
            "value must not contain control characters other than tab",
        )
    })?;
    Ok(())
}

fn validate_timeout(timeout_ms: u64) -> Result<(), TargetError> {
    if (1..=MAX_TIMEOUT_MS).contains(&timeout_ms) {
        Ok(())
    } else {
        Err(TargetError::new(
            "target.timeout_ms",
            format!("is {timeout_ms}; must be between 1 and {MAX_TIMEOUT_MS} (24 h)"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn http(url: &str) -> Target {
        Target::Http {
            url: url.to_owned(),
            method: "POST".to_owned(),
            headers: BTreeMap::new(),
            body: None,
            timeout_ms: 1000,
        }
    }

    fn parse(value: serde_json::Value) -> Result<Target, serde_json::Error> {
        serde_json::from_value(value)
    }

    fn field_of(target: &Target, allow_shell: bool) -> String {
        match target.validate(allow_shell) {
            Ok(()) => panic!("{target:?} was accepted"),
            Err(e) => e.field,
        }
    }

    #[test]
    fn http_defaults_fill_omitted_fields() {
        let target = parse(json!({"type": "http", "url": "http://example.test/hook"})).unwrap();
        assert_eq!(
            target,
            Target::Http {
                url: "http://example.test/hook".to_owned(),
                method: "POST".to_owned(),
                headers: BTreeMap::new(),
                body: None,
                timeout_ms: 10_000,
            }
        );
        assert_eq!(target.timeout(), Duration::from_secs(10));
        target.validate(false).unwrap();
    }

    #[test]
    fn shell_default_timeout_is_a_minute() {
        let target = parse(json!({"type": "shell", "command": "true"})).unwrap();
        assert_eq!(target.timeout(), Duration::from_secs(60));
        assert_eq!(target.kind(), "shell");
        target.validate(true).unwrap();
    }

    #[test]
    fn method_is_normalised_to_upper_case() {
        let target = parse(json!({"type": "http", "url": "http://h/", "method": "patch"})).unwrap();
        assert!(matches!(&target, Target::Http { method, .. } if method == "PATCH"));
        target.validate(false).unwrap();
    }

    #[test]
    fn round_trips_through_json() {
        let target = parse(json!({
            "type": "http", "url": "https://h:8443/x?y=1", "method": "PUT",
            "headers": {"X-Foo": "bar"}, "body": "{}", "timeout_ms": 5
        }))
        .unwrap();
        let value = serde_json::to_value(&target).unwrap();
        assert_eq!(value["type"], "http");
        assert_eq!(parse(value).unwrap(), target);
    }

    #[test]
    fn unknown_fields_and_types_are_refused() {
        let err = parse(json!({"type": "http", "url": "http://h/", "verb": "GET"})).unwrap_err();
        assert!(err.to_string().contains("verb"), "{err}");
        let err = parse(json!({"type": "ftp", "url": "ftp://h/"})).unwrap_err();
        assert!(err.to_string().contains("ftp"), "{err}");
        let err = parse(json!({"type": "shell", "command": "true", "url": "x"})).unwrap_err();
        assert!(err.to_string().contains("url"), "{err}");
    }

    #[test]
    fn bad_urls_name_target_url() {
        for url in [
            "",
            "not a url",
            "ftp://example.test/",
            "file:///etc/passwd",
            "http://",
        ] {
            assert_eq!(field_of(&http(url), false), "target.url", "{url:?}");
        }
        http("https://example.test:8443/a?b=c")
            .validate(false)
            .unwrap();
        http("http://127.0.0.1:9/").validate(false).unwrap();
    }

    #[test]
    fn bad_method_names_target_method() {
        let mut target = http("http://h/");
        if let Target::Http { method, .. } = &mut target {
            *method = "TRACE".to_owned();
        }
        let err = target.validate(false).unwrap_err();
        assert_eq!(err.field, "target.method");
        assert!(err.message.contains("GET, POST"), "{}", err.message);
        if let Target::Http { method, .. } = &mut target {
            *method = "delete".to_owned();
        }
        target.validate(false).unwrap();
    }

    #[test]
    fn bad_headers_name_the_header() {
        let cases = [
            ("X Foo", "v", "target.headers.X Foo"),
            ("", "v", "target.headers."),
            ("X-Foo", "line\nbreak", "target.headers.X-Foo"),
            ("X-Bar", "nul\0", "target.headers.X-Bar"),
            ("X-Baz", "del\u{7f}", "target.headers.X-Baz"),
            ("Content-Length", "3", "target.headers.Content-Length"),
            (
                "transfer-encoding",
                "chunked",
                "target.headers.transfer-encoding",
            ),
        ];
        for (name, value, field) in cases {
            let mut target = http("http://h/");
            if let Target::Http { headers, .. } = &mut target {
                headers.insert("X-Ok".to_owned(), "fine".to_owned());
                headers.insert(name.to_owned(), value.to_owned());
            }
            assert_eq!(field_of(&target, false), field, "{name:?}: {value:?}");
        }
        // Tabs and non-ASCII text (sent as UTF-8 bytes) are fine.
        let mut target = http("http://h/");
        if let Target::Http { headers, .. } = &mut target {
            headers.insert("X-Note".to_owned(), "caf\u{e9}\tok".to_owned());
        }
        target.validate(false).unwrap();
    }

    #[test]
    fn oversized_body_names_target_body() {
        let mut target = http("http://h/");
        if let Target::Http { body, .. } = &mut target {
            *body = Some("x".repeat(MAX_BODY_BYTES));
        }
        target.validate(false).unwrap();
        if let Target::Http { body, .. } = &mut target {
            *body = Some("x".repeat(MAX_BODY_BYTES + 1));
        }
        assert_eq!(field_of(&target, false), "target.body");
    }

    #[test]
    fn timeouts_out_of_range_name_target_timeout_ms() {
        for timeout_ms in [0, MAX_TIMEOUT_MS + 1, u64::MAX] {
            let mut target = http("http://h/");
            if let Target::Http { timeout_ms: t, .. } = &mut target {
                *t = timeout_ms;
            }
            assert_eq!(field_of(&target, false), "target.timeout_ms");
            let shell = Target::Shell {
                command: "true".to_owned(),
                timeout_ms,
            };
            assert_eq!(field_of(&shell, true), "target.timeout_ms");
        }
        for timeout_ms in [1, MAX_TIMEOUT_MS] {
            let shell = Target::Shell {
                command: "true".to_owned(),
                timeout_ms,
            };
            shell.validate(true).unwrap();
        }
    }

    #[test]
    fn bad_commands_name_target_command() {
        for command in [
            String::new(),
            "  \n".to_owned(),
            "x".repeat(MAX_COMMAND_BYTES + 1),
            "echo a\0b".to_owned(),
        ] {
            let shell = Target::Shell {
                command,
                timeout_ms: 1000,
            };
            assert_eq!(field_of(&shell, true), "target.command");
        }
    }

    #[test]
    fn shell_is_refused_without_allow_shell() {
        let shell = Target::Shell {
            command: "true".to_owned(),
            timeout_ms: 1000,
        };
        let err = shell.validate(false).unwrap_err();
        assert_eq!(err.field, "target");
        assert!(err.message.contains("--allow-shell"), "{}", err.message);
        shell.validate(true).unwrap();
    }
}
