//! The storage boundary's error: failures of the disk or of decoding what is
//! on it. Business rejections ("lock held") are never errors; they are
//! outcomes of applying a command.

/// A failure to read or write durable state.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// redb failed: I/O, a corrupt file, or a transaction that could not commit.
    #[error("redb: {0}")]
    Redb(#[from] redb::Error),
    /// Bytes on disk or on the wire did not decode as the expected type.
    #[error("cannot decode {what}: {reason}")]
    Decode {
        /// The kind of record that failed, e.g. "lock record".
        what: &'static str,
        /// Why it failed.
        reason: String,
    },
    /// The data was written by a gnomon with an incompatible format.
    #[error("incompatible data format: {0}")]
    Incompatible(String),
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for Error {
            fn from(e: $t) -> Self {
                Error::Redb(e.into())
            }
        }
    )*};
}
from_redb!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    redb::SetDurabilityError
);

/// Shorthand for results at the storage boundary.
pub type Result<T, E = Error> = std::result::Result<T, E>;
