//! The conformance kit (feature `testkit`): one set of async checks per component
//! trait. Every implementation's test file builds the implementation and calls the kit,
//! so all implementations are held to the same behaviour.

pub mod backend;
pub mod discovery;
pub mod doubles;
pub mod store;

use std::time::{Duration, Instant};

/// Polls `check` every 20 ms until it returns `Some`, panicking with `what` after
/// `timeout`. For waiting on asynchronous effects (a node's status, a job's end).
pub async fn eventually<T>(
    what: &str,
    timeout: Duration,
    mut check: impl FnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
