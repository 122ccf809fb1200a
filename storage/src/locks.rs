//! Locks: leases with fencing tokens.
//!
//! A lock is held while `log_now < expires_at_ms`; once the TTL lapses it is
//! free, whether or not anyone released it. Tokens come from one
//! cluster-wide sequence in the replicated state, so every new grant of a
//! lock gets a token strictly greater than every earlier grant of any lock,
//! across leader changes and restarts.

use redb::{ReadableTable, Table};
use serde::{Deserialize, Serialize};

use crate::codec;
use crate::error::Result;

/// The stored state of a held (or lapsed but not yet reclaimed) lock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockRecord {
    /// Who holds it.
    pub owner: String,
    /// The fencing token of this grant.
    pub token: u64,
    /// `log_now` when this grant was made.
    pub acquired_at_ms: u64,
    /// The lock is free from this instant on (compared with `log_now`).
    pub expires_at_ms: u64,
}

impl LockRecord {
    /// Whether the lease is still valid at `now_ms`.
    pub fn is_live(&self, now_ms: u64) -> bool {
        now_ms < self.expires_at_ms
    }
}

/// What applying a lock command did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum LockOutcome {
    /// The caller holds the lock under `token` until `expires_at_ms`.
    Granted {
        /// Fencing token of the grant.
        token: u64,
        /// `log_now` when the grant was made (kept when the holder re-acquires).
        acquired_at_ms: u64,
        /// When the lease lapses.
        expires_at_ms: u64,
    },
    /// Someone else holds the lock.
    Held {
        /// The current holder.
        owner: String,
        /// When its lease lapses unless renewed.
        expires_at_ms: u64,
    },
    /// The holder's lease was extended.
    Renewed {
        /// Fencing token of the (unchanged) grant.
        token: u64,
        /// The new expiry.
        expires_at_ms: u64,
    },
    /// The holder let the lock go.
    Released {
        /// `log_now` when it was released: the lock is free from here on.
        released_at_ms: u64,
    },
    /// A renew or release from someone who does not hold the lock (any more).
    NotHolder {
        /// The current live holder, if any.
        holder: Option<LockRecord>,
    },
}

/// Read a lock's record, live or not.
pub(crate) fn get(
    table: &impl ReadableTable<&'static [u8], &'static [u8]>,
    name: &str,
) -> Result<Option<LockRecord>> {
    table
        .get(name.as_bytes())?
        .map(|v| codec::decode("lock record", v.value()))
        .transpose()
}

/// Store a lock's record.
pub(crate) fn put(
    table: &mut Table<&'static [u8], &'static [u8]>,
    name: &str,
    record: &LockRecord,
) -> Result<()> {
    table.insert(name.as_bytes(), codec::encode(record).as_slice())?;
    Ok(())
}

/// Every lock record, in name order.
pub(crate) fn list(
    table: &impl ReadableTable<&'static [u8], &'static [u8]>,
) -> Result<Vec<(String, LockRecord)>> {
    let mut out = Vec::new();
    for row in table.iter()? {
        let (k, v) = row?;
        let name = String::from_utf8_lossy(k.value()).into_owned();
        out.push((name, codec::decode("lock record", v.value())?));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::{LockAcquire, LockRelease, LockRenew, Outcome};
    use crate::testutil::TestSm;

    fn acquire(name: &str, owner: &str, ttl_ms: u64) -> LockAcquire {
        LockAcquire {
            name: name.into(),
            owner: owner.into(),
            ttl_ms,
        }
    }

    fn granted(outcome: Outcome) -> (u64, u64) {
        match outcome {
            Outcome::Lock(LockOutcome::Granted {
                token,
                expires_at_ms,
                ..
            }) => (token, expires_at_ms),
            other => panic!("expected a grant, got {other:?}"),
        }
    }

    #[test]
    fn one_holder_until_the_ttl_lapses_then_a_greater_token() {
        let mut t = TestSm::new();
        let (a_token, a_exp) = granted(t.one(1_000, acquire("door", "a", 500)));
        assert_eq!(a_exp, 1_500);
        // Still held at 1_499: b is refused and told who holds it.
        assert_eq!(
            t.one(1_499, acquire("door", "b", 500)),
            Outcome::Lock(LockOutcome::Held {
                owner: "a".into(),
                expires_at_ms: 1_500
            })
        );
        // Free from 1_500 on, without anyone releasing it.
        let (b_token, _) = granted(t.one(1_500, acquire("door", "b", 500)));
        assert!(b_token > a_token);
        // a's old token no longer renews or releases.
        let renew = LockRenew {
            name: "door".into(),
            owner: "a".into(),
            token: a_token,
            ttl_ms: 500,
        };
        assert!(matches!(
            t.one(1_600, renew),
            Outcome::Lock(LockOutcome::NotHolder { holder: Some(h) }) if h.owner == "b"
        ));
    }

    #[test]
    fn reacquire_by_the_holder_keeps_the_token_and_start_and_extends() {
        let mut t = TestSm::new();
        let (token, _) = granted(t.one(10, acquire("l", "a", 100)));
        assert_eq!(
            t.one(50, acquire("l", "a", 100)),
            Outcome::Lock(LockOutcome::Granted {
                token,
                acquired_at_ms: 10,
                expires_at_ms: 150
            })
        );
    }

    #[test]
    fn release_frees_and_the_next_grant_has_a_greater_token() {
        let mut t = TestSm::new();
        let (token, _) = granted(t.one(10, acquire("l", "a", 1_000)));
        let wrong_token = LockRelease {
            name: "l".into(),
            owner: "a".into(),
            token: token + 1,
        };
        assert!(matches!(
            t.one(20, wrong_token),
            Outcome::Lock(LockOutcome::NotHolder { .. })
        ));
        let release = LockRelease {
            name: "l".into(),
            owner: "a".into(),
            token,
        };
        assert_eq!(
            t.one(20, release),
            Outcome::Lock(LockOutcome::Released { released_at_ms: 20 })
        );
        let (next, _) = granted(t.one(30, acquire("l", "b", 1_000)));
        assert!(next > token);
    }

    #[test]
    fn log_now_never_goes_back_with_a_stale_clock() {
        let mut t = TestSm::new();
        granted(t.one(10_000, acquire("l", "a", 100)));
        // A proposer whose clock is behind (5_000) cannot make a's lease
        // look live longer, nor revive it: time is max(log_now, now_ms).
        assert!(matches!(
            t.one(5_000, acquire("l", "b", 100)),
            Outcome::Lock(LockOutcome::Held { .. })
        ));
        assert_eq!(t.sm.read().unwrap().vars().unwrap().log_now_ms, 10_000);
    }

    #[test]
    fn invalid_input_is_an_outcome_and_changes_nothing() {
        let mut t = TestSm::new();
        let bad = t.one(10, acquire("no spaces", "a", 100));
        assert!(matches!(bad, Outcome::Invalid(ref i) if i.field == "name"));
        let bad = t.one(10, acquire("l", "a", 0));
        assert!(matches!(bad, Outcome::Invalid(ref i) if i.field == "ttl_ms"));
        // Only log_now moved; no lock and no token were created.
        let view = t.sm.read().unwrap();
        assert!(view.locks().unwrap().is_empty());
        assert_eq!(view.vars().unwrap().fence_seq, 0);
    }
}
