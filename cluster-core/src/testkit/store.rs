//! Conformance checks every `InventoryStore` runs.
