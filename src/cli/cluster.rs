//! `gnomon cluster status|add|remove`.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::json;

use super::client::Server;

/// Arguments of `gnomon cluster`.
#[derive(Debug, Args)]
pub struct ClusterArgs {
    #[command(flatten)]
    server: Server,
    #[command(subcommand)]
    command: ClusterCommand,
}

#[derive(Debug, Subcommand)]
enum ClusterCommand {
    /// Show the leader, indexes and members as the node sees them.
    Status,
    /// Add a node (it must be running with --no-bootstrap); it becomes a voter once caught up.
    Add {
        /// The new node's id.
        id: u64,
        /// The new node's host:port.
        addr: String,
    },
    /// Remove a node from the cluster.
    Remove {
        /// The node's id.
        id: u64,
    },
}

/// Run `gnomon cluster`.
pub fn run(args: ClusterArgs) -> ExitCode {
    let server = args.server;
    match args.command {
        ClusterCommand::Status => server.call(Method::GET, "/v1/cluster", None),
        ClusterCommand::Add { id, addr } => server.call(
            Method::POST,
            "/v1/cluster/members",
            Some(json!({ "id": id, "addr": addr })),
        ),
        ClusterCommand::Remove { id } => {
            server.call(Method::DELETE, &format!("/v1/cluster/members/{id}"), None)
        }
    }
}
