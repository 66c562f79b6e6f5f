//! Conformance checks every `Discovery` runs.
