//! Job logs as a Python iterator: one class that is both a blocking iterator (`for line
//! in ...`, GIL released while waiting) and an async one (`async for line in ...`), over
//! a stream of lines from the embedded manager's log or from the daemon.

use std::sync::Arc;

use cluster_core::JobLog;
use futures::stream::{BoxStream, StreamExt};
use pyo3::exceptions::PyStopAsyncIteration;
use pyo3::prelude::*;
use tokio::sync::Mutex;

use crate::types::NodeEvent;

/// A stream of log lines (text without the newline).
pub type Lines = BoxStream<'static, PyResult<String>>;

/// The lines of a job log, as an iterator and an async iterator.
#[pyclass(frozen, module = "clusterm")]
pub struct LogStream {
    lines: Arc<Mutex<Lines>>,
}

impl LogStream {
    /// Wraps a stream of lines.
    pub fn new(lines: Lines) -> Self {
        LogStream {
            lines: Arc::new(Mutex::new(lines)),
        }
    }
}

#[pymethods]
impl LogStream {
    fn __iter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<Option<String>> {
        let lines = self.lines.clone();
        crate::block(py, async move { lines.lock().await.next().await })?.transpose()
    }

    fn __aiter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __anext__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let lines = self.lines.clone();
        pyo3_async_runtimes::tokio::future_into_py(py, async move {
            match lines.lock().await.next().await {
                Some(line) => line,
                None => Err(PyStopAsyncIteration::new_err(())),
            }
        })
    }
}

/// The lines of an in-process job log: what is there now, or (following) every line
/// until the job ends.
pub fn local(log: Arc<JobLog>, follow: bool) -> Lines {
    if !follow {
        let now: Vec<PyResult<String>> =
            log.lines_after(0).into_iter().map(|l| Ok(l.text)).collect();
        return futures::stream::iter(now).boxed();
    }
    futures::stream::unfold((log, 0u64), |(log, after)| async move {
        let lines = log.follow(after).await;
        let last = lines.last()?.n;
        Some((lines, (log, last)))
    })
    .flat_map(|lines| futures::stream::iter(lines.into_iter().map(|l| Ok(l.text))))
    .boxed()
}

/// The lines of a job log's spill file (none when there is no file).
pub fn spilled(path: Option<std::path::PathBuf>) -> Lines {
    futures::stream::once(async move {
        let text = match path {
            Some(p) => tokio::fs::read_to_string(p).await.unwrap_or_default(),
            None => String::new(),
        };
        let lines: Vec<PyResult<String>> = text.lines().map(|l| Ok(l.to_owned())).collect();
        futures::stream::iter(lines)
    })
    .flatten()
    .boxed()
}

/// A stream of audit records.
pub type Events = BoxStream<'static, PyResult<cluster_core::NodeEvent>>;

/// The audit log as it grows, as an iterator and an async iterator of `NodeEvent`.
#[pyclass(frozen, module = "clusterm")]
pub struct EventStream {
    events: Arc<Mutex<Events>>,
}

impl EventStream {
    /// Wraps a stream of audit records.
    pub fn new(events: Events) -> Self {
        EventStream {
            events: Arc::new(Mutex::new(events)),
        }
    }
}

#[pymethods]
impl EventStream {
    fn __iter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<Option<NodeEvent>> {
        let events = self.events.clone();
        let next = crate::block(py, async move { events.lock().await.next().await })?;
        next.transpose().map(|e| e.map(NodeEvent))
    }

    fn __aiter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __anext__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let events = self.events.clone();
        pyo3_async_runtimes::tokio::future_into_py(py, async move {
            match events.lock().await.next().await {
                Some(e) => e.map(NodeEvent),
                None => Err(PyStopAsyncIteration::new_err(())),
            }
        })
    }
}

/// The audit log of an in-process manager from sequence `after` on, one node's or
/// everyone's, waking on each commit that appends events; ends when the manager stops.
pub fn local_events(manager: cluster_core::Manager, after: u64, node: Option<String>) -> Events {
    const PAGE: usize = 1000;
    let seq = manager.event_seq();
    let state = (manager, seq, node, after);
    futures::stream::unfold(state, |(manager, mut seq, node, after)| async move {
        loop {
            // Seen before reading, so a commit racing the read still wakes the wait.
            seq.borrow_and_update();
            let query = cluster_core::EventQuery {
                node: node.clone(),
                after,
                limit: PAGE,
            };
            match manager.events(query).await {
                Ok(page) if !page.is_empty() => {
                    let last = page.last().map_or(after, |e| e.seq);
                    return Some((
                        page.into_iter().map(Ok).collect::<Vec<_>>(),
                        (manager, seq, node, last),
                    ));
                }
                Ok(_) => {}
                Err(e) => {
                    let state = (manager, seq, node, u64::MAX);
                    return Some((vec![Err(crate::errors::core(e))], state));
                }
            }
            if after == u64::MAX || seq.changed().await.is_err() {
                return None;
            }
        }
    })
    .flat_map(futures::stream::iter)
    .boxed()
}

/// Adds the classes to the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<LogStream>()?;
    m.add_class::<EventStream>()
}
