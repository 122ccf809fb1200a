//! Runs: one per fired (or skipped, or missed) slot, with every attempt.
//!
//! A run's id is derived from its job and slot by the proposer, so one slot
//! has one run, ever. Runs are indexed by job (in the order they were made,
//! for history and its garbage collection) and by state (for
//! `GET /v1/runs?state=dead`).

use redb::{ReadableTable, Table, WriteTransaction};
use serde::{Deserialize, Serialize};

use crate::codec;
use crate::error::Result;
use crate::jobs::JobRecord;
use crate::tables::{JOB_RUNS, RUNS, RUNS_BY_STATE};

/// Where a run stands (SPEC §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
// The discriminants are the state's byte in `runs_by_state` keys.
pub enum RunState {
    /// Waiting for a worker.
    Pending = 0,
    /// An attempt is under way.
    Running = 1,
    /// An attempt succeeded.
    Succeeded = 2,
    /// An attempt failed; the next waits for its backoff.
    Retrying = 3,
    /// Every attempt failed.
    Dead = 4,
    /// Not run: an earlier run was unfinished (`concurrency: forbid`).
    Skipped = 5,
    /// Not run: the slot misfired and the policy did not run it.
    Missed = 6,
    /// Stopped: replaced by a newer run, or its job was deleted.
    Cancelled = 7,
}

impl RunState {
    /// Every state, for parsing and listing.
    pub const ALL: [RunState; 8] = [
        RunState::Pending,
        RunState::Running,
        RunState::Succeeded,
        RunState::Retrying,
        RunState::Dead,
        RunState::Skipped,
        RunState::Missed,
        RunState::Cancelled,
    ];

    /// The state's name in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Pending => "pending",
            RunState::Running => "running",
            RunState::Succeeded => "succeeded",
            RunState::Retrying => "retrying",
            RunState::Dead => "dead",
            RunState::Skipped => "skipped",
            RunState::Missed => "missed",
            RunState::Cancelled => "cancelled",
        }
    }

    /// The state named `name` in the API.
    pub fn parse(name: &str) -> Option<RunState> {
        RunState::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// Whether nothing more will happen to the run.
    pub fn is_final(self) -> bool {
        !matches!(
            self,
            RunState::Pending | RunState::Running | RunState::Retrying
        )
    }

    fn code(self) -> u8 {
        self as u8
    }
}

/// How an attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AttemptResult {
    /// A 2xx, or exit status 0.
    Succeeded,
    /// Any other status, or an error reaching the target.
    Failed,
    /// The job's timeout passed.
    TimedOut,
    /// Stopped because its run was cancelled.
    Cancelled,
    /// Its worker stopped renewing the lease (crashed or cut off).
    Lost,
    /// Its node shut down and gave it back before it finished; it does not
    /// count against the run's attempts.
    HandedBack,
}

impl AttemptResult {
    /// The outcome's name in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            AttemptResult::Succeeded => "succeeded",
            AttemptResult::Failed => "failed",
            AttemptResult::TimedOut => "timed_out",
            AttemptResult::Cancelled => "cancelled",
            AttemptResult::Lost => "lost",
            AttemptResult::HandedBack => "handed_back",
        }
    }
}

/// One attempt of a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    /// From 1.
    pub n: u32,
    /// The node whose worker ran it.
    pub node: u64,
    /// The job's version the attempt ran.
    pub job_version: u64,
    /// Its fencing token.
    pub fencing_token: u64,
    /// The queue lease it ran under.
    pub lease_token: String,
    /// `log_now` when it was leased.
    pub started_at_ms: u64,
    /// `log_now` when its result was recorded.
    pub finished_at_ms: Option<u64>,
    /// How it ended; `None` while running.
    pub result: Option<AttemptResult>,
    /// HTTP status, exit code, or minus the signal.
    pub status: Option<i64>,
    /// What the target answered or printed, at most 64 KiB.
    pub output: String,
    /// Why it could not run or complete, if so.
    pub error: Option<String>,
}

/// A run as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunRecord {
    /// Derived from job and slot (or from a trigger's id).
    pub id: String,
    /// The job.
    pub job: String,
    /// The job's version when the run was made.
    pub job_version: u64,
    /// Order within the job's runs.
    pub seq: u64,
    /// The slot, Unix ms (for a missed range, its first slot).
    pub scheduled_for_ms: u64,
    /// `log_now` when the run was made.
    pub fired_at_ms: u64,
    /// Made by `POST /v1/jobs/{name}/trigger`, not by the schedule.
    pub manual: bool,
    /// Where it stands.
    pub state: RunState,
    /// Why it is skipped, missed, cancelled or dead.
    pub reason: Option<String>,
    /// Slots this record stands for: 1, or more for a summarised gap.
    pub slots: u64,
    /// The last slot a summarised gap covers.
    pub last_slot_ms: u64,
    /// Every attempt so far.
    pub attempts: Vec<Attempt>,
    /// When the next attempt is due, while retrying.
    pub next_attempt_at_ms: Option<u64>,
    /// `log_now` when it reached a final state.
    pub finished_at_ms: Option<u64>,
}

impl RunRecord {
    /// Attempts that count against the job's limit (handed-back ones do not).
    pub fn counted_attempts(&self) -> u32 {
        let n = self
            .attempts
            .iter()
            .filter(|a| a.result != Some(AttemptResult::HandedBack))
            .count();
        u32::try_from(n).unwrap_or(u32::MAX)
    }
}

/// An attempt a worker may now run, as `AttemptStart` hands it out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StartedAttempt {
    /// The run.
    pub run_id: String,
    /// Its job.
    pub job: String,
    /// The job's version, whose definition follows.
    pub job_version: u64,
    /// The job's definition (canonical JSON): the target to call.
    pub definition: String,
    /// The slot, Unix ms.
    pub scheduled_for_ms: u64,
    /// The attempt's number, from 1.
    pub attempt: u32,
    /// The attempt's fencing token.
    pub fencing_token: u64,
    /// The lease to renew and finish under.
    pub lease_token: String,
    /// When the lease lapses unless renewed.
    pub lease_expires_at_ms: u64,
}

/// What applying a job-slot, trigger or attempt command did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RunOutcome {
    /// The run was made or changed and is now in `state`.
    Recorded {
        /// The run.
        run_id: String,
        /// Its state now.
        state: RunState,
    },
    /// The job changed since the proposer looked at it; nothing changed.
    Stale {
        /// The job's current version.
        version: u64,
    },
    /// The slot is at or before the job's cursor: it was handled already.
    AlreadyHandled {
        /// The job's cursor.
        cursor_ms: u64,
    },
    /// The job is paused.
    Disabled,
    /// No job has this name.
    JobNotFound,
    /// No run has this id.
    RunNotFound,
    /// The run has no such attempt under this lease.
    AttemptNotFound,
    /// Attempts a worker may run now (none if none was due).
    Started(Vec<StartedAttempt>),
}

fn job_runs_key(job: &str, seq: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(job.len() + 9);
    k.extend_from_slice(job.as_bytes());
    k.push(0);
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

fn job_prefix(job: &str) -> (Vec<u8>, Vec<u8>) {
    let mut start = job.as_bytes().to_vec();
    start.push(0);
    let mut end = job.as_bytes().to_vec();
    end.push(1);
    (start, end)
}

fn state_key(state: RunState, fired_at_ms: u64, id: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(9 + id.len());
    k.push(state.code());
    k.extend_from_slice(&fired_at_ms.to_be_bytes());
    k.extend_from_slice(id.as_bytes());
    k
}

/// The run tables, open in one write transaction.
pub(crate) struct RunTables<'t> {
    runs: Table<'t, &'static [u8], &'static [u8]>,
    by_job: Table<'t, &'static [u8], &'static [u8]>,
    by_state: Table<'t, &'static [u8], &'static [u8]>,
}

/// Most old runs one change collects, to bound the work of one entry.
const GC_PER_CHANGE: usize = 16;

impl<'t> RunTables<'t> {
    pub(crate) fn open(txn: &'t WriteTransaction) -> Result<Self> {
        Ok(Self {
            runs: txn.open_table(RUNS)?,
            by_job: txn.open_table(JOB_RUNS)?,
            by_state: txn.open_table(RUNS_BY_STATE)?,
        })
    }

    pub(crate) fn get(&self, id: &str) -> Result<Option<RunRecord>> {
        get(&self.runs, id)
    }

    /// Store a new run and index it.
    pub(crate) fn insert(&mut self, run: &RunRecord) -> Result<()> {
        self.runs
            .insert(run.id.as_bytes(), codec::encode(run).as_slice())?;
        self.by_job.insert(
            job_runs_key(&run.job, run.seq).as_slice(),
            run.id.as_bytes(),
        )?;
        self.by_state.insert(
            state_key(run.state, run.fired_at_ms, &run.id).as_slice(),
            [].as_slice(),
        )?;
        Ok(())
    }

    /// Make a new run of `job` (numbering it, counting it in the history and
    /// the job's unfinished runs) and collect old history; the caller stores
    /// the job.
    pub(crate) fn record_new(
        &mut self,
        job_name: &str,
        job: &mut JobRecord,
        mut run: RunRecord,
    ) -> Result<RunRecord> {
        job.run_seq += 1;
        run.seq = job.run_seq;
        self.insert(&run)?;
        job.history_len += 1;
        if !run.state.is_final() {
            job.unfinished.push(run.id.clone());
        }
        self.collect_history(job_name, job)?;
        Ok(run)
    }

    /// Store a changed run; `was` is its state before the change.
    pub(crate) fn update(&mut self, was: RunState, run: &RunRecord) -> Result<()> {
        if was != run.state {
            self.by_state
                .remove(state_key(was, run.fired_at_ms, &run.id).as_slice())?;
            self.by_state.insert(
                state_key(run.state, run.fired_at_ms, &run.id).as_slice(),
                [].as_slice(),
            )?;
        }
        self.runs
            .insert(run.id.as_bytes(), codec::encode(run).as_slice())?;
        Ok(())
    }

    fn delete(&mut self, run: &RunRecord) -> Result<()> {
        self.runs.remove(run.id.as_bytes())?;
        self.by_job
            .remove(job_runs_key(&run.job, run.seq).as_slice())?;
        self.by_state
            .remove(state_key(run.state, run.fired_at_ms, &run.id).as_slice())?;
        Ok(())
    }

    /// Drop the job's oldest finished runs while its history is over its
    /// limit (a bounded number per call; unfinished runs are never dropped).
    pub(crate) fn collect_history(&mut self, job_name: &str, job: &mut JobRecord) -> Result<()> {
        let limit = u64::from(job.history_limit);
        if job.history_len <= limit {
            return Ok(());
        }
        let excess = usize::try_from(job.history_len - limit).unwrap_or(usize::MAX);
        let (start, end) = job_prefix(job_name);
        let mut doomed = Vec::new();
        for row in self
            .by_job
            .range::<&[u8]>(start.as_slice()..end.as_slice())?
        {
            if doomed.len() >= excess.min(GC_PER_CHANGE) {
                break;
            }
            let (_, id) = row?;
            let id = String::from_utf8_lossy(id.value()).into_owned();
            if let Some(run) = get(&self.runs, &id)? {
                if run.state.is_final() {
                    doomed.push(run);
                }
            }
        }
        for run in &doomed {
            self.delete(run)?;
            job.history_len -= 1;
        }
        Ok(())
    }

    /// Delete every run of a job (the job is gone); returns the runs that
    /// were unfinished.
    pub(crate) fn delete_job_runs(&mut self, job_name: &str) -> Result<Vec<RunRecord>> {
        let (start, end) = job_prefix(job_name);
        let mut ids = Vec::new();
        for row in self
            .by_job
            .range::<&[u8]>(start.as_slice()..end.as_slice())?
        {
            let (_, id) = row?;
            ids.push(String::from_utf8_lossy(id.value()).into_owned());
        }
        let mut unfinished = Vec::new();
        for id in ids {
            if let Some(run) = get(&self.runs, &id)? {
                self.delete(&run)?;
                if !run.state.is_final() {
                    unfinished.push(run);
                }
            }
        }
        Ok(unfinished)
    }
}

/// Read a run.
pub(crate) fn get(
    table: &impl ReadableTable<&'static [u8], &'static [u8]>,
    id: &str,
) -> Result<Option<RunRecord>> {
    table
        .get(id.as_bytes())?
        .map(|v| codec::decode("run record", v.value()))
        .transpose()
}

/// A job's runs, newest first, at most `limit`.
pub(crate) fn of_job(
    runs: &impl ReadableTable<&'static [u8], &'static [u8]>,
    by_job: &impl ReadableTable<&'static [u8], &'static [u8]>,
    job: &str,
    limit: usize,
) -> Result<Vec<RunRecord>> {
    let (start, end) = job_prefix(job);
    newest_in(runs, by_job, &start, &end, limit, |_, id| id)
}

/// Runs in `state`, most recently fired first, at most `limit`.
pub(crate) fn in_state(
    runs: &impl ReadableTable<&'static [u8], &'static [u8]>,
    by_state: &impl ReadableTable<&'static [u8], &'static [u8]>,
    state: RunState,
    limit: usize,
) -> Result<Vec<RunRecord>> {
    let (start, end) = ([state.code()], [state.code() + 1]);
    // A state key is the state's code, the firing time, then the run id.
    newest_in(runs, by_state, &start, &end, limit, |key, _| &key[9..])
}

/// The runs an index names between `start` and `end`, last key first, at
/// most `limit`; `run_id` picks the run id out of an index row.
fn newest_in(
    runs: &impl ReadableTable<&'static [u8], &'static [u8]>,
    index: &impl ReadableTable<&'static [u8], &'static [u8]>,
    start: &[u8],
    end: &[u8],
    limit: usize,
    run_id: impl for<'a> Fn(&'a [u8], &'a [u8]) -> &'a [u8],
) -> Result<Vec<RunRecord>> {
    let mut out = Vec::new();
    for row in index.range::<&[u8]>(start..end)?.rev() {
        if out.len() >= limit {
            break;
        }
        let (key, value) = row?;
        let id = String::from_utf8_lossy(run_id(key.value(), value.value())).into_owned();
        if let Some(run) = get(runs, &id)? {
            out.push(run);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attempts::ATTEMPTS_QUEUE;
    use crate::command::{
        AttemptFinish, AttemptStart, Command, JobDelete, JobPut, JobSetEnabled, JobTrigger,
        Outcome, SlotDecision, SlotFire, Tick,
    };
    use crate::delay_queue::MessageState;
    use crate::jobs::{Concurrency, JobOutcome};
    use crate::testutil::TestSm;

    const JOB: &str = "nightly";

    fn put(concurrency: Concurrency, backoff_ms: Vec<u64>) -> JobPut {
        JobPut {
            name: JOB.into(),
            definition: r#"{"schedule":"* * * * * *"}"#.into(),
            schedule_key: "* * * * * *|UTC|cron|once".into(),
            enabled: true,
            concurrency,
            backoff_ms,
            history_limit: 100,
        }
    }

    fn fire(version: u64, slot_ms: u64) -> SlotFire {
        SlotFire {
            job: JOB.into(),
            version,
            slot_ms,
            run_id: format!("r{slot_ms}"),
            decision: SlotDecision::Run { after: None },
        }
    }

    fn start(node: u64, token: &str) -> AttemptStart {
        AttemptStart {
            node,
            max: 10,
            visibility_ms: 1_000,
            lease_token: token.into(),
        }
    }

    fn started(outcome: Outcome) -> Vec<StartedAttempt> {
        match outcome {
            Outcome::Run(RunOutcome::Started(s)) => s,
            other => panic!("expected started attempts, got {other:?}"),
        }
    }

    fn finish(a: &StartedAttempt, result: AttemptResult) -> AttemptFinish {
        AttemptFinish {
            run_id: a.run_id.clone(),
            attempt: a.attempt,
            lease_token: a.lease_token.clone(),
            result,
            status: Some(500),
            output: "boom".into(),
            error: None,
        }
    }

    fn state(t: &TestSm, run: &str) -> RunState {
        t.sm.read().unwrap().run(run).unwrap().unwrap().state
    }

    fn job(t: &TestSm) -> crate::jobs::JobRecord {
        t.sm.read().unwrap().job(JOB).unwrap().unwrap()
    }

    #[test]
    fn a_slot_is_handled_once_and_never_at_or_before_the_cursor() {
        let mut t = TestSm::new();
        t.one(1_000, put(Concurrency::Allow, vec![]));
        // Created at 1 000: the cursor starts there, so slot 1 000 is refused.
        assert_eq!(
            t.one(1_500, fire(1, 1_000)),
            Outcome::Run(RunOutcome::AlreadyHandled { cursor_ms: 1_000 })
        );
        assert_eq!(
            t.one(2_100, fire(1, 2_000)),
            Outcome::Run(RunOutcome::Recorded {
                run_id: "r2000".into(),
                state: RunState::Pending
            })
        );
        // The same slot again (a new leader repeating it), or an earlier one: refused.
        assert_eq!(
            t.one(2_200, fire(1, 2_000)),
            Outcome::Run(RunOutcome::AlreadyHandled { cursor_ms: 2_000 })
        );
        assert_eq!(
            t.one(2_300, fire(1, 1_500)),
            Outcome::Run(RunOutcome::AlreadyHandled { cursor_ms: 2_000 })
        );
        // A decision made for an older version of the job is refused.
        t.one(
            2_400,
            JobPut {
                definition: "{}".into(),
                ..put(Concurrency::Allow, vec![])
            },
        );
        assert_eq!(
            t.one(3_100, fire(1, 3_000)),
            Outcome::Run(RunOutcome::Stale { version: 2 })
        );
        assert_eq!(job(&t).history_len, 1);
    }

    #[test]
    fn forbid_skips_an_overlapping_slot_and_allow_runs_both() {
        let mut t = TestSm::new();
        t.one(0, put(Concurrency::Forbid, vec![]));
        t.one(1_000, fire(1, 1_000));
        assert_eq!(
            t.one(2_000, fire(1, 2_000)),
            Outcome::Run(RunOutcome::Recorded {
                run_id: "r2000".into(),
                state: RunState::Skipped
            })
        );
        let skipped = t.sm.read().unwrap().run("r2000").unwrap().unwrap();
        assert!(skipped.reason.unwrap().starts_with("overlap"));

        let mut t = TestSm::new();
        t.one(0, put(Concurrency::Allow, vec![]));
        t.one(1_000, fire(1, 1_000));
        t.one(2_000, fire(1, 2_000));
        assert_eq!(state(&t, "r1000"), RunState::Pending);
        assert_eq!(state(&t, "r2000"), RunState::Pending);
        assert_eq!(
            job(&t).unfinished,
            vec!["r1000".to_string(), "r2000".to_string()]
        );
    }

    #[test]
    fn slots_that_catch_up_together_run_one_at_a_time_under_forbid() {
        let mut t = TestSm::new();
        t.one(0, put(Concurrency::Forbid, vec![]));
        // Three late slots decided in one batch: 2 and 3 queue behind 1.
        let batch = (1..=3u64)
            .map(|i| {
                let after = (i > 1).then(|| format!("r{}", (i - 1) * 1_000));
                Command::SlotFire(SlotFire {
                    decision: SlotDecision::Run { after },
                    ..fire(1, i * 1_000)
                })
            })
            .collect();
        t.apply(5_000, batch);
        assert_eq!(
            [state(&t, "r1000"), state(&t, "r2000"), state(&t, "r3000")],
            [RunState::Pending; 3]
        );
        // Only the first has an attempt to take.
        let first = started(t.one(5_000, start(1, "a")));
        assert_eq!(
            first.iter().map(|a| a.run_id.as_str()).collect::<Vec<_>>(),
            vec!["r1000"]
        );
        // An on-time slot meanwhile overlaps them and is skipped.
        assert!(matches!(
            t.one(6_000, fire(1, 6_000)),
            Outcome::Run(RunOutcome::Recorded {
                state: RunState::Skipped,
                ..
            })
        ));
        t.one(6_100, finish(&first[0], AttemptResult::Succeeded));
        let second = started(t.one(6_100, start(1, "b")));
        assert_eq!(
            second.iter().map(|a| a.run_id.as_str()).collect::<Vec<_>>(),
            vec!["r2000"]
        );
        t.one(6_200, finish(&second[0], AttemptResult::Succeeded));
        let third = started(t.one(6_200, start(1, "c")));
        assert_eq!(
            third.iter().map(|a| a.run_id.as_str()).collect::<Vec<_>>(),
            vec!["r3000"]
        );
    }

    #[test]
    fn replace_cancels_the_unfinished_run_and_its_attempt() {
        let mut t = TestSm::new();
        t.one(0, put(Concurrency::Replace, vec![]));
        t.one(1_000, fire(1, 1_000));
        let a = started(t.one(1_010, start(1, "l1")));
        assert_eq!(a.len(), 1);
        t.one(2_000, fire(1, 2_000));
        let old = t.sm.read().unwrap().run("r1000").unwrap().unwrap();
        assert_eq!(old.state, RunState::Cancelled);
        assert_eq!(old.attempts[0].result, Some(AttemptResult::Cancelled));
        assert!(t
            .sm
            .read()
            .unwrap()
            .queue_message(ATTEMPTS_QUEUE, "r1000")
            .unwrap()
            .is_none());
        // The worker's late report changes nothing about the cancelled run.
        t.one(2_100, finish(&a[0], AttemptResult::Succeeded));
        assert_eq!(state(&t, "r1000"), RunState::Cancelled);
        assert_eq!(job(&t).unfinished, vec!["r2000".to_string()]);
    }

    #[test]
    fn failed_attempts_retry_after_their_tier_then_the_run_is_dead() {
        let mut t = TestSm::new();
        // Two retry tiers: 3 attempts in all, 100 ms then 500 ms apart.
        t.one(0, put(Concurrency::Forbid, vec![100, 500]));
        t.one(1_000, fire(1, 1_000));
        let first = started(t.one(1_000, start(1, "a"))).remove(0);
        assert_eq!(first.attempt, 1);
        t.one(1_050, finish(&first, AttemptResult::Failed));
        assert_eq!(state(&t, "r1000"), RunState::Retrying);
        // Not due before 1 050 + 100.
        assert!(started(t.one(1_149, start(2, "b"))).is_empty());
        let second = started(t.one(1_150, start(2, "b"))).remove(0);
        assert_eq!(second.attempt, 2);
        assert!(second.fencing_token > first.fencing_token);
        t.one(1_200, finish(&second, AttemptResult::TimedOut));
        assert!(started(t.one(1_699, start(3, "c"))).is_empty());
        let third = started(t.one(1_700, start(3, "c"))).remove(0);
        assert_eq!(third.attempt, 3);
        t.one(1_800, finish(&third, AttemptResult::Failed));
        let run = t.sm.read().unwrap().run("r1000").unwrap().unwrap();
        assert_eq!(run.state, RunState::Dead);
        assert_eq!(run.attempts.len(), 3);
        assert_eq!(
            t.sm.read()
                .unwrap()
                .runs_in_state(RunState::Dead, 10)
                .unwrap()[0]
                .id,
            "r1000"
        );
        assert!(job(&t).unfinished.is_empty());
        assert!(t
            .sm
            .read()
            .unwrap()
            .queue_message(ATTEMPTS_QUEUE, "r1000")
            .unwrap()
            .is_none());
    }

    #[test]
    fn a_lapsed_lease_is_recorded_lost_and_the_attempt_runs_again() {
        let mut t = TestSm::new();
        t.one(0, put(Concurrency::Forbid, vec![0]));
        t.one(1_000, fire(1, 1_000));
        let first = started(t.one(1_000, start(1, "a"))).remove(0);
        // The worker dies; its 1 000 ms lease lapses at 2 000 and a tick
        // makes the attempt due again.
        t.one(2_000, Tick { budget: 10 });
        let msg =
            t.sm.read()
                .unwrap()
                .queue_message(ATTEMPTS_QUEUE, "r1000")
                .unwrap()
                .unwrap();
        assert_eq!(msg.state, MessageState::Waiting);
        let second = started(t.one(2_001, start(2, "b"))).remove(0);
        assert_eq!(second.attempt, 2);
        let run = t.sm.read().unwrap().run("r1000").unwrap().unwrap();
        assert_eq!(run.attempts[0].result, Some(AttemptResult::Lost));
        assert_eq!(run.attempts[1].node, 2);
        // The lost worker's late report is for a superseded attempt: the run
        // follows the latest one.
        t.one(2_010, finish(&first, AttemptResult::Succeeded));
        assert_eq!(state(&t, "r1000"), RunState::Running);
        t.one(2_020, finish(&second, AttemptResult::Succeeded));
        assert_eq!(state(&t, "r1000"), RunState::Succeeded);
        // With one tier (two attempts), a second lapse leaves the run dead.
        t.one(3_000, fire(1, 3_000));
        started(t.one(3_000, start(1, "c")));
        t.one(4_000, Tick { budget: 10 });
        started(t.one(4_000, start(1, "d")));
        t.one(5_000, Tick { budget: 10 });
        assert!(started(t.one(5_000, start(1, "e"))).is_empty());
        assert_eq!(state(&t, "r3000"), RunState::Dead);
    }

    #[test]
    fn a_handed_back_attempt_runs_again_at_once_and_does_not_count() {
        let mut t = TestSm::new();
        t.one(0, put(Concurrency::Forbid, vec![])); // one attempt only
        t.one(1_000, fire(1, 1_000));
        let first = started(t.one(1_000, start(1, "a"))).remove(0);
        t.one(1_100, finish(&first, AttemptResult::HandedBack));
        assert_eq!(state(&t, "r1000"), RunState::Pending);
        let again = started(t.one(1_100, start(2, "b"))).remove(0);
        assert_eq!(again.attempt, 2);
        t.one(1_200, finish(&again, AttemptResult::Succeeded));
        assert_eq!(state(&t, "r1000"), RunState::Succeeded);
    }

    #[test]
    fn a_repeated_start_is_answered_with_what_the_first_took() {
        let mut t = TestSm::new();
        t.one(0, put(Concurrency::Allow, vec![]));
        t.one(1_000, fire(1, 1_000));
        let first = started(t.one(1_000, start(1, "a")));
        assert_eq!(first.len(), 1);
        // Another attempt falls due before the retry of that start arrives.
        t.one(2_000, fire(1, 2_000));
        // The retry gets the same attempt, fencing token and lease, and
        // takes nothing more: the new attempt is left for a fresh start.
        assert_eq!(started(t.one(2_000, start(1, "a"))), first);
        let run = t.sm.read().unwrap().run("r1000").unwrap().unwrap();
        assert_eq!(run.attempts.len(), 1);
        let next = started(t.one(2_000, start(1, "b")));
        assert_eq!(next.len(), 1);
        assert_eq!(next[0].run_id, "r2000");
        // One more fencing token was drawn, for r2000, not for the retry.
        assert_eq!(next[0].fencing_token, first[0].fencing_token + 1);
        // The same token from another node is that node's own command.
        t.one(3_000, fire(1, 3_000));
        assert_eq!(started(t.one(3_000, start(2, "a")))[0].run_id, "r3000");
    }

    #[test]
    fn a_repeated_start_leaves_out_attempts_that_ended_or_lapsed() {
        let mut t = TestSm::new();
        t.one(0, put(Concurrency::Allow, vec![0]));
        t.one(1_000, fire(1, 1_000));
        t.one(1_000, fire(1, 1_500));
        let first = started(t.one(1_000, start(1, "a")));
        assert_eq!(first.len(), 2);
        // r1000's attempt ends; r1500's lease (1 000 ms) lapses and another
        // node takes the run's next attempt.
        t.one(1_100, finish(&first[0], AttemptResult::Succeeded));
        t.one(2_001, Tick { budget: 100 });
        let taken = started(t.one(2_001, start(2, "b")));
        assert_eq!(taken.len(), 1);
        assert_eq!((taken[0].run_id.as_str(), taken[0].attempt), ("r1500", 2));
        assert!(started(t.one(2_002, start(1, "a"))).is_empty());
    }

    #[test]
    fn history_keeps_the_last_runs_and_never_an_unfinished_one() {
        let mut t = TestSm::new();
        t.one(
            0,
            JobPut {
                history_limit: 3,
                ..put(Concurrency::Allow, vec![])
            },
        );
        for slot in 1..=6u64 {
            t.one(slot * 1_000, fire(1, slot * 1_000));
            // Finish every run but the first, which stays running.
            for a in started(t.one(slot * 1_000, start(1, &format!("l{slot}")))) {
                if a.run_id != "r1000" {
                    t.one(slot * 1_000, finish(&a, AttemptResult::Succeeded));
                }
            }
        }
        let kept: Vec<String> =
            t.sm.read()
                .unwrap()
                .job_runs(JOB, 10)
                .unwrap()
                .into_iter()
                .map(|r| r.id)
                .collect();
        // Each new run past the limit of 3 drops the oldest finished run
        // (r2000 at r4000, r3000 at r5000, r4000 at r6000). r1000 is
        // unfinished, so it is never dropped, and it holds one of the 3 places.
        assert_eq!(kept, vec!["r6000", "r5000", "r1000"]);
        assert_eq!(job(&t).history_len, 3);
    }

    #[test]
    fn a_put_keeps_the_cursor_unless_the_schedule_changes_or_the_job_resumes() {
        let mut t = TestSm::new();
        t.one(1_000, put(Concurrency::Forbid, vec![]));
        t.one(5_000, fire(1, 5_000));
        // The same body again is no change at all.
        assert_eq!(
            t.one(6_000, put(Concurrency::Forbid, vec![])),
            Outcome::Job(JobOutcome::Saved {
                version: 1,
                created: false
            })
        );
        // Another retry policy: a new version, the same cursor.
        t.one(
            9_000,
            JobPut {
                definition: "{}".into(),
                ..put(Concurrency::Forbid, vec![1])
            },
        );
        assert_eq!((job(&t).version, job(&t).cursor_ms), (2, 5_000));
        // Another schedule starts now.
        t.one(
            10_000,
            JobPut {
                schedule_key: "0 * * * * *|UTC|cron|once".into(),
                ..put(Concurrency::Forbid, vec![1])
            },
        );
        assert_eq!(job(&t).cursor_ms, 10_000);
        // Paused, then resumed later: the paused time is not fired.
        t.one(
            11_000,
            JobSetEnabled {
                name: JOB.into(),
                enabled: false,
            },
        );
        assert_eq!(
            t.one(12_000, fire(4, 12_000)),
            Outcome::Run(RunOutcome::Disabled)
        );
        t.one(
            20_000,
            JobSetEnabled {
                name: JOB.into(),
                enabled: true,
            },
        );
        assert_eq!(job(&t).cursor_ms, 20_000);
        assert_eq!(job(&t).version, 5);
    }

    #[test]
    fn readers_learn_which_jobs_changed_since_a_revision() {
        let mut t = TestSm::new();
        let named = |name: &str| JobPut {
            name: name.into(),
            ..put(Concurrency::Forbid, vec![])
        };
        t.one(0, named("a"));
        t.one(0, named("b"));
        let seen = t.sm.read().unwrap().vars().unwrap().jobs_revision;
        assert_eq!(seen, 2);
        // Firing a slot moves a cursor, not the revision.
        t.one(
            1_000,
            SlotFire {
                job: "a".into(),
                ..fire(1, 1_000)
            },
        );
        t.one(
            2_000,
            JobSetEnabled {
                name: "b".into(),
                enabled: false,
            },
        );
        t.one(3_000, named("c"));
        t.one(4_000, JobDelete { name: "a".into() });
        let view = t.sm.read().unwrap();
        let changed: Vec<(String, bool)> = view
            .jobs_changed_after(seen)
            .unwrap()
            .into_iter()
            .map(|(n, j)| (n, j.enabled))
            .collect();
        assert_eq!(
            changed,
            vec![("b".to_string(), false), ("c".to_string(), true)]
        );
        assert_eq!(view.vars().unwrap().jobs_revision, 5);
        assert!(view.jobs_changed_after(5).unwrap().is_empty());
    }

    #[test]
    fn deleting_a_job_removes_its_runs_and_attempts() {
        let mut t = TestSm::new();
        t.one(0, put(Concurrency::Allow, vec![]));
        t.one(1_000, fire(1, 1_000));
        t.one(
            2_000,
            JobTrigger {
                job: JOB.into(),
                run_id: "manual".into(),
            },
        );
        assert_eq!(
            t.one(3_000, JobDelete { name: JOB.into() }),
            Outcome::Job(JobOutcome::Deleted { cancelled: 2 })
        );
        let view = t.sm.read().unwrap();
        assert!(view.job(JOB).unwrap().is_none());
        assert!(view.run("r1000").unwrap().is_none());
        assert!(view
            .queue_message(ATTEMPTS_QUEUE, "manual")
            .unwrap()
            .is_none());
        assert_eq!(view.queue_next_due(ATTEMPTS_QUEUE).unwrap(), None);
    }

    #[test]
    fn a_missed_range_is_one_record_and_moves_the_cursor_to_its_end() {
        let mut t = TestSm::new();
        t.one(0, put(Concurrency::Forbid, vec![]));
        let range = SlotFire {
            decision: SlotDecision::MissRange {
                last_ms: 90_000,
                count: 90,
                reason: "misfired".into(),
            },
            ..fire(1, 1_000)
        };
        t.one(100_000, range);
        let run = t.sm.read().unwrap().run("r1000").unwrap().unwrap();
        assert_eq!(
            (run.state, run.slots, run.last_slot_ms),
            (RunState::Missed, 90, 90_000)
        );
        assert_eq!(job(&t).cursor_ms, 90_000);
        assert!(matches!(
            t.one(100_000, Command::SlotFire(fire(1, 90_000))),
            Outcome::Run(RunOutcome::AlreadyHandled { .. })
        ));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

        /// Whatever the commands: no job's history holds two runs for one
        /// slot, a job's cursor never moves back, and every unfinished run a
        /// job lists exists and is unfinished.
        #[test]
        fn no_slot_runs_twice_and_cursors_only_advance(
            log in crate::delay_queue::model::timed_log(super::strategy::job_command())
        ) {
            let mut t = TestSm::new();
            let mut clock = 0u64;
            let mut cursors = std::collections::BTreeMap::new();
            for (step, _, commands) in log {
                clock += step;
                t.apply(clock, commands);
                let view = t.sm.read().unwrap();
                for (name, job) in view.jobs().unwrap() {
                    let runs = view.job_runs(&name, 10_000).unwrap();
                    let scheduled: Vec<u64> = runs.iter().filter(|r| !r.manual).map(|r| r.scheduled_for_ms).collect();
                    let unique: std::collections::BTreeSet<u64> = scheduled.iter().copied().collect();
                    proptest::prop_assert_eq!(unique.len(), scheduled.len(), "{}: {:?}", name, scheduled);
                    // A job re-created after a delete starts a new cursor.
                    let previous = cursors.insert((name.clone(), job.created_at_ms), job.cursor_ms);
                    proptest::prop_assert!(previous.is_none_or(|p| p <= job.cursor_ms));
                    for id in &job.unfinished {
                        let run = view.run(id).unwrap();
                        proptest::prop_assert!(run.is_some_and(|r| !r.state.is_final()), "{} lists {}", name, id);
                    }
                }
            }
        }
    }
}

/// Random sequences of job, slot and attempt commands, for property tests.
#[cfg(test)]
pub(crate) mod strategy {
    use proptest::prelude::*;

    use crate::command::{
        AttemptFinish, AttemptStart, Command, JobDelete, JobPut, JobSetEnabled, JobTrigger,
        SlotDecision, SlotFire,
    };
    use crate::jobs::Concurrency;
    use crate::runs::AttemptResult;

    /// Names, slots and lease tokens come from small sets, so commands
    /// often meet the jobs, runs and leases that earlier ones made.
    pub(crate) fn job_command() -> impl Strategy<Value = Command> + Clone {
        let job = prop::sample::select(vec!["a", "b"]).prop_map(String::from);
        let slot = (1u64..40).prop_map(|s| s * 1_000);
        let concurrency = prop::sample::select(vec![
            Concurrency::Forbid,
            Concurrency::Allow,
            Concurrency::Replace,
        ]);
        let result = prop::sample::select(vec![
            AttemptResult::Succeeded,
            AttemptResult::Failed,
            AttemptResult::TimedOut,
            AttemptResult::HandedBack,
        ]);
        prop_oneof![
            (
                job.clone(),
                concurrency,
                prop::collection::vec(0u64..2_000, 0..3),
                1u32..4,
                0u8..2
            )
                .prop_map(
                    |(name, concurrency, backoff_ms, history_limit, schedule)| {
                        Command::JobPut(JobPut {
                            name,
                            definition: format!("{{\"v\":{history_limit}}}"),
                            schedule_key: format!("s{schedule}"),
                            enabled: true,
                            concurrency,
                            backoff_ms,
                            history_limit,
                        })
                    }
                ),
            (job.clone(), any::<bool>()).prop_map(|(name, enabled)| Command::JobSetEnabled(
                JobSetEnabled { name, enabled }
            )),
            job.clone()
                .prop_map(|name| Command::JobDelete(JobDelete { name })),
            (
                job.clone(),
                1u64..6,
                slot.clone(),
                prop::option::of(slot.clone()),
                prop::option::of(1u64..5)
            )
                .prop_map(|(job, version, slot_ms, after, missed)| {
                    let decision = match missed {
                        Some(count) => SlotDecision::MissRange {
                            last_ms: slot_ms + (count - 1) * 1_000,
                            count,
                            reason: "misfired".into(),
                        },
                        None => SlotDecision::Run {
                            after: after.map(|a| format!("{job}{a}")),
                        },
                    };
                    Command::SlotFire(SlotFire {
                        run_id: format!("{job}{slot_ms}"),
                        job,
                        version,
                        slot_ms,
                        decision,
                    })
                }),
            (job.clone(), 0u8..3).prop_map(|(job, n)| Command::JobTrigger(JobTrigger {
                run_id: format!("{job}-manual-{n}"),
                job,
            })),
            (1u64..4, 1u32..4, 0u8..3).prop_map(|(node, max, t)| Command::AttemptStart(
                AttemptStart {
                    node,
                    max,
                    visibility_ms: 100,
                    lease_token: format!("t{t}"),
                }
            )),
            (job, slot, 1u32..4, 0u8..3, result).prop_map(|(job, slot, attempt, t, result)| {
                Command::AttemptFinish(AttemptFinish {
                    run_id: format!("{job}{slot}"),
                    attempt,
                    lease_token: format!("t{t}-{attempt}"),
                    result,
                    status: Some(500),
                    output: String::new(),
                    error: None,
                })
            }),
        ]
    }
}
