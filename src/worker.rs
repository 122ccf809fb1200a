//! The node's workers: a bounded pool that takes due attempts from the
//! cluster, runs them, keeps their leases alive, and reports back.
//!
//! Every node runs one. It takes attempts (`AttemptStart`) only when its
//! local state shows one due and it has a free worker, so an idle cluster
//! writes nothing. While an attempt runs, a heartbeat renews its lease every
//! third of the lease; a worker that dies or is cut off stops renewing, the
//! lease lapses, and the attempt runs again elsewhere (recorded `lost`).
//! An attempt stops early when its run is cancelled (`concurrency: replace`,
//! or its job deleted) or its lease is no longer its own: the worker sees
//! that in its own applied state as soon as the change is applied here.
//!
//! On shutdown the pool takes nothing new, lets running attempts finish for
//! a grace period, and hands the rest back: they run again at once
//! elsewhere and do not count against the run's attempts.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gnomon_raft::{wall_clock_ms, Consensus, ConsensusError};
use gnomon_storage::attempts::ATTEMPTS_QUEUE;
use gnomon_storage::command::{
    AttemptFinish, AttemptStart, Command, Outcome, QueueExtend, MAX_START_BATCH,
};
use gnomon_storage::delay_queue::QueueOutcome;
use gnomon_storage::runs::{AttemptResult, RunOutcome, RunRecord, RunState, StartedAttempt};
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::executor::{self, AttemptContext, AttemptOutcome, AttemptReport};
use crate::job::JobSpec;
use crate::metrics::Metrics;

/// How a node's worker pool behaves.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// This node's id, recorded on every attempt it runs.
    pub node_id: u64,
    /// Most attempts running at once.
    pub workers: usize,
    /// Whether shell targets may run here (`--allow-shell`).
    pub allow_shell: bool,
    /// How long an attempt's lease lasts between heartbeats.
    pub lease_ms: u64,
    /// How long running attempts may finish at shutdown before they are handed back.
    pub shutdown_grace: Duration,
}

/// How long to keep trying to report an attempt's end.
const REPORT_DEADLINE: Duration = Duration::from_secs(60);

/// An attempt this node is running.
struct Running {
    attempt: u32,
    lease_token: String,
    cancel: CancellationToken,
    /// This node's own state has shown the run with this attempt. Until it
    /// has, the local state lags the leader's and says nothing about it.
    seen: bool,
}

type RunningSet = Arc<Mutex<BTreeMap<String, Running>>>;

/// The running pool; [`Workers::shutdown`] stops it gracefully.
pub struct Workers {
    stop: CancellationToken,
    handle: JoinHandle<()>,
}

impl Workers {
    /// Start the pool.
    pub fn spawn(consensus: Consensus, settings: WorkerSettings, metrics: Arc<Metrics>) -> Self {
        let stop = CancellationToken::new();
        let pool = Pool {
            consensus,
            settings,
            metrics,
            running: Arc::default(),
            handing_back: Arc::new(AtomicBool::new(false)),
        };
        let handle = tokio::spawn(pool.run(stop.clone()));
        Self { stop, handle }
    }

    /// Take no more attempts; let running ones finish within the grace
    /// period, hand back the rest, and return once every report is in.
    pub async fn shutdown(self) {
        self.stop.cancel();
        if let Err(e) = self.handle.await {
            tracing::error!(error = %e, "the worker pool failed");
        }
    }
}

struct Pool {
    consensus: Consensus,
    settings: WorkerSettings,
    metrics: Arc<Metrics>,
    running: RunningSet,
    handing_back: Arc<AtomicBool>,
}

impl Pool {
    async fn run(self, stop: CancellationToken) {
        let http = match executor::http_client() {
            Ok(client) => client,
            Err(e) => {
                tracing::error!(error = %e, "cannot build the HTTP client; this node runs no attempts");
                return;
            }
        };
        let mut tasks = JoinSet::new();
        let mut applied = self.consensus.applied_index();
        let mut heartbeat =
            tokio::time::interval(Duration::from_millis((self.settings.lease_ms / 3).max(1)));
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut backoff = Duration::ZERO;
        // After taking nothing (another node was faster), wait until this
        // node's state moves on before trying again.
        let mut came_up_empty_at: Option<u64> = None;
        while !stop.is_cancelled() {
            let free = self.settings.workers.saturating_sub(self.busy());
            let next_due = if free > 0 { self.next_due() } else { None };
            let state_moved = came_up_empty_at != Some(*applied.borrow());
            if next_due.is_some_and(|at| at <= wall_clock_ms()) && backoff.is_zero() && state_moved
            {
                match self.start(free).await {
                    Ok(started) if started.is_empty() => came_up_empty_at = Some(*applied.borrow()),
                    Ok(started) => {
                        for attempt in started {
                            self.launch(&mut tasks, &http, attempt);
                        }
                        continue;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot take attempts");
                        backoff = Duration::from_millis(200);
                    }
                }
            }
            // Sleep until the next attempt falls due; when one is due but was
            // taken elsewhere, the next apply here wakes the loop instead.
            let now = wall_clock_ms();
            let wake = match next_due {
                _ if !backoff.is_zero() => backoff,
                Some(at) if at > now => Duration::from_millis(at - now),
                _ => Duration::from_secs(1),
            }
            .min(Duration::from_secs(1));
            tokio::select! {
                () = stop.cancelled() => {}
                _ = applied.changed() => self.cancel_superseded(),
                _ = heartbeat.tick() => self.renew().await,
                () = tokio::time::sleep(wake) => backoff = Duration::ZERO,
                Some(_) = tasks.join_next() => {}
            }
        }
        self.drain(tasks).await;
    }

    fn busy(&self) -> usize {
        self.running.lock().map_or(0, |r| r.len())
    }

    /// When the next attempt is due by this node's applied state.
    fn next_due(&self) -> Option<u64> {
        let view = self.consensus.read().ok()?;
        view.queue_next_due(ATTEMPTS_QUEUE).ok().flatten()
    }

    async fn start(&self, free: usize) -> Result<Vec<StartedAttempt>, ConsensusError> {
        let command = AttemptStart {
            node: self.settings.node_id,
            max: u32::try_from(free)
                .unwrap_or(MAX_START_BATCH)
                .min(MAX_START_BATCH),
            visibility_ms: self.settings.lease_ms,
            lease_token: crate::api::new_token(),
        };
        match self.consensus.propose_one(command).await? {
            Outcome::Run(RunOutcome::Started(started)) => Ok(started),
            other => Err(ConsensusError::Fatal(format!(
                "unexpected outcome {other:?}"
            ))),
        }
    }

    fn launch(&self, tasks: &mut JoinSet<()>, http: &reqwest::Client, attempt: StartedAttempt) {
        let cancel = CancellationToken::new();
        if let Ok(mut running) = self.running.lock() {
            running.insert(
                attempt.run_id.clone(),
                Running {
                    attempt: attempt.attempt,
                    lease_token: attempt.lease_token.clone(),
                    cancel: cancel.clone(),
                    seen: false,
                },
            );
        }
        let span = tracing::info_span!(
            "attempt",
            node_id = self.settings.node_id,
            job_id = %attempt.job,
            run_id = %attempt.run_id,
            attempt = attempt.attempt
        );
        let task = AttemptTask {
            consensus: self.consensus.clone(),
            http: http.clone(),
            allow_shell: self.settings.allow_shell,
            metrics: self.metrics.clone(),
            running: self.running.clone(),
            handing_back: self.handing_back.clone(),
        };
        tasks.spawn(task.run(attempt, cancel).instrument(span));
    }

    /// Stop attempts whose run was cancelled or deleted, or whose run has
    /// moved on to a later attempt elsewhere. This node's state may lag the
    /// leader's, so only what lag cannot explain counts: a cancelled run
    /// (never undone), a later attempt, or a run gone after this node had
    /// seen it with this attempt.
    fn cancel_superseded(&self) {
        let Ok(view) = self.consensus.read() else {
            return;
        };
        let Ok(mut running) = self.running.lock() else {
            return;
        };
        for (run_id, r) in running.iter_mut() {
            let current = view.run(run_id).ok().flatten();
            if superseded(current.as_ref(), r.attempt, &mut r.seen) && !r.cancel.is_cancelled() {
                tracing::info!(run_id = %run_id, "stopping an attempt whose run was cancelled or taken over");
                r.cancel.cancel();
            }
        }
    }

    /// Renew the lease of every running attempt, in one proposal; an
    /// attempt whose lease is gone is stopped.
    async fn renew(&self) {
        let leases: Vec<(String, String)> = match self.running.lock() {
            Ok(r) => r
                .iter()
                .map(|(id, r)| (id.clone(), r.lease_token.clone()))
                .collect(),
            Err(_) => return,
        };
        if leases.is_empty() {
            return;
        }
        let commands = leases
            .iter()
            .map(|(id, token)| {
                Command::QueueExtend(QueueExtend {
                    queue: ATTEMPTS_QUEUE.to_string(),
                    id: id.clone(),
                    lease_token: token.clone(),
                    visibility_ms: self.settings.lease_ms,
                })
            })
            .collect();
        let outcomes = match self.consensus.propose(commands).await {
            Ok(outcomes) => outcomes,
            Err(e) => {
                tracing::warn!(error = %e, "cannot renew attempt leases");
                return;
            }
        };
        let Ok(running) = self.running.lock() else {
            return;
        };
        for ((run_id, _), outcome) in leases.iter().zip(outcomes) {
            if !matches!(outcome, Outcome::Queue(QueueOutcome::Extended { .. })) {
                if let Some(r) = running.get(run_id) {
                    tracing::warn!(run_id = %run_id, ?outcome, "lost the lease of a running attempt; stopping it");
                    r.cancel.cancel();
                }
            }
        }
    }

    /// Shutdown: wait for running attempts up to the grace period (still
    /// renewing their leases), then hand back the rest and wait for their reports.
    async fn drain(&self, mut tasks: JoinSet<()>) {
        if tasks.is_empty() {
            return;
        }
        tracing::info!(
            running = tasks.len(),
            "waiting for running attempts before shutting down"
        );
        let grace = tokio::time::sleep(self.settings.shutdown_grace);
        tokio::pin!(grace);
        let mut heartbeat =
            tokio::time::interval(Duration::from_millis((self.settings.lease_ms / 3).max(1)));
        loop {
            tokio::select! {
                next = tasks.join_next() => if next.is_none() { return },
                _ = heartbeat.tick() => self.renew().await,
                () = &mut grace => break,
            }
        }
        self.handing_back.store(true, Ordering::SeqCst);
        if let Ok(running) = self.running.lock() {
            for r in running.values() {
                r.cancel.cancel();
            }
        }
        while tasks.join_next().await.is_some() {}
    }
}

/// Whether attempt `attempt` of a run should stop, judged from this node's
/// view of the run (`None`: not there). `seen` remembers that the view has
/// shown the run at this attempt; before that, a missing run or an older
/// attempt only means this node has not caught up yet.
fn superseded(run: Option<&RunRecord>, attempt: u32, seen: &mut bool) -> bool {
    let latest = run.and_then(|r| r.attempts.last()).map(|a| a.n);
    if latest == Some(attempt) {
        *seen = true;
    }
    match run {
        None => *seen,
        Some(run) => run.state == RunState::Cancelled || latest.is_some_and(|n| n > attempt),
    }
}

/// One attempt: run it, then report how it ended.
struct AttemptTask {
    consensus: Consensus,
    http: reqwest::Client,
    allow_shell: bool,
    metrics: Arc<Metrics>,
    running: RunningSet,
    handing_back: Arc<AtomicBool>,
}

impl AttemptTask {
    async fn run(self, attempt: StartedAttempt, cancel: CancellationToken) {
        self.metrics.attempt_started();
        let report = self.execute(&attempt, cancel).await;
        let result = match report.outcome {
            AttemptOutcome::Succeeded => AttemptResult::Succeeded,
            AttemptOutcome::Failed => AttemptResult::Failed,
            AttemptOutcome::TimedOut => AttemptResult::TimedOut,
            AttemptOutcome::Cancelled if self.handing_back.load(Ordering::SeqCst) => {
                AttemptResult::HandedBack
            }
            AttemptOutcome::Cancelled => AttemptResult::Cancelled,
        };
        tracing::info!(outcome = result.as_str(), status = ?report.status, "attempt finished");
        self.metrics.attempt_finished(result);
        // The worker is free as soon as the target has answered; the report
        // goes on in the background (its lease is no longer renewed, so if
        // the report cannot get through before it lapses, the attempt runs
        // again elsewhere, under the same idempotency key).
        if let Ok(mut running) = self.running.lock() {
            running.remove(&attempt.run_id);
        }
        let finish = AttemptFinish {
            run_id: attempt.run_id.clone(),
            attempt: attempt.attempt,
            lease_token: attempt.lease_token.clone(),
            result,
            status: report.status,
            output: report.output,
            error: report.error,
        };
        if let Some(state) = self.report(finish).await {
            self.metrics.run_moved(state);
        }
    }

    async fn execute(&self, attempt: &StartedAttempt, cancel: CancellationToken) -> AttemptReport {
        let refused = |error: String| AttemptReport {
            outcome: AttemptOutcome::Failed,
            status: None,
            output: String::new(),
            error: Some(error),
        };
        let spec = match JobSpec::parse_stored(&attempt.definition) {
            Ok(spec) => spec,
            Err(e) => return refused(format!("the stored job does not parse: {e}")),
        };
        if let Err(e) = spec.target.validate(self.allow_shell) {
            return refused(format!("this node does not run this target: {e}"));
        }
        let ctx = AttemptContext {
            run_id: attempt.run_id.clone(),
            job: attempt.job.clone(),
            scheduled_for_ms: attempt.scheduled_for_ms,
            attempt: attempt.attempt,
            fencing_token: attempt.fencing_token,
        };
        executor::execute(&self.http, &spec.target, &ctx, cancel).await
    }

    /// Report the end of an attempt, retrying while there is no leader.
    async fn report(&self, finish: AttemptFinish) -> Option<RunState> {
        let deadline = tokio::time::Instant::now() + REPORT_DEADLINE;
        loop {
            match self.consensus.propose_one(finish.clone()).await {
                Ok(Outcome::Run(RunOutcome::Recorded { state, .. })) => return Some(state),
                Ok(other) => {
                    tracing::warn!(?other, "the attempt's report was not recorded");
                    return None;
                }
                Err(e) if tokio::time::Instant::now() < deadline => {
                    tracing::warn!(error = %e, "cannot report the attempt yet; retrying");
                }
                Err(e) => {
                    tracing::error!(error = %e, "gave up reporting the attempt; its lease will lapse and it will run again");
                    return None;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use gnomon_storage::runs::{Attempt, RunRecord, RunState};

    use super::superseded;

    fn run(state: RunState, attempts: u32) -> RunRecord {
        RunRecord {
            id: "r".into(),
            job: "j".into(),
            job_version: 1,
            seq: 1,
            scheduled_for_ms: 0,
            fired_at_ms: 0,
            manual: false,
            state,
            reason: None,
            slots: 1,
            last_slot_ms: 0,
            attempts: (1..=attempts)
                .map(|n| Attempt {
                    n,
                    node: 1,
                    job_version: 1,
                    fencing_token: u64::from(n),
                    lease_token: format!("t-{n}"),
                    started_at_ms: 0,
                    finished_at_ms: None,
                    result: None,
                    status: None,
                    output: String::new(),
                    error: None,
                })
                .collect(),
            next_attempt_at_ms: None,
            finished_at_ms: None,
        }
    }

    #[test]
    fn a_lagging_view_never_stops_an_attempt() {
        let mut seen = false;
        // The run is not applied here yet, or shows only an earlier attempt.
        assert!(!superseded(None, 1, &mut seen));
        assert!(!superseded(Some(&run(RunState::Pending, 0)), 1, &mut seen));
        assert!(!superseded(Some(&run(RunState::Retrying, 1)), 2, &mut seen));
        assert!(!seen);
    }

    #[test]
    fn cancellation_a_later_attempt_or_deletion_stops_it() {
        let mut seen = false;
        assert!(superseded(Some(&run(RunState::Cancelled, 1)), 1, &mut seen));
        assert!(superseded(Some(&run(RunState::Running, 3)), 2, &mut seen));
        let mut seen = false;
        assert!(!superseded(Some(&run(RunState::Running, 2)), 2, &mut seen));
        assert!(seen);
        // Gone after this node saw it running this attempt: the job was deleted.
        assert!(superseded(None, 2, &mut seen));
    }
}
