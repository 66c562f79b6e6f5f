//! The connection's shared state and its reader task: the table of waiters keyed by
//! sequence number, and the loop that splits the byte stream into msgpack values and
//! routes each to its waiter. Owns the rule of which responses carry a body.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::io::AsyncReadExt;
use tokio::net::tcp::OwnedReadHalf;
use tokio::sync::{mpsc, oneshot};

use crate::error::{Result, SerfError};
use crate::frame;
use crate::member::StreamEvent;
use crate::wire;

/// Errors the agent answers before looking at a command; no body follows them.
const PRE_DISPATCH_ERRORS: [&str; 3] = [
    "Handshake required",
    "Authentication required",
    "Unsupported command",
];
const AUTH_ERRORS: [&str; 2] = ["Authentication required", "Invalid authentication token"];

pub(crate) type Reply = Result<Option<Vec<u8>>>;

pub(crate) enum Pending {
    Call {
        command: &'static str,
        body: bool,
        tx: oneshot::Sender<Reply>,
    },
    Stream {
        ack: Option<oneshot::Sender<Result<()>>>,
        tx: mpsc::UnboundedSender<Result<StreamEvent>>,
    },
    /// A stopped stream: records still in flight are dropped.
    Draining,
}

#[derive(Clone)]
pub(crate) enum Closed {
    Protocol(String),
    Disconnected(String),
}

#[derive(Default)]
pub(crate) struct Table {
    pub(crate) pending: HashMap<u64, Pending>,
    pub(crate) closed: Option<Closed>,
}

pub(crate) struct Shared {
    pub(crate) addr: String,
    pub(crate) table: Mutex<Table>,
}

impl Shared {
    pub(crate) fn table(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn error(&self, closed: &Closed) -> SerfError {
        let addr = self.addr.clone();
        match closed.clone() {
            Closed::Protocol(message) => SerfError::Protocol { addr, message },
            Closed::Disconnected(message) => SerfError::Disconnected { addr, message },
        }
    }

    pub(crate) fn rpc_error(&self, command: &str, message: String) -> SerfError {
        let addr = self.addr.clone();
        if AUTH_ERRORS.contains(&message.as_str()) {
            SerfError::Auth { addr, message }
        } else {
            SerfError::Rpc {
                addr,
                command: command.to_owned(),
                message,
            }
        }
    }

    /// Fails every waiter and refuses later calls.
    pub(crate) fn close(&self, why: Closed) {
        let pending = {
            let mut t = self.table();
            t.closed.get_or_insert(why.clone());
            std::mem::take(&mut t.pending)
        };
        tracing::debug!(agent = %self.addr, waiters = pending.len(), "serf connection closed");
        for (_, p) in pending {
            match p {
                Pending::Call { tx, .. } => {
                    let _ = tx.send(Err(self.error(&why)));
                }
                Pending::Stream { ack: Some(ack), .. } => {
                    let _ = ack.send(Err(self.error(&why)));
                }
                Pending::Stream { ack: None, tx } => {
                    let _ = tx.send(Err(self.error(&why)));
                }
                Pending::Draining => {}
            }
        }
    }
}

/// Splits the byte stream into values and routes them; closes the table on any failure.
pub(crate) async fn read_loop(shared: Arc<Shared>, mut rd: OwnedReadHalf) {
    let mut buf: Vec<u8> = Vec::with_capacity(64 * 1024);
    let mut start = 0usize;
    let mut router = Router::default();
    let why = loop {
        match frame::value_len(&buf[start..]) {
            Err(e) => break Closed::Protocol(e.to_string()),
            Ok(Some(n)) => {
                let frame = &buf[start..start + n];
                start += n;
                if let Err(message) = router.route(&shared, frame) {
                    break Closed::Protocol(message);
                }
            }
            Ok(None) => {
                buf.drain(..start);
                start = 0;
                buf.reserve(64 * 1024);
                match rd.read_buf(&mut buf).await {
                    Ok(0) if buf.is_empty() => {
                        break Closed::Disconnected("closed by the agent".into());
                    }
                    Ok(0) => {
                        break Closed::Disconnected(format!(
                            "closed in the middle of a frame ({} bytes of it received)",
                            buf.len()
                        ));
                    }
                    Ok(_) => {}
                    Err(e) => break Closed::Disconnected(format!("read failed: {e}")),
                }
            }
        }
    };
    shared.close(why);
}

/// Which value the reader expects next.
#[derive(Default)]
struct Router {
    /// A header announced a body for this sequence number, with the header's error.
    body_for: Option<(u64, String)>,
}

impl Router {
    fn route(&mut self, shared: &Shared, frame: &[u8]) -> std::result::Result<(), String> {
        if let Some((seq, error)) = self.body_for.take() {
            return route_body(shared, seq, error, frame);
        }
        let header: wire::ResponseHeader =
            rmp_serde::from_slice(frame).map_err(|e| format!("expected a response header: {e}"))?;
        let mut t = shared.table();
        let seq = header.seq;
        match t.pending.get_mut(&seq) {
            None => Err(format!("response for unknown sequence number {seq}")),
            Some(Pending::Call { command, body, .. }) => {
                let has_body = *body
                    && (header.error.is_empty()
                        || (*command == "join"
                            && !PRE_DISPATCH_ERRORS.contains(&header.error.as_str())));
                if has_body {
                    self.body_for = Some((seq, header.error));
                    return Ok(());
                }
                let Some(Pending::Call { command, tx, .. }) = t.pending.remove(&seq) else {
                    unreachable!("entry matched as a call above")
                };
                drop(t);
                let reply = if header.error.is_empty() {
                    Ok(None)
                } else {
                    Err(shared.rpc_error(command, header.error))
                };
                let _ = tx.send(reply);
                Ok(())
            }
            Some(Pending::Stream {
                ack: ack @ Some(_), ..
            }) => {
                let ack = ack.take().expect("matched Some");
                if header.error.is_empty() {
                    let _ = ack.send(Ok(()));
                } else {
                    t.pending.remove(&seq);
                    let _ = ack.send(Err(shared.rpc_error("stream", header.error)));
                }
                Ok(())
            }
            Some(Pending::Stream { ack: None, .. } | Pending::Draining) => {
                self.body_for = Some((seq, header.error));
                Ok(())
            }
        }
    }
}

fn route_body(
    shared: &Shared,
    seq: u64,
    error: String,
    frame: &[u8],
) -> std::result::Result<(), String> {
    let mut t = shared.table();
    match t.pending.get(&seq) {
        Some(Pending::Call { .. }) => {
            let Some(Pending::Call { command, tx, .. }) = t.pending.remove(&seq) else {
                unreachable!("entry matched as a call above")
            };
            drop(t);
            let reply = if error.is_empty() {
                Ok(Some(frame.to_vec()))
            } else {
                Err(shared.rpc_error(command, error))
            };
            let _ = tx.send(reply);
            Ok(())
        }
        Some(Pending::Stream { tx, .. }) => {
            let item = rmp_serde::from_slice::<wire::EventRecord>(frame)
                .map_err(|e| format!("stream record: {e}"))
                .and_then(StreamEvent::from_record)
                .map_err(|message| SerfError::Protocol {
                    addr: shared.addr.clone(),
                    message,
                });
            if tx.send(item).is_err() {
                // Nobody listens any more; drop what is still in flight.
                t.pending.insert(seq, Pending::Draining);
            }
            Ok(())
        }
        Some(Pending::Draining) => Ok(()),
        None => Err(format!("record for unknown sequence number {seq}")),
    }
}
