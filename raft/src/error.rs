//! What can go wrong between a caller and the replicated state.

use serde::{Deserialize, Serialize};

use crate::types::NodeId;

/// A failure to get a request through consensus. It crosses the wire when a
/// follower forwards to the leader, so it is serialisable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[non_exhaustive]
pub enum ConsensusError {
    /// No leader could be found or reached before the deadline.
    #[error("no leader is available (waited {waited_ms} ms); the cluster may be electing one or may have lost its quorum")]
    NoLeader {
        /// How long the request waited.
        waited_ms: u64,
    },
    /// The node asked is not (or no longer) the leader. Callers retry.
    #[error("this node is not the leader")]
    NotLeader,
    /// The leader cannot take the request yet (a membership change is still
    /// in progress); nothing was changed. Callers retry.
    #[error("busy: {0}")]
    Busy(String),
    /// The request may or may not have taken effect: the leader went away
    /// while it was in flight.
    #[error("the outcome is unknown: {0}")]
    Unknown(String),
    /// The cluster membership change was refused.
    #[error(transparent)]
    Membership(#[from] MembershipError),
    /// This node cannot go on: its storage failed or it is shutting down.
    #[error("fatal: {0}")]
    Fatal(String),
}

/// Why a membership change was refused. Each leaves the membership as it was.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[non_exhaustive]
pub enum MembershipError {
    /// `addr` is not `host:port`.
    #[error("addr: {addr:?} is not host:port")]
    InvalidAddr {
        /// The address given.
        addr: String,
    },
    /// `id` is 0 or otherwise not usable.
    #[error("id: {0} is not a valid node id (use 1 or more)")]
    InvalidId(u64),
    /// No member has this id.
    #[error("node {0} is not a member of the cluster")]
    UnknownMember(NodeId),
    /// The id is taken by a member at another address.
    #[error("node {id} is already a member at {existing}, not {addr}")]
    IdTaken {
        /// The id asked for.
        id: NodeId,
        /// The member's current address.
        existing: String,
        /// The address given.
        addr: String,
    },
    /// Nothing answered at `addr`.
    #[error("no gnomon answered at {addr}: {reason}")]
    Unreachable {
        /// The address given.
        addr: String,
        /// What the connection attempt said.
        reason: String,
    },
    /// The node at `addr` has another id than the one given.
    #[error("the node at {addr} has id {actual}, not {expected}")]
    IdMismatch {
        /// The address given.
        addr: String,
        /// The id given.
        expected: NodeId,
        /// The id the node reported.
        actual: NodeId,
    },
    /// The node at `addr` already has a cluster of its own.
    #[error("the node at {addr} already belongs to a cluster; start it with --no-bootstrap and an empty data dir")]
    AlreadyInitialized {
        /// The address given.
        addr: String,
    },
    /// The new node did not catch up with the log in time; it was removed again.
    #[error("node {id} did not catch up within {waited_ms} ms and was removed again")]
    CatchUpTimeout {
        /// The node.
        id: NodeId,
        /// How long it was given.
        waited_ms: u64,
    },
    /// Removing the only voter would leave no cluster.
    #[error("node {0} is the only voter; a cluster needs at least one")]
    LastVoter(NodeId),
    /// openraft refused the change (for example, another change is in progress).
    #[error("membership change refused: {0}")]
    Refused(String),
}
