//! redb store (being written).

/// The embedded durable store (being written).
#[derive(Debug)]
pub struct RedbStore;
