//! gnomon's storage: the redb tables and the deterministic state machine.
//!
//! This crate knows nothing of networking, tokio or openraft. The Raft layer
//! hands it log entries (with log ids and memberships as opaque bytes) and
//! gets outcomes back; the API reads state through [`sm::ReadView`].

pub mod attempts;
pub mod codec;
pub mod command;
pub mod db;
pub mod delay_queue;
pub mod error;
pub mod jobs;
pub mod ledger;
pub mod limits;
pub mod locks;
pub mod runs;
pub mod sm;
pub mod tables;
pub mod timers;
pub mod vars;

pub use error::{Error, Result};

#[cfg(test)]
mod testutil;
