//! gnomon's Raft layer: openraft's types, the redb log store, the adaptor
//! onto the storage crate's state machine, and the HTTP transport between
//! peers.

// openraft's error types are large by design (they carry log ids, votes and
// node addresses); boxing them at every boundary would only hide them.
#![allow(clippy::result_large_err)]

pub mod log_store;
pub mod state_machine;
pub mod types;

#[cfg(test)]
mod tests;
