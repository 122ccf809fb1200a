//! Opening the node's redb file: create every table, check the schema version.

use std::path::Path;
use std::sync::Arc;

use redb::{Database, ReadableTable};

use crate::error::{Error, Result};
use crate::tables::{
    RAFT_LOG, RAFT_META, SCHEMA_VERSION, SCHEMA_VERSION_KEY, SM_META, STATE_TABLES,
};

/// Open (or create) the redb file at `path` with every table gnomon uses.
///
/// Refuses a file written with another schema version rather than
/// misreading it.
pub fn open(path: &Path) -> Result<Arc<Database>> {
    let db = Database::create(path)?;
    let txn = db.begin_write()?;
    {
        txn.open_table(RAFT_LOG)?;
        txn.open_table(RAFT_META)?;
        for table in STATE_TABLES {
            txn.open_table(*table)?;
        }
        let mut meta = txn.open_table(SM_META)?;
        let stored = meta.get(SCHEMA_VERSION_KEY)?.map(|v| v.value().to_vec());
        match stored {
            None => {
                meta.insert(SCHEMA_VERSION_KEY, SCHEMA_VERSION.to_be_bytes().as_slice())?;
            }
            Some(bytes) => {
                let version = <[u8; 8]>::try_from(bytes.as_slice())
                    .map(u64::from_be_bytes)
                    .map_err(|_| Error::Incompatible("schema version is not 8 bytes".into()))?;
                if version != SCHEMA_VERSION {
                    return Err(Error::Incompatible(format!(
                        "{} has schema version {version}; this gnomon uses {SCHEMA_VERSION}",
                        path.display()
                    )));
                }
            }
        }
    }
    txn.commit()?;
    Ok(Arc::new(db))
}
