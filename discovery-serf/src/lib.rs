//! HashiCorp Serf discovery for clusterm: an RPC client for the Serf agent (msgpack over
//! TCP, IPC version 1) and [`SerfDiscovery`], the `Discovery` implementation registered
//! as `"serf"`.
//!
//! Nodes announce themselves by running a Serf agent tagged `NodeLabel` (name),
//! `NodeSerial` and `NodeAddr`; clusterm reads the member list and the event stream of
//! one local agent.

mod client;
mod config;
mod conn;
mod discovery;
mod error;
mod frame;
mod member;
mod wire;

pub use client::{ClientOptions, EventStream, SerfClient};
pub use config::{AuthKey, SerfConfig};
pub use discovery::{SerfDiscovery, TAG_ADDR, TAG_LABEL, TAG_SERIAL, to_events, to_member};
pub use error::{Result, SerfError};
pub use frame::{FrameError, MAX_FRAME, value_len};
pub use member::{MemberEventKind, SerfMember, SerfStatus, StreamEvent};
