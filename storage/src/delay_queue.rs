//! The delay queue: messages that become due later, leased to workers with
//! a visibility timeout, acked, retried and dead-lettered.
//!
//! A message is in one of four states, and each state has exactly the index
//! rows it needs, so no hot path scans:
//!
//! * **waiting**: a row in [`QUEUE_DUE`] at (due time, sequence). It is
//!   *ready* once `log_now` reaches its due time and *delayed* before that;
//!   a lease reads the front of the queue's due rows and nothing else.
//! * **leased**: a [`TIMERS`] entry at the lease's expiry. A `Tick` at that
//!   instant makes it waiting again (due at the lapse, attempt + 1 on its next
//!   lease), or dead once it has had `max_attempts` deliveries.
//! * **dead**: a row in [`QUEUE_DEAD`] and a timer for its collection after
//!   [`DEAD_RETENTION_MS`].
//! * **acked**: a tombstone without payload, kept so that a retried enqueue
//!   or ack is harmless and a dedup key is remembered, then collected.
//!
//! The dedup window: a `dedup_key` maps to its message while the message is
//! in the queue (waiting, leased or dead) and for [`DEDUP_WINDOW_MS`] after it
//! is acked; a message without one keeps its tombstone for
//! [`ACKED_RETENTION_MS`]. Every time is `log_now`, never a clock.
//!
//! Besides the commands in [`crate::command`], other commands' `apply` can
//! use `enqueue`, `remove` and `message` inside their own transaction,
//! so that (for example) creating a run and enqueueing its first attempt is
//! one atomic change. Queue names that start with [`RESERVED_PREFIX`] are
//! for such internal use: the public API refuses to write to them.

use std::collections::BTreeMap;

use redb::{ReadableTable, Table, WriteTransaction};
use serde::{Deserialize, Serialize};

use crate::codec;
use crate::command::ApplyCtx;
use crate::error::Result;
use crate::limits::{check_name, check_token, InvalidInput, MAX_ATTEMPTS};
use crate::tables::{QUEUES, QUEUE_DEAD, QUEUE_DEDUP, QUEUE_DUE, QUEUE_MESSAGES, TIMERS};
use crate::timers::{self, TimerKind};

/// Queue names with this prefix are internal (e.g. `gnomon:attempts`).
pub const RESERVED_PREFIX: &str = "gnomon:";

/// How long an acked message's dedup key is remembered.
pub const DEDUP_WINDOW_MS: u64 = 5 * 60 * 1000;

/// How long an acked message without a dedup key is remembered (by id), so
/// that a retried enqueue or ack within it changes nothing.
pub const ACKED_RETENTION_MS: u64 = 60 * 1000;

/// How long a dead letter is kept.
pub const DEAD_RETENTION_MS: u64 = 7 * 24 * 3600 * 1000;

/// Deliveries a message gets unless the enqueuer says otherwise.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 5;

/// Whether `queue` is reserved for gnomon's own use.
pub fn is_reserved(queue: &str) -> bool {
    queue.starts_with(RESERVED_PREFIX)
}

/// One message as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageRecord {
    /// The payload as JSON text; empty once acked.
    pub payload: String,
    /// Order of enqueueing within the queue: ties of due time go by it.
    pub seq: u64,
    /// `log_now` when it was enqueued.
    pub enqueued_at_ms: u64,
    /// When it is (or was last) due: the enqueue's due time, a nack's
    /// delay, or the instant its last lease lapsed.
    pub due_at_ms: u64,
    /// Deliveries so far; the next lease is attempt `attempt + 1`.
    pub attempt: u32,
    /// Deliveries allowed before it is dead-lettered.
    pub max_attempts: u32,
    /// The enqueuer's dedup key, if any.
    pub dedup_key: Option<String>,
    /// Where it stands.
    pub state: MessageState,
}

/// The states of a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MessageState {
    /// Waiting to be due, or due and waiting for a worker.
    Waiting,
    /// Leased to a worker.
    Leased {
        /// The worker holding it.
        worker: String,
        /// The token that acks, nacks or extends this lease.
        lease_token: String,
        /// `log_now` when it was leased.
        leased_at_ms: u64,
        /// The lease lapses at this instant unless extended.
        expires_at_ms: u64,
    },
    /// In the dead letters.
    Dead {
        /// `log_now` when it died.
        died_at_ms: u64,
        /// Why.
        reason: DeathReason,
        /// The worker of its last delivery.
        last_worker: String,
        /// When it is collected.
        gc_at_ms: u64,
    },
    /// Acked: a tombstone.
    Acked {
        /// The token of the lease it was acked under.
        lease_token: String,
        /// `log_now` when it was acked.
        acked_at_ms: u64,
        /// When the tombstone is collected.
        gc_at_ms: u64,
    },
}

/// Why a message was dead-lettered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeathReason {
    /// Its last allowed delivery was nacked.
    Nacked,
    /// Its last allowed delivery's lease lapsed.
    LeaseLapsed,
}

/// Per-queue bookkeeping.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueMeta {
    /// The next enqueue's sequence number.
    pub next_seq: u64,
    /// Messages waiting (ready or delayed).
    pub waiting: u64,
    /// Messages leased.
    pub leased: u64,
    /// Dead letters.
    pub dead: u64,
}

impl QueueMeta {
    fn is_empty(&self) -> bool {
        self.waiting == 0 && self.leased == 0 && self.dead == 0
    }
}

/// A queue's counts at one instant, as `GET /v1/queues` reports them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueStats {
    /// The queue's name.
    pub name: String,
    /// Waiting messages that are due.
    pub ready: u64,
    /// Waiting messages not yet due.
    pub delayed: u64,
    /// Leased messages.
    pub leased: u64,
    /// Dead letters.
    pub dead: u64,
}

/// A message handed to a worker by a lease.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeasedMessage {
    /// The message id.
    pub id: String,
    /// The payload as JSON text.
    pub payload: String,
    /// Which delivery this is, from 1.
    pub attempt: u32,
    /// Deliveries allowed in all.
    pub max_attempts: u32,
    /// The token to ack, nack or extend with.
    pub lease_token: String,
    /// When it became due for this delivery.
    pub due_at_ms: u64,
    /// `log_now` when it was leased (never before `due_at_ms`).
    pub leased_at_ms: u64,
    /// When the lease lapses unless extended.
    pub expires_at_ms: u64,
    /// When it was enqueued.
    pub enqueued_at_ms: u64,
}

/// Why a lease token does not hold a message (any more).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum NotHeld {
    /// The message is waiting: its lease lapsed or was nacked.
    Waiting,
    /// Another lease holds it (the caller's lapsed and it was re-leased).
    LeasedByAnother,
    /// The caller's lease lapsed.
    Lapsed,
    /// The message was acked under another lease.
    Acked,
    /// The message is in the dead letters.
    Dead,
}

/// What applying a queue command did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum QueueOutcome {
    /// Enqueued, or a duplicate of the message `id` (same id, or same dedup key).
    Enqueued {
        /// The message's id: the first message's when a duplicate.
        id: String,
        /// When it is due.
        due_at_ms: u64,
        /// Whether the message already existed.
        duplicate: bool,
    },
    /// The messages leased, in due order (none if none was due).
    Leased {
        /// `log_now` of the lease.
        leased_at_ms: u64,
        /// What the worker got.
        messages: Vec<LeasedMessage>,
    },
    /// The message is acked (now or already, under the same token).
    Acked {
        /// When it was acked.
        acked_at_ms: u64,
    },
    /// The lease was given back.
    Nacked {
        /// `log_now` of the nack.
        nacked_at_ms: u64,
        /// When it is due again; `None` when it went to the dead letters.
        due_at_ms: Option<u64>,
    },
    /// The lease was extended.
    Extended {
        /// The lease's new expiry.
        expires_at_ms: u64,
    },
    /// No queue has this name (it has no messages).
    QueueNotFound,
    /// The queue has no message with this id.
    MessageNotFound,
    /// The lease token does not hold the message.
    LeaseNotHeld(NotHeld),
}

/// A message for `enqueue`, the API other commands use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMessage<'a> {
    /// The queue (may be reserved).
    pub queue: &'a str,
    /// The id, chosen by the proposer: unique within the queue.
    pub id: &'a str,
    /// The payload as JSON text.
    pub payload: &'a str,
    /// When it becomes due, in log time. A past instant is due at once,
    /// and sorts before messages due later (older slots first).
    pub due_at_ms: u64,
    /// Deliveries allowed before it is dead-lettered, 1 or more.
    pub max_attempts: u32,
    /// A key that makes later enqueues with the same key duplicates.
    pub dedup_key: Option<&'a str>,
}

impl NewMessage<'_> {
    /// Check the fields a caller supplies; `enqueue` expects valid input.
    pub fn validate(&self) -> Result<(), InvalidInput> {
        check_name("queue", self.queue)?;
        check_name("id", self.id)?;
        check_attempts(self.max_attempts)?;
        if let Some(key) = self.dedup_key {
            check_token("dedup_key", key)?;
        }
        Ok(())
    }
}

/// Check `max_attempts`: 1 to [`MAX_ATTEMPTS`].
pub fn check_attempts(max_attempts: u32) -> Result<(), InvalidInput> {
    if max_attempts == 0 || max_attempts > MAX_ATTEMPTS {
        return Err(InvalidInput::new(
            "max_attempts",
            format!("must be between 1 and {MAX_ATTEMPTS}, got {max_attempts}"),
        ));
    }
    Ok(())
}

/// `queue 0x00`: the prefix of every row of one queue. Names never hold 0x00.
fn prefix(queue: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(queue.len() + 1);
    k.extend_from_slice(queue.as_bytes());
    k.push(0);
    k
}

fn message_key(queue: &str, id: &str) -> Vec<u8> {
    let mut k = prefix(queue);
    k.extend_from_slice(id.as_bytes());
    k
}

fn ordered_key(queue: &str, at_ms: u64, seq: u64) -> Vec<u8> {
    let mut k = prefix(queue);
    k.extend_from_slice(&at_ms.to_be_bytes());
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

/// Split a message key (`queue 0x00 id`) into its parts.
fn split_message_key(key: &[u8]) -> Option<(&str, &str)> {
    let nul = key.iter().position(|b| *b == 0)?;
    let queue = std::str::from_utf8(&key[..nul]).ok()?;
    let id = std::str::from_utf8(&key[nul + 1..]).ok()?;
    Some((queue, id))
}

type BytesTable<'t> = Table<'t, &'static [u8], &'static [u8]>;

/// The queue tables, open for one operation, with the touched queues'
/// counters cached until [`Tables::finish`] writes them back.
struct Tables<'t> {
    messages: BytesTable<'t>,
    due: BytesTable<'t>,
    dead: BytesTable<'t>,
    dedup: BytesTable<'t>,
    queues: BytesTable<'t>,
    timers: BytesTable<'t>,
    metas: BTreeMap<String, QueueMeta>,
}

impl<'t> Tables<'t> {
    fn open(txn: &'t WriteTransaction) -> Result<Self> {
        Ok(Self {
            messages: txn.open_table(QUEUE_MESSAGES)?,
            due: txn.open_table(QUEUE_DUE)?,
            dead: txn.open_table(QUEUE_DEAD)?,
            dedup: txn.open_table(QUEUE_DEDUP)?,
            queues: txn.open_table(QUEUES)?,
            timers: txn.open_table(TIMERS)?,
            metas: BTreeMap::new(),
        })
    }

    fn meta(&mut self, queue: &str) -> Result<&mut QueueMeta> {
        if !self.metas.contains_key(queue) {
            let stored = get_meta(&self.queues, queue)?.unwrap_or_default();
            self.metas.insert(queue.to_string(), stored);
        }
        Ok(self.metas.entry(queue.to_string()).or_default())
    }

    fn queue_exists(&mut self, queue: &str) -> Result<bool> {
        Ok(!self.meta(queue)?.is_empty())
    }

    /// Write back the counters; a queue with no messages left is dropped.
    fn finish(mut self) -> Result<()> {
        for (queue, meta) in std::mem::take(&mut self.metas) {
            if meta.is_empty() {
                self.queues.remove(queue.as_bytes())?;
            } else {
                self.queues
                    .insert(queue.as_bytes(), codec::encode(&meta).as_slice())?;
            }
        }
        Ok(())
    }

    fn get(&self, queue: &str, id: &str) -> Result<Option<MessageRecord>> {
        get_message(&self.messages, queue, id)
    }

    fn put(&mut self, queue: &str, id: &str, record: &MessageRecord) -> Result<()> {
        self.messages.insert(
            message_key(queue, id).as_slice(),
            codec::encode(record).as_slice(),
        )?;
        Ok(())
    }

    /// Remove the index rows and count of `record`'s state.
    fn unindex(&mut self, queue: &str, id: &str, record: &MessageRecord) -> Result<()> {
        let subject = message_key(queue, id);
        match &record.state {
            MessageState::Waiting => {
                self.due
                    .remove(ordered_key(queue, record.due_at_ms, record.seq).as_slice())?;
                let meta = self.meta(queue)?;
                meta.waiting = meta.waiting.saturating_sub(1);
            }
            MessageState::Leased { expires_at_ms, .. } => {
                timers::remove(
                    &mut self.timers,
                    *expires_at_ms,
                    TimerKind::Message,
                    &subject,
                )?;
                let meta = self.meta(queue)?;
                meta.leased = meta.leased.saturating_sub(1);
            }
            MessageState::Dead {
                died_at_ms,
                gc_at_ms,
                ..
            } => {
                self.dead
                    .remove(ordered_key(queue, *died_at_ms, record.seq).as_slice())?;
                timers::remove(&mut self.timers, *gc_at_ms, TimerKind::Message, &subject)?;
                let meta = self.meta(queue)?;
                meta.dead = meta.dead.saturating_sub(1);
            }
            MessageState::Acked { gc_at_ms, .. } => {
                timers::remove(&mut self.timers, *gc_at_ms, TimerKind::Message, &subject)?;
            }
        }
        Ok(())
    }

    /// Add the index rows and count of `record`'s state.
    fn index(&mut self, queue: &str, id: &str, record: &MessageRecord) -> Result<()> {
        let subject = message_key(queue, id);
        match &record.state {
            MessageState::Waiting => {
                self.due.insert(
                    ordered_key(queue, record.due_at_ms, record.seq).as_slice(),
                    id.as_bytes(),
                )?;
                self.meta(queue)?.waiting += 1;
            }
            MessageState::Leased { expires_at_ms, .. } => {
                timers::add(
                    &mut self.timers,
                    *expires_at_ms,
                    TimerKind::Message,
                    &subject,
                )?;
                self.meta(queue)?.leased += 1;
            }
            MessageState::Dead {
                died_at_ms,
                gc_at_ms,
                ..
            } => {
                self.dead.insert(
                    ordered_key(queue, *died_at_ms, record.seq).as_slice(),
                    id.as_bytes(),
                )?;
                timers::add(&mut self.timers, *gc_at_ms, TimerKind::Message, &subject)?;
                self.meta(queue)?.dead += 1;
            }
            MessageState::Acked { gc_at_ms, .. } => {
                timers::add(&mut self.timers, *gc_at_ms, TimerKind::Message, &subject)?;
            }
        }
        Ok(())
    }

    /// Move `record` to `state`, keeping every index and count in step.
    fn transition(
        &mut self,
        queue: &str,
        id: &str,
        record: &mut MessageRecord,
        state: MessageState,
    ) -> Result<()> {
        self.unindex(queue, id, record)?;
        record.state = state;
        self.index(queue, id, record)?;
        self.put(queue, id, record)
    }

    /// Delete `record` and everything that points at it.
    fn delete(&mut self, queue: &str, id: &str, record: &MessageRecord) -> Result<()> {
        self.unindex(queue, id, record)?;
        self.messages.remove(message_key(queue, id).as_slice())?;
        if let Some(key) = &record.dedup_key {
            let row = message_key(queue, key);
            let points_here = self
                .dedup
                .get(row.as_slice())?
                .is_some_and(|v| v.value() == id.as_bytes());
            if points_here {
                self.dedup.remove(row.as_slice())?;
            }
        }
        Ok(())
    }

    /// The message after a delivery ends without an ack: waiting again, due
    /// at `due_at_ms`, or dead once it has had all its deliveries.
    fn redeliver_or_bury(
        &mut self,
        queue: &str,
        id: &str,
        record: &mut MessageRecord,
        now_ms: u64,
        due_at_ms: u64,
        reason: DeathReason,
    ) -> Result<()> {
        if record.attempt >= record.max_attempts {
            let last_worker = match &record.state {
                MessageState::Leased { worker, .. } => worker.clone(),
                _ => String::new(),
            };
            let state = MessageState::Dead {
                died_at_ms: now_ms,
                reason,
                last_worker,
                gc_at_ms: timers::gc_instant(now_ms.saturating_add(DEAD_RETENTION_MS)),
            };
            self.transition(queue, id, record, state)
        } else {
            self.unindex(queue, id, record)?;
            record.due_at_ms = due_at_ms;
            record.state = MessageState::Waiting;
            self.index(queue, id, record)?;
            self.put(queue, id, record)
        }
    }
}

fn get_meta(
    table: &impl ReadableTable<&'static [u8], &'static [u8]>,
    queue: &str,
) -> Result<Option<QueueMeta>> {
    table
        .get(queue.as_bytes())?
        .map(|v| codec::decode("queue counters", v.value()))
        .transpose()
}

fn get_message(
    table: &impl ReadableTable<&'static [u8], &'static [u8]>,
    queue: &str,
    id: &str,
) -> Result<Option<MessageRecord>> {
    table
        .get(message_key(queue, id).as_slice())?
        .map(|v| codec::decode("queue message", v.value()))
        .transpose()
}

/// Enqueue a message inside the caller's transaction.
///
/// A message with the same id in the queue (in any state, including an
/// acked tombstone), or with the same dedup key within the dedup window,
/// makes this a duplicate: nothing changes and the existing message's id
/// and due time come back. `message` must pass [`NewMessage::validate`].
/// The caller must not hold any queue table or [`TIMERS`] open.
pub(crate) fn enqueue(ctx: &mut ApplyCtx<'_>, message: &NewMessage<'_>) -> Result<QueueOutcome> {
    let now = ctx.now_ms();
    let mut t = Tables::open(ctx.txn)?;
    let queue = message.queue;
    if let Some(existing) = t.get(queue, message.id)? {
        return Ok(QueueOutcome::Enqueued {
            id: message.id.to_string(),
            due_at_ms: existing.due_at_ms,
            duplicate: true,
        });
    }
    if let Some(key) = message.dedup_key {
        let first = t
            .dedup
            .get(message_key(queue, key).as_slice())?
            .map(|v| String::from_utf8_lossy(v.value()).into_owned());
        if let Some(first) = first {
            if let Some(existing) = t.get(queue, &first)? {
                return Ok(QueueOutcome::Enqueued {
                    id: first,
                    due_at_ms: existing.due_at_ms,
                    duplicate: true,
                });
            }
        }
    }
    let meta = t.meta(queue)?;
    let seq = meta.next_seq;
    meta.next_seq += 1;
    let record = MessageRecord {
        payload: message.payload.to_string(),
        seq,
        enqueued_at_ms: now,
        due_at_ms: message.due_at_ms,
        attempt: 0,
        max_attempts: message.max_attempts,
        dedup_key: message.dedup_key.map(str::to_string),
        state: MessageState::Waiting,
    };
    t.index(queue, message.id, &record)?;
    t.put(queue, message.id, &record)?;
    if let Some(key) = message.dedup_key {
        t.dedup
            .insert(message_key(queue, key).as_slice(), message.id.as_bytes())?;
    }
    t.finish()?;
    Ok(QueueOutcome::Enqueued {
        id: message.id.to_string(),
        due_at_ms: record.due_at_ms,
        duplicate: false,
    })
}

/// Remove a message in any state (cancel it), with every index row and
/// its dedup key; returns what was removed. A worker holding its lease
/// then finds it gone. The caller must not hold any queue table open.
// Used by commands that cancel work as part of a larger change.
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) fn remove(
    ctx: &mut ApplyCtx<'_>,
    queue: &str,
    id: &str,
) -> Result<Option<MessageRecord>> {
    let mut t = Tables::open(ctx.txn)?;
    let Some(record) = t.get(queue, id)? else {
        return Ok(None);
    };
    t.delete(queue, id, &record)?;
    t.finish()?;
    Ok(Some(record))
}

/// Read a message in any state inside the caller's transaction.
pub(crate) fn message(ctx: &ApplyCtx<'_>, queue: &str, id: &str) -> Result<Option<MessageRecord>> {
    get_message(&ctx.txn.open_table(QUEUE_MESSAGES)?, queue, id)
}

/// Parameters of a lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LeaseRequest<'a> {
    pub(crate) queue: &'a str,
    pub(crate) worker: &'a str,
    pub(crate) max: usize,
    pub(crate) max_bytes: u64,
    pub(crate) visibility_ms: u64,
    pub(crate) token_base: &'a str,
}

/// Lease up to `max` due messages, in due order, stopping early once their
/// payloads reach `max_bytes` (at least one is always leased if one is due).
/// Reads only the front of the queue's due rows.
pub(crate) fn lease(ctx: &mut ApplyCtx<'_>, req: &LeaseRequest<'_>) -> Result<QueueOutcome> {
    let now = ctx.now_ms();
    let mut t = Tables::open(ctx.txn)?;
    let start = prefix(req.queue);
    let end = ordered_key(req.queue, now, u64::MAX);
    let mut picked = Vec::new();
    let mut bytes = 0u64;
    for row in t.due.range::<&[u8]>(start.as_slice()..=end.as_slice())? {
        if picked.len() >= req.max {
            break;
        }
        let (_, id) = row?;
        let id = String::from_utf8_lossy(id.value()).into_owned();
        let Some(record) = t.get(req.queue, &id)? else {
            continue;
        };
        let size = record.payload.len() as u64;
        if !picked.is_empty() && bytes.saturating_add(size) > req.max_bytes {
            break;
        }
        bytes = bytes.saturating_add(size);
        picked.push((id, record));
    }
    let expires_at_ms = now.saturating_add(req.visibility_ms);
    let mut messages = Vec::with_capacity(picked.len());
    for (id, mut record) in picked {
        let attempt = record.attempt + 1;
        let lease_token = format!("{}-{attempt}", req.token_base);
        t.unindex(req.queue, &id, &record)?;
        record.attempt = attempt;
        record.state = MessageState::Leased {
            worker: req.worker.to_string(),
            lease_token: lease_token.clone(),
            leased_at_ms: now,
            expires_at_ms,
        };
        t.index(req.queue, &id, &record)?;
        t.put(req.queue, &id, &record)?;
        messages.push(LeasedMessage {
            id,
            payload: record.payload,
            attempt,
            max_attempts: record.max_attempts,
            lease_token,
            due_at_ms: record.due_at_ms,
            leased_at_ms: now,
            expires_at_ms,
            enqueued_at_ms: record.enqueued_at_ms,
        });
    }
    t.finish()?;
    Ok(QueueOutcome::Leased {
        leased_at_ms: now,
        messages,
    })
}

/// What a lease-token command does to a message it holds.
pub(crate) enum LeaseAction {
    /// Done: keep a tombstone.
    Ack,
    /// Give it back, due `delay_ms` from now (or dead if out of attempts).
    Nack { delay_ms: u64 },
    /// Keep it `visibility_ms` longer from now.
    Extend { visibility_ms: u64 },
}

/// Ack, nack or extend the message `id` if `lease_token` holds its lease.
pub(crate) fn settle(
    ctx: &mut ApplyCtx<'_>,
    queue: &str,
    id: &str,
    lease_token: &str,
    action: LeaseAction,
) -> Result<QueueOutcome> {
    let now = ctx.now_ms();
    let mut t = Tables::open(ctx.txn)?;
    let Some(mut record) = t.get(queue, id)? else {
        let outcome = if t.queue_exists(queue)? {
            QueueOutcome::MessageNotFound
        } else {
            QueueOutcome::QueueNotFound
        };
        return Ok(outcome);
    };
    let held = match &record.state {
        MessageState::Leased {
            lease_token: token,
            expires_at_ms,
            ..
        } => {
            if token != lease_token {
                Err(NotHeld::LeasedByAnother)
            } else if now >= *expires_at_ms {
                Err(NotHeld::Lapsed)
            } else {
                Ok(())
            }
        }
        MessageState::Acked {
            lease_token: token,
            acked_at_ms,
            ..
        } => {
            // A repeated ack under the same lease is answered as the first was.
            if token == lease_token && matches!(action, LeaseAction::Ack) {
                return Ok(QueueOutcome::Acked {
                    acked_at_ms: *acked_at_ms,
                });
            }
            Err(NotHeld::Acked)
        }
        MessageState::Waiting => Err(NotHeld::Waiting),
        MessageState::Dead { .. } => Err(NotHeld::Dead),
    };
    if let Err(why) = held {
        return Ok(QueueOutcome::LeaseNotHeld(why));
    }
    let outcome = match action {
        LeaseAction::Ack => {
            let retention = if record.dedup_key.is_some() {
                DEDUP_WINDOW_MS
            } else {
                ACKED_RETENTION_MS
            };
            let state = MessageState::Acked {
                lease_token: lease_token.to_string(),
                acked_at_ms: now,
                gc_at_ms: timers::gc_instant(now.saturating_add(retention)),
            };
            record.payload = String::new();
            t.transition(queue, id, &mut record, state)?;
            QueueOutcome::Acked { acked_at_ms: now }
        }
        LeaseAction::Nack { delay_ms } => {
            let due = now.saturating_add(delay_ms);
            t.redeliver_or_bury(queue, id, &mut record, now, due, DeathReason::Nacked)?;
            QueueOutcome::Nacked {
                nacked_at_ms: now,
                due_at_ms: matches!(record.state, MessageState::Waiting).then_some(due),
            }
        }
        LeaseAction::Extend { visibility_ms } => {
            let expires = now.saturating_add(visibility_ms);
            let mut state = record.state.clone();
            if let MessageState::Leased { expires_at_ms, .. } = &mut state {
                *expires_at_ms = expires;
            }
            t.transition(queue, id, &mut record, state)?;
            QueueOutcome::Extended {
                expires_at_ms: expires,
            }
        }
    };
    t.finish()?;
    Ok(outcome)
}

/// A message timer fired: lapse a lease, or collect a tombstone or a dead
/// letter, whichever the message's state says is due.
pub(crate) fn on_timer(ctx: &mut ApplyCtx<'_>, subject: &[u8], at_ms: u64) -> Result<()> {
    let now = ctx.now_ms();
    let Some((queue, id)) = split_message_key(subject) else {
        return Ok(());
    };
    let mut t = Tables::open(ctx.txn)?;
    let Some(mut record) = t.get(queue, id)? else {
        return Ok(());
    };
    match record.state {
        MessageState::Leased { expires_at_ms, .. }
            if expires_at_ms == at_ms && expires_at_ms <= now =>
        {
            t.redeliver_or_bury(
                queue,
                id,
                &mut record,
                now,
                expires_at_ms,
                DeathReason::LeaseLapsed,
            )?;
        }
        MessageState::Dead { gc_at_ms, .. } | MessageState::Acked { gc_at_ms, .. }
            if gc_at_ms == at_ms && gc_at_ms <= now =>
        {
            t.delete(queue, id, &record)?;
        }
        // A stale entry: the message has moved on and has its own timer.
        _ => {}
    }
    t.finish()
}

/// The counts of `queue` at `now_ms`, if it has any messages. Counting the
/// ready ones reads the due rows up to `now_ms`.
pub(crate) fn stats(
    queues: &impl ReadableTable<&'static [u8], &'static [u8]>,
    due: &impl ReadableTable<&'static [u8], &'static [u8]>,
    queue: &str,
    now_ms: u64,
) -> Result<Option<QueueStats>> {
    let Some(meta) = get_meta(queues, queue)? else {
        return Ok(None);
    };
    let start = prefix(queue);
    let end = ordered_key(queue, now_ms, u64::MAX);
    let mut ready = 0u64;
    for row in due.range::<&[u8]>(start.as_slice()..=end.as_slice())? {
        row?;
        ready += 1;
    }
    let ready = ready.min(meta.waiting);
    Ok(Some(QueueStats {
        name: queue.to_string(),
        ready,
        delayed: meta.waiting - ready,
        leased: meta.leased,
        dead: meta.dead,
    }))
}

/// Every queue with messages, in name order.
pub(crate) fn queue_names(
    queues: &impl ReadableTable<&'static [u8], &'static [u8]>,
) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for row in queues.iter()? {
        let (k, _) = row?;
        out.push(String::from_utf8_lossy(k.value()).into_owned());
    }
    Ok(out)
}

/// When the earliest waiting message of `queue` is (or was) due.
pub(crate) fn next_due(
    due: &impl ReadableTable<&'static [u8], &'static [u8]>,
    queue: &str,
) -> Result<Option<u64>> {
    let start = prefix(queue);
    let mut end = prefix(queue);
    *end.last_mut().unwrap_or(&mut 0) = 1; // `queue 0x01`: just past every row of the queue
    let first = due.range::<&[u8]>(start.as_slice()..end.as_slice())?.next();
    match first {
        Some(row) => {
            let (k, _) = row?;
            let k = k.value();
            Ok(k.get(start.len()..start.len() + 8)
                .and_then(|b| <[u8; 8]>::try_from(b).ok())
                .map(u64::from_be_bytes))
        }
        None => Ok(None),
    }
}

/// Up to `limit` dead letters of `queue`, oldest death first.
pub(crate) fn dead_letters(
    dead: &impl ReadableTable<&'static [u8], &'static [u8]>,
    messages: &impl ReadableTable<&'static [u8], &'static [u8]>,
    queue: &str,
    limit: usize,
) -> Result<Vec<(String, MessageRecord)>> {
    let start = prefix(queue);
    let mut end = prefix(queue);
    *end.last_mut().unwrap_or(&mut 0) = 1;
    let mut out = Vec::new();
    for row in dead
        .range::<&[u8]>(start.as_slice()..end.as_slice())?
        .take(limit)
    {
        let (_, id) = row?;
        let id = String::from_utf8_lossy(id.value()).into_owned();
        if let Some(record) = get_message(messages, queue, &id)? {
            out.push((id, record));
        }
    }
    Ok(out)
}

/// Read a message by queue and id from any table handle.
pub(crate) fn read_message(
    messages: &impl ReadableTable<&'static [u8], &'static [u8]>,
    queue: &str,
    id: &str,
) -> Result<Option<MessageRecord>> {
    get_message(messages, queue, id)
}

#[cfg(test)]
mod tests {
    use super::message as message_fn;
    use super::*;
    use crate::command::{
        Outcome, QueueAck, QueueEnqueue, QueueExtend, QueueLease, QueueNack, Tick,
    };
    use crate::tables::{QUEUE_DEDUP, QUEUE_DUE, QUEUE_MESSAGES};
    use crate::testutil::TestSm;

    fn enqueue_cmd(id: &str, delay_ms: u64) -> QueueEnqueue {
        QueueEnqueue {
            queue: "q".into(),
            id: id.into(),
            payload: format!("{{\"n\":\"{id}\"}}"),
            delay_ms,
            dedup_key: None,
            max_attempts: 3,
        }
    }

    fn lease_cmd(worker: &str, max: u32, visibility_ms: u64, token: &str) -> QueueLease {
        QueueLease {
            queue: "q".into(),
            worker: worker.into(),
            max,
            max_bytes: 1 << 20,
            visibility_ms,
            lease_token: token.into(),
        }
    }

    fn ack_cmd(id: &str, token: &str) -> QueueAck {
        QueueAck {
            queue: "q".into(),
            id: id.into(),
            lease_token: token.into(),
        }
    }

    fn queue(outcome: Outcome) -> QueueOutcome {
        match outcome {
            Outcome::Queue(q) => q,
            other => panic!("expected a queue outcome, got {other:?}"),
        }
    }

    fn leased(outcome: Outcome) -> Vec<LeasedMessage> {
        match queue(outcome) {
            QueueOutcome::Leased { messages, .. } => messages,
            other => panic!("expected a lease, got {other:?}"),
        }
    }

    fn ids(messages: &[LeasedMessage]) -> Vec<&str> {
        messages.iter().map(|m| m.id.as_str()).collect()
    }

    fn tick(t: &mut TestSm, now: u64) -> crate::command::TickOutcome {
        match t.one(now, Tick { budget: 1_000 }) {
            Outcome::Tick(o) => o,
            other => panic!("expected a tick outcome, got {other:?}"),
        }
    }

    #[test]
    fn nothing_is_leased_before_its_due_time_and_due_order_is_time_then_fifo() {
        let mut t = TestSm::new();
        t.apply(
            1_000,
            vec![
                enqueue_cmd("late", 500).into(),
                enqueue_cmd("first", 0).into(),
                enqueue_cmd("second", 0).into(),
                enqueue_cmd("middle", 200).into(),
            ],
        );
        // At 1_000 only the two undelayed ones are due, in enqueue order.
        let got = leased(t.one(1_000, lease_cmd("w", 10, 60_000, "a")));
        assert_eq!(ids(&got), ["first", "second"]);
        assert!(got
            .iter()
            .all(|m| m.attempt == 1 && m.leased_at_ms == 1_000));
        assert_eq!(got[0].lease_token, "a-1");
        assert_eq!(got[0].payload, r#"{"n":"first"}"#);
        // One millisecond before "middle" is due: nothing.
        assert!(leased(t.one(1_199, lease_cmd("w", 10, 60_000, "b"))).is_empty());
        let got = leased(t.one(1_200, lease_cmd("w", 10, 60_000, "c")));
        assert_eq!(ids(&got), ["middle"]);
        assert_eq!(got[0].due_at_ms, 1_200);
        // A lease stamped by a proposer whose clock lags cannot see the future
        // either: log_now is what counts, and "late" is due at 1_500.
        assert!(leased(t.one(1_300, lease_cmd("w", 10, 60_000, "d"))).is_empty());
        let got = leased(t.one(1_500, lease_cmd("w", 1, 60_000, "e")));
        assert_eq!(ids(&got), ["late"]);
    }

    #[test]
    fn a_valid_lease_is_exclusive_and_an_acked_message_never_comes_back() {
        let mut t = TestSm::new();
        t.one(0, enqueue_cmd("m", 0));
        let got = leased(t.one(10, lease_cmd("w1", 5, 100, "a")));
        assert_eq!(ids(&got), ["m"]);
        assert_eq!(got[0].expires_at_ms, 110);
        // While the lease is valid no other worker gets it.
        assert!(leased(t.one(109, lease_cmd("w2", 5, 100, "b"))).is_empty());
        assert_eq!(
            queue(t.one(50, ack_cmd("m", "a-1"))),
            QueueOutcome::Acked { acked_at_ms: 109 }
        );
        // A repeated ack is answered as the first; it is never leased again,
        // not even after its old lease would have lapsed.
        assert_eq!(
            queue(t.one(60, ack_cmd("m", "a-1"))),
            QueueOutcome::Acked { acked_at_ms: 109 }
        );
        tick(&mut t, 500);
        assert!(leased(t.one(600, lease_cmd("w2", 5, 100, "c"))).is_empty());
        // Enqueueing the same id again is a duplicate of the acked message.
        assert_eq!(
            queue(t.one(700, enqueue_cmd("m", 0))),
            QueueOutcome::Enqueued {
                id: "m".into(),
                due_at_ms: 0,
                duplicate: true
            }
        );
        assert!(leased(t.one(800, lease_cmd("w2", 5, 100, "d"))).is_empty());
    }

    #[test]
    fn a_lapsed_lease_makes_the_message_due_again_then_dead_after_max_attempts() {
        let mut t = TestSm::new();
        t.one(0, enqueue_cmd("m", 0)); // max_attempts 3
        let first = leased(t.one(0, lease_cmd("w", 1, 100, "a")));
        assert_eq!(first[0].attempt, 1);
        // Before the tick at 100 processes the lapse, the lease is still
        // counted as leased, and the lapsed token cannot ack any more.
        assert_eq!(
            queue(t.one(100, ack_cmd("m", "a-1"))),
            QueueOutcome::LeaseNotHeld(NotHeld::Lapsed)
        );
        assert_eq!(t.sm.read().unwrap().next_timer().unwrap(), Some(100));
        assert_eq!(tick(&mut t, 100).processed, 1);
        let second = leased(t.one(150, lease_cmd("w", 1, 100, "b")));
        assert_eq!(second[0].attempt, 2);
        assert_eq!(second[0].due_at_ms, 100, "due again from the lapse");
        assert_eq!(second[0].lease_token, "b-2");
        tick(&mut t, 250);
        let third = leased(t.one(260, lease_cmd("w", 1, 100, "c")));
        assert_eq!(third[0].attempt, 3);
        tick(&mut t, 360);
        // Three deliveries, none acked: dead, not due again.
        assert!(leased(t.one(400, lease_cmd("w", 1, 100, "d"))).is_empty());
        let view = t.sm.read().unwrap();
        let dead = view.dead_letters("q", 10).unwrap();
        assert_eq!(dead.len(), 1);
        assert_eq!(dead[0].0, "m");
        assert_eq!(dead[0].1.attempt, 3);
        assert!(matches!(
            dead[0].1.state,
            MessageState::Dead {
                died_at_ms: 360,
                reason: DeathReason::LeaseLapsed,
                ..
            }
        ));
        let stats = view.queue_stats("q", 400).unwrap().unwrap();
        assert_eq!(
            (stats.ready, stats.delayed, stats.leased, stats.dead),
            (0, 0, 0, 1)
        );
    }

    #[test]
    fn nack_redelivers_after_its_delay_and_buries_the_last_attempt() {
        let mut t = TestSm::new();
        let mut one_try = enqueue_cmd("once", 0);
        one_try.max_attempts = 1;
        t.apply(0, vec![enqueue_cmd("m", 0).into(), one_try.into()]);
        let got = leased(t.one(0, lease_cmd("w", 2, 1_000, "a")));
        assert_eq!(ids(&got), ["m", "once"]);
        let nack = |id: &str, token: &str, delay_ms| QueueNack {
            queue: "q".into(),
            id: id.into(),
            lease_token: token.into(),
            delay_ms,
        };
        assert_eq!(
            queue(t.one(10, nack("m", "a-1", 50))),
            QueueOutcome::Nacked {
                nacked_at_ms: 10,
                due_at_ms: Some(60)
            }
        );
        assert_eq!(
            queue(t.one(10, nack("once", "a-1", 50))),
            QueueOutcome::Nacked {
                nacked_at_ms: 10,
                due_at_ms: None
            }
        );
        // A second nack under the same token finds the lease gone.
        assert_eq!(
            queue(t.one(11, nack("m", "a-1", 0))),
            QueueOutcome::LeaseNotHeld(NotHeld::Waiting)
        );
        assert!(leased(t.one(59, lease_cmd("w", 2, 1_000, "b"))).is_empty());
        let again = leased(t.one(60, lease_cmd("w", 2, 1_000, "c")));
        assert_eq!(ids(&again), ["m"]);
        assert_eq!(again[0].attempt, 2);
        let dead = t.sm.read().unwrap().dead_letters("q", 10).unwrap();
        assert_eq!(dead.len(), 1);
        assert!(matches!(
            dead[0].1.state,
            MessageState::Dead {
                reason: DeathReason::Nacked,
                ..
            }
        ));
    }

    #[test]
    fn extend_keeps_a_valid_lease_but_cannot_revive_a_lapsed_one() {
        let mut t = TestSm::new();
        t.one(0, enqueue_cmd("m", 0));
        leased(t.one(0, lease_cmd("w", 1, 100, "a")));
        let extend = |token: &str| QueueExtend {
            queue: "q".into(),
            id: "m".into(),
            lease_token: token.into(),
            visibility_ms: 100,
        };
        assert_eq!(
            queue(t.one(90, extend("a-1"))),
            QueueOutcome::Extended { expires_at_ms: 190 }
        );
        // The original expiry passes: nothing lapses, nobody else gets it.
        assert_eq!(tick(&mut t, 150).processed, 0);
        assert!(leased(t.one(150, lease_cmd("v", 1, 100, "b"))).is_empty());
        assert_eq!(
            queue(t.one(190, extend("a-1"))),
            QueueOutcome::LeaseNotHeld(NotHeld::Lapsed)
        );
        assert_eq!(
            queue(t.one(190, extend("nope-1"))),
            QueueOutcome::LeaseNotHeld(NotHeld::LeasedByAnother)
        );
        tick(&mut t, 190);
        assert_eq!(
            leased(t.one(190, lease_cmd("v", 1, 100, "c")))[0].attempt,
            2
        );
    }

    #[test]
    fn bad_acks_are_outcomes_and_change_nothing() {
        let mut t = TestSm::new();
        t.one(0, enqueue_cmd("m", 0));
        leased(t.one(0, lease_cmd("w", 1, 1_000, "a")));
        let before = t.sm.read().unwrap().queue_message("q", "m").unwrap();
        let mut unknown_queue = ack_cmd("m", "a-1");
        unknown_queue.queue = "other".into();
        assert_eq!(queue(t.one(1, unknown_queue)), QueueOutcome::QueueNotFound);
        assert_eq!(
            queue(t.one(1, ack_cmd("nope", "a-1"))),
            QueueOutcome::MessageNotFound
        );
        assert_eq!(
            queue(t.one(1, ack_cmd("m", "stale-1"))),
            QueueOutcome::LeaseNotHeld(NotHeld::LeasedByAnother)
        );
        assert!(matches!(
            t.one(1, ack_cmd("m", "")),
            Outcome::Invalid(ref i) if i.field == "lease_token"
        ));
        let after = t.sm.read().unwrap().queue_message("q", "m").unwrap();
        assert_eq!(before, after);
        assert!(t
            .sm
            .read()
            .unwrap()
            .queue_stats("other", 1)
            .unwrap()
            .is_none());
    }

    #[test]
    fn a_dedup_key_returns_the_first_message_for_the_window_after_its_ack() {
        let mut t = TestSm::new();
        let with_key = |id: &str| QueueEnqueue {
            dedup_key: Some("order-7".into()),
            ..enqueue_cmd(id, 0)
        };
        t.one(0, with_key("first"));
        assert_eq!(
            queue(t.one(5, with_key("second"))),
            QueueOutcome::Enqueued {
                id: "first".into(),
                due_at_ms: 0,
                duplicate: true
            }
        );
        leased(t.one(10, lease_cmd("w", 5, 100, "a")));
        queue(t.one(20, ack_cmd("first", "a-1")));
        // Within the window after the ack: still a duplicate.
        let window_end = timers::gc_instant(20 + DEDUP_WINDOW_MS);
        tick(&mut t, window_end - 1);
        assert!(matches!(
            queue(t.one(window_end - 1, with_key("third"))),
            QueueOutcome::Enqueued {
                duplicate: true,
                ..
            }
        ));
        // Collected at the window's end: the key is free again.
        assert_eq!(tick(&mut t, window_end).processed, 1);
        assert_eq!(
            queue(t.one(window_end, with_key("fourth"))),
            QueueOutcome::Enqueued {
                id: "fourth".into(),
                due_at_ms: window_end,
                duplicate: false
            }
        );
    }

    #[test]
    fn acked_and_dead_messages_are_collected_and_storage_returns_to_empty() {
        let mut t = TestSm::new();
        let mut doomed = enqueue_cmd("doomed", 0);
        doomed.max_attempts = 1;
        t.apply(
            0,
            vec![
                enqueue_cmd("a", 0).into(),
                QueueEnqueue {
                    dedup_key: Some("k".into()),
                    ..enqueue_cmd("b", 0)
                }
                .into(),
                doomed.into(),
            ],
        );
        leased(t.one(0, lease_cmd("w", 3, 100, "l")));
        t.apply(
            0,
            vec![ack_cmd("a", "l-1").into(), ack_cmd("b", "l-1").into()],
        );
        tick(&mut t, 100); // "doomed" lapses into the dead letters
        let view = t.sm.read().unwrap();
        assert_eq!(
            view.rows(QUEUE_MESSAGES),
            3,
            "two tombstones and a dead letter"
        );
        assert_eq!(view.rows(QUEUE_DEDUP), 1);
        drop(view);
        // Each is collected at its own horizon; afterwards nothing is left.
        tick(&mut t, timers::gc_instant(ACKED_RETENTION_MS));
        assert_eq!(t.sm.read().unwrap().rows(QUEUE_MESSAGES), 2);
        tick(&mut t, timers::gc_instant(DEDUP_WINDOW_MS));
        assert_eq!(t.sm.read().unwrap().rows(QUEUE_MESSAGES), 1);
        tick(&mut t, timers::gc_instant(100 + DEAD_RETENTION_MS));
        let view = t.sm.read().unwrap();
        for table in [
            QUEUE_MESSAGES,
            QUEUE_DUE,
            QUEUE_DEAD,
            QUEUE_DEDUP,
            QUEUES,
            TIMERS,
        ] {
            assert_eq!(view.rows(table), 0, "{table} is not empty");
        }
        assert_eq!(view.next_timer().unwrap(), None);
    }

    #[test]
    fn a_tick_does_a_bounded_amount_of_work() {
        let mut t = TestSm::new();
        let enqueues = (0..10)
            .map(|i| enqueue_cmd(&format!("m{i}"), 0).into())
            .collect();
        t.apply(0, enqueues);
        assert_eq!(leased(t.one(0, lease_cmd("w", 10, 100, "a"))).len(), 10);
        let first = match t.one(100, Tick { budget: 4 }) {
            Outcome::Tick(o) => o,
            other => panic!("{other:?}"),
        };
        assert_eq!((first.processed, first.more), (4, true));
        let stats = t.sm.read().unwrap().queue_stats("q", 100).unwrap().unwrap();
        assert_eq!((stats.ready, stats.leased), (4, 6));
        let rest = tick(&mut t, 100);
        assert_eq!((rest.processed, rest.more), (6, false));
        assert!(matches!(
            t.one(100, Tick { budget: 0 }),
            Outcome::Invalid(_)
        ));
    }

    #[test]
    fn counts_split_waiting_messages_into_ready_and_delayed_at_the_given_time() {
        let mut t = TestSm::new();
        t.apply(
            0,
            vec![
                enqueue_cmd("a", 0).into(),
                enqueue_cmd("b", 0).into(),
                enqueue_cmd("c", 100).into(),
                enqueue_cmd("d", 200).into(),
            ],
        );
        leased(t.one(0, lease_cmd("w", 1, 1_000, "l")));
        let view = t.sm.read().unwrap();
        let at = |now| {
            let s = view.queue_stats("q", now).unwrap().unwrap();
            (s.ready, s.delayed, s.leased, s.dead)
        };
        assert_eq!(at(0), (1, 2, 1, 0));
        assert_eq!(at(100), (2, 1, 1, 0));
        assert_eq!(at(200), (3, 0, 1, 0));
        assert_eq!(view.queue_next_due("q").unwrap(), Some(0));
        assert_eq!(view.queues(0).unwrap().len(), 1);
        assert_eq!(view.queue_next_due("r").unwrap(), None);
    }

    #[test]
    fn a_lease_stops_at_its_byte_budget_but_always_hands_out_one() {
        let mut t = TestSm::new();
        let big = |id: &str| QueueEnqueue {
            payload: format!("\"{}\"", "x".repeat(98)), // 100 bytes
            ..enqueue_cmd(id, 0)
        };
        t.apply(0, vec![big("a").into(), big("b").into(), big("c").into()]);
        let mut lease = lease_cmd("w", 10, 100, "l");
        lease.max_bytes = 250;
        assert_eq!(ids(&leased(t.one(0, lease.clone()))), ["a", "b"]);
        lease.max_bytes = 1;
        lease.lease_token = "m".into();
        assert_eq!(ids(&leased(t.one(0, lease))), ["c"]);
    }

    #[test]
    fn other_commands_can_enqueue_and_cancel_inside_their_own_transaction() {
        let mut t = TestSm::new();
        let message = NewMessage {
            queue: "gnomon:attempts",
            id: "job/2026-01-01T00:00:00Z",
            payload: "{}",
            due_at_ms: 500,
            max_attempts: 4,
            dedup_key: None,
        };
        assert!(message.validate().is_ok());
        let outcome = t.sm.with_ctx(100, |ctx| enqueue(ctx, &message)).unwrap();
        assert_eq!(
            outcome,
            QueueOutcome::Enqueued {
                id: message.id.into(),
                due_at_ms: 500,
                duplicate: false
            }
        );
        let found =
            t.sm.with_ctx(100, |ctx| message_fn(ctx, message.queue, message.id))
                .unwrap()
                .unwrap();
        assert_eq!((found.due_at_ms, found.max_attempts), (500, 4));
        let removed =
            t.sm.with_ctx(200, |ctx| remove(ctx, message.queue, message.id))
                .unwrap();
        assert_eq!(removed.map(|r| r.seq), Some(0));
        let view = t.sm.read().unwrap();
        assert!(view
            .queue_message(message.queue, message.id)
            .unwrap()
            .is_none());
        assert_eq!(view.rows(QUEUE_DUE), 0);
        assert_eq!(view.rows(QUEUES), 0);
        assert!(NewMessage {
            max_attempts: 0,
            ..message
        }
        .validate()
        .is_err());
        drop(view);

        // An overdue slot enqueued later still sorts by its due time.
        let at = |id, due_at_ms| NewMessage {
            queue: "gnomon:attempts",
            id,
            payload: "{}",
            due_at_ms,
            max_attempts: 1,
            dedup_key: None,
        };
        t.sm.with_ctx(1_000, |ctx| enqueue(ctx, &at("recent", 900)))
            .unwrap();
        t.sm.with_ctx(1_000, |ctx| enqueue(ctx, &at("overdue", 100)))
            .unwrap();
        let mut lease = lease_cmd("w", 10, 100, "l");
        lease.queue = "gnomon:attempts".into();
        let got = leased(t.one(1_000, lease));
        assert_eq!(ids(&got), ["overdue", "recent"]);
        assert_eq!(got[0].due_at_ms, 100);
    }
}

/// Random command sequences against an independent model of SPEC §4's
/// delay queue, written from the rules in `delay_queue`'s documentation: a
/// `BTreeMap` of messages, scanned in full where the real thing uses indexes.
#[cfg(test)]
pub(crate) mod model;
