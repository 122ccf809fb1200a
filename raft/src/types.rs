//! The openraft type configuration: what a log entry carries, what applying
//! it returns, and how nodes are named and addressed.

use std::io::Cursor;

use gnomon_storage::command::{Batch, Outcome};

/// A node's id, stable for the life of its data directory.
pub type NodeId = u64;

/// A member as the cluster stores it: its id and `host:port` address.
pub type Node = openraft::BasicNode;

openraft::declare_raft_types!(
    /// gnomon's Raft types: each entry carries a [`Batch`] of commands and
    /// applying it yields one [`Outcome`] per command.
    pub TypeConfig:
        D = Batch,
        R = Vec<Outcome>,
        NodeId = NodeId,
        Node = Node,
        SnapshotData = Cursor<Vec<u8>>,
);

/// The Raft handle.
pub type Raft = openraft::Raft<TypeConfig>;
/// A log entry.
pub type Entry = openraft::Entry<TypeConfig>;
/// A log id.
pub type LogId = openraft::LogId<NodeId>;
/// A vote.
pub type Vote = openraft::Vote<NodeId>;
/// Storage failure as openraft reports it.
pub type StorageError = openraft::StorageError<NodeId>;
/// A snapshot's metadata.
pub type SnapshotMeta = openraft::SnapshotMeta<NodeId, Node>;
/// Membership with the log id that introduced it.
pub type StoredMembership = openraft::StoredMembership<NodeId, Node>;
/// Cluster metrics as openraft publishes them.
pub type Metrics = openraft::RaftMetrics<NodeId, Node>;
