//! The two Engine API calls that carry join tokens — reading them (`GET /swarm`) and
//! joining with one (`POST /swarm/join`) — made on a plain HTTP/1.0 exchange over the
//! node's endpoint instead of through bollard, which logs request and response bodies
//! at debug level. Bodies here are never logged, responses are size-capped, and engine
//! messages are redacted before they become errors.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::config::TlsConfig;
use crate::error::{Result, SwarmError};
use crate::secret::{JoinToken, redact};

/// Largest response accepted; the swarm object is a few KiB.
const MAX_RESPONSE: u64 = 1 << 20;

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// A raw connection recipe to one engine.
#[derive(Debug, Clone)]
pub(crate) struct Wire {
    /// The node, for messages.
    pub node: String,
    pub endpoint: String,
    pub tls: Option<TlsConfig>,
    /// API version path prefix (`/v1.41`).
    pub version: String,
    pub timeout: Duration,
}

/// A swarm's two join tokens.
pub(crate) struct JoinTokens {
    pub worker: JoinToken,
    pub manager: JoinToken,
}

impl Wire {
    fn fail(&self, operation: &'static str, message: impl std::fmt::Display) -> SwarmError {
        SwarmError::Engine {
            node: self.node.clone(),
            operation,
            message: redact(&message.to_string()),
        }
    }

    /// The swarm's join tokens (the engine must be a manager).
    pub async fn join_tokens(&self) -> Result<JoinTokens> {
        let op = "swarm inspect";
        let body = self.call(op, "GET", "/swarm", None).await?;
        let swarm: Value = serde_json::from_slice(&body)
            .map_err(|e| self.fail(op, format!("malformed swarm object: {e}")))?;
        let token = |role: &str| {
            swarm["JoinTokens"][role]
                .as_str()
                .filter(|t| !t.is_empty())
                .map(|t| JoinToken::new(t.to_owned()))
                .ok_or_else(|| self.fail(op, format!("the manager returned no {role} join token")))
        };
        Ok(JoinTokens {
            worker: token("Worker")?,
            manager: token("Manager")?,
        })
    }

    /// `swarm join` through `remotes`, listening and advertising on `swarm_addr`.
    pub async fn join(
        &self,
        swarm_addr: &str,
        remotes: &[String],
        token: &JoinToken,
    ) -> Result<()> {
        let body = json!({
            "ListenAddr": swarm_addr,
            "AdvertiseAddr": swarm_addr,
            "RemoteAddrs": remotes,
            "JoinToken": token.expose(),
        });
        let body = serde_json::to_vec(&body).map_err(|e| self.fail("swarm join", e))?;
        self.call("swarm join", "POST", "/swarm/join", Some(body))
            .await?;
        Ok(())
    }

    /// One request; the body of a 2xx answer, or the engine's message as an error.
    async fn call(
        &self,
        op: &'static str,
        method: &str,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Vec<u8>> {
        let exchange = self.exchange(op, method, path, body);
        let raw = tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| self.fail(op, format!("no answer within {:?}", self.timeout)))??;
        let (status, body) = parse_response(&raw).map_err(|m| self.fail(op, m))?;
        if (200..300).contains(&status) {
            return Ok(body);
        }
        let message = serde_json::from_slice::<Value>(&body)
            .ok()
            .and_then(|v| v["message"].as_str().map(str::to_owned))
            .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
        Err(self.fail(op, format!("status {status}: {message}")))
    }

    async fn exchange(
        &self,
        op: &'static str,
        method: &str,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Vec<u8>> {
        let mut stream = self.connect().await.map_err(|m| SwarmError::Unreachable {
            node: self.node.clone(),
            endpoint: self.endpoint.clone(),
            message: m,
        })?;
        let body = body.unwrap_or_default();
        let head = format!(
            "{method} {}{path} HTTP/1.0\r\nHost: docker\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            self.version,
            body.len()
        );
        let mut request = head.into_bytes();
        request.extend_from_slice(&body);
        stream
            .write_all(&request)
            .await
            .map_err(|e| self.fail(op, e))?;
        stream.flush().await.map_err(|e| self.fail(op, e))?;
        let mut raw = Vec::new();
        let read = stream.take(MAX_RESPONSE + 1).read_to_end(&mut raw).await;
        // A TLS peer may close without close_notify; what arrived is still the answer.
        if let Err(e) = read {
            if raw.is_empty() {
                return Err(self.fail(op, e));
            }
        }
        if raw.len() as u64 > MAX_RESPONSE {
            return Err(self.fail(op, "response larger than 1 MiB"));
        }
        Ok(raw)
    }

    async fn connect(&self) -> Result<Box<dyn Stream>, String> {
        let (scheme, rest) = self
            .endpoint
            .split_once("://")
            .ok_or_else(|| format!("bad endpoint {:?}", self.endpoint))?;
        if scheme == "unix" {
            let s = tokio::net::UnixStream::connect(rest)
                .await
                .map_err(|e| e.to_string())?;
            return Ok(Box::new(s));
        }
        let authority = rest.split('/').next().unwrap_or(rest);
        let tcp = tokio::net::TcpStream::connect(authority)
            .await
            .map_err(|e| e.to_string())?;
        let Some(tls) = &self.tls else {
            return Ok(Box::new(tcp));
        };
        let host = authority
            .rsplit_once(':')
            .map_or(authority, |(h, _)| h)
            .trim_start_matches('[')
            .trim_end_matches(']');
        let name = ServerName::try_from(host.to_owned()).map_err(|e| e.to_string())?;
        let connector = tokio_rustls::TlsConnector::from(client_config(tls)?);
        let s = connector
            .connect(name, tcp)
            .await
            .map_err(|e| e.to_string())?;
        Ok(Box::new(s))
    }
}

/// A rustls client trusting only the configured CA and presenting the client certificate.
fn client_config(tls: &TlsConfig) -> Result<Arc<rustls::ClientConfig>, String> {
    let pem_err = |p: &Path, e: rustls::pki_types::pem::Error| format!("{}: {e}", p.display());
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(&tls.ca).map_err(|e| pem_err(&tls.ca, e))? {
        roots
            .add(cert.map_err(|e| pem_err(&tls.ca, e))?)
            .map_err(|e| e.to_string())?;
    }
    let certs = CertificateDer::pem_file_iter(&tls.cert)
        .map_err(|e| pem_err(&tls.cert, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_err(&tls.cert, e))?;
    let key = PrivateKeyDer::from_pem_file(&tls.key).map_err(|e| pem_err(&tls.key, e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_client_auth_cert(certs, key)
        .map_err(|e| e.to_string())?;
    Ok(Arc::new(config))
}

/// Status code and body of a raw HTTP/1.x response (chunked bodies decoded).
fn parse_response(raw: &[u8]) -> Result<(u16, Vec<u8>), String> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("response without a header end")?;
    let head = std::str::from_utf8(&raw[..split]).map_err(|_| "response header is not UTF-8")?;
    let body = &raw[split + 4..];
    let status = head
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse::<u16>().ok())
        .ok_or("response without a status code")?;
    let chunked = head.lines().any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    let body = if chunked {
        dechunk(body)?
    } else {
        body.to_vec()
    };
    Ok((status, body))
}

/// Decodes a chunked body.
fn dechunk(mut body: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let line_end = body
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("truncated chunk size")?;
        let size_text = std::str::from_utf8(&body[..line_end]).map_err(|_| "bad chunk size")?;
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16).map_err(|_| "bad chunk size")?;
        body = &body[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        if body.len() < size {
            return Err("truncated chunk".into());
        }
        out.extend_from_slice(&body[..size]);
        body = body.get(size + 2..).unwrap_or_default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_parse_plain_and_chunked_and_reject_garbage() {
        let (s, b) = parse_response(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n{}").unwrap();
        assert_eq!((s, b.as_slice()), (200, b"{}".as_slice()));
        let raw = b"HTTP/1.1 503 Service Unavailable\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n2;x\r\nef\r\n0\r\n\r\n";
        let (s, b) = parse_response(raw).unwrap();
        assert_eq!((s, b.as_slice()), (503, b"abcdef".as_slice()));
        assert!(parse_response(b"garbage").is_err());
        assert!(parse_response(b"HTTP/1.0 abc\r\n\r\n").is_err());
        let truncated = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nff\r\nab";
        assert!(parse_response(truncated).is_err());
        assert!(
            parse_response(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n").is_err()
        );
    }
}
