//! Jobs: what the state machine keeps of each job, and its cursor.
//!
//! The definition a user sent (schedule, zone, target, …) is kept as
//! canonical JSON text: the state machine never evaluates a schedule or
//! calls a target, so it only keeps, typed, what it acts on itself —
//! whether the job is enabled, its overlap policy, its retry tiers, its
//! history limit — and the **cursor**: the last slot the job has handled.
//! A slot at or before the cursor is never fired again, whoever leads and
//! whatever any clock says (SPEC §2).

use redb::{ReadableTable, Table, WriteTransaction};
use serde::{Deserialize, Serialize};

use crate::codec;
use crate::error::Result;
use crate::tables::JOB_REVISIONS;
use crate::vars::Vars;

/// What happens to a slot that comes while an earlier run is unfinished.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Concurrency {
    /// Record the new slot as `skipped` (reason `overlap`).
    #[default]
    Forbid,
    /// Run both.
    Allow,
    /// Cancel the unfinished run and start the new one.
    Replace,
}

/// What applying a job command did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum JobOutcome {
    /// The job is stored at `version`.
    Saved {
        /// Its version now.
        version: u64,
        /// Whether this made it.
        created: bool,
    },
    /// The job and its history are gone; its unfinished runs were cancelled.
    Deleted {
        /// How many runs were unfinished.
        cancelled: u32,
    },
    /// No job has this name.
    NotFound,
}

/// A job as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobRecord {
    /// Bumped by every change.
    pub version: u64,
    /// The job body as accepted, as canonical JSON.
    pub definition: String,
    /// The schedule's identity (expression, zone, dialect, DST policy): a
    /// change starts the new schedule from the moment of the change.
    pub schedule_key: String,
    /// False while paused.
    pub enabled: bool,
    /// The overlap policy.
    pub concurrency: Concurrency,
    /// `backoff_ms[i]` is the delay before attempt `i + 2`.
    pub backoff_ms: Vec<u64>,
    /// Runs kept in the history.
    pub history_limit: u32,
    /// The last slot handled (fired, skipped or missed), Unix ms.
    pub cursor_ms: u64,
    /// `log_now` when the job was created.
    pub created_at_ms: u64,
    /// `log_now` of the last change.
    pub updated_at_ms: u64,
    /// Runs ever made: the next run's sequence number.
    pub run_seq: u64,
    /// Runs in the history now.
    pub history_len: u64,
    /// Runs not yet finished (pending, running, retrying), oldest first.
    pub unfinished: Vec<String>,
    /// The `jobs_revision` of its last change to definition or enabled state.
    pub revision: u64,
}

impl JobRecord {
    /// Attempts a run gets in all: one, plus one per retry tier.
    pub fn max_attempts(&self) -> u32 {
        u32::try_from(self.backoff_ms.len()).unwrap_or(u32::MAX - 1) + 1
    }
}

/// Read a job.
pub(crate) fn get(
    table: &impl ReadableTable<&'static [u8], &'static [u8]>,
    name: &str,
) -> Result<Option<JobRecord>> {
    table
        .get(name.as_bytes())?
        .map(|v| codec::decode("job record", v.value()))
        .transpose()
}

/// Store a job.
pub(crate) fn put(
    table: &mut Table<&'static [u8], &'static [u8]>,
    name: &str,
    job: &JobRecord,
) -> Result<()> {
    table.insert(name.as_bytes(), codec::encode(job).as_slice())?;
    Ok(())
}

/// Record a change to `job` (definition or enabled state): take the next
/// `jobs_revision` and move the job's row in `job_revisions` to it.
pub(crate) fn touch(
    txn: &WriteTransaction,
    vars: &mut Vars,
    name: &str,
    job: &mut JobRecord,
) -> Result<()> {
    let mut revisions = txn.open_table(JOB_REVISIONS)?;
    revisions.remove(job.revision.to_be_bytes().as_slice())?;
    vars.jobs_revision += 1;
    job.revision = vars.jobs_revision;
    revisions.insert(job.revision.to_be_bytes().as_slice(), name.as_bytes())?;
    Ok(())
}

/// The job is gone: drop its row in `job_revisions` (a reader learns of a
/// deletion when its next decision about the job finds no job).
pub(crate) fn forget(txn: &WriteTransaction, vars: &mut Vars, job: &JobRecord) -> Result<()> {
    txn.open_table(JOB_REVISIONS)?
        .remove(job.revision.to_be_bytes().as_slice())?;
    vars.jobs_revision += 1;
    Ok(())
}

/// Names of the jobs changed after `revision`, in the order of their
/// latest change.
pub(crate) fn changed_after(
    revisions: &impl ReadableTable<&'static [u8], &'static [u8]>,
    revision: u64,
) -> Result<Vec<String>> {
    let start = revision.saturating_add(1).to_be_bytes();
    let mut names = Vec::new();
    for row in revisions.range::<&[u8]>(start.as_slice()..)? {
        let (_, name) = row?;
        names.push(String::from_utf8_lossy(name.value()).into_owned());
    }
    Ok(names)
}

/// Every job, in name order.
pub(crate) fn list(
    table: &impl ReadableTable<&'static [u8], &'static [u8]>,
) -> Result<Vec<(String, JobRecord)>> {
    let mut out = Vec::new();
    for row in table.iter()? {
        let (k, v) = row?;
        out.push((
            String::from_utf8_lossy(k.value()).into_owned(),
            codec::decode("job record", v.value())?,
        ));
    }
    Ok(out)
}
