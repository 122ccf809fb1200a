//! The openraft state machine, adapted onto `gnomon_storage`'s.
//!
//! This layer only translates: openraft's log ids and memberships are
//! encoded to bytes for storage, entries become `LogEntry`s, and snapshots
//! are the storage crate's `Image`s with openraft's metadata alongside. It
//! also publishes the last applied index, so long-polling requests can wait
//! for the state they need instead of polling.

use std::io::Cursor;
use std::sync::Arc;

use gnomon_storage::codec;
use gnomon_storage::command::Outcome;
use gnomon_storage::sm::{Image, LogEntry, StateMachine};
use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{AnyError, EntryPayload, OptionalSend, RaftSnapshotBuilder, StorageIOError};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::types::{Entry, LogId, SnapshotMeta, StorageError, StoredMembership, TypeConfig};

/// A snapshot as it is kept on disk: openraft's metadata and the image data.
#[derive(Serialize, Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMeta,
    data: Vec<u8>,
}

/// The state machine handed to openraft. Clones share the same redb file
/// and the same applied-index channel.
#[derive(Clone)]
pub struct StateMachineStore {
    sm: StateMachine,
    applied: Arc<watch::Sender<u64>>,
}

fn io(
    ctor: fn(AnyError) -> StorageIOError<u64>,
    e: impl std::error::Error + 'static,
) -> StorageError {
    ctor(AnyError::new(&e)).into()
}

/// Run `f` on the blocking pool so a commit's fsync never stalls the executor.
async fn blocking<T, F>(ctor: fn(AnyError) -> StorageIOError<u64>, f: F) -> Result<T, StorageError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, gnomon_storage::Error> + Send + 'static,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result.map_err(|e| io(ctor, e)),
        Err(join) => Err(io(ctor, join)),
    }
}

fn decode_meta(image: &Image) -> Result<(Option<LogId>, StoredMembership), gnomon_storage::Error> {
    let last_applied = image
        .last_applied
        .as_deref()
        .map(|b| codec::decode("last applied log id", b))
        .transpose()?;
    let membership = image
        .membership
        .as_deref()
        .map(|b| codec::decode("membership", b))
        .transpose()?
        .unwrap_or_default();
    Ok((last_applied, membership))
}

impl StateMachineStore {
    /// Adapt `sm`; the applied index starts at what is on disk.
    pub fn new(sm: StateMachine) -> Result<Self, gnomon_storage::Error> {
        let applied = sm.applied_state()?;
        let index = applied
            .last_applied
            .as_deref()
            .map(|b| codec::decode::<LogId>("last applied log id", b))
            .transpose()?
            .map_or(0, |id| id.index);
        Ok(Self {
            sm,
            applied: Arc::new(watch::channel(index).0),
        })
    }

    /// The storage-level state machine, for reads.
    pub fn storage(&self) -> &StateMachine {
        &self.sm
    }

    /// A receiver of the last applied log index, updated after every commit.
    pub fn applied_index(&self) -> watch::Receiver<u64> {
        self.applied.subscribe()
    }

    fn to_log_entry(entry: Entry) -> LogEntry {
        let log_id = codec::encode(&entry.log_id);
        match entry.payload {
            EntryPayload::Blank => LogEntry {
                log_id,
                membership: None,
                batch: None,
            },
            EntryPayload::Normal(batch) => LogEntry {
                log_id,
                membership: None,
                batch: Some(batch),
            },
            EntryPayload::Membership(m) => LogEntry {
                log_id,
                membership: Some(codec::encode(&StoredMembership::new(Some(entry.log_id), m))),
                batch: None,
            },
        }
    }

    fn snapshot_from(stored: StoredSnapshot) -> Snapshot<TypeConfig> {
        Snapshot {
            meta: stored.meta,
            snapshot: Box::new(Cursor::new(stored.data)),
        }
    }
}

impl RaftStateMachine<TypeConfig> for StateMachineStore {
    type SnapshotBuilder = Self;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        let sm = self.sm.clone();
        blocking(StorageIOError::read_state_machine, move || {
            let state = sm.applied_state()?;
            decode_meta(&Image {
                last_applied: state.last_applied,
                membership: state.membership,
                data: Vec::new(),
            })
        })
        .await
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Vec<Outcome>>, StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<LogEntry> = entries.into_iter().map(Self::to_log_entry).collect();
        let Some(last) = entries.last() else {
            return Ok(Vec::new());
        };
        let last_index = codec::decode::<LogId>("log id", &last.log_id)
            .map_err(|e| io(StorageIOError::write_state_machine, e))?
            .index;
        let sm = self.sm.clone();
        let replies = blocking(StorageIOError::write_state_machine, move || {
            sm.apply(entries)
        })
        .await?;
        self.applied.send_replace(last_index);
        Ok(replies)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let image = Image {
            last_applied: meta.last_log_id.as_ref().map(codec::encode),
            membership: Some(codec::encode(&meta.last_membership)),
            data: snapshot.into_inner(),
        };
        let stored = codec::encode(&StoredSnapshot {
            meta: meta.clone(),
            data: image.data.clone(),
        });
        let sm = self.sm.clone();
        let signature = meta.signature();
        match tokio::task::spawn_blocking(move || sm.install(&image, &stored)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                return Err(
                    StorageIOError::write_snapshot(Some(signature), AnyError::new(&e)).into(),
                )
            }
            Err(e) => {
                return Err(
                    StorageIOError::write_snapshot(Some(signature), AnyError::new(&e)).into(),
                )
            }
        }
        self.applied
            .send_replace(meta.last_log_id.map_or(0, |id| id.index));
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        let sm = self.sm.clone();
        let stored = blocking(
            |e| StorageIOError::read_snapshot(None, e),
            move || {
                sm.current_snapshot()?
                    .map(|bytes| codec::decode::<StoredSnapshot>("snapshot", &bytes))
                    .transpose()
            },
        )
        .await?;
        Ok(stored.map(Self::snapshot_from))
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachineStore {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        let sm = self.sm.clone();
        let stored = blocking(
            |e| StorageIOError::write_snapshot(None, e),
            move || {
                let image = sm.export()?;
                let (last_log_id, last_membership) = decode_meta(&image)?;
                let snapshot_id = match last_log_id {
                    Some(id) => format!("{}-{}", id.leader_id, id.index),
                    None => "empty".to_string(),
                };
                let stored = StoredSnapshot {
                    meta: SnapshotMeta {
                        last_log_id,
                        last_membership,
                        snapshot_id,
                    },
                    data: image.data,
                };
                sm.save_snapshot(&codec::encode(&stored))?;
                Ok(stored)
            },
        )
        .await?;
        Ok(Self::snapshot_from(stored))
    }
}
