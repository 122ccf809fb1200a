//! The deterministic state machine: log entries in, state changes and
//! outcomes out.
//!
//! `apply` reads no clock, no randomness and no environment: time arrives as
//! `now_ms` in each [`Batch`]. A whole run of entries is applied in one redb
//! write transaction together with `last_applied` and the membership, so a
//! crash leaves either all of it or none, and replaying an entry is never
//! observed. Log ids and memberships are opaque bytes here: their type
//! belongs to the Raft layer, which this crate does not know.

use std::sync::Arc;

use redb::{Database, Durability, ReadOnlyTable, ReadTransaction, ReadableDatabase, ReadableTable};
use serde::{Deserialize, Serialize};

use crate::codec;
use crate::command::{ApplyCtx, Batch, Outcome};
use crate::delay_queue::{self, MessageRecord, QueueStats};
use crate::error::{Error, Result};
use crate::jobs::{self, JobRecord};
use crate::ledger::{self, LedgerRecord};
use crate::locks::{self, LockRecord};
use crate::runs::{self, RunRecord, RunState};
use crate::tables::{
    BytesTable, JOBS, JOB_REVISIONS, JOB_RUNS, LEDGER, LOCKS, QUEUES, QUEUE_DEAD, QUEUE_DUE,
    QUEUE_MESSAGES, RUNS, RUNS_BY_STATE, SM_META, STATE_TABLES, TIMERS, VARS,
};
use crate::timers;
use crate::vars::Vars;

const LAST_APPLIED: &str = "last_applied";
const MEMBERSHIP: &str = "membership";
const SNAPSHOT: &str = "snapshot";

/// One log entry as the state machine sees it.
#[derive(Debug, Clone)]
pub struct LogEntry {
    /// The entry's log id, encoded by the Raft layer; stored as `last_applied`.
    pub log_id: Vec<u8>,
    /// A membership entry's encoded membership, to be stored.
    pub membership: Option<Vec<u8>>,
    /// A normal entry's commands.
    pub batch: Option<Batch>,
}

/// Where the state machine stands, in the Raft layer's encoding.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppliedState {
    /// Encoded log id of the last applied entry.
    pub last_applied: Option<Vec<u8>>,
    /// Encoded membership as of that entry.
    pub membership: Option<Vec<u8>>,
}

/// The replicated state at one log position, as a snapshot carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    /// Encoded log id of the last entry included.
    pub last_applied: Option<Vec<u8>>,
    /// Encoded membership as of that entry.
    pub membership: Option<Vec<u8>>,
    /// Every state table, encoded (see `storage/FORMAT.md`).
    pub data: Vec<u8>,
}

#[derive(Serialize, Deserialize)]
struct TableDump {
    name: String,
    rows: Vec<(Vec<u8>, Vec<u8>)>,
}

/// The state machine over the node's redb file.
#[derive(Clone)]
pub struct StateMachine {
    db: Arc<Database>,
}

impl StateMachine {
    /// Wrap a database opened by [`crate::db::open`].
    pub fn new(db: Arc<Database>) -> Self {
        Self { db }
    }

    /// The last applied log id and the membership, as last stored.
    pub fn applied_state(&self) -> Result<AppliedState> {
        let txn = self.db.begin_read()?;
        let meta = txn.open_table(SM_META)?;
        let get = |k| -> Result<Option<Vec<u8>>> { Ok(meta.get(k)?.map(|v| v.value().to_vec())) };
        Ok(AppliedState {
            last_applied: get(LAST_APPLIED)?,
            membership: get(MEMBERSHIP)?,
        })
    }

    /// Apply `entries` in order, in one durable transaction; returns each
    /// entry's outcomes (none for blank and membership entries).
    pub fn apply(&self, entries: Vec<LogEntry>) -> Result<Vec<Vec<Outcome>>> {
        let Some(last) = entries.last() else {
            return Ok(Vec::new());
        };
        let last_log_id = last.log_id.clone();
        let mut txn = self.db.begin_write()?;
        // No fsync of its own: every entry applied here is already durable
        // in the Raft log, and after a crash openraft re-applies the log from
        // the `last_applied` that reached the disk. The log is only purged
        // behind a snapshot, and saving or installing a snapshot is a durable
        // commit, which in redb makes every earlier commit durable too; so the
        // entries needed to replay are always still in the log.
        txn.set_durability(Durability::None)?;
        let mut vars = Vars::load(&txn.open_table(VARS)?)?;
        let mut membership = None;
        let mut replies = Vec::with_capacity(entries.len());
        for entry in entries {
            if let Some(m) = entry.membership {
                membership = Some(m);
            }
            let Some(batch) = entry.batch else {
                replies.push(Vec::new());
                continue;
            };
            vars.log_now_ms = vars.log_now_ms.max(batch.now_ms);
            let mut ctx = ApplyCtx {
                txn: &txn,
                vars: &mut vars,
            };
            let outcomes = batch
                .commands
                .iter()
                .map(|cmd| cmd.apply(&mut ctx))
                .collect::<Result<Vec<_>>>()?;
            replies.push(outcomes);
        }
        vars.store(&txn)?;
        {
            let mut meta = txn.open_table(SM_META)?;
            meta.insert(LAST_APPLIED, last_log_id.as_slice())?;
            if let Some(m) = membership {
                meta.insert(MEMBERSHIP, m.as_slice())?;
            }
        }
        txn.commit()?;
        Ok(replies)
    }

    /// The whole replicated state, read in one consistent transaction.
    pub fn export(&self) -> Result<Image> {
        let txn = self.db.begin_read()?;
        let meta = txn.open_table(SM_META)?;
        let get = |k| -> Result<Option<Vec<u8>>> { Ok(meta.get(k)?.map(|v| v.value().to_vec())) };
        let mut dumps = Vec::with_capacity(STATE_TABLES.len());
        for def in STATE_TABLES {
            let table = txn.open_table(*def)?;
            let mut rows = Vec::new();
            for row in table.iter()? {
                let (k, v) = row?;
                rows.push((k.value().to_vec(), v.value().to_vec()));
            }
            dumps.push(TableDump {
                name: def.to_string(),
                rows,
            });
        }
        Ok(Image {
            last_applied: get(LAST_APPLIED)?,
            membership: get(MEMBERSHIP)?,
            data: codec::encode(&dumps),
        })
    }

    /// Replace the whole replicated state with `image` and remember `stored`
    /// (the snapshot as the Raft layer keeps it) as the current snapshot,
    /// all in one durable transaction.
    pub fn install(&self, image: &Image, stored: &[u8]) -> Result<()> {
        let dumps: Vec<TableDump> = codec::decode("snapshot data", &image.data)?;
        if let Some(unknown) = dumps
            .iter()
            .find(|d| !STATE_TABLES.iter().any(|t| t.to_string() == d.name))
        {
            return Err(Error::Incompatible(format!(
                "snapshot has unknown table {:?}",
                unknown.name
            )));
        }
        let txn = self.db.begin_write()?;
        for def in STATE_TABLES {
            let mut table = txn.open_table(*def)?;
            table.retain(|_, _| false)?;
            let name = def.to_string();
            for dump in dumps.iter().filter(|d| d.name == name) {
                for (k, v) in &dump.rows {
                    table.insert(k.as_slice(), v.as_slice())?;
                }
            }
        }
        {
            let mut meta = txn.open_table(SM_META)?;
            for (key, value) in [
                (LAST_APPLIED, &image.last_applied),
                (MEMBERSHIP, &image.membership),
            ] {
                match value {
                    Some(v) => meta.insert(key, v.as_slice())?,
                    None => meta.remove(key)?,
                };
            }
            meta.insert(SNAPSHOT, stored)?;
        }
        txn.commit()?;
        Ok(())
    }

    /// Remember `stored` as the current snapshot, durably (see `apply`).
    pub fn save_snapshot(&self, stored: &[u8]) -> Result<()> {
        let txn = self.db.begin_write()?;
        txn.open_table(SM_META)?.insert(SNAPSHOT, stored)?;
        txn.commit()?;
        Ok(())
    }

    /// The current snapshot, as last saved or installed.
    pub fn current_snapshot(&self) -> Result<Option<Vec<u8>>> {
        let txn = self.db.begin_read()?;
        let meta = txn.open_table(SM_META)?;
        Ok(meta.get(SNAPSHOT)?.map(|v| v.value().to_vec()))
    }

    /// Run `f` as if it were a command applied at `now_ms`, in its own
    /// transaction: for testing the APIs other commands call.
    #[cfg(test)]
    pub(crate) fn with_ctx<T>(
        &self,
        now_ms: u64,
        f: impl FnOnce(&mut ApplyCtx<'_>) -> Result<T>,
    ) -> Result<T> {
        let txn = self.db.begin_write()?;
        let mut vars = Vars::load(&txn.open_table(VARS)?)?;
        vars.log_now_ms = vars.log_now_ms.max(now_ms);
        let out = f(&mut ApplyCtx {
            txn: &txn,
            vars: &mut vars,
        })?;
        vars.store(&txn)?;
        txn.commit()?;
        Ok(out)
    }

    /// A consistent read-only view of the replicated state.
    pub fn read(&self) -> Result<ReadView> {
        Ok(ReadView {
            txn: self.db.begin_read()?,
        })
    }
}

/// A consistent read of the state at one applied position.
pub struct ReadView {
    txn: ReadTransaction,
}

impl ReadView {
    fn table(&self, def: BytesTable) -> Result<ReadOnlyTable<&'static [u8], &'static [u8]>> {
        Ok(self.txn.open_table(def)?)
    }

    /// The replicated scalars (`log_now`, …).
    pub fn vars(&self) -> Result<Vars> {
        Vars::load(&self.table(VARS)?)
    }

    /// A lock's record, live or lapsed.
    pub fn lock(&self, name: &str) -> Result<Option<LockRecord>> {
        locks::get(&self.table(LOCKS)?, name)
    }

    /// Every lock record in name order, live or lapsed.
    pub fn locks(&self) -> Result<Vec<(String, LockRecord)>> {
        locks::list(&self.table(LOCKS)?)
    }

    /// An idempotency key's record, live or expired but not yet collected.
    pub fn ledger(&self, key: &str) -> Result<Option<LedgerRecord>> {
        ledger::get(&self.table(LEDGER)?, key)
    }

    /// Every ledger record in key order, live or expired but not collected.
    pub fn ledger_records(&self) -> Result<Vec<(String, LedgerRecord)>> {
        ledger::list(&self.table(LEDGER)?)
    }

    /// A queue message in any state (acked ones until they are collected).
    pub fn queue_message(&self, queue: &str, id: &str) -> Result<Option<MessageRecord>> {
        delay_queue::read_message(&self.table(QUEUE_MESSAGES)?, queue, id)
    }

    /// A queue's counts, judged at `now_ms`; `None` if it has no messages.
    pub fn queue_stats(&self, queue: &str, now_ms: u64) -> Result<Option<QueueStats>> {
        delay_queue::stats(&self.table(QUEUES)?, &self.table(QUEUE_DUE)?, queue, now_ms)
    }

    /// Every queue with messages, in name order, with counts judged at `now_ms`.
    pub fn queues(&self, now_ms: u64) -> Result<Vec<QueueStats>> {
        let (queues, due) = (self.table(QUEUES)?, self.table(QUEUE_DUE)?);
        let mut out = Vec::new();
        for name in delay_queue::queue_names(&queues)? {
            out.extend(delay_queue::stats(&queues, &due, &name, now_ms)?);
        }
        Ok(out)
    }

    /// When the earliest waiting message of `queue` is due: what a
    /// long-polling lease sleeps until.
    pub fn queue_next_due(&self, queue: &str) -> Result<Option<u64>> {
        delay_queue::next_due(&self.table(QUEUE_DUE)?, queue)
    }

    /// Up to `limit` dead letters of `queue`, oldest death first.
    pub fn dead_letters(&self, queue: &str, limit: usize) -> Result<Vec<(String, MessageRecord)>> {
        delay_queue::dead_letters(
            &self.table(QUEUE_DEAD)?,
            &self.table(QUEUE_MESSAGES)?,
            queue,
            limit,
        )
    }

    /// How many rows `def` holds.
    #[cfg(test)]
    pub(crate) fn rows(&self, def: BytesTable) -> u64 {
        use redb::ReadableTableMetadata;
        self.table(def).unwrap().len().unwrap()
    }

    /// The earliest log time at which anything waits for a `Tick`.
    pub fn next_timer(&self) -> Result<Option<u64>> {
        timers::next(&self.table(TIMERS)?)
    }

    /// A job.
    pub fn job(&self, name: &str) -> Result<Option<JobRecord>> {
        jobs::get(&self.table(JOBS)?, name)
    }

    /// Every job, in name order.
    pub fn jobs(&self) -> Result<Vec<(String, JobRecord)>> {
        jobs::list(&self.table(JOBS)?)
    }

    /// The jobs changed (put, paused or resumed) after `jobs_revision`
    /// `revision`, with their records; deleted jobs are not listed.
    pub fn jobs_changed_after(&self, revision: u64) -> Result<Vec<(String, JobRecord)>> {
        let table = self.table(JOBS)?;
        let mut out = Vec::new();
        for name in jobs::changed_after(&self.table(JOB_REVISIONS)?, revision)? {
            if let Some(job) = jobs::get(&table, &name)? {
                out.push((name, job));
            }
        }
        Ok(out)
    }

    /// A run.
    pub fn run(&self, id: &str) -> Result<Option<RunRecord>> {
        runs::get(&self.table(RUNS)?, id)
    }

    /// A job's runs, newest first, at most `limit`.
    pub fn job_runs(&self, job: &str, limit: usize) -> Result<Vec<RunRecord>> {
        runs::of_job(&self.table(RUNS)?, &self.table(JOB_RUNS)?, job, limit)
    }

    /// Runs in `state`, most recently fired first, at most `limit`.
    pub fn runs_in_state(&self, state: RunState, limit: usize) -> Result<Vec<RunRecord>> {
        runs::in_state(
            &self.table(RUNS)?,
            &self.table(RUNS_BY_STATE)?,
            state,
            limit,
        )
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;
    use crate::command::{Command, LockAcquire, LockRelease, LockRenew};
    use crate::locks::LockOutcome;
    use crate::testutil::TestSm;

    #[test]
    fn state_and_last_applied_survive_reopening_the_file() {
        let mut t = TestSm::new();
        t.one(
            100,
            LockAcquire {
                name: "l".into(),
                owner: "a".into(),
                ttl_ms: 1_000,
            },
        );
        let path = t.dir.path().join("node.redb");
        let exported = t.sm.export().unwrap();
        drop(t.sm);
        let reopened = StateMachine::new(crate::db::open(&path).unwrap());
        assert_eq!(reopened.export().unwrap(), exported);
        let applied = reopened.applied_state().unwrap().last_applied;
        assert_eq!(applied, Some(1u64.to_be_bytes().to_vec()));
        assert_eq!(
            reopened.read().unwrap().lock("l").unwrap().unwrap().owner,
            "a"
        );
    }

    #[test]
    fn install_replaces_everything_and_keeps_the_snapshot() {
        let mut source = TestSm::new();
        let mut target = TestSm::new();
        let lock = |name: &str| LockAcquire {
            name: name.into(),
            owner: "a".into(),
            ttl_ms: 1_000,
        };
        source.one(10, lock("kept"));
        target.one(10, lock("dropped"));
        let image = source.sm.export().unwrap();
        target.sm.install(&image, b"blob").unwrap();
        assert_eq!(target.sm.export().unwrap(), image);
        assert_eq!(
            target.sm.current_snapshot().unwrap().as_deref(),
            Some(&b"blob"[..])
        );
        assert!(target.sm.read().unwrap().lock("dropped").unwrap().is_none());
    }

    #[test]
    fn a_membership_entry_is_stored_with_last_applied() {
        let t = TestSm::new();
        let entry = LogEntry {
            log_id: vec![7],
            membership: Some(vec![1, 2, 3]),
            batch: None,
        };
        assert_eq!(
            t.sm.apply(vec![entry]).unwrap(),
            vec![Vec::<Outcome>::new()]
        );
        assert_eq!(
            t.sm.applied_state().unwrap(),
            AppliedState {
                last_applied: Some(vec![7]),
                membership: Some(vec![1, 2, 3])
            }
        );
    }

    /// An independent model of the lock rules of SPEC §4, written from the
    /// spec rather than from the implementation.
    #[derive(Default)]
    struct LockModel {
        now: u64,
        seq: u64,
        held: BTreeMap<String, (String, u64, u64, u64)>, // name -> (owner, token, acquired, expires)
    }

    impl LockModel {
        fn live(&self, name: &str) -> Option<&(String, u64, u64, u64)> {
            self.held.get(name).filter(|(_, _, _, exp)| self.now < *exp)
        }

        fn holder(&self, name: &str) -> Option<LockRecord> {
            self.live(name)
                .map(|(owner, token, acquired, exp)| LockRecord {
                    owner: owner.clone(),
                    token: *token,
                    acquired_at_ms: *acquired,
                    expires_at_ms: *exp,
                })
        }

        fn apply(&mut self, now: u64, cmd: &Command) -> LockOutcome {
            self.now = self.now.max(now);
            match cmd {
                Command::LockAcquire(c) => match self.live(&c.name).cloned() {
                    Some((owner, _, _, exp)) if owner != c.owner => LockOutcome::Held {
                        owner,
                        expires_at_ms: exp,
                    },
                    Some((_, token, acquired, _)) => {
                        let exp = self.now + c.ttl_ms;
                        let held = (c.owner.clone(), token, acquired, exp);
                        self.held.insert(c.name.clone(), held);
                        LockOutcome::Granted {
                            token,
                            acquired_at_ms: acquired,
                            expires_at_ms: exp,
                        }
                    }
                    None => {
                        self.seq += 1;
                        let exp = self.now + c.ttl_ms;
                        let held = (c.owner.clone(), self.seq, self.now, exp);
                        self.held.insert(c.name.clone(), held);
                        LockOutcome::Granted {
                            token: self.seq,
                            acquired_at_ms: self.now,
                            expires_at_ms: exp,
                        }
                    }
                },
                Command::LockRenew(c) => match self.live(&c.name).cloned() {
                    Some((owner, token, acquired, _)) if owner == c.owner && token == c.token => {
                        let exp = self.now + c.ttl_ms;
                        self.held
                            .insert(c.name.clone(), (owner, token, acquired, exp));
                        LockOutcome::Renewed {
                            token,
                            expires_at_ms: exp,
                        }
                    }
                    _ => LockOutcome::NotHolder {
                        holder: self.holder(&c.name),
                    },
                },
                Command::LockRelease(c) => match self.live(&c.name).cloned() {
                    Some((owner, token, _, _)) if owner == c.owner && token == c.token => {
                        self.held.remove(&c.name);
                        LockOutcome::Released {
                            released_at_ms: self.now,
                        }
                    }
                    _ => LockOutcome::NotHolder {
                        holder: self.holder(&c.name),
                    },
                },
                other => unreachable!("the lock model only sees lock commands: {other:?}"),
            }
        }
    }

    fn lock_command() -> impl Strategy<Value = Command> {
        let name = prop::sample::select(vec!["a", "b", "c"]).prop_map(String::from);
        let owner = prop::sample::select(vec!["x", "y", "z"]).prop_map(String::from);
        prop_oneof![
            (name.clone(), owner.clone(), 1u64..100).prop_map(|(name, owner, ttl_ms)| {
                Command::LockAcquire(LockAcquire {
                    name,
                    owner,
                    ttl_ms,
                })
            }),
            (name.clone(), owner.clone(), 0u64..8, 1u64..100).prop_map(
                |(name, owner, token, ttl_ms)| {
                    Command::LockRenew(LockRenew {
                        name,
                        owner,
                        token,
                        ttl_ms,
                    })
                }
            ),
            (name, owner, 0u64..8).prop_map(|(name, owner, token)| {
                Command::LockRelease(LockRelease { name, owner, token })
            }),
        ]
    }

    /// A log: entries of (now_ms, commands); clocks may go backwards.
    fn log() -> impl Strategy<Value = Vec<(u64, Vec<Command>)>> {
        prop::collection::vec(
            (0u64..400, prop::collection::vec(lock_command(), 1..4)),
            1..40,
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        #[test]
        fn locks_match_the_model(log in log()) {
            let mut t = TestSm::new();
            let mut model = LockModel::default();
            for (now, commands) in log {
                let outcomes = t.apply(now, commands.clone());
                for (cmd, got) in commands.iter().zip(outcomes) {
                    prop_assert_eq!(got, Outcome::Lock(model.apply(now, cmd)));
                }
            }
        }

        #[test]
        fn two_replicas_fed_the_same_log_reach_the_same_state(log in log()) {
            let mut a = TestSm::new();
            let mut b = TestSm::new();
            for (now, commands) in log {
                a.apply(now, commands.clone());
                b.apply(now, commands);
            }
            prop_assert_eq!(a.sm.export().unwrap(), b.sm.export().unwrap());
        }

        #[test]
        fn replicas_agree_on_every_kind_of_command(
            log in crate::delay_queue::model::timed_log(prop_oneof![
                lock_command(),
                crate::delay_queue::model::queue_command(),
                crate::ledger::model::ledger_command(),
                crate::runs::strategy::job_command(),
            ].boxed())
        ) {
            let mut a = TestSm::new();
            let mut b = TestSm::new();
            let mut clock = 0u64;
            for (step, _, commands) in log {
                clock += step;
                prop_assert_eq!(a.apply(clock, commands.clone()), b.apply(clock, commands));
            }
            prop_assert_eq!(a.sm.export().unwrap(), b.sm.export().unwrap());
            // A replica that installs the other's snapshot ends up the same.
            let c = TestSm::new();
            c.sm.install(&a.sm.export().unwrap(), b"snap").unwrap();
            prop_assert_eq!(c.sm.export().unwrap(), a.sm.export().unwrap());
        }
    }
}
