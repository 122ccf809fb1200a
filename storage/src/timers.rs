//! The time index: every instant at which the replicated state must change
//! without a client asking (a lease lapses, a record expires, garbage is due
//! for collection).
//!
//! Each entry names an instant, the kind of thing waiting and its subject.
//! The leader reads the earliest instant to know when to propose a `Tick`
//! (and proposes nothing while the index is empty), and a tick finds its
//! work by reading the index from the front instead of scanning the state.
//! Whoever adds an entry removes it when the thing it waits for changes, so
//! the index holds only real work.

use redb::{ReadableTable, Table};

use crate::error::Result;

/// What a timer entry waits for; the byte stored in its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum TimerKind {
    /// A queue message's lease lapses, or its tombstone or dead letter is
    /// due for collection. Subject: `queue 0x00 id`.
    Message = 1,
    /// An idempotency-ledger record has expired and is due for collection.
    /// Subject: the key.
    Ledger = 2,
}

impl TimerKind {
    fn from_byte(b: u8) -> Option<Self> {
        match b {
            1 => Some(Self::Message),
            2 => Some(Self::Ledger),
            _ => None,
        }
    }
}

/// One entry of the time index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Timer {
    /// The log time from which the entry is due.
    pub(crate) at_ms: u64,
    /// What waits; `None` for a kind this version does not know.
    pub(crate) kind: Option<TimerKind>,
    /// Which thing waits, in the kind's encoding.
    pub(crate) subject: Vec<u8>,
    /// The entry's whole key.
    key: Vec<u8>,
}

/// Garbage collection need not be prompt: rounding its instants up to a
/// whole second lets one tick collect everything that fell due in it.
pub(crate) fn gc_instant(at_ms: u64) -> u64 {
    at_ms.div_ceil(1000).saturating_mul(1000)
}

fn key(at_ms: u64, kind: TimerKind, subject: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(9 + subject.len());
    k.extend_from_slice(&at_ms.to_be_bytes());
    k.push(kind as u8);
    k.extend_from_slice(subject);
    k
}

/// Add an entry (adding one that exists is a no-op).
pub(crate) fn add(
    table: &mut Table<&'static [u8], &'static [u8]>,
    at_ms: u64,
    kind: TimerKind,
    subject: &[u8],
) -> Result<()> {
    table.insert(key(at_ms, kind, subject).as_slice(), [].as_slice())?;
    Ok(())
}

/// Remove an entry, if it is there.
pub(crate) fn remove(
    table: &mut Table<&'static [u8], &'static [u8]>,
    at_ms: u64,
    kind: TimerKind,
    subject: &[u8],
) -> Result<()> {
    table.remove(key(at_ms, kind, subject).as_slice())?;
    Ok(())
}

/// The earliest instant anything waits for, if anything does.
pub(crate) fn next(
    table: &impl ReadableTable<&'static [u8], &'static [u8]>,
) -> Result<Option<u64>> {
    Ok(table.first()?.and_then(|(k, _)| instant_of(k.value())))
}

/// Up to `limit` entries due at `now_ms`, earliest first.
pub(crate) fn due(
    table: &impl ReadableTable<&'static [u8], &'static [u8]>,
    now_ms: u64,
    limit: usize,
) -> Result<Vec<Timer>> {
    // Every key of an instant <= now_ms sorts before the 8 bytes of now_ms + 1.
    let after = now_ms.checked_add(1).map(u64::to_be_bytes);
    let iter = match &after {
        Some(after) => table.range::<&[u8]>(..after.as_slice())?,
        None => table.range::<&[u8]>(..)?,
    };
    let mut out = Vec::new();
    for row in iter.take(limit) {
        let (k, _) = row?;
        let k = k.value();
        out.push(Timer {
            at_ms: instant_of(k).unwrap_or(0),
            kind: k.get(8).copied().and_then(TimerKind::from_byte),
            subject: k.get(9..).unwrap_or_default().to_vec(),
            key: k.to_vec(),
        });
    }
    Ok(out)
}

/// Remove an entry as [`due`] returned it, whatever its kind.
pub(crate) fn remove_timer(
    table: &mut Table<&'static [u8], &'static [u8]>,
    timer: &Timer,
) -> Result<()> {
    table.remove(timer.key.as_slice())?;
    Ok(())
}

fn instant_of(key: &[u8]) -> Option<u64> {
    key.get(..8)
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map(u64::from_be_bytes)
}
