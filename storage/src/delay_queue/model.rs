//! Random command sequences against an independent model of SPEC §4's
//! delay queue, written from the rules in `delay_queue`'s documentation: a
//! `BTreeMap` of messages, scanned in full where the real thing uses indexes.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;
use crate::command::{
    Command, Outcome, QueueAck, QueueEnqueue, QueueExtend, QueueLease, QueueNack, Tick, TickOutcome,
};
use crate::testutil::TestSm;

fn round_up_to_second(ms: u64) -> u64 {
    ms.div_ceil(1000) * 1000
}

#[derive(Debug, Clone)]
enum St {
    Waiting,
    Leased {
        worker: String,
        token: String,
        exp: u64,
    },
    Dead {
        died: u64,
        reason: DeathReason,
        worker: String,
    },
    Acked {
        token: String,
        at: u64,
    },
}

#[derive(Debug, Clone)]
struct M {
    payload: String,
    order: u64,
    enqueued: u64,
    due: u64,
    attempt: u32,
    max: u32,
    dedup: Option<String>,
    st: St,
}

impl M {
    /// When this message's tombstone or dead letter is collected.
    fn gc_at(&self) -> Option<u64> {
        match &self.st {
            St::Acked { at, .. } => {
                let keep = if self.dedup.is_some() {
                    DEDUP_WINDOW_MS
                } else {
                    ACKED_RETENTION_MS
                };
                Some(round_up_to_second(at + keep))
            }
            St::Dead { died, .. } => Some(round_up_to_second(died + DEAD_RETENTION_MS)),
            _ => None,
        }
    }
}

#[derive(Default)]
pub(crate) struct QueueModel {
    now: u64,
    next_order: u64,
    msgs: BTreeMap<(String, String), M>,
}

impl QueueModel {
    fn queue_has_messages(&self, q: &str) -> bool {
        self.msgs
            .iter()
            .any(|((mq, _), m)| mq == q && !matches!(m.st, St::Acked { .. }))
    }

    /// A delivery ended without an ack: due again, or dead.
    fn end_delivery(&mut self, key: &(String, String), due: u64, reason: DeathReason) {
        let now = self.now;
        let m = self.msgs.get_mut(key).unwrap();
        let worker = match &m.st {
            St::Leased { worker, .. } => worker.clone(),
            _ => unreachable!(),
        };
        if m.attempt >= m.max {
            m.st = St::Dead {
                died: now,
                reason,
                worker,
            };
        } else {
            m.due = due;
            m.st = St::Waiting;
        }
    }

    pub(crate) fn apply(&mut self, now: u64, cmd: &Command) -> Outcome {
        self.now = self.now.max(now);
        let now = self.now;
        let out = match cmd {
            Command::QueueEnqueue(c) => {
                let key = (c.queue.clone(), c.id.clone());
                let dup_of = if self.msgs.contains_key(&key) {
                    Some(c.id.clone())
                } else {
                    c.dedup_key.as_ref().and_then(|k| {
                        self.msgs
                            .iter()
                            .find(|((q, _), m)| *q == c.queue && m.dedup.as_ref() == Some(k))
                            .map(|((_, id), _)| id.clone())
                    })
                };
                match dup_of {
                    Some(id) => QueueOutcome::Enqueued {
                        due_at_ms: self.msgs[&(c.queue.clone(), id.clone())].due,
                        id,
                        duplicate: true,
                    },
                    None => {
                        self.next_order += 1;
                        let due = now + c.delay_ms;
                        self.msgs.insert(
                            key,
                            M {
                                payload: c.payload.clone(),
                                order: self.next_order,
                                enqueued: now,
                                due,
                                attempt: 0,
                                max: c.max_attempts,
                                dedup: c.dedup_key.clone(),
                                st: St::Waiting,
                            },
                        );
                        QueueOutcome::Enqueued {
                            id: c.id.clone(),
                            due_at_ms: due,
                            duplicate: false,
                        }
                    }
                }
            }
            Command::QueueLease(c) => {
                let mut due: Vec<_> = self
                    .msgs
                    .iter()
                    .filter(|((q, _), m)| {
                        *q == c.queue && matches!(m.st, St::Waiting) && m.due <= now
                    })
                    .map(|(k, m)| (m.due, m.order, k.clone()))
                    .collect();
                due.sort();
                let mut messages = Vec::new();
                let mut bytes = 0u64;
                for (_, _, key) in due.into_iter().take(c.max as usize) {
                    let m = self.msgs.get_mut(&key).unwrap();
                    let size = m.payload.len() as u64;
                    if !messages.is_empty() && bytes + size > c.max_bytes {
                        break;
                    }
                    bytes += size;
                    m.attempt += 1;
                    let token = format!("{}-{}", c.lease_token, m.attempt);
                    m.st = St::Leased {
                        worker: c.worker.clone(),
                        token: token.clone(),
                        exp: now + c.visibility_ms,
                    };
                    messages.push(LeasedMessage {
                        id: key.1.clone(),
                        payload: m.payload.clone(),
                        attempt: m.attempt,
                        max_attempts: m.max,
                        lease_token: token,
                        due_at_ms: m.due,
                        leased_at_ms: now,
                        expires_at_ms: now + c.visibility_ms,
                        enqueued_at_ms: m.enqueued,
                    });
                }
                QueueOutcome::Leased {
                    leased_at_ms: now,
                    messages,
                }
            }
            Command::QueueAck(c) => self.settle(&c.queue, &c.id, &c.lease_token, Act::Ack),
            Command::QueueNack(c) => {
                self.settle(&c.queue, &c.id, &c.lease_token, Act::Nack(c.delay_ms))
            }
            Command::QueueExtend(c) => self.settle(
                &c.queue,
                &c.id,
                &c.lease_token,
                Act::Extend(c.visibility_ms),
            ),
            Command::Tick(_) => return Outcome::Tick(self.tick()),
            other => unreachable!("the queue model only sees queue commands: {other:?}"),
        };
        Outcome::Queue(out)
    }

    fn settle(&mut self, q: &str, id: &str, token: &str, act: Act) -> QueueOutcome {
        let now = self.now;
        let key = (q.to_string(), id.to_string());
        let Some(m) = self.msgs.get(&key).cloned() else {
            return if self.queue_has_messages(q) {
                QueueOutcome::MessageNotFound
            } else {
                QueueOutcome::QueueNotFound
            };
        };
        match (&m.st, &act) {
            (St::Acked { token: t, at }, Act::Ack) if t == token => {
                return QueueOutcome::Acked { acked_at_ms: *at }
            }
            (St::Acked { .. }, _) => return QueueOutcome::LeaseNotHeld(NotHeld::Acked),
            (St::Waiting, _) => return QueueOutcome::LeaseNotHeld(NotHeld::Waiting),
            (St::Dead { .. }, _) => return QueueOutcome::LeaseNotHeld(NotHeld::Dead),
            (St::Leased { token: t, .. }, _) if t != token => {
                return QueueOutcome::LeaseNotHeld(NotHeld::LeasedByAnother)
            }
            (St::Leased { exp, .. }, _) if now >= *exp => {
                return QueueOutcome::LeaseNotHeld(NotHeld::Lapsed)
            }
            _ => {}
        }
        match act {
            Act::Ack => {
                let m = self.msgs.get_mut(&key).unwrap();
                m.payload.clear();
                m.st = St::Acked {
                    token: token.to_string(),
                    at: now,
                };
                QueueOutcome::Acked { acked_at_ms: now }
            }
            Act::Nack(delay) => {
                self.end_delivery(&key, now + delay, DeathReason::Nacked);
                let waiting = matches!(self.msgs[&key].st, St::Waiting);
                QueueOutcome::Nacked {
                    nacked_at_ms: now,
                    due_at_ms: waiting.then_some(now + delay),
                }
            }
            Act::Extend(vis) => {
                if let St::Leased { exp, .. } = &mut self.msgs.get_mut(&key).unwrap().st {
                    *exp = now + vis;
                }
                QueueOutcome::Extended {
                    expires_at_ms: now + vis,
                }
            }
        }
    }

    fn tick(&mut self) -> TickOutcome {
        let now = self.now;
        let mut processed = 0;
        let keys: Vec<_> = self.msgs.keys().cloned().collect();
        for key in keys {
            let m = &self.msgs[&key];
            if let St::Leased { exp, .. } = m.st {
                if exp <= now {
                    processed += 1;
                    self.end_delivery(&key, exp, DeathReason::LeaseLapsed);
                }
            } else if m.gc_at().is_some_and(|gc| gc <= now) {
                processed += 1;
                self.msgs.remove(&key);
            }
        }
        TickOutcome {
            processed,
            more: false,
        }
    }

    /// Counts per queue at `now`: (ready, delayed, leased, dead).
    pub(crate) fn stats(&self, now: u64) -> BTreeMap<String, (u64, u64, u64, u64)> {
        let mut out: BTreeMap<String, (u64, u64, u64, u64)> = BTreeMap::new();
        for ((q, _), m) in &self.msgs {
            let c = out.entry(q.clone()).or_default();
            match m.st {
                St::Waiting if m.due <= now => c.0 += 1,
                St::Waiting => c.1 += 1,
                St::Leased { .. } => c.2 += 1,
                St::Dead { .. } => c.3 += 1,
                St::Acked { .. } => {}
            }
        }
        out.retain(|_, c| c.0 + c.1 + c.2 + c.3 > 0);
        out
    }

    /// Dead letters of `q` in order of death: (id, attempt, reason, worker).
    pub(crate) fn dead(&self, q: &str) -> Vec<(String, u32, DeathReason, String)> {
        let mut dead: Vec<_> = self
            .msgs
            .iter()
            .filter(|((mq, _), _)| mq == q)
            .filter_map(|((_, id), m)| match &m.st {
                St::Dead {
                    died,
                    reason,
                    worker,
                } => Some((
                    (*died, m.order),
                    (id.clone(), m.attempt, *reason, worker.clone()),
                )),
                _ => None,
            })
            .collect();
        dead.sort_by_key(|(k, _)| *k);
        dead.into_iter().map(|(_, d)| d).collect()
    }

    pub(crate) fn now(&self) -> u64 {
        self.now
    }
}

enum Act {
    Ack,
    Nack(u64),
    Extend(u64),
}

/// A queue command over a small space of names and tokens, so that
/// commands collide often.
pub(crate) fn queue_command() -> BoxedStrategy<Command> {
    let queue = prop::sample::select(vec!["a", "b"]).prop_map(String::from);
    let id = (0..6u8).prop_map(|i| format!("m{i}"));
    let base = prop::sample::select(vec!["x", "y", "z"]);
    let token = (base.clone(), 1..4u32).prop_map(|(b, n)| format!("{b}-{n}"));
    let dedup = prop::option::weighted(0.3, prop::sample::select(vec!["k1", "k2"]));
    prop_oneof![
        3 => (queue.clone(), id.clone(), 0..4usize, (0u64..8).prop_map(|n| n * 10), dedup, 1..4u32).prop_map(
            |(queue, id, size, delay_ms, dedup, max_attempts)| {
                Command::QueueEnqueue(QueueEnqueue {
                    payload: format!("\"{}\"", "p".repeat(size * 3)),
                    queue,
                    id,
                    delay_ms,
                    dedup_key: dedup.map(String::from),
                    max_attempts,
                })
            }
        ),
        3 => (
            queue.clone(),
            prop::sample::select(vec!["w1", "w2"]),
            1..4u32,
            prop::sample::select(vec![1u64, 8, 1_000]),
            prop::sample::select(vec![10u64, 20, 50]),
            base,
        )
            .prop_map(|(queue, worker, max, max_bytes, visibility_ms, base)| {
                Command::QueueLease(QueueLease {
                    queue,
                    worker: worker.into(),
                    max,
                    max_bytes,
                    visibility_ms,
                    lease_token: base.into(),
                })
            }),
        3 => (queue.clone(), id.clone(), token.clone()).prop_map(|(queue, id, lease_token)| {
            Command::QueueAck(QueueAck {
                queue,
                id,
                lease_token,
            })
        }),
        1 => (queue.clone(), id.clone(), token.clone(), prop::sample::select(vec![0u64, 10, 30])).prop_map(
            |(queue, id, lease_token, delay_ms)| {
                Command::QueueNack(QueueNack {
                    queue,
                    id,
                    lease_token,
                    delay_ms,
                })
            }
        ),
        1 => (queue, id, token, prop::sample::select(vec![10u64, 20, 50])).prop_map(|(queue, id, lease_token, visibility_ms)| {
            Command::QueueExtend(QueueExtend {
                queue,
                id,
                lease_token,
                visibility_ms,
            })
        }),
        2 => Just(Command::Tick(Tick { budget: 1_000 })),
    ]
    .boxed()
}

/// A log: entries of (time step, stamped behind log_now?, commands).
/// Steps are mostly small, sometimes long enough for tombstones and
/// dead letters to be collected.
pub(crate) fn timed_log(
    command: impl Strategy<Value = Command> + Clone,
) -> impl Strategy<Value = Vec<(u64, bool, Vec<Command>)>> {
    let step = prop_oneof![
        // Multiples of 10 ms, so that instants often coincide exactly
        // with due times and lease expiries.
        8 => (0u64..6).prop_map(|n| n * 10),
        1 => 50_000u64..400_000,
        1 => Just(DEAD_RETENTION_MS),
    ];
    prop::collection::vec(
        (
            step,
            prop::bool::weighted(0.1),
            prop::collection::vec(command, 1..4),
        ),
        1..60,
    )
}

/// Replay `log` on a fresh state machine and on `model` side by side:
/// every outcome must be the one `apply` gives on the model, and `check`
/// compares the states after each entry.
pub(crate) fn replay<M>(
    log: Vec<(u64, bool, Vec<Command>)>,
    model: &mut M,
    apply: impl Fn(&mut M, u64, &Command) -> Outcome,
    mut check: impl FnMut(&TestSm, &M) -> Result<(), TestCaseError>,
) -> Result<(), TestCaseError> {
    let mut t = TestSm::new();
    let mut clock = 0u64;
    for (step, stale, commands) in log {
        clock += step;
        // A proposer whose clock lags stamps an earlier time.
        let now = if stale {
            clock.saturating_sub(30)
        } else {
            clock
        };
        let outcomes = t.apply(now, commands.clone());
        for (cmd, got) in commands.iter().zip(outcomes) {
            let want = apply(model, now, cmd);
            prop_assert_eq!(got, want, "{:?}", cmd);
        }
        check(&t, model)?;
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn the_queue_matches_the_model(log in timed_log(queue_command())) {
        replay(log, &mut QueueModel::default(), QueueModel::apply, |t, model| {
            let view = t.sm.read().unwrap();
            let now = model.now();
            let stats: BTreeMap<_, _> = view
                .queues(now)
                .unwrap()
                .into_iter()
                .map(|s| (s.name, (s.ready, s.delayed, s.leased, s.dead)))
                .collect();
            prop_assert_eq!(stats, model.stats(now));
            for q in ["a", "b"] {
                let dead: Vec<_> = view
                    .dead_letters(q, 100)
                    .unwrap()
                    .into_iter()
                    .map(|(id, r)| match r.state {
                        MessageState::Dead { reason, last_worker, .. } => {
                            (id, r.attempt, reason, last_worker)
                        }
                        other => panic!("a dead letter in state {other:?}"),
                    })
                    .collect();
                prop_assert_eq!(dead, model.dead(q));
            }
            Ok(())
        })?;
    }
}
