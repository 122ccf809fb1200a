//! Random command sequences against an independent model of SPEC §4's
//! idempotency ledger: a `BTreeMap` of records.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;
use crate::command::{
    Command, LedgerAbandon, LedgerClaim, LedgerComplete, Outcome, Tick, TickOutcome,
};
use crate::delay_queue::model::{replay, timed_log};

#[derive(Default)]
struct LedgerModel {
    now: u64,
    records: BTreeMap<String, LedgerRecord>,
}

impl LedgerModel {
    fn live(&self, key: &str) -> Option<LedgerRecord> {
        self.records
            .get(key)
            .filter(|r| self.now < r.expires_at_ms)
            .cloned()
    }

    fn apply(&mut self, now: u64, cmd: &Command) -> Outcome {
        self.now = self.now.max(now);
        let now = self.now;
        let out = match cmd {
            Command::LedgerClaim(c) => match self.live(&c.key) {
                Some(r) if r.claim_token == c.claim_token && r.state == LedgerState::InProgress => {
                    LedgerOutcome::Claimed {
                        claim_token: r.claim_token,
                        expires_at_ms: r.expires_at_ms,
                    }
                }
                Some(r) => LedgerOutcome::Exists(r),
                None => {
                    let r = LedgerRecord {
                        owner: c.owner.clone(),
                        claim_token: c.claim_token.clone(),
                        state: LedgerState::InProgress,
                        ttl_ms: c.ttl_ms,
                        created_at_ms: now,
                        updated_at_ms: now,
                        expires_at_ms: now + c.ttl_ms,
                    };
                    self.records.insert(c.key.clone(), r);
                    LedgerOutcome::Claimed {
                        claim_token: c.claim_token.clone(),
                        expires_at_ms: now + c.ttl_ms,
                    }
                }
            },
            Command::LedgerComplete(c) => match self.live(&c.key) {
                None => LedgerOutcome::NotFound,
                Some(r) if r.claim_token != c.claim_token => LedgerOutcome::WrongToken(r),
                Some(r) => match &r.state {
                    LedgerState::Completed { result } if *result == c.result => {
                        LedgerOutcome::Completed(r)
                    }
                    LedgerState::Completed { .. } => LedgerOutcome::AlreadyCompleted(r),
                    LedgerState::InProgress => {
                        let ttl = c.ttl_ms.unwrap_or(r.ttl_ms);
                        let done = LedgerRecord {
                            state: LedgerState::Completed {
                                result: c.result.clone(),
                            },
                            ttl_ms: ttl,
                            updated_at_ms: now,
                            expires_at_ms: now + ttl,
                            ..r
                        };
                        self.records.insert(c.key.clone(), done.clone());
                        LedgerOutcome::Completed(done)
                    }
                },
            },
            Command::LedgerAbandon(c) => match self.live(&c.key) {
                None => LedgerOutcome::NotFound,
                Some(r) if r.claim_token != c.claim_token => LedgerOutcome::WrongToken(r),
                Some(r) if r.state != LedgerState::InProgress => LedgerOutcome::AlreadyCompleted(r),
                Some(_) => {
                    self.records.remove(&c.key);
                    LedgerOutcome::Abandoned {
                        abandoned_at_ms: now,
                    }
                }
            },
            Command::Tick(_) => {
                // An expired record is collected from the whole second
                // at or after its expiry.
                let before = self.records.len();
                self.records
                    .retain(|_, r| r.expires_at_ms.div_ceil(1000) * 1000 > now);
                return Outcome::Tick(TickOutcome {
                    processed: (before - self.records.len()) as u32,
                    more: false,
                });
            }
            other => unreachable!("the ledger model only sees ledger commands: {other:?}"),
        };
        Outcome::Ledger(out)
    }
}

/// A ledger command over a small space of keys and tokens.
pub(crate) fn ledger_command() -> BoxedStrategy<Command> {
    let key = prop::sample::select(vec!["k1", "k2"]).prop_map(String::from);
    let token = prop::sample::select(vec!["t1", "t2", "t3"]).prop_map(String::from);
    let ttl = prop::sample::select(vec![10u64, 20, 50, 1_500]);
    prop_oneof![
        3 => (key.clone(), prop::sample::select(vec!["a", "b"]), ttl.clone(), token.clone())
            .prop_map(|(key, owner, ttl_ms, claim_token)| {
                Command::LedgerClaim(LedgerClaim {
                    key,
                    owner: owner.into(),
                    ttl_ms,
                    claim_token,
                })
            }),
        3 => (
            key.clone(),
            token.clone(),
            prop::sample::select(vec!["1", "\"two\""]),
            prop::option::of(ttl),
        )
            .prop_map(|(key, claim_token, result, ttl_ms)| {
                Command::LedgerComplete(LedgerComplete {
                    key,
                    claim_token,
                    result: result.into(),
                    ttl_ms,
                })
            }),
        1 => (key, token).prop_map(|(key, claim_token)| {
            Command::LedgerAbandon(LedgerAbandon { key, claim_token })
        }),
        1 => Just(Command::Tick(Tick { budget: 1_000 })),
    ]
    .boxed()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn the_ledger_matches_the_model(log in timed_log(ledger_command())) {
        replay(log, &mut LedgerModel::default(), LedgerModel::apply, |t, model| {
            let stored: BTreeMap<_, _> =
                t.sm.read().unwrap().ledger_records().unwrap().into_iter().collect();
            prop_assert_eq!(&stored, &model.records);
            Ok(())
        })?;
    }
}
