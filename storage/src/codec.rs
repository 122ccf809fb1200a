//! Bytes on disk and on the wire: postcard behind a one-byte format version.
//!
//! A version byte lets a later gnomon read what an earlier one wrote (and
//! refuse clearly what it cannot), instead of mis-decoding silently. postcard
//! is compact and deterministic; it cannot carry self-describing types such
//! as `serde_json::Value` or internally tagged enums, so user JSON travels as
//! a `String` inside records.

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{Error, Result};

/// The current format version, written as the first byte of every record.
pub const FORMAT_VERSION: u8 = 1;

/// Encode `value` as `[FORMAT_VERSION] ++ postcard(value)`.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    let out = vec![FORMAT_VERSION];
    // postcard serialises into a growable Vec infallibly for the types we
    // define (no maps with non-string keys, no unsized sequences).
    postcard::to_extend(value, out).expect("postcard encoding into a Vec cannot fail")
}

/// Decode bytes written by [`encode`]; `what` names the record in errors.
pub fn decode<T: DeserializeOwned>(what: &'static str, bytes: &[u8]) -> Result<T> {
    match bytes.split_first() {
        Some((&FORMAT_VERSION, body)) => postcard::from_bytes(body).map_err(|e| Error::Decode {
            what,
            reason: e.to_string(),
        }),
        Some((version, _)) => Err(Error::Incompatible(format!(
            "{what} has format version {version}, this gnomon reads version {FORMAT_VERSION}"
        ))),
        None => Err(Error::Decode {
            what,
            reason: "empty record".into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_other_versions() {
        let bytes = encode(&("lock", 7u64));
        assert_eq!(bytes[0], FORMAT_VERSION);
        let back: (String, u64) = decode("pair", &bytes).unwrap();
        assert_eq!(back, ("lock".to_string(), 7));

        let mut future = bytes.clone();
        future[0] = FORMAT_VERSION + 1;
        assert!(matches!(
            decode::<(String, u64)>("pair", &future),
            Err(Error::Incompatible(_))
        ));
        assert!(matches!(
            decode::<(String, u64)>("pair", &[]),
            Err(Error::Decode { .. })
        ));
    }
}
