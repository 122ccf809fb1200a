//! Client subcommands: talk to a running node over its HTTP API and print
//! the JSON it answers.

use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use reqwest::Method;
use serde_json::Value;

/// Where the node is and how to authenticate; shared by every client subcommand.
#[derive(Debug, Clone, Args)]
pub struct Server {
    /// The node to talk to.
    #[arg(
        long,
        global = true,
        default_value = "http://127.0.0.1:7700",
        env = "GNOMON_SERVER"
    )]
    server: String,
    /// Bearer token, if the node requires one.
    #[arg(long, global = true, env = "GNOMON_TOKEN", hide_env_values = true)]
    token: Option<String>,
}

impl Server {
    /// Send a request and print the answer: pretty JSON on stdout for a 2xx
    /// (exit 0), the error's message on stderr otherwise (exit 1).
    pub fn call(&self, method: Method, path: &str, body: Option<Value>) -> ExitCode {
        match self.send(method, path, body) {
            Ok((status, value)) if status.is_success() => {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&value).unwrap_or_default()
                );
                ExitCode::SUCCESS
            }
            Ok((status, value)) => {
                let message = value["error"]["message"]
                    .as_str()
                    .map_or_else(|| value.to_string(), str::to_string);
                let code = value["error"]["code"].as_str().unwrap_or("error");
                eprintln!("error: {status} {code}: {message}");
                ExitCode::FAILURE
            }
            Err(e) => super::report(&e),
        }
    }

    fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<(reqwest::StatusCode, Value)> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let url = format!("{}{}", self.server.trim_end_matches('/'), path);
        runtime.block_on(async {
            let mut request = gnomon_raft::http_client::builder()
                .build()?
                .request(method, &url);
            if let Some(token) = &self.token {
                request = request.bearer_auth(token);
            }
            if let Some(body) = body {
                request = request.json(&body);
            }
            let response = request.send().await.with_context(|| {
                format!("cannot reach {url}; is a node running there? (--server)")
            })?;
            let status = response.status();
            let text = response.text().await?;
            let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
            Ok((status, value))
        })
    }
}
