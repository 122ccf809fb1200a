//! Group commit: the leader packs every command that arrives while an
//! append is in flight into the next log entry.
//!
//! openraft 0.9 flushes each append before it goes on, so one entry per
//! client command would cap the cluster at about one fsync per write. Here a
//! single task owns the write path: it takes whatever proposals have queued
//! up (bounded in count and bytes), stamps them with the leader's clock as
//! one [`Batch`], writes it, and hands each caller its own outcomes.

use std::time::{SystemTime, UNIX_EPOCH};

use gnomon_storage::command::{Batch, Command, Outcome};
use openraft::error::{ClientWriteError, RaftError};
use tokio::sync::{mpsc, oneshot};

use crate::error::ConsensusError;
use crate::types::{Node, NodeId, Raft};

/// Most commands one entry carries.
const MAX_COMMANDS: usize = 256;

/// Stop adding proposals to an entry beyond this many encoded bytes (one
/// large proposal may still exceed it on its own).
const MAX_BYTES: usize = 4 << 20;

/// The wall clock in Unix milliseconds: what the leader stamps on a batch.
pub fn wall_clock_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

struct Proposal {
    commands: Vec<Command>,
    bytes: usize,
    reply: oneshot::Sender<Result<Vec<Outcome>, ConsensusError>>,
}

/// The sending side of the proposer task.
#[derive(Clone)]
pub(crate) struct Proposer {
    tx: mpsc::Sender<Proposal>,
}

impl Proposer {
    /// Start the proposer task for `raft`.
    pub(crate) fn spawn(raft: Raft) -> Self {
        let (tx, rx) = mpsc::channel(4096);
        tokio::spawn(run(raft, rx));
        Self { tx }
    }

    /// Write `commands` through this node's Raft (which must be the leader)
    /// and return their outcomes in order.
    pub(crate) async fn propose(
        &self,
        commands: Vec<Command>,
    ) -> Result<Vec<Outcome>, ConsensusError> {
        let bytes = postcard::experimental::serialized_size(&commands).unwrap_or(0);
        let (reply, rx) = oneshot::channel();
        let proposal = Proposal {
            commands,
            bytes,
            reply,
        };
        self.tx
            .send(proposal)
            .await
            .map_err(|_| ConsensusError::Fatal("the proposer has stopped".into()))?;
        rx.await
            .map_err(|_| ConsensusError::Fatal("the proposer has stopped".into()))?
    }
}

async fn run(raft: Raft, mut rx: mpsc::Receiver<Proposal>) {
    while let Some(first) = rx.recv().await {
        let mut count = first.commands.len();
        let mut bytes = first.bytes;
        let mut group = vec![first];
        while count < MAX_COMMANDS && bytes < MAX_BYTES {
            let Ok(next) = rx.try_recv() else { break };
            count += next.commands.len();
            bytes += next.bytes;
            group.push(next);
        }
        let mut commands = Vec::with_capacity(count);
        let mut waiters = Vec::with_capacity(group.len());
        for p in group {
            waiters.push((p.commands.len(), p.reply));
            commands.extend(p.commands);
        }
        let batch = Batch {
            now_ms: wall_clock_ms(),
            commands,
        };
        match raft.client_write(batch).await {
            Ok(response) => {
                let mut outcomes = response.data.into_iter();
                for (n, reply) in waiters {
                    let _ = reply.send(Ok(outcomes.by_ref().take(n).collect()));
                }
            }
            Err(e) => {
                let error = write_error(e);
                for (_, reply) in waiters {
                    let _ = reply.send(Err(error.clone()));
                }
            }
        }
    }
}

fn write_error(e: RaftError<NodeId, ClientWriteError<NodeId, Node>>) -> ConsensusError {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(_)) => ConsensusError::NotLeader,
        RaftError::APIError(ClientWriteError::ChangeMembershipError(e)) => ConsensusError::Fatal(
            format!("unexpected membership error on a normal write: {e}"),
        ),
        RaftError::Fatal(f) => ConsensusError::Fatal(f.to_string()),
    }
}
