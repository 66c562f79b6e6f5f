//! Conformance kit (being written).
