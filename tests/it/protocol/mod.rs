//! Conformance of `/socket.io/` to the Engine.IO 4 and Socket.IO 5 protocols, written from the
//! protocol documents and the behaviour of the reference server: what a client sends and, byte
//! for byte, what it gets back, over raw long-polling requests and raw websockets.

mod common;
#[path = "protocol/engineio.rs"]
mod engineio;
#[path = "protocol/engineio_liveness.rs"]
mod engineio_liveness;
#[path = "protocol/engineio_session.rs"]
mod engineio_session;
#[path = "protocol/socketio.rs"]
mod socketio;
#[path = "protocol/support.rs"]
mod support;
