//! Writes that re-read and retry when another writer got there first.

use swarm_store::{Store, StoreError, Tx};

/// Runs `f` in a transaction, retrying (re-reading) up to a few times when
/// the commit hits a version conflict with a concurrent writer.
pub(crate) async fn update_retry<R>(
    store: &Store,
    mut f: impl FnMut(&mut Tx) -> Result<R, StoreError>,
) -> Result<R, StoreError> {
    let mut attempt = 0;
    loop {
        match store.update(&mut f).await {
            Err(StoreError::SequenceConflict { .. }) if attempt < 5 => attempt += 1,
            other => return other,
        }
    }
}
