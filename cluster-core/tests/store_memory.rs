//! The in-memory store against the store conformance kit.

use std::sync::Arc;

use cluster_core::testkit::store::store_conformance;
use cluster_core::{InventoryStore, MemoryStore};

#[tokio::test]
async fn memory_store_passes_the_conformance_kit() {
    store_conformance(|| Arc::new(MemoryStore::new()) as Arc<dyn InventoryStore>).await;
}
