//! Replicated scalars: the log's clock and the fencing-token sequence.
//!
//! They are read once per applied batch and written back in the same
//! transaction, so they move forward exactly with the log.

use redb::{ReadableTable, WriteTransaction};
use serde::{Deserialize, Serialize};

use crate::codec;
use crate::error::Result;
use crate::tables::VARS;

const KEY: &[u8] = b"vars";

/// The state machine's scalars.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vars {
    /// `max` of every applied command's `now_ms`: the time every TTL, lease
    /// and due time is judged against (SPEC §2).
    pub log_now_ms: u64,
    /// The last fencing token handed out.
    pub fence_seq: u64,
    /// Bumped by every change to a job's definition or enabled state, so the
    /// scheduler notices changes without rereading every job.
    pub jobs_revision: u64,
}

impl Vars {
    /// Take the next fencing token.
    pub(crate) fn next_fence(&mut self) -> u64 {
        self.fence_seq += 1;
        self.fence_seq
    }

    pub(crate) fn load(table: &impl ReadableTable<&'static [u8], &'static [u8]>) -> Result<Self> {
        match table.get(KEY)? {
            Some(v) => codec::decode("vars", v.value()),
            None => Ok(Self::default()),
        }
    }

    pub(crate) fn store(&self, txn: &WriteTransaction) -> Result<()> {
        txn.open_table(VARS)?
            .insert(KEY, codec::encode(self).as_slice())?;
        Ok(())
    }
}
