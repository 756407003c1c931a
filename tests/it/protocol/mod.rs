//! Conformance of `/socket.io/` to the Engine.IO 4 and Socket.IO 5 protocols, written from the
//! protocol documents and the behaviour of the reference server: what a client sends and, byte
//! for byte, what it gets back, over raw long-polling requests and raw websockets.

mod engineio;
mod engineio_liveness;
mod engineio_session;
mod socketio;
