//! [`open_db`]: a RocksDB instance with the raft column families, for tests
//! and tools. The node opens its own metadata DB with its own options and
//! adds [`COLUMN_FAMILIES`] to it.

use std::path::Path;
use std::sync::Arc;

use rocksdb::{Options, DB};

use crate::keys::COLUMN_FAMILIES;
use crate::store_error::StoreError;

/// Opens (creating if needed) the RocksDB at `path` with the raft column
/// families.
pub fn open_db(path: &Path) -> Result<Arc<DB>, StoreError> {
    let mut options = Options::default();
    options.create_if_missing(true);
    options.create_missing_column_families(true);
    Ok(Arc::new(DB::open_cf(&options, path, COLUMN_FAMILIES)?))
}
