//! `SerfDiscovery` against the discovery conformance kit, with real serf agents.

mod common;

use cluster_core::testkit::discovery::discovery_conformance;
use common::{SerfHarness, SerfPool, blocking};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serf_discovery_passes_the_conformance_kit() {
    let mut harness = SerfHarness(blocking(SerfPool::start));
    discovery_conformance(&mut harness).await;
}
