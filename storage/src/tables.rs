//! Every redb table gnomon keeps, in one place, next to the schema version.
//!
//! Two groups share the node's one redb file:
//! * Raft's own tables ([`RAFT_LOG`], [`RAFT_META`]), written by the log store.
//! * The state machine's tables. [`SM_META`] holds what openraft needs back
//!   after a restart (last applied log id, membership) and the current
//!   snapshot; the tables in [`STATE_TABLES`] hold the replicated state
//!   itself and are exactly what a snapshot carries.
//!
//! Key and value encodings are documented in `storage/FORMAT.md`.

use redb::TableDefinition;

/// Bumped whenever a table's key or value encoding changes incompatibly.
pub const SCHEMA_VERSION: u64 = 1;

/// Key in [`SM_META`] holding [`SCHEMA_VERSION`] as 8 big-endian bytes.
pub const SCHEMA_VERSION_KEY: &str = "schema_version";

/// A table whose keys and values are both byte strings with documented encodings.
pub type BytesTable = TableDefinition<'static, &'static [u8], &'static [u8]>;

/// Raft log entries by index.
pub const RAFT_LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("raft_log");

/// Raft's durable scalars: `vote`, `committed`, `last_purged`.
pub const RAFT_META: TableDefinition<&str, &[u8]> = TableDefinition::new("raft_meta");

/// State-machine bookkeeping: `last_applied`, `membership`, `snapshot`,
/// and [`SCHEMA_VERSION_KEY`].
pub const SM_META: TableDefinition<&str, &[u8]> = TableDefinition::new("sm_meta");

/// Replicated scalars such as `log_now` and the fencing-token sequence.
pub const VARS: BytesTable = TableDefinition::new("vars");

/// Locks by name.
pub const LOCKS: BytesTable = TableDefinition::new("locks");

/// Idempotency-ledger records by key.
pub const LEDGER: BytesTable = TableDefinition::new("ledger");

/// Delay-queue messages by queue and id, in every state (waiting, leased,
/// dead, and acked tombstones kept for the dedup window).
pub const QUEUE_MESSAGES: BytesTable = TableDefinition::new("queue_messages");

/// Waiting messages by queue, due time and sequence: what a lease reads.
pub const QUEUE_DUE: BytesTable = TableDefinition::new("queue_due");

/// Dead letters by queue, time of death and sequence.
pub const QUEUE_DEAD: BytesTable = TableDefinition::new("queue_dead");

/// Dedup keys by queue, pointing at the message that first used them.
pub const QUEUE_DEDUP: BytesTable = TableDefinition::new("queue_dedup");

/// Per-queue counters and enqueue sequence, by queue name.
pub const QUEUES: BytesTable = TableDefinition::new("queues");

/// Everything waiting on the log's clock (a lease to lapse, a record to
/// expire, garbage to collect), by instant: what a `Tick` works through.
pub const TIMERS: BytesTable = TableDefinition::new("timers");

/// Job definitions, cursors and bookkeeping, by job name.
pub const JOBS: BytesTable = TableDefinition::new("jobs");

/// Which job changed at which `jobs_revision`: `u64be(revision)` → name.
/// Each live job has one row, at its latest change, so a reader can ask
/// for just the jobs changed since the revision it last saw.
pub const JOB_REVISIONS: BytesTable = TableDefinition::new("job_revisions");

/// Runs by run id.
pub const RUNS: BytesTable = TableDefinition::new("runs");

/// Each job's runs in the order they were made: `job 0x00 u64be(seq)` → run id.
pub const JOB_RUNS: BytesTable = TableDefinition::new("job_runs");

/// Runs by state: `u8(state) u64be(fired_at) run_id` → empty.
pub const RUNS_BY_STATE: BytesTable = TableDefinition::new("runs_by_state");

/// Each node's last `AttemptStart` that took something: `u64be(node)` →
/// its lease token and the `(run id, attempt)` pairs it started, so that a
/// retry of that command is answered with them instead of taking more.
pub const ATTEMPT_STARTS: BytesTable = TableDefinition::new("attempt_starts");

/// The tables that make up the replicated state, in snapshot order.
pub const STATE_TABLES: &[BytesTable] = &[
    VARS,
    LOCKS,
    LEDGER,
    QUEUE_MESSAGES,
    QUEUE_DUE,
    QUEUE_DEAD,
    QUEUE_DEDUP,
    QUEUES,
    TIMERS,
    JOBS,
    JOB_REVISIONS,
    RUNS,
    JOB_RUNS,
    RUNS_BY_STATE,
    ATTEMPT_STARTS,
];
