//! gnomon's Raft layer: openraft's types, the redb log store, the adaptor
//! onto the storage crate's state machine, the HTTP transport between
//! peers, and [`consensus::Consensus`], the handle the rest of the node uses.

// openraft's error types are large by design (they carry log ids, votes and
// node addresses); boxing them at every boundary would only hide them.
#![allow(clippy::result_large_err)]

pub mod consensus;
pub mod error;
pub mod http_client;
pub mod log_store;
pub mod network;
mod proposer;
pub mod state_machine;
pub mod types;

pub use consensus::{ClusterStatus, Consensus, MemberStatus, Settings};
pub use error::{ConsensusError, MembershipError};
pub use proposer::wall_clock_ms;

#[cfg(test)]
mod tests;
