//! The Raft log in redb: entries, vote, committed index and purge point.
//!
//! Every write commits a durable redb transaction (fdatasync) before it is
//! acknowledged: a vote or an append that is not on disk is never reported
//! as done. Commits run on the blocking pool, not on the async executor, so
//! an fsync never stalls the network or the API.

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

use gnomon_storage::codec;
use gnomon_storage::tables::{RAFT_LOG, RAFT_META};
use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{AnyError, OptionalSend, RaftLogReader, StorageIOError};
use redb::{Database, ReadableDatabase, ReadableTable};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::types::{Entry, LogId, StorageError, TypeConfig, Vote};

const VOTE: &str = "vote";
const COMMITTED: &str = "committed";
const LAST_PURGED: &str = "last_purged";

/// The log store over the node's redb file. Cheap to clone: clones share
/// the database.
#[derive(Clone)]
pub struct LogStore {
    db: Arc<Database>,
}

type IoCtor = fn(AnyError) -> StorageIOError<u64>;

fn io(ctor: IoCtor, e: impl std::error::Error + 'static) -> StorageError {
    ctor(AnyError::new(&e)).into()
}

impl LogStore {
    /// A log store over `db`, opened by `gnomon_storage::db::open`.
    pub fn new(db: Arc<Database>) -> Self {
        Self { db }
    }

    /// Run `f` against the database on the blocking pool.
    async fn blocking<T, F>(&self, ctor: IoCtor, f: F) -> Result<T, StorageError>
    where
        T: Send + 'static,
        F: FnOnce(&Database) -> Result<T, gnomon_storage::Error> + Send + 'static,
    {
        let db = self.db.clone();
        match tokio::task::spawn_blocking(move || f(&db)).await {
            Ok(result) => result.map_err(|e| io(ctor, e)),
            Err(join) => Err(io(ctor, join)),
        }
    }

    /// Write `entries` in one durable transaction; returns once they are on disk.
    pub(crate) async fn write_entries(&self, entries: Vec<Entry>) -> Result<(), StorageError> {
        let encoded: Vec<(u64, Vec<u8>)> = entries
            .iter()
            .map(|e| (e.log_id.index, codec::encode(e)))
            .collect();
        self.blocking(StorageIOError::write_logs, move |db| {
            let txn = db.begin_write()?;
            {
                let mut table = txn.open_table(RAFT_LOG)?;
                for (index, bytes) in &encoded {
                    table.insert(*index, bytes.as_slice())?;
                }
            }
            txn.commit()?;
            Ok(())
        })
        .await
    }

    fn read_meta<T: DeserializeOwned>(
        db: &Database,
        key: &str,
    ) -> Result<Option<T>, gnomon_storage::Error> {
        let txn = db.begin_read()?;
        let table = txn.open_table(RAFT_META)?;
        let value = table.get(key)?;
        value
            .map(|v| codec::decode(meta_name(key), v.value()))
            .transpose()
    }

    fn write_meta<T: Serialize>(
        db: &Database,
        key: &str,
        value: &T,
    ) -> Result<(), gnomon_storage::Error> {
        let txn = db.begin_write()?;
        txn.open_table(RAFT_META)?
            .insert(key, codec::encode(value).as_slice())?;
        txn.commit()?;
        Ok(())
    }
}

fn meta_name(key: &str) -> &'static str {
    match key {
        VOTE => "vote",
        COMMITTED => "committed log id",
        _ => "purged log id",
    }
}

fn to_bounds(range: impl RangeBounds<u64>) -> (Bound<u64>, Bound<u64>) {
    (range.start_bound().cloned(), range.end_bound().cloned())
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let bounds = to_bounds(range);
        self.blocking(StorageIOError::read_logs, move |db| {
            let txn = db.begin_read()?;
            let table = txn.open_table(RAFT_LOG)?;
            let mut entries = Vec::new();
            for row in table.range::<u64>(bounds)? {
                let (_, v) = row?;
                entries.push(codec::decode("log entry", v.value())?);
            }
            Ok(entries)
        })
        .await
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        self.blocking(StorageIOError::read_logs, |db| {
            let last_purged: Option<LogId> = Self::read_meta(db, LAST_PURGED)?;
            let txn = db.begin_read()?;
            let table = txn.open_table(RAFT_LOG)?;
            let last = match table.last()? {
                Some((_, v)) => Some(codec::decode::<Entry>("log entry", v.value())?.log_id),
                None => last_purged,
            };
            Ok(LogState {
                last_purged_log_id: last_purged,
                last_log_id: last,
            })
        })
        .await
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        let vote = *vote;
        self.blocking(StorageIOError::write_vote, move |db| {
            Self::write_meta(db, VOTE, &vote)
        })
        .await
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        self.blocking(StorageIOError::read_vote, |db| Self::read_meta(db, VOTE))
            .await
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        self.blocking(StorageIOError::write, move |db| {
            Self::write_meta(db, COMMITTED, &committed)
        })
        .await
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        self.blocking(StorageIOError::read, |db| {
            Ok(Self::read_meta::<Option<LogId>>(db, COMMITTED)?.flatten())
        })
        .await
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let result = self.write_entries(entries.into_iter().collect()).await;
        match &result {
            Ok(()) => callback.log_io_completed(Ok(())),
            Err(e) => callback.log_io_completed(Err(std::io::Error::other(e.to_string()))),
        }
        result
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.blocking(StorageIOError::write_logs, move |db| {
            let txn = db.begin_write()?;
            txn.open_table(RAFT_LOG)?
                .retain_in(log_id.index.., |_, _| false)?;
            txn.commit()?;
            Ok(())
        })
        .await
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.blocking(StorageIOError::write_logs, move |db| {
            let txn = db.begin_write()?;
            txn.open_table(RAFT_META)?
                .insert(LAST_PURGED, codec::encode(&log_id).as_slice())?;
            txn.open_table(RAFT_LOG)?
                .retain_in(..=log_id.index, |_, _| false)?;
            txn.commit()?;
            Ok(())
        })
        .await
    }
}
