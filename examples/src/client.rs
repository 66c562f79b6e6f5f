//! A small client of the clusterm REST API v1, shared by `clusterctl`, the tests and
//! the benchmark: JSON in and out, API errors turned into one-line messages.

use std::time::Duration;

use serde_json::Value;

/// What can go wrong talking to the daemon.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The daemon could not be reached or the connection broke.
    #[error("cannot reach clusterm at {url}: {source}")]
    Transport {
        /// The URL asked for.
        url: String,
        /// The transport error.
        source: reqwest::Error,
    },
    /// The daemon answered with an error.
    #[error("{message} (HTTP {status}, {code})")]
    Api {
        /// HTTP status.
        status: u16,
        /// The error code from the body.
        code: String,
        /// The error message from the body.
        message: String,
    },
    /// The answer was not what the API promises.
    #[error("unexpected answer from {url}: {message}")]
    Decode {
        /// The URL asked for.
        url: String,
        /// What was wrong.
        message: String,
    },
}

/// A client of one daemon.
#[derive(Clone)]
pub struct Client {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.base)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// Accepts `http://host:port`, `https://...` or Contiv's bare `host:port`.
pub fn normalize_url(url: &str) -> String {
    let url = url.trim().trim_end_matches('/');
    if url.starts_with("http://") || url.starts_with("https://") {
        url.to_owned()
    } else {
        format!("http://{url}")
    }
}

impl Client {
    /// A client of the daemon at `url`, sending `token` as a bearer token when given.
    pub fn new(url: &str, token: Option<String>) -> Self {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .build()
            .unwrap_or_default();
        Client {
            base: normalize_url(url),
            token: token.filter(|t| !t.is_empty()),
            http,
        }
    }

    /// The daemon's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        req
    }

    async fn send(
        &self,
        req: reqwest::RequestBuilder,
        path: &str,
    ) -> Result<reqwest::Response, ClientError> {
        let url = format!("{}{path}", self.base);
        let resp = req.send().await.map_err(|source| ClientError::Transport {
            url: url.clone(),
            source,
        })?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let field = |k: &str| body["error"][k].as_str().map(str::to_owned);
        Err(ClientError::Api {
            status,
            code: field("code").unwrap_or_else(|| "http".into()),
            message: field("message").unwrap_or_else(|| {
                if text.trim().is_empty() {
                    format!("{path} failed")
                } else {
                    text.trim().to_owned()
                }
            }),
        })
    }

    async fn json(&self, resp: reqwest::Response, path: &str) -> Result<Value, ClientError> {
        let text = resp.text().await.map_err(|source| ClientError::Transport {
            url: format!("{}{path}", self.base),
            source,
        })?;
        if text.trim().is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(&text).map_err(|e| ClientError::Decode {
            url: format!("{}{path}", self.base),
            message: e.to_string(),
        })
    }

    /// `GET path`, parsed as JSON.
    pub async fn get(&self, path: &str) -> Result<Value, ClientError> {
        let resp = self
            .send(self.request(reqwest::Method::GET, path), path)
            .await?;
        self.json(resp, path).await
    }

    /// `POST path` with a JSON body, parsed as JSON (`null` when the answer is empty).
    pub async fn post(&self, path: &str, body: &Value) -> Result<Value, ClientError> {
        let req = self.request(reqwest::Method::POST, path).json(body);
        let resp = self.send(req, path).await?;
        self.json(resp, path).await
    }

    /// `PUT path` with a JSON body, parsed as JSON.
    pub async fn put(&self, path: &str, body: &Value) -> Result<Value, ClientError> {
        let req = self.request(reqwest::Method::PUT, path).json(body);
        let resp = self.send(req, path).await?;
        self.json(resp, path).await
    }

    /// Opens `GET path` as a stream (Server-Sent Events or plain text).
    pub async fn stream(&self, path: &str) -> Result<reqwest::Response, ClientError> {
        let req = self
            .request(reqwest::Method::GET, path)
            .header(reqwest::header::ACCEPT, "text/event-stream");
        self.send(req, path).await
    }
}

/// One Server-Sent Event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` name (`message` when absent).
    pub event: String,
    /// The `data:` lines joined with newlines.
    pub data: String,
}

/// Splits a byte stream into Server-Sent Events as chunks arrive.
#[derive(Debug, Default)]
pub struct SseParser {
    buf: String,
}

impl SseParser {
    /// Feeds a chunk; returns the events it completed.
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<SseEvent> {
        self.buf.push_str(&String::from_utf8_lossy(chunk));
        let mut out = Vec::new();
        while let Some(end) = self.buf.find("\n\n") {
            let block: String = self.buf.drain(..end + 2).collect();
            let mut event = String::from("message");
            let mut data: Vec<&str> = Vec::new();
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("event:") {
                    event = v.trim().to_owned();
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push(v.strip_prefix(' ').unwrap_or(v));
                }
            }
            if !data.is_empty() {
                out.push(SseEvent {
                    event,
                    data: data.join("\n"),
                });
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_host_port_urls_get_a_scheme() {
        assert_eq!(normalize_url("localhost:9007"), "http://localhost:9007");
        assert_eq!(normalize_url("http://a:1/"), "http://a:1");
    }

    #[test]
    fn sse_events_split_across_chunks() {
        let mut p = SseParser::default();
        assert!(p.feed(b"event: line\ndata: {\"n\":1").is_empty());
        let evs = p.feed(b"}\n\n: keep-alive\n\nevent: end\ndata: 3\n\n");
        assert_eq!(
            evs,
            vec![
                SseEvent {
                    event: "line".into(),
                    data: "{\"n\":1}".into()
                },
                SseEvent {
                    event: "end".into(),
                    data: "3".into()
                }
            ]
        );
    }
}
