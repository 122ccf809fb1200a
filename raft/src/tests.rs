//! openraft's storage suite against the redb log store and state machine,
//! plus reopen tests: the suite does not check durability.

use gnomon_storage::command::{Batch, Command, LockAcquire};
use gnomon_storage::sm::StateMachine;
use openraft::storage::{RaftLogStorage, RaftStateMachine};
use openraft::testing::{StoreBuilder, Suite};
use openraft::{CommittedLeaderId, EntryPayload, RaftLogReader, RaftSnapshotBuilder};
use tempfile::TempDir;

use crate::log_store::LogStore;
use crate::state_machine::StateMachineStore;
use crate::types::{Entry, LogId, StorageError, TypeConfig, Vote};

fn open(dir: &std::path::Path) -> (LogStore, StateMachineStore) {
    let db = gnomon_storage::db::open(&dir.join("node.redb")).unwrap();
    let sm = StateMachineStore::new(StateMachine::new(db.clone())).unwrap();
    (LogStore::new(db), sm)
}

struct RedbBuilder;

impl StoreBuilder<TypeConfig, LogStore, StateMachineStore, TempDir> for RedbBuilder {
    async fn build(&self) -> Result<(TempDir, LogStore, StateMachineStore), StorageError> {
        let dir = tempfile::tempdir().unwrap();
        let (log, sm) = open(dir.path());
        Ok((dir, log, sm))
    }
}

/// The suite builds its own runtime, so this is a plain `#[test]`.
#[test]
fn openraft_storage_suite() -> Result<(), StorageError> {
    Suite::test_all(RedbBuilder)
}

fn log_id(term: u64, index: u64) -> LogId {
    LogId::new(CommittedLeaderId::new(term, 1), index)
}

fn lock_entry(term: u64, index: u64, now_ms: u64) -> Entry {
    Entry {
        log_id: log_id(term, index),
        payload: EntryPayload::Normal(Batch {
            now_ms,
            commands: vec![Command::LockAcquire(LockAcquire {
                name: format!("lock-{index}"),
                owner: "a".into(),
                ttl_ms: 1_000,
            })],
        }),
    }
}

#[tokio::test]
async fn vote_log_and_purge_point_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (mut log, _) = open(dir.path());
        let vote = Vote::new(3, 2);
        log.save_vote(&vote).await.unwrap();
        log.write_entries((1..=5).map(|i| lock_entry(3, i, i)).collect())
            .await
            .unwrap();
        log.save_committed(Some(log_id(3, 4))).await.unwrap();
        log.purge(log_id(3, 2)).await.unwrap();
        log.truncate(log_id(3, 5)).await.unwrap();
    }
    let (mut log, _) = open(dir.path());
    assert_eq!(log.read_vote().await.unwrap(), Some(Vote::new(3, 2)));
    assert_eq!(log.read_committed().await.unwrap(), Some(log_id(3, 4)));
    let state = log.get_log_state().await.unwrap();
    assert_eq!(state.last_purged_log_id, Some(log_id(3, 2)));
    assert_eq!(state.last_log_id, Some(log_id(3, 4)));
    let entries = log.try_get_log_entries(0..10).await.unwrap();
    let indexes: Vec<u64> = entries.iter().map(|e| e.log_id.index).collect();
    assert_eq!(indexes, vec![3, 4]);
}

#[tokio::test]
async fn applied_state_and_snapshot_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let built_meta = {
        let (_, mut sm) = open(dir.path());
        let replies = sm
            .apply(
                (1..=3)
                    .map(|i| lock_entry(1, i, 100 * i))
                    .collect::<Vec<_>>(),
            )
            .await
            .unwrap();
        assert_eq!(replies.len(), 3);
        let mut builder = sm.get_snapshot_builder().await;
        builder.build_snapshot().await.unwrap().meta
    };
    let (_, mut sm) = open(dir.path());
    let (applied, _) = sm.applied_state().await.unwrap();
    assert_eq!(applied, Some(log_id(1, 3)));
    assert_eq!(*sm.applied_index().borrow(), 3);
    let current = sm.get_current_snapshot().await.unwrap().unwrap();
    assert_eq!(current.meta, built_meta);
    let view = sm.storage().read().unwrap();
    assert_eq!(view.locks().unwrap().len(), 3);
    assert_eq!(view.vars().unwrap().log_now_ms, 300);
}

#[tokio::test]
async fn an_installed_snapshot_replaces_state_and_survives_reopening() {
    let source_dir = tempfile::tempdir().unwrap();
    let (_, mut source) = open(source_dir.path());
    source
        .apply((1..=4).map(|i| lock_entry(1, i, i)).collect::<Vec<_>>())
        .await
        .unwrap();
    let snapshot = source
        .get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    {
        let (_, mut sm) = open(dir.path());
        sm.apply(vec![lock_entry(1, 1, 1)]).await.unwrap();
        sm.install_snapshot(&snapshot.meta, snapshot.snapshot)
            .await
            .unwrap();
    }
    let (_, mut sm) = open(dir.path());
    assert_eq!(sm.applied_state().await.unwrap().0, Some(log_id(1, 4)));
    assert_eq!(sm.storage().read().unwrap().locks().unwrap().len(), 4);
    assert_eq!(
        sm.get_current_snapshot().await.unwrap().unwrap().meta,
        snapshot.meta
    );
}
