//! Conformance checks every `ClusterBackend` runs.
