//! Python bindings for clusterm, built by maturin as `clusterm._native` and re-exported
//! by the pure-Python package `clusterm`. The binding converts types and errors and
//! nothing more: requests are validated and executed by `cluster-core` (embedded
//! [`manager::Manager`]) or by the daemon (the REST [`client::Client`]).
//!
//! Every blocking call releases the GIL and runs on one shared tokio runtime (the one
//! `pyo3-async-runtimes` drives for `AsyncClient`), waking every 100 ms to let Ctrl-C
//! through.

use std::future::Future;
use std::time::Duration;

use pyo3::prelude::*;

pub mod client;
mod client_py;
pub mod errors;
pub mod inventory;
pub mod json;
mod logs;
pub mod manager;
pub mod plugins;
mod request;
pub mod types;

/// The runtime every blocking and async call runs on.
pub fn runtime() -> &'static tokio::runtime::Runtime {
    pyo3_async_runtimes::tokio::get_runtime()
}

/// Runs `fut` to completion without holding the GIL; a pending Python signal (Ctrl-C)
/// abandons the wait and raises.
pub fn block<F>(py: Python<'_>, fut: F) -> PyResult<F::Output>
where
    F: Future + Send,
    F::Output: Send,
{
    py.detach(|| {
        runtime().block_on(async {
            let mut fut = std::pin::pin!(fut);
            loop {
                match tokio::time::timeout(Duration::from_millis(100), &mut fut).await {
                    Ok(v) => return Ok(v),
                    Err(_) => Python::attach(|py| py.check_signals())?,
                }
            }
        })
    })
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    errors::register(m)?;
    types::register(m)?;
    plugins::register(m)?;
    logs::register(m)?;
    manager::register(m)?;
    client_py::register(m)?;
    inventory::register(m)?;
    Ok(())
}
