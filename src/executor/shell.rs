//! Shell targets: `/bin/sh -c` in a process group of its own, so that a
//! timeout or a cancellation can end the command together with everything it
//! started, and nothing outlives the attempt.

use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::process::ExitStatusExt;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::unix::pipe;
use tokio::process::{Child, Command};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::output::CappedOutput;
use super::{AttemptContext, AttemptOutcome, AttemptReport};

/// How long a shell's process group has between `SIGTERM` and `SIGKILL`
/// when it is stopped: 5 s.
pub const KILL_GRACE: Duration = Duration::from_secs(5);

/// How long `SIGKILL` may take to empty the group (a process in
/// uninterruptible sleep dies only when the sleep ends).
const KILL_WAIT: Duration = Duration::from_secs(1);

/// How long output is still read once the group is gone. Only a process that
/// left the group can keep the pipe open longer; it is not waited for.
const DRAIN_GRACE: Duration = Duration::from_millis(500);

/// How often a stopping group is checked for members that are still alive.
/// Its members are not our children, so there is nothing to wait on.
const POLL_INTERVAL: Duration = Duration::from_millis(20);

pub(super) async fn run(
    command: &str,
    timeout: Duration,
    ctx: &AttemptContext,
    cancel: &CancellationToken,
) -> AttemptReport {
    run_with(command, timeout, ctx, cancel, Settings::of_this_node()).await
}

/// What the node, not the job, decides about a shell attempt.
struct Settings {
    /// How long the group has between `SIGTERM` and `SIGKILL`.
    grace: Duration,
    /// The environment the command inherits, before [`is_private`] variables
    /// are taken out.
    parent_env: Vec<(OsString, OsString)>,
}

impl Settings {
    fn of_this_node() -> Self {
        Self {
            grace: KILL_GRACE,
            parent_env: std::env::vars_os().collect(),
        }
    }
}

/// Whether an inherited variable is kept from commands: every `GNOMON_*`
/// variable of the node (such as `GNOMON_TOKEN`, the API's bearer token), so
/// that the only ones a command sees are those SPEC §5 gives it.
fn is_private(name: &OsStr) -> bool {
    name.as_encoded_bytes().starts_with(b"GNOMON_")
}

async fn run_with(
    command: &str,
    timeout: Duration,
    ctx: &AttemptContext,
    cancel: &CancellationToken,
    settings: Settings,
) -> AttemptReport {
    let grace = settings.grace;
    let deadline = Instant::now() + timeout;
    let (writer, reader) = match pipe::pipe() {
        Ok(ends) => ends,
        Err(e) => return AttemptReport::failed(format!("could not create the output pipe: {e}")),
    };
    let mut child = match spawn(command, ctx, writer, settings.parent_env) {
        Ok(child) => child,
        Err(e) => return AttemptReport::failed(format!("could not start /bin/sh: {e}")),
    };
    let stop_reading = CancellationToken::new();
    let mut reading = tokio::spawn(read_all(reader, stop_reading.clone()));
    let Some(mut group) = child
        .id()
        .and_then(|pid| ProcessGroup::new(pid, stop_reading.clone()))
    else {
        // Only possible if the child was already reaped, which nothing here did.
        return AttemptReport::failed("the shell has no process id");
    };
    tracing::trace!(pgid = group.pgid, "shell started");

    // `Err` carries why the attempt was stopped before the shell exited.
    let exited = tokio::select! {
        biased;
        () = cancel.cancelled() => Err(AttemptOutcome::Cancelled),
        () = tokio::time::sleep_until(deadline) => Err(AttemptOutcome::TimedOut),
        status = child.wait() => Ok(status),
    };
    let (stopped, status) = match exited {
        Ok(status) => {
            // The shell is done; end whatever it left running in its group.
            group.stop(None, grace).await;
            (None, status)
        }
        Err(reason) => {
            group.stop(Some(&mut child), grace).await;
            (Some(reason), child.wait().await)
        }
    };

    let output = match tokio::time::timeout(DRAIN_GRACE, &mut reading).await {
        Ok(joined) => joined,
        Err(_) => {
            stop_reading.cancel();
            reading.await
        }
    };
    // The reader only fails by panicking; its output is lost then, not the report.
    let output = output.map(CappedOutput::finish).unwrap_or_default();

    let status = match status {
        Ok(status) => status,
        Err(e) => {
            let outcome = stopped.unwrap_or(AttemptOutcome::Failed);
            return AttemptReport::new(outcome, None, output)
                .with_error(format!("could not wait for the shell: {e}"));
        }
    };
    let code = exit_code(status);
    match stopped {
        Some(AttemptOutcome::Cancelled) => {
            AttemptReport::new(AttemptOutcome::Cancelled, code, output)
                .with_error("cancelled; the process group was killed")
        }
        Some(outcome) => AttemptReport::new(outcome, code, output).with_error(format!(
            "timed out after {} ms; the process group was killed",
            timeout.as_millis()
        )),
        None if status.success() => AttemptReport::new(AttemptOutcome::Succeeded, code, output),
        None => {
            let report = AttemptReport::new(AttemptOutcome::Failed, code, output);
            match status.signal() {
                Some(signal) => report.with_error(format!("killed by signal {signal}")),
                None => report,
            }
        }
    }
}

/// Starts `/bin/sh -c COMMAND` as the leader of a new process group, with
/// stdout and stderr both on `writer`.
fn spawn(
    command: &str,
    ctx: &AttemptContext,
    writer: pipe::Sender,
    parent_env: Vec<(OsString, OsString)>,
) -> io::Result<Child> {
    let stdout: OwnedFd = writer.into_blocking_fd()?;
    let stderr = stdout.try_clone()?;
    let mut shell = Command::new("/bin/sh");
    shell
        .arg("-c")
        .arg(command)
        .stdin(Stdio::null())
        .stdout(Stdio::from(stdout))
        .stderr(Stdio::from(stderr))
        .env_clear()
        .envs(parent_env.into_iter().filter(|(name, _)| !is_private(name)))
        .env("GNOMON_RUN_ID", &ctx.run_id)
        .env("GNOMON_JOB", &ctx.job)
        .env("GNOMON_SCHEDULED_FOR", ctx.scheduled_for())
        .env("GNOMON_ATTEMPT", ctx.attempt.to_string())
        .env("GNOMON_FENCING_TOKEN", ctx.fencing_token.to_string())
        .process_group(0)
        .kill_on_drop(true);
    // `shell` keeps our copies of the pipe's write end until it is dropped at
    // the end of this function; after that only the group holds it, so the
    // reader sees end-of-file once the group is gone.
    shell.spawn()
}

/// Reads the pipe to its end, keeping what [`CappedOutput`] keeps and
/// discarding the rest, until the writers are gone or `stop` fires.
async fn read_all(mut reader: pipe::Receiver, stop: CancellationToken) -> CappedOutput {
    let mut output = CappedOutput::new();
    let mut buf = vec![0; 16 * 1024];
    loop {
        tokio::select! {
            biased;
            () = stop.cancelled() => break,
            read = reader.read(&mut buf) => match read {
                Ok(0) | Err(_) => break,
                Ok(n) => output.push(&buf[..n]),
            },
        }
    }
    output
}

/// The exit code, or minus the signal that ended the process.
fn exit_code(status: ExitStatus) -> Option<i64> {
    status
        .code()
        .map(i64::from)
        .or_else(|| status.signal().map(|signal| -i64::from(signal)))
}

/// The shell's process group. Until [`ProcessGroup::stop`] has emptied it,
/// dropping it kills the whole group, so an abandoned attempt (its future
/// dropped) leaves nothing running either.
struct ProcessGroup {
    pgid: libc::pid_t,
    armed: bool,
    stop_reading: CancellationToken,
}

impl ProcessGroup {
    /// `None` for ids that would not name one group: `kill(-1)` signals every
    /// process we may signal and `kill(0)` our own group.
    fn new(pid: u32, stop_reading: CancellationToken) -> Option<Self> {
        let pgid = libc::pid_t::try_from(pid).ok().filter(|&pgid| pgid > 1)?;
        Some(Self {
            pgid,
            armed: true,
            stop_reading,
        })
    }

    /// Sends `signal` to every member; false when the group has no members.
    fn signal(&self, signal: libc::c_int) -> bool {
        // SAFETY: `kill` has no memory-safety preconditions. `pgid > 1`
        // (checked in `new`), so `-pgid` names exactly the shell's group.
        let sent = unsafe { libc::kill(-self.pgid, signal) } == 0;
        // EPERM: a member exists that we may not signal (it changed user).
        sent || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
    }

    /// Whether any member is still running. Zombies do not count: they are
    /// dead and wait for their parent (often init) to reap them.
    fn alive(&self) -> bool {
        self.signal(0) && has_running_member(self.pgid)
    }

    /// Ends the group: `SIGTERM`, up to `grace` for it to empty, then
    /// `SIGKILL`. `leader` is the shell if it has not been reaped yet; it is
    /// reaped as soon as it exits, and its status kept for `wait`.
    async fn stop(&mut self, mut leader: Option<&mut Child>, grace: Duration) {
        if self.alive() || leader.is_some() {
            self.signal(libc::SIGTERM);
            if !self.wait_until_empty(leader.as_deref_mut(), grace).await {
                tracing::debug!(
                    pgid = self.pgid,
                    "process group outlived SIGTERM; killing it"
                );
                self.signal(libc::SIGKILL);
                self.wait_until_empty(leader, KILL_WAIT).await;
            }
        }
        self.armed = false;
    }

    /// Waits up to `limit` for the group to have no running member, reaping
    /// the leader as soon as it exits so that it does not linger as one.
    async fn wait_until_empty(&self, mut leader: Option<&mut Child>, limit: Duration) -> bool {
        let give_up = Instant::now() + limit;
        loop {
            if let Some(leader) = leader.as_deref_mut() {
                // Errors resurface from the final `wait`.
                let _ = leader.try_wait();
            }
            if !self.alive() {
                return true;
            }
            if Instant::now() >= give_up {
                return false;
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        if self.armed {
            self.signal(libc::SIGKILL);
        }
        self.stop_reading.cancel();
    }
}

/// Whether a process in group `pgid` is running (not a zombie), from
/// `/proc/<pid>/stat`: `pid (comm) state ppid pgrp …`.
#[cfg(target_os = "linux")]
fn has_running_member(pgid: libc::pid_t) -> bool {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return true;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        if !name
            .to_str()
            .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()))
        {
            continue;
        }
        let mut path = entry.path();
        path.push("stat");
        // A process that exited since the listing has no stat file any more.
        let Ok(stat) = std::fs::read_to_string(path) else {
            continue;
        };
        // `comm` may hold spaces and parentheses; the fields follow the last ')'.
        let Some(fields) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            continue;
        };
        let mut fields = fields.split_whitespace();
        let state = fields.next();
        let group = fields.nth(1).and_then(|g| g.parse::<libc::pid_t>().ok());
        if group == Some(pgid) && !matches!(state, Some("Z" | "X")) {
            return true;
        }
    }
    false
}

/// Without `/proc`, every member that `kill` can see counts as running.
#[cfg(not(target_os = "linux"))]
fn has_running_member(_pgid: libc::pid_t) -> bool {
    true
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::{execute, http_client, Target, OUTPUT_LIMIT, TRUNCATION_MARKER};
    use super::*;

    fn ctx() -> AttemptContext {
        AttemptContext {
            run_id: "backup@1774746000000".to_owned(),
            job: "backup".to_owned(),
            scheduled_for_ms: 1_774_746_000_000,
            attempt: 2,
            fencing_token: 17,
        }
    }

    fn shell(command: impl Into<String>, timeout_ms: u64) -> Target {
        Target::Shell {
            command: command.into(),
            timeout_ms,
        }
    }

    async fn run(target: &Target) -> AttemptReport {
        let client = http_client().unwrap();
        execute(&client, target, &ctx(), CancellationToken::new()).await
    }

    /// Whether `pid` is a running process; a zombie has already died.
    fn running(pid: i32) -> bool {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Ok(stat) => {
                let state = stat[stat.rfind(')').unwrap() + 1..]
                    .split_whitespace()
                    .next();
                !matches!(state, Some("Z" | "X"))
            }
            Err(_) => false,
        }
    }

    /// Waits until the command has written its background child's pid.
    async fn pid_from(file: &Path) -> i32 {
        let give_up = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(text) = std::fs::read_to_string(file) {
                if text.ends_with('\n') {
                    return text.trim().parse().unwrap();
                }
            }
            assert!(
                std::time::Instant::now() < give_up,
                "no pid in {file:?} after 10 s"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// A command that starts a long `sleep` in the background, writes its pid
    /// to `file`, then sleeps itself.
    fn with_grandchild(file: &Path) -> String {
        format!(
            "sleep 300 & echo $! > '{}'; echo started; sleep 300",
            file.display()
        )
    }

    #[tokio::test]
    async fn sees_the_spec_environment() {
        let report = run(&shell(
            r#"printf '%s|%s|%s|%s|%s' "$GNOMON_RUN_ID" "$GNOMON_JOB" "$GNOMON_SCHEDULED_FOR" "$GNOMON_ATTEMPT" "$GNOMON_FENCING_TOKEN""#,
            10_000,
        ))
        .await;
        assert_eq!(report.outcome, AttemptOutcome::Succeeded, "{report:?}");
        assert_eq!(report.status, Some(0));
        assert_eq!(
            report.output,
            "backup@1774746000000|backup|2026-03-29T01:00:00Z|2|17"
        );
    }

    #[tokio::test]
    async fn inherits_the_node_environment_but_not_its_gnomon_variables() {
        let settings = Settings {
            parent_env: vec![
                ("PATH".into(), "/usr/bin:/bin".into()),
                ("TEAM".into(), "billing".into()),
                ("GNOMON_TOKEN".into(), "secret".into()),
                ("GNOMON_ATTEMPT".into(), "forged".into()),
            ],
            ..Settings::of_this_node()
        };
        let report = run_with(
            "env | grep -e ^GNOMON_ -e ^TEAM= | sort",
            Duration::from_secs(10),
            &ctx(),
            &CancellationToken::new(),
            settings,
        )
        .await;
        assert_eq!(report.outcome, AttemptOutcome::Succeeded, "{report:?}");
        assert_eq!(
            report.output,
            "GNOMON_ATTEMPT=2\n\
             GNOMON_FENCING_TOKEN=17\n\
             GNOMON_JOB=backup\n\
             GNOMON_RUN_ID=backup@1774746000000\n\
             GNOMON_SCHEDULED_FOR=2026-03-29T01:00:00Z\n\
             TEAM=billing\n"
        );
    }

    #[tokio::test]
    async fn reports_the_exit_code() {
        let report = run(&shell("echo failing; exit 7", 10_000)).await;
        assert_eq!(report.outcome, AttemptOutcome::Failed, "{report:?}");
        assert_eq!(report.status, Some(7));
        assert_eq!(report.output, "failing\n");
        assert_eq!(report.error, None);
    }

    #[tokio::test]
    async fn reports_the_signal_that_ended_it() {
        let report = run(&shell("kill -KILL $$", 10_000)).await;
        assert_eq!(report.outcome, AttemptOutcome::Failed, "{report:?}");
        assert_eq!(report.status, Some(-9));
        assert!(report.error.unwrap().contains("signal 9"));
    }

    #[tokio::test]
    async fn captures_stdout_and_stderr_together_in_order() {
        let report = run(&shell("echo one; echo two >&2; echo three", 10_000)).await;
        assert_eq!(report.outcome, AttemptOutcome::Succeeded, "{report:?}");
        assert_eq!(report.output, "one\ntwo\nthree\n");
    }

    #[tokio::test]
    async fn caps_a_mebibyte_of_output_without_blocking_the_command() {
        for redirect in ["", ">&2"] {
            let command =
                format!("head -c 1048576 /dev/zero | tr '\\0' a {redirect}; echo done >&2");
            let report = run(&shell(command, 30_000)).await;
            assert_eq!(
                report.outcome,
                AttemptOutcome::Succeeded,
                "{:?}",
                report.error
            );
            assert!(
                report.output.len() <= OUTPUT_LIMIT,
                "{}",
                report.output.len()
            );
            assert!(report.output.starts_with("aaaa"));
            assert!(
                report.output.ends_with(&format!(
                    "{TRUNCATION_MARKER} to 64 KiB of {} bytes]",
                    1_048_576 + "done\n".len()
                )),
                "{}",
                &report.output[report.output.len() - 100..]
            );
        }
    }

    #[tokio::test]
    async fn a_timeout_kills_the_command_and_its_children() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("pid");
        let started = std::time::Instant::now();
        let report = run(&shell(with_grandchild(&pid_file), 1_000)).await;
        assert_eq!(report.outcome, AttemptOutcome::TimedOut, "{report:?}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(report.status, Some(-i64::from(libc::SIGTERM)));
        assert_eq!(report.output, "started\n");
        assert!(report.error.unwrap().contains("1000 ms"));
        let grandchild = pid_from(&pid_file).await;
        assert!(
            !running(grandchild),
            "background child {grandchild} survived"
        );
    }

    #[tokio::test]
    async fn a_group_that_ignores_sigterm_gets_sigkill() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("pid");
        let command = format!("trap '' TERM; {}", with_grandchild(&pid_file));
        let started = std::time::Instant::now();
        let settings = Settings {
            grace: Duration::from_millis(300),
            ..Settings::of_this_node()
        };
        let report = run_with(
            &command,
            Duration::from_millis(500),
            &ctx(),
            &CancellationToken::new(),
            settings,
        )
        .await;
        assert_eq!(report.outcome, AttemptOutcome::TimedOut, "{report:?}");
        assert!(started.elapsed() >= Duration::from_millis(800));
        assert_eq!(report.status, Some(-i64::from(libc::SIGKILL)));
        let grandchild = pid_from(&pid_file).await;
        assert!(
            !running(grandchild),
            "background child {grandchild} survived"
        );
    }

    #[tokio::test]
    async fn cancel_kills_the_group_promptly() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("pid");
        let cancel = CancellationToken::new();
        let attempt = {
            let target = shell(with_grandchild(&pid_file), 60_000);
            let cancel = cancel.clone();
            tokio::spawn(async move {
                let client = http_client().unwrap();
                execute(&client, &target, &ctx(), cancel).await
            })
        };
        let grandchild = pid_from(&pid_file).await;
        assert!(running(grandchild));
        cancel.cancel();
        let report = tokio::time::timeout(Duration::from_secs(3), attempt)
            .await
            .expect("execute returned within 3 s of the cancel")
            .unwrap();
        assert_eq!(report.outcome, AttemptOutcome::Cancelled, "{report:?}");
        assert!(
            !running(grandchild),
            "background child {grandchild} survived"
        );
    }

    #[tokio::test]
    async fn leftovers_of_a_finished_command_are_ended() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("pid");
        let command = format!("sleep 300 & echo $! > '{}'; echo bye", pid_file.display());
        let started = std::time::Instant::now();
        let report = run(&shell(command, 60_000)).await;
        assert_eq!(report.outcome, AttemptOutcome::Succeeded, "{report:?}");
        assert_eq!(report.output, "bye\n");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        let leftover = pid_from(&pid_file).await;
        assert!(!running(leftover), "background child {leftover} survived");
    }

    #[tokio::test]
    async fn dropping_the_attempt_kills_the_group() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("pid");
        let attempt = {
            let target = shell(with_grandchild(&pid_file), 60_000);
            tokio::spawn(async move { run(&target).await })
        };
        let grandchild = pid_from(&pid_file).await;
        attempt.abort();
        assert!(attempt.await.unwrap_err().is_cancelled());
        // SIGKILL was sent when the future was dropped; death follows shortly.
        let give_up = std::time::Instant::now() + Duration::from_secs(5);
        while running(grandchild) {
            assert!(std::time::Instant::now() < give_up, "{grandchild} survived");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}
