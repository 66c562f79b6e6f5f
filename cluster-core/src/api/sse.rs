//! Server-Sent Events: a job log followed until the job ends, and the audit log
//! followed for as long as the client stays (resumable with `Last-Event-ID`).

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use serde::Deserialize;

use super::ApiState;
use super::error::{ApiResult, QueryParams};
use crate::event::NodeEvent;
use crate::job::JobId;
use crate::manager::Manager;
use crate::push::{JobLog, LogLine};
use crate::store::EventQuery;

/// Audit events read from the store per page while following.
const PAGE: usize = 1000;

fn keep_alive() -> KeepAlive {
    KeepAlive::new().interval(Duration::from_secs(15))
}

fn line_event(line: &LogLine) -> Event {
    Event::default()
        .event("line")
        .id(line.n.to_string())
        .json_data(line)
        .unwrap_or_else(|_| Event::default().event("line").data(line.text.clone()))
}

/// Lines of a job whose log is no longer in memory, from its spill file if kept.
pub(crate) async fn spilled_lines(manager: &Manager, id: JobId, after: u64) -> Vec<LogLine> {
    let Some(dir) = manager.config().log_dir.clone() else {
        return Vec::new();
    };
    let path = dir.join(format!("job-{id}.log"));
    match tokio::fs::read_to_string(&path).await {
        Ok(text) => text
            .lines()
            .enumerate()
            .map(|(i, t)| LogLine {
                n: i as u64 + 1,
                text: t.to_owned(),
            })
            .filter(|l| l.n > after)
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// Streams a job log: every line after `after`, then new ones until the job ends, then
/// one `end` event.
pub(crate) fn job_log(
    s: &ApiState,
    id: JobId,
    log: Option<Arc<JobLog>>,
    after: u64,
) -> Sse<impl Stream<Item = Result<Event, Infallible>> + use<>> {
    struct St {
        manager: Manager,
        id: JobId,
        log: Option<Arc<JobLog>>,
        after: u64,
        pending: VecDeque<LogLine>,
        ended: bool,
        spill_read: bool,
        closing: tokio_util::sync::CancellationToken,
    }
    let st = St {
        manager: s.manager.clone(),
        id,
        log,
        after,
        pending: VecDeque::new(),
        ended: false,
        spill_read: false,
        closing: s.closing.clone(),
    };
    let stream = futures::stream::unfold(st, |mut st| async move {
        loop {
            if let Some(line) = st.pending.pop_front() {
                st.after = line.n;
                let ev = line_event(&line);
                return Some((Ok(ev), st));
            }
            if st.ended {
                return None;
            }
            let lines = match &st.log {
                Some(log) => tokio::select! {
                    l = log.follow(st.after) => l,
                    _ = st.closing.cancelled() => Vec::new(),
                },
                None if !st.spill_read => {
                    st.spill_read = true;
                    spilled_lines(&st.manager, st.id, st.after).await
                }
                None => Vec::new(),
            };
            if lines.is_empty() {
                st.ended = true;
                let ev = Event::default().event("end").data(st.id.to_string());
                return Some((Ok(ev), st));
            }
            st.pending.extend(lines);
        }
    });
    Sse::new(stream).keep_alive(keep_alive())
}

/// Where to start following the audit log.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    /// Only events with a sequence number above this (default: the `Last-Event-ID`
    /// header, else 0: the whole log).
    pub after: Option<u64>,
    /// Only this node's events.
    pub node: Option<String>,
}

/// The audit log as Server-Sent Events (`node_event`, id = sequence number).
#[utoipa::path(get, path = "/v1/events", params(EventsQuery),
    responses((status = 200, description = "event stream of NodeEvent records"),
    (status = 400, description = "Bad input (malformed JSON, unknown field, wrong type, invalid value)", body = super::error::ErrorBody)))]
pub(crate) async fn events(
    State(s): State<ApiState>,
    QueryParams(q): QueryParams<EventsQuery>,
    headers: HeaderMap,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    let resume = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let after = q.after.or(resume).unwrap_or(0);
    if let Some(node) = &q.node {
        s.manager.node(node)?;
    }
    struct St {
        manager: Manager,
        seq: tokio::sync::watch::Receiver<u64>,
        node: Option<String>,
        after: u64,
        pending: VecDeque<NodeEvent>,
        closing: tokio_util::sync::CancellationToken,
    }
    let st = St {
        seq: s.manager.event_seq(),
        manager: s.manager.clone(),
        node: q.node,
        after,
        pending: VecDeque::new(),
        closing: s.closing.clone(),
    };
    let stream = futures::stream::unfold(st, |mut st| async move {
        loop {
            if let Some(e) = st.pending.pop_front() {
                st.after = e.seq;
                let ev = Event::default()
                    .event("node_event")
                    .id(e.seq.to_string())
                    .json_data(&e)
                    .unwrap_or_default();
                return Some((Ok(ev), st));
            }
            // Mark the current value seen before reading, so a commit racing the
            // read still wakes the wait below.
            st.seq.borrow_and_update();
            let query = EventQuery {
                node: st.node.clone(),
                after: st.after,
                limit: PAGE,
            };
            match st.manager.events(query).await {
                Ok(page) if !page.is_empty() => {
                    st.pending.extend(page);
                    continue;
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "audit log stream stopped");
                    return None;
                }
            }
            tokio::select! {
                changed = st.seq.changed() => if changed.is_err() { return None },
                _ = st.closing.cancelled() => return None,
            }
        }
    });
    Ok(Sse::new(stream).keep_alive(keep_alive()))
}
