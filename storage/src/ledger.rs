//! The idempotency ledger: claim a key once, cluster-wide, and remember the
//! result.
//!
//! A claim creates an `in_progress` record owned by the claimant, who alone
//! holds its `claim_token`; completing it stores the result, abandoning it
//! frees the key. A record lives until `ttl_ms` after its last change, judged
//! against `log_now`: past that it is as good as absent (the key can be
//! claimed again) and a `Tick` collects it. Results are arbitrary JSON kept
//! as text, since postcard cannot carry a self-describing value.

use redb::ReadableTable;
use serde::{Deserialize, Serialize};

use crate::codec;
use crate::command::ApplyCtx;
use crate::error::Result;
use crate::tables::{LEDGER, TIMERS};
use crate::timers::{self, TimerKind};

/// Where a claimed key stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum LedgerState {
    /// Claimed; the owner is working on it.
    InProgress,
    /// Done; `result` is the JSON text the owner completed it with.
    Completed {
        /// The result as JSON text.
        result: String,
    },
}

/// One key's record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerRecord {
    /// Who claimed it.
    pub owner: String,
    /// The secret the claimant completes or abandons it with. Never shown
    /// to anyone but the claimant.
    pub claim_token: String,
    /// In progress or completed.
    pub state: LedgerState,
    /// The lifetime after each change.
    pub ttl_ms: u64,
    /// `log_now` when it was claimed.
    pub created_at_ms: u64,
    /// `log_now` of its last change.
    pub updated_at_ms: u64,
    /// The record is gone from this instant on (compared with `log_now`).
    pub expires_at_ms: u64,
}

impl LedgerRecord {
    /// Whether the record still stands at `now_ms`.
    pub fn is_live(&self, now_ms: u64) -> bool {
        now_ms < self.expires_at_ms
    }
}

/// What applying a ledger command did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum LedgerOutcome {
    /// The caller now owns the key.
    Claimed {
        /// The token to complete or abandon it with.
        claim_token: String,
        /// When the claim lapses unless completed.
        expires_at_ms: u64,
    },
    /// Someone else claimed the key first; here is its record.
    Exists(LedgerRecord),
    /// The key is completed (now, or already with the same result).
    Completed(LedgerRecord),
    /// The claim was given up; the key is free.
    Abandoned {
        /// `log_now` when it was freed.
        abandoned_at_ms: u64,
    },
    /// No live record has this key.
    NotFound,
    /// The claim token is not the one the key was claimed with.
    WrongToken(LedgerRecord),
    /// The key is already completed, with another result than the one
    /// given (complete) or for good (abandon).
    AlreadyCompleted(LedgerRecord),
}

/// Read a key's record, live or expired.
pub(crate) fn get(
    table: &impl ReadableTable<&'static [u8], &'static [u8]>,
    key: &str,
) -> Result<Option<LedgerRecord>> {
    table
        .get(key.as_bytes())?
        .map(|v| codec::decode("ledger record", v.value()))
        .transpose()
}

/// Store `record` under `key`, moving its collection timer from the one
/// `old` had (if any) to the one `record` needs.
pub(crate) fn put(
    ctx: &ApplyCtx<'_>,
    key: &str,
    old: Option<&LedgerRecord>,
    record: &LedgerRecord,
) -> Result<()> {
    let mut timers = ctx.txn.open_table(TIMERS)?;
    if let Some(old) = old {
        timers::remove(&mut timers, gc_at(old), TimerKind::Ledger, key.as_bytes())?;
    }
    timers::add(
        &mut timers,
        gc_at(record),
        TimerKind::Ledger,
        key.as_bytes(),
    )?;
    ctx.txn
        .open_table(LEDGER)?
        .insert(key.as_bytes(), codec::encode(record).as_slice())?;
    Ok(())
}

/// Delete `key`'s record and its timer.
pub(crate) fn delete(ctx: &ApplyCtx<'_>, key: &str, old: &LedgerRecord) -> Result<()> {
    let mut timers = ctx.txn.open_table(TIMERS)?;
    timers::remove(&mut timers, gc_at(old), TimerKind::Ledger, key.as_bytes())?;
    ctx.txn.open_table(LEDGER)?.remove(key.as_bytes())?;
    Ok(())
}

/// When an expired record is collected.
fn gc_at(record: &LedgerRecord) -> u64 {
    timers::gc_instant(record.expires_at_ms)
}

/// A collection timer fired: delete the record if it has expired.
pub(crate) fn on_timer(ctx: &mut ApplyCtx<'_>, subject: &[u8]) -> Result<()> {
    let now = ctx.now_ms();
    let Ok(key) = std::str::from_utf8(subject) else {
        return Ok(());
    };
    let record = get(&ctx.txn.open_table(LEDGER)?, key)?;
    if let Some(record) = record.filter(|r| !r.is_live(now)) {
        delete(ctx, key, &record)?;
    }
    Ok(())
}

/// Every record in key order, live or expired (for tests and tools).
pub(crate) fn list(
    table: &impl ReadableTable<&'static [u8], &'static [u8]>,
) -> Result<Vec<(String, LedgerRecord)>> {
    let mut out = Vec::new();
    for row in table.iter()? {
        let (k, v) = row?;
        let key = String::from_utf8_lossy(k.value()).into_owned();
        out.push((key, codec::decode("ledger record", v.value())?));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::{LedgerAbandon, LedgerClaim, LedgerComplete, Outcome, Tick};
    use crate::testutil::TestSm;

    fn claim(owner: &str, ttl_ms: u64, token: &str) -> LedgerClaim {
        LedgerClaim {
            key: "order-1".into(),
            owner: owner.into(),
            ttl_ms,
            claim_token: token.into(),
        }
    }

    fn complete(token: &str, result: &str) -> LedgerComplete {
        LedgerComplete {
            key: "order-1".into(),
            claim_token: token.into(),
            result: result.into(),
            ttl_ms: None,
        }
    }

    fn ledger(outcome: Outcome) -> LedgerOutcome {
        match outcome {
            Outcome::Ledger(l) => l,
            other => panic!("expected a ledger outcome, got {other:?}"),
        }
    }

    #[test]
    fn one_claim_wins_and_later_claimants_see_the_record() {
        let mut t = TestSm::new();
        let outcomes = t.apply(
            1_000,
            vec![
                claim("a", 500, "ta").into(),
                claim("b", 500, "tb").into(),
                claim("c", 500, "tc").into(),
            ],
        );
        assert_eq!(
            ledger(outcomes[0].clone()),
            LedgerOutcome::Claimed {
                claim_token: "ta".into(),
                expires_at_ms: 1_500
            }
        );
        for other in &outcomes[1..] {
            match ledger(other.clone()) {
                LedgerOutcome::Exists(r) => {
                    assert_eq!(r.owner, "a");
                    assert_eq!(r.state, LedgerState::InProgress);
                }
                o => panic!("expected the existing record, got {o:?}"),
            }
        }
        // The winner retrying its claim (same token) is told it has it.
        assert!(matches!(
            ledger(t.one(1_100, claim("a", 500, "ta"))),
            LedgerOutcome::Claimed { .. }
        ));
    }

    #[test]
    fn complete_stores_the_result_and_restarts_the_ttl() {
        let mut t = TestSm::new();
        ledger(t.one(0, claim("a", 100, "ta")));
        assert!(matches!(
            ledger(t.one(50, complete("tb", "1"))),
            LedgerOutcome::WrongToken(ref r) if r.owner == "a"
        ));
        let done = match ledger(t.one(80, complete("ta", r#"{"ok":true}"#))) {
            LedgerOutcome::Completed(r) => r,
            o => panic!("{o:?}"),
        };
        assert_eq!(
            done.state,
            LedgerState::Completed {
                result: r#"{"ok":true}"#.into()
            }
        );
        assert_eq!((done.updated_at_ms, done.expires_at_ms), (80, 180));
        // The same completion again is harmless; another result is refused.
        assert_eq!(
            ledger(t.one(90, complete("ta", r#"{"ok":true}"#))),
            LedgerOutcome::Completed(done.clone())
        );
        assert_eq!(
            ledger(t.one(90, complete("ta", "2"))),
            LedgerOutcome::AlreadyCompleted(done.clone())
        );
        // Claimants see the completed record until 180, then claim anew.
        assert_eq!(
            ledger(t.one(179, claim("b", 100, "tb"))),
            LedgerOutcome::Exists(done)
        );
        assert!(matches!(
            ledger(t.one(180, claim("b", 100, "tb"))),
            LedgerOutcome::Claimed { .. }
        ));
    }

    #[test]
    fn abandon_frees_the_key_but_not_a_completed_one() {
        let mut t = TestSm::new();
        ledger(t.one(0, claim("a", 100, "ta")));
        let abandon = |token: &str| LedgerAbandon {
            key: "order-1".into(),
            claim_token: token.into(),
        };
        assert!(matches!(
            ledger(t.one(10, abandon("tx"))),
            LedgerOutcome::WrongToken(_)
        ));
        assert_eq!(
            ledger(t.one(10, abandon("ta"))),
            LedgerOutcome::Abandoned {
                abandoned_at_ms: 10
            }
        );
        assert_eq!(ledger(t.one(11, abandon("ta"))), LedgerOutcome::NotFound);
        assert!(matches!(
            ledger(t.one(12, claim("b", 100, "tb"))),
            LedgerOutcome::Claimed { .. }
        ));
        ledger(t.one(13, complete("tb", "null")));
        assert!(matches!(
            ledger(t.one(14, abandon("tb"))),
            LedgerOutcome::AlreadyCompleted(_)
        ));
        assert_eq!(
            ledger(t.one(14, complete("tb", "null"))),
            ledger(t.one(14, complete("tb", "null")))
        );
    }

    #[test]
    fn an_unknown_or_expired_key_is_not_found_and_expired_records_are_collected() {
        let mut t = TestSm::new();
        assert_eq!(
            ledger(t.one(0, complete("t", "1"))),
            LedgerOutcome::NotFound
        );
        ledger(t.one(0, claim("a", 1_500, "ta")));
        assert_eq!(
            ledger(t.one(1_500, complete("ta", "1"))),
            LedgerOutcome::NotFound
        );
        // Collected by the first tick at or after the next whole second.
        assert_eq!(t.sm.read().unwrap().next_timer().unwrap(), Some(2_000));
        t.one(1_999, Tick { budget: 10 });
        assert!(t.sm.read().unwrap().ledger("order-1").unwrap().is_some());
        t.one(2_000, Tick { budget: 10 });
        let view = t.sm.read().unwrap();
        assert!(view.ledger("order-1").unwrap().is_none());
        assert_eq!(view.next_timer().unwrap(), None);
    }

    #[test]
    fn bad_ledger_input_is_refused_by_field() {
        let mut t = TestSm::new();
        let mut bad = claim("a", 100, "t");
        bad.key = "no spaces".into();
        assert!(matches!(t.one(0, bad), Outcome::Invalid(ref i) if i.field == "key"));
        assert!(matches!(
            t.one(0, claim("a", 0, "t")),
            Outcome::Invalid(ref i) if i.field == "ttl_ms"
        ));
        assert!(matches!(
            t.one(0, claim("", 10, "t")),
            Outcome::Invalid(ref i) if i.field == "owner"
        ));
        assert!(matches!(
            t.one(0, claim("a", 10, "")),
            Outcome::Invalid(ref i) if i.field == "claim_token"
        ));
        assert!(t.sm.read().unwrap().ledger_records().unwrap().is_empty());
    }
}

/// Random command sequences against an independent model of SPEC §4's
/// idempotency ledger: a `BTreeMap` of records.
#[cfg(test)]
pub(crate) mod model;
