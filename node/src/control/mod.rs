//! The control socket: a root-only unix socket speaking length-prefixed,
//! versioned JSON, through which the debugging commands ask the live node.
//!
//! - [`protocol`]: framing, [`Command`], [`Response`] and the chunking of
//!   large answers; [`views`]: the status, peer, record and trace views.
//! - [`server`]: [`bind`] the socket, then [`serve`] it; [`adapter`] decodes
//!   each request into a typed call on the [`NodeHandle`](crate::api::NodeHandle)
//!   and encodes its answer (or its error's message) back.
//! - [`client`]: [`call`], one request and its reassembled answer.
//!
//! The daemon owns the node task behind the handle (writes are answered
//! only once committed), and stops `serve` through its cancellation token;
//! `serve` then drains its connections and removes the socket file.

pub mod adapter;
pub mod client;
pub mod protocol;
pub mod server;
pub mod views;

pub use client::{ClientError, DEFAULT_SOCKET, call};
pub use protocol::{Command, IssuedView, OrderSpec, PROTOCOL_VERSION, Response};
pub use server::{ControlError, MAX_SOCKET_PATH, bind, serve};
pub use views::{PeerState, PeerView, RecordView, StatusView, TraceEntry, TraceView};
