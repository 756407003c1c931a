//! Where a session is in its life, and what it keeps meanwhile: its transport, its phases, the
//! handshake's request head until the CONNECT, and polling's own state until an upgrade.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use super::Reason;
use super::websocket::Socket;
use crate::limits::stream::ConnectionCloser;
use crate::wire::EioPacket;

/// What the handshake request told about the client, kept until its Socket.IO CONNECT and then
/// dropped: a socket does not carry its request head for life.
pub struct Head {
    /// `Authorization` of the handshake request.
    pub authorization: Option<String>,
    /// The handshake request's extensions (the accept loop puts the client address and the
    /// connection's [`ConnectionCloser`] there).
    pub extensions: http::Extensions,
    /// Whether the handshake was a websocket (then its connection is the socket's own).
    pub websocket: bool,
}

impl Head {
    pub(super) fn empty(websocket: bool) -> Head {
        Head { authorization: None, extensions: http::Extensions::new(), websocket }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransportKind {
    Polling,
    /// Polling, with a websocket being probed: polls are answered with a noop.
    Upgrading,
    Websocket,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Phase {
    Open,
    /// Sends what is queued, then closes.
    Closing,
    Closed,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum SocketPhase {
    /// No Socket.IO CONNECT accepted yet (or the socket left with a DISCONNECT).
    Waiting,
    Connected,
}

/// Polling's own state: gone (and its memory with it) once the session upgrades.
#[derive(Default)]
pub(super) struct Polling {
    /// Packets posted and not yet handled by the session's task.
    pub inbox: VecDeque<EioPacket>,
    pub inbox_bytes: usize,
    pub get_pending: bool,
    pub post_pending: bool,
}

pub(super) struct State {
    pub transport: TransportKind,
    pub phase: Phase,
    pub socket: SocketPhase,
    /// Since when no socket is connected (the connect timeout runs from here).
    pub waiting_since: Option<Instant>,
    pub head: Option<Head>,
    /// The connection the session's frames go down now (a websocket, or the last long-poll's).
    pub downstream: Option<ConnectionCloser>,
    pub rooms: Vec<Arc<str>>,
    pub polling: Option<Box<Polling>>,
    /// A websocket whose probe succeeded, for the task to take over.
    pub upgraded: Option<Box<Socket>>,
    /// Why the session ends, once it does.
    pub reason: Option<Reason>,
}
