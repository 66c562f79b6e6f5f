//! Shared pieces of the clusterm example programs: the daemon's configuration and
//! run loop, and the API client `clusterctl`, the tests and the benchmark use.

pub mod client;
pub mod config;
pub mod daemon;

// Linked for the registrations they submit (`serf` discovery, `swarm` backend).
#[cfg(feature = "swarm")]
use backend_swarm as _;
#[cfg(feature = "serf")]
use discovery_serf as _;
