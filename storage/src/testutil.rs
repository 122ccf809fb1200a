//! Helpers for the state-machine unit tests: a temp redb file and a log.

use tempfile::TempDir;

use crate::command::{Batch, Command, Outcome};
use crate::sm::{LogEntry, StateMachine};

/// A state machine over a fresh redb file, with a log index counter.
pub(crate) struct TestSm {
    pub(crate) dir: TempDir,
    pub(crate) sm: StateMachine,
    pub(crate) index: u64,
}

impl TestSm {
    pub(crate) fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let sm = StateMachine::new(crate::db::open(&dir.path().join("node.redb")).unwrap());
        Self { dir, sm, index: 0 }
    }

    /// Apply one entry of `commands` stamped `now_ms`; returns its outcomes.
    pub(crate) fn apply(&mut self, now_ms: u64, commands: Vec<Command>) -> Vec<Outcome> {
        self.index += 1;
        let entry = LogEntry {
            log_id: self.index.to_be_bytes().to_vec(),
            membership: None,
            batch: Some(Batch { now_ms, commands }),
        };
        self.sm.apply(vec![entry]).unwrap().pop().unwrap()
    }

    /// Apply a single command; returns its outcome.
    pub(crate) fn one(&mut self, now_ms: u64, command: impl Into<Command>) -> Outcome {
        self.apply(now_ms, vec![command.into()]).pop().unwrap()
    }
}
