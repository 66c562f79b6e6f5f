//! The REST API v1 client core: typed async calls returning `cluster-core` model types,
//! error bodies mapped to the same exception classes as local errors, and a small
//! Server-Sent Events reader for followed job logs and the audit log. The Python
//! classes in `client_py` only wrap these calls (blocking or awaitable).

use std::time::Duration;

use cluster_core::manager::Request;
use cluster_core::{Cluster, Job, Node, NodeEvent, NodeStatus};
use futures::stream::{BoxStream, StreamExt};
use pyo3::PyResult;
use reqwest::{Method, Url};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::errors::{self, from_code, transport};
use crate::logs::Lines;
use crate::types::parse;

/// Which lifecycle operation a request makes.
#[derive(Debug, Clone, Copy)]
pub enum Op {
    /// `commission`
    Commission,
    /// `decommission`
    Decommission,
    /// `upgrade`
    Upgrade,
}

impl Op {
    fn as_str(self) -> &'static str {
        match self {
            Op::Commission => "commission",
            Op::Decommission => "decommission",
            Op::Upgrade => "upgrade",
        }
    }
}

/// A connection to one daemon; cheap to clone.
#[derive(Clone)]
pub struct Http {
    base: Url,
    http: reqwest::Client,
    token: Option<String>,
    timeout: Duration,
}

impl std::fmt::Debug for Http {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Http")
            .field("base", &self.base.as_str())
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Deserialize)]
struct ErrorDetail {
    code: String,
    message: String,
}

#[derive(Deserialize)]
struct Accepted {
    job: u64,
}

#[derive(Deserialize)]
struct LogPage {
    lines: Vec<cluster_core::push::LogLine>,
}

impl Http {
    /// A client for the daemon at `url` (e.g. `http://127.0.0.1:9090`).
    pub fn new(url: &str, token: Option<String>, timeout: Duration) -> PyResult<Self> {
        let base = Url::parse(url)
            .map_err(|e| from_code("invalid_input", format!("invalid url {url:?}: {e}")))?;
        if base.cannot_be_a_base() || !matches!(base.scheme(), "http" | "https") {
            return Err(from_code(
                "invalid_input",
                format!("invalid url {url:?}: not an http(s) URL"),
            ));
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(transport)?;
        Ok(Http {
            base,
            http,
            token,
            timeout,
        })
    }

    /// The daemon's base URL.
    pub fn url(&self) -> &str {
        self.base.as_str()
    }

    /// `base` + path segments (each percent-encoded), e.g. `["v1", "nodes", name]`.
    fn url_of(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }

    fn request(&self, method: Method, url: Url) -> reqwest::RequestBuilder {
        let req = self.http.request(method, url);
        match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        }
    }

    /// Sends a request and returns the response when its status is a success.
    async fn send(&self, req: reqwest::RequestBuilder) -> PyResult<reqwest::Response> {
        let resp = req.send().await.map_err(|e| transport(describe(&e)))?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status();
        let body = resp.bytes().await.unwrap_or_default();
        Err(match serde_json::from_slice::<ErrorBody>(&body) {
            Ok(b) => from_code(&b.error.code, b.error.message),
            Err(_) if status == reqwest::StatusCode::UNAUTHORIZED => {
                from_code(errors::UNAUTHORIZED, "unauthorized".into())
            }
            Err(_) => transport(format!(
                "HTTP {status}: {}",
                String::from_utf8_lossy(&body[..body.len().min(200)])
            )),
        })
    }

    /// One JSON call: `body` sent when given, the answer parsed as `T`.
    async fn call<T: serde::de::DeserializeOwned>(
        &self,
        method: Method,
        url: Url,
        body: Option<Value>,
    ) -> PyResult<T> {
        let what = format!("answer to {method} {}", url.path());
        let mut req = self.request(method, url).timeout(self.timeout);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = self.send(req).await?;
        let bytes = resp.bytes().await.map_err(|e| transport(describe(&e)))?;
        let v: Value = serde_json::from_slice(&bytes)
            .map_err(|e| transport(format!("{what} is not JSON: {e}")))?;
        parse(&what, v)
    }

    /// Every node, optionally only those in `status`.
    pub async fn nodes(&self, status: Option<NodeStatus>) -> PyResult<Vec<Node>> {
        let mut url = self.url_of(&["v1", "nodes"]);
        if let Some(s) = status {
            url.query_pairs_mut().append_pair("status", s.as_str());
        }
        self.call(Method::GET, url, None).await
    }

    /// One node.
    pub async fn node(&self, name: &str) -> PyResult<Node> {
        self.call(Method::GET, self.url_of(&["v1", "nodes", name]), None)
            .await
    }

    /// A page of one node's audit log.
    pub async fn node_events(
        &self,
        name: &str,
        after: u64,
        limit: usize,
    ) -> PyResult<Vec<NodeEvent>> {
        let mut url = self.url_of(&["v1", "nodes", name, "events"]);
        url.query_pairs_mut()
            .append_pair("after", &after.to_string())
            .append_pair("limit", &limit.to_string());
        self.call(Method::GET, url, None).await
    }

    /// A lifecycle request: the per-node route for one name without rolling options,
    /// the batch route otherwise. Returns the job id.
    pub async fn lifecycle(&self, op: Op, req: Request, batch: bool) -> PyResult<u64> {
        let (url, body) = if !batch && req.nodes.len() == 1 && req.rolling.is_none() {
            let body = json!({ "host_group": req.host_group, "extra_vars": req.extra_vars });
            (
                self.url_of(&["v1", "nodes", &req.nodes[0], op.as_str()]),
                body,
            )
        } else {
            let body = serde_json::to_value(&req).map_err(transport)?;
            (
                self.url_of(&["v1", &format!("nodes:{}", op.as_str())]),
                body,
            )
        };
        let a: Accepted = self.call(Method::POST, url, Some(body)).await?;
        Ok(a.job)
    }

    /// Enrolls hosts by address; returns the job id.
    pub async fn discover(&self, addrs: Vec<String>, extra_vars: Value) -> PyResult<u64> {
        let body = json!({ "addrs": addrs, "extra_vars": extra_vars });
        let a: Accepted = self
            .call(Method::POST, self.url_of(&["v1", "discover"]), Some(body))
            .await?;
        Ok(a.job)
    }

    /// The globals.
    pub async fn globals(&self) -> PyResult<Value> {
        self.call(Method::GET, self.url_of(&["v1", "globals"]), None)
            .await
    }

    /// Replaces the globals; returns them as stored.
    pub async fn set_globals(&self, globals: Value) -> PyResult<Value> {
        self.call(Method::PUT, self.url_of(&["v1", "globals"]), Some(globals))
            .await
    }

    /// Every job.
    pub async fn jobs(&self) -> PyResult<Vec<Job>> {
        self.call(Method::GET, self.url_of(&["v1", "jobs"]), None)
            .await
    }

    /// One job by reference (`"12"`, `"active"`, `"last"`).
    pub async fn job(&self, reference: &str) -> PyResult<Job> {
        self.call(Method::GET, self.url_of(&["v1", "jobs", reference]), None)
            .await
    }

    /// The `active` or `last` job, None when there is none.
    pub async fn job_opt(&self, reference: &str) -> PyResult<Option<Job>> {
        match self.job(reference).await {
            Ok(j) => Ok(Some(j)),
            Err(e) if pyo3::Python::attach(|py| e.is_instance_of::<errors::NotFound>(py)) => {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Cancels a running job.
    pub async fn cancel(&self, id: u64) -> PyResult<()> {
        let url = self.url_of(&["v1", "jobs", &id.to_string(), "cancel"]);
        self.call::<Accepted>(Method::POST, url, None)
            .await
            .map(|_| ())
    }

    /// The cluster record.
    pub async fn cluster(&self) -> PyResult<Cluster> {
        self.call(Method::GET, self.url_of(&["v1", "cluster"]), None)
            .await
    }

    /// Polls the job until it has finished, backing off up to one second between reads.
    pub async fn wait_job(&self, id: u64) -> PyResult<Job> {
        let reference = id.to_string();
        let mut delay = Duration::from_millis(20);
        loop {
            let job = self.job(&reference).await?;
            if job.status.is_finished() {
                return Ok(job);
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(1));
        }
    }

    /// A job's log lines: the page held now, or (following) the event stream until the
    /// job ends. Nothing is requested until the first line is read.
    pub fn job_logs(&self, id: u64, follow: bool) -> Lines {
        let me = self.clone();
        let start = async move {
            let mut url = me.url_of(&["v1", "jobs", &id.to_string(), "logs"]);
            if !follow {
                let page: LogPage = me.call(Method::GET, url, None).await?;
                let lines: Vec<PyResult<String>> =
                    page.lines.into_iter().map(|l| Ok(l.text)).collect();
                return Ok(futures::stream::iter(lines).boxed());
            }
            url.query_pairs_mut().append_pair("follow", "true");
            let events = me.events_stream(url).await?;
            Ok(events
                .take_while(|e| futures::future::ready(!matches!(e, Ok((ev, _)) if ev == "end")))
                .filter_map(|e| async move {
                    match e {
                        Ok((ev, data)) if ev == "line" => Some(
                            serde_json::from_str::<cluster_core::push::LogLine>(&data)
                                .map(|l| l.text)
                                .map_err(|e| transport(format!("bad log line event: {e}"))),
                        ),
                        Ok(_) => None,
                        Err(e) => Some(Err(e)),
                    }
                })
                .boxed())
        };
        futures::stream::once(start)
            .flat_map(|r: PyResult<Lines>| match r {
                Ok(lines) => lines,
                Err(e) => futures::stream::iter([Err(e)]).boxed(),
            })
            .boxed()
    }

    /// The audit log as it grows (`node_event` events), from sequence `after`.
    pub fn watch_events(
        &self,
        after: u64,
        node: Option<String>,
    ) -> BoxStream<'static, PyResult<NodeEvent>> {
        let me = self.clone();
        let start = async move {
            let mut url = me.url_of(&["v1", "events"]);
            url.query_pairs_mut()
                .append_pair("after", &after.to_string());
            if let Some(n) = &node {
                url.query_pairs_mut().append_pair("node", n);
            }
            me.events_stream(url).await
        };
        futures::stream::once(start)
            .flat_map(|r| match r {
                Ok(events) => events,
                Err(e) => futures::stream::iter([Err(e)]).boxed(),
            })
            .filter_map(|e| async move {
                match e {
                    Ok((ev, data)) if ev == "node_event" => Some(
                        serde_json::from_str::<NodeEvent>(&data)
                            .map_err(|e| transport(format!("bad audit event: {e}"))),
                    ),
                    Ok(_) => None,
                    Err(e) => Some(Err(e)),
                }
            })
            .boxed()
    }

    /// Opens an event stream and yields `(event name, data)` pairs.
    async fn events_stream(
        &self,
        url: Url,
    ) -> PyResult<BoxStream<'static, PyResult<(String, String)>>> {
        let req = self
            .request(Method::GET, url)
            .header("accept", "text/event-stream");
        let resp = self.send(req).await?;
        let bytes = resp.bytes_stream();
        let parser = SseParser::default();
        Ok(
            futures::stream::unfold((bytes, parser), |(mut bytes, mut parser)| async move {
                loop {
                    if let Some(ev) = parser.next_event() {
                        return Some((Ok(ev), (bytes, parser)));
                    }
                    match bytes.next().await {
                        Some(Ok(chunk)) => parser.feed(&chunk),
                        Some(Err(e)) => {
                            return Some((Err(transport(describe(&e))), (bytes, parser)));
                        }
                        None => return None,
                    }
                }
            })
            .boxed(),
        )
    }
}

/// Incremental reader of the `text/event-stream` format (event and data fields).
#[derive(Default)]
struct SseParser {
    buf: Vec<u8>,
    event: String,
    data: Vec<String>,
    ready: std::collections::VecDeque<(String, String)>,
}

impl SseParser {
    fn feed(&mut self, chunk: &[u8]) {
        self.buf.extend_from_slice(chunk);
        while let Some(end) = self.buf.iter().position(|b| *b == b'\n') {
            let raw: Vec<u8> = self.buf.drain(..=end).collect();
            let line = String::from_utf8_lossy(&raw);
            let line = line.trim_end_matches(['\n', '\r']);
            if line.is_empty() {
                if !self.data.is_empty() || !self.event.is_empty() {
                    let event = std::mem::take(&mut self.event);
                    let data = std::mem::take(&mut self.data).join("\n");
                    self.ready.push_back((
                        if event.is_empty() {
                            "message".into()
                        } else {
                            event
                        },
                        data,
                    ));
                }
                continue;
            }
            let (field, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            match field {
                "event" => self.event = value.to_owned(),
                "data" => self.data.push(value.to_owned()),
                _ => {}
            }
        }
    }

    fn next_event(&mut self) -> Option<(String, String)> {
        self.ready.pop_front()
    }
}

/// A reqwest error with its causes (the top level alone is often just "error sending request").
fn describe(e: &reqwest::Error) -> String {
    let mut msg = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        source = s.source();
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sse_parser_joins_split_chunks_and_skips_comments() {
        let mut p = SseParser::default();
        p.feed(b": keep-alive\n\nevent: line\nid: 1\ndata: {\"n\":1,");
        assert!(p.next_event().is_none());
        p.feed(b"\"text\":\"a\"}\n\nevent: end\r\ndata: 7\r\n\r\n");
        assert_eq!(
            p.next_event(),
            Some(("line".into(), "{\"n\":1,\"text\":\"a\"}".into()))
        );
        assert_eq!(p.next_event(), Some(("end".into(), "7".into())));
        assert_eq!(p.next_event(), None);
    }
}
