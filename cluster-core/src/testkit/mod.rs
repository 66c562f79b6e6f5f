//! The conformance kit (feature `testkit`): one set of async checks per component
//! trait. Every implementation's test file builds the implementation and calls the kit,
//! so all implementations are held to the same behaviour.

pub mod backend;
pub mod discovery;
pub mod store;
