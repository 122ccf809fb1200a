//! Input limits of SPEC §7, checked where input enters (the API) and again
//! when a command is applied, so a bad command can never change state.

use serde::{Deserialize, Serialize};

/// Longest name of a job, lock, key or queue, in bytes.
pub const MAX_NAME_BYTES: usize = 200;

/// Longest lock owner or worker id, in bytes.
pub const MAX_OWNER_BYTES: usize = 200;

/// Longest TTL a lock or claim may ask for: 7 days. Longer leases are
/// almost always a unit mistake (seconds passed as milliseconds).
pub const MAX_TTL_MS: u64 = 7 * 24 * 3600 * 1000;

/// Largest payload (a queue message or a ledger result) the API accepts by
/// default, in bytes; `gnomon serve --max-body-bytes` raises it (SPEC §7).
pub const MAX_PAYLOAD_BYTES: usize = 1 << 20;

/// Longest delay before a message becomes due: 30 days.
pub const MAX_DELAY_MS: u64 = 30 * 24 * 3600 * 1000;

/// Most deliveries a message may be given before it is dead-lettered.
pub const MAX_ATTEMPTS: u32 = 1_000;

/// Why a command's input was refused: the field and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{field}: {message}")]
pub struct InvalidInput {
    /// The offending field, as the caller named it (`name`, `ttl_ms`, …).
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

impl InvalidInput {
    /// An error naming `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Check a name against SPEC §7: 1–200 bytes of `[A-Za-z0-9._:/-]`.
pub fn check_name(field: &str, name: &str) -> Result<(), InvalidInput> {
    if name.is_empty() || name.len() > MAX_NAME_BYTES {
        return Err(InvalidInput::new(
            field,
            format!(
                "must be 1 to {MAX_NAME_BYTES} bytes long, got {}",
                name.len()
            ),
        ));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '/' | '-')))
    {
        return Err(InvalidInput::new(
            field,
            format!("may only contain A-Z a-z 0-9 . _ : / -, found {bad:?}"),
        ));
    }
    Ok(())
}

/// Check an owner or worker id: 1–200 bytes, no control characters.
pub fn check_owner(field: &str, owner: &str) -> Result<(), InvalidInput> {
    if owner.is_empty() || owner.len() > MAX_OWNER_BYTES {
        return Err(InvalidInput::new(
            field,
            format!(
                "must be 1 to {MAX_OWNER_BYTES} bytes long, got {}",
                owner.len()
            ),
        ));
    }
    if owner.chars().any(char::is_control) {
        return Err(InvalidInput::new(
            field,
            "must not contain control characters",
        ));
    }
    Ok(())
}

/// Check a token, claim token or dedup key: the same rule as an owner.
pub fn check_token(field: &str, token: &str) -> Result<(), InvalidInput> {
    check_owner(field, token)
}

/// Check a time-to-live: at least 1 ms, at most [`MAX_TTL_MS`].
pub fn check_ttl(field: &str, ttl_ms: u64) -> Result<(), InvalidInput> {
    if ttl_ms == 0 || ttl_ms > MAX_TTL_MS {
        return Err(InvalidInput::new(
            field,
            format!("must be between 1 and {MAX_TTL_MS} milliseconds, got {ttl_ms}"),
        ));
    }
    Ok(())
}

/// Check a delay: at most [`MAX_DELAY_MS`].
pub fn check_delay(field: &str, delay_ms: u64) -> Result<(), InvalidInput> {
    if delay_ms > MAX_DELAY_MS {
        return Err(InvalidInput::new(
            field,
            format!("must be at most {MAX_DELAY_MS} milliseconds, got {delay_ms}"),
        ));
    }
    Ok(())
}

/// Check a payload's size in bytes against `limit`.
pub fn check_payload(field: &str, len: usize, limit: usize) -> Result<(), InvalidInput> {
    if len > limit {
        return Err(InvalidInput::new(
            field,
            format!("is {len} bytes, more than the limit of {limit} bytes"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_spec_section_7() {
        assert!(check_name("name", "billing/nightly-run_2.v1:a").is_ok());
        assert!(check_name("name", &"a".repeat(200)).is_ok());
        let too_long = check_name("name", &"a".repeat(201)).unwrap_err();
        assert_eq!(too_long.field, "name");
        assert!(check_name("name", "").is_err());
        assert!(check_name("name", "has space").is_err());
        assert!(check_name("name", "ümlaut").is_err());
    }

    #[test]
    fn ttl_bounds() {
        assert!(check_ttl("ttl_ms", 1).is_ok());
        assert!(check_ttl("ttl_ms", MAX_TTL_MS).is_ok());
        assert_eq!(check_ttl("ttl_ms", 0).unwrap_err().field, "ttl_ms");
        assert!(check_ttl("ttl_ms", MAX_TTL_MS + 1).is_err());
    }
}
