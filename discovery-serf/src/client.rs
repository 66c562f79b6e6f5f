//! The Serf RPC client: one TCP connection, many concurrent calls. Every request gets a
//! sequence number; one reader task splits the byte stream into msgpack values and hands
//! each response (and each streamed record) to whoever waits on that number. Anything
//! that is not Serf RPC closes the connection with [`SerfError::Protocol`] for every
//! waiter; a call that gets no answer fails with [`SerfError::Timeout`], so nothing
//! waits forever.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::{mpsc, oneshot};

use crate::config::AuthKey;
use crate::conn::{Closed, Pending, Shared, Table, read_loop};
use crate::error::{Result, SerfError};
use crate::member::{SerfMember, StreamEvent};
use crate::wire;

/// How to reach an agent.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// RPC address, `host:port`.
    pub addr: String,
    /// The agent's `rpc_auth` key, when it has one.
    pub auth_key: Option<AuthKey>,
    /// Longest wait for a connection or an answer.
    pub timeout: Duration,
}

impl ClientOptions {
    /// Options for `addr` with no auth key and a 10 s timeout.
    pub fn new(addr: impl Into<String>) -> Self {
        ClientOptions {
            addr: addr.into(),
            auth_key: None,
            timeout: Duration::from_secs(10),
        }
    }

    /// Sets the auth key.
    pub fn auth_key(mut self, key: Option<AuthKey>) -> Self {
        self.auth_key = key;
        self
    }

    /// Sets the timeout.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}

/// One connection: the queue to the writer task, the sequence counter and the tasks.
struct Conn {
    shared: Arc<Shared>,
    /// Whole requests; one task writes them so a cancelled call never leaves half a
    /// request on the wire.
    outbox: mpsc::UnboundedSender<Vec<u8>>,
    seq: AtomicU64,
    timeout: Duration,
    tasks: [tokio::task::AbortHandle; 2],
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.tasks.iter().for_each(|t| t.abort());
    }
}

/// A connection to one Serf agent; cheap to clone, calls may run concurrently.
#[derive(Clone)]
pub struct SerfClient {
    conn: Arc<Conn>,
}

impl std::fmt::Debug for SerfClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SerfClient")
            .field("addr", &self.conn.shared.addr)
            .finish_non_exhaustive()
    }
}

impl SerfClient {
    /// Connects, performs the handshake and, with a key, authenticates.
    pub async fn connect(options: &ClientOptions) -> Result<SerfClient> {
        let addr = options.addr.clone();
        let stream = match tokio::time::timeout(options.timeout, TcpStream::connect(&addr)).await {
            Ok(Ok(s)) => s,
            Ok(Err(source)) => return Err(SerfError::Connect { addr, source }),
            Err(_) => {
                return Err(SerfError::Timeout {
                    addr,
                    command: "connect".into(),
                    after: options.timeout,
                });
            }
        };
        let _ = stream.set_nodelay(true);
        let (rd, wr) = stream.into_split();
        let shared = Arc::new(Shared {
            addr,
            table: Mutex::new(Table::default()),
        });
        let (outbox, queue) = mpsc::unbounded_channel();
        let reader = tokio::spawn(read_loop(shared.clone(), rd)).abort_handle();
        let writer = tokio::spawn(write_loop(shared.clone(), wr, queue)).abort_handle();
        let client = SerfClient {
            conn: Arc::new(Conn {
                shared,
                outbox,
                seq: AtomicU64::new(0),
                timeout: options.timeout,
                tasks: [reader, writer],
            }),
        };
        client
            .call(
                "handshake",
                Some(&wire::Handshake {
                    version: wire::IPC_VERSION,
                }),
                false,
            )
            .await?;
        if let Some(key) = &options.auth_key {
            client
                .call(
                    "auth",
                    Some(&wire::Auth {
                        auth_key: key.expose(),
                    }),
                    false,
                )
                .await?;
        }
        tracing::debug!(agent = %client.addr(), "serf rpc connected");
        Ok(client)
    }

    /// The agent's RPC address.
    pub fn addr(&self) -> &str {
        &self.conn.shared.addr
    }

    /// Whether the connection is still usable.
    pub fn is_open(&self) -> bool {
        self.conn.shared.table().closed.is_none()
    }

    /// Every member the agent knows, alive or not.
    pub async fn members(&self) -> Result<Vec<SerfMember>> {
        let body = self.call::<()>("members", None, true).await?;
        self.members_from("members", body)
    }

    /// Members whose tags, status and name match the given regular expressions (anchored;
    /// an empty status or name matches all).
    pub async fn members_filtered(
        &self,
        tags: &BTreeMap<String, String>,
        status: &str,
        name: &str,
    ) -> Result<Vec<SerfMember>> {
        let req = wire::MembersFiltered { tags, status, name };
        let body = self.call("members-filtered", Some(&req), true).await?;
        self.members_from("members-filtered", body)
    }

    /// Subscribes to events matching `filter` (`member-join,user:deploy`, `*`, ...).
    pub async fn stream(&self, filter: &str) -> Result<EventStream> {
        let (ack_tx, ack_rx) = oneshot::channel();
        let (tx, rx) = mpsc::unbounded_channel();
        let pending = Pending::Stream {
            ack: Some(ack_tx),
            tx,
        };
        let seq = self.send("stream", Some(&wire::Stream { kind: filter }), pending)?;
        self.wait("stream", ack_rx).await??;
        Ok(EventStream {
            client: self.clone(),
            seq,
            rx,
        })
    }

    /// Asks the agent to join the given gossip addresses; returns how many it reached.
    pub async fn join(&self, existing: &[String], replay: bool) -> Result<u32> {
        let body = self
            .call("join", Some(&wire::Join { existing, replay }), true)
            .await?;
        let resp: wire::JoinResponse = self.decode("join", body)?;
        Ok(u32::try_from(resp.num.max(0)).unwrap_or(u32::MAX))
    }

    /// Marks a failed member as left.
    pub async fn force_leave(&self, node: &str) -> Result<()> {
        let req = wire::ForceLeave { node, prune: false };
        self.call("force-leave", Some(&req), false).await.map(drop)
    }

    /// Sets and deletes tags of the agent's own member.
    pub async fn tags(&self, set: &BTreeMap<String, String>, delete: &[String]) -> Result<()> {
        let req = wire::Tags {
            tags: set,
            delete_tags: delete,
        };
        self.call("tags", Some(&req), false).await.map(drop)
    }

    /// Fires a user event.
    pub async fn event(&self, name: &str, payload: &[u8], coalesce: bool) -> Result<()> {
        let req = wire::UserEvent {
            name,
            payload,
            coalesce,
        };
        self.call("event", Some(&req), false).await.map(drop)
    }

    /// Makes the agent leave the pool gracefully and shut down.
    pub async fn leave(&self) -> Result<()> {
        self.call::<()>("leave", None, false).await.map(drop)
    }

    async fn stop(&self, stream: u64) -> Result<()> {
        self.conn
            .shared
            .table()
            .pending
            .insert(stream, Pending::Draining);
        self.call("stop", Some(&wire::Stop { stop: stream }), false)
            .await
            .map(drop)
    }

    fn members_from(&self, command: &str, body: Option<Vec<u8>>) -> Result<Vec<SerfMember>> {
        let resp: wire::MembersResponse = self.decode(command, body)?;
        SerfMember::from_wire_list(resp.members).map_err(|message| SerfError::Protocol {
            addr: self.addr().to_owned(),
            message,
        })
    }

    fn decode<T: DeserializeOwned>(&self, command: &str, body: Option<Vec<u8>>) -> Result<T> {
        let body = body.unwrap_or_default();
        rmp_serde::from_slice(&body).map_err(|e| SerfError::Protocol {
            addr: self.addr().to_owned(),
            message: format!("{command} response: {e}"),
        })
    }

    async fn call<B: Serialize>(
        &self,
        command: &'static str,
        body: Option<&B>,
        expects_body: bool,
    ) -> Result<Option<Vec<u8>>> {
        let (tx, rx) = oneshot::channel();
        let pending = Pending::Call {
            command,
            body: expects_body,
            tx,
        };
        self.send(command, body, pending)?;
        self.wait(command, rx).await?
    }

    /// Registers the waiter, then queues the request (so the answer cannot overtake it).
    fn send<B: Serialize>(
        &self,
        command: &'static str,
        body: Option<&B>,
        pending: Pending,
    ) -> Result<u64> {
        let shared = &self.conn.shared;
        let seq = self.conn.seq.fetch_add(1, Ordering::Relaxed);
        let mut bytes = encode(&wire::RequestHeader { command, seq }, &shared.addr)?;
        if let Some(b) = body {
            bytes.extend(encode(b, &shared.addr)?);
        }
        let mut t = shared.table();
        if let Some(closed) = &t.closed {
            return Err(shared.error(closed));
        }
        t.pending.insert(seq, pending);
        drop(t);
        if self.conn.outbox.send(bytes).is_err() {
            let gone = Closed::Disconnected("writer stopped".into());
            shared.close(gone.clone());
            return Err(shared.error(&gone));
        }
        Ok(seq)
    }

    async fn wait<T>(&self, command: &str, rx: oneshot::Receiver<T>) -> Result<T> {
        let shared = &self.conn.shared;
        match tokio::time::timeout(self.conn.timeout, rx).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(_)) => Err(shared.error(
                shared
                    .table()
                    .closed
                    .as_ref()
                    .unwrap_or(&Closed::Disconnected("reader stopped".into())),
            )),
            Err(_) => Err(SerfError::Timeout {
                addr: shared.addr.clone(),
                command: command.to_owned(),
                after: self.conn.timeout,
            }),
        }
    }
}

/// Writes queued requests in order; a failed write closes the connection.
async fn write_loop(
    shared: Arc<Shared>,
    mut wr: OwnedWriteHalf,
    mut queue: mpsc::UnboundedReceiver<Vec<u8>>,
) {
    while let Some(bytes) = queue.recv().await {
        if let Err(e) = wr.write_all(&bytes).await {
            shared.close(Closed::Disconnected(format!("write failed: {e}")));
            return;
        }
    }
}

fn encode<T: Serialize + ?Sized>(v: &T, addr: &str) -> Result<Vec<u8>> {
    rmp_serde::to_vec_named(v).map_err(|e| SerfError::Protocol {
        addr: addr.to_owned(),
        message: format!("cannot encode request: {e}"),
    })
}

/// The records of one `stream` subscription; ends when the connection does (after an
/// error item saying why).
pub struct EventStream {
    client: SerfClient,
    seq: u64,
    rx: mpsc::UnboundedReceiver<Result<StreamEvent>>,
}

impl std::fmt::Debug for EventStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventStream")
            .field("agent", &self.client.addr())
            .field("seq", &self.seq)
            .finish()
    }
}

impl EventStream {
    /// The next record; `None` once the connection is gone.
    pub async fn next(&mut self) -> Option<Result<StreamEvent>> {
        self.rx.recv().await
    }

    /// The connection the stream runs on (usable for other calls).
    pub fn client(&self) -> &SerfClient {
        &self.client
    }

    /// Ends the subscription; the connection stays usable.
    pub async fn stop(self) -> Result<()> {
        self.client.stop(self.seq).await
    }
}

impl futures::Stream for EventStream {
    type Item = Result<StreamEvent>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx)
    }
}
