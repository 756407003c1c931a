//! The Socket.IO events of the gallery, as they travel: what clients send ([`incoming`]:
//! validated into typed events) and what the server sends ([`outgoing`]: payload types and event
//! names). What each event does is the socket layer's (`socket::ops`).

pub mod incoming;
pub mod outgoing;

pub use incoming::{ClientEvent, EVENT_NAMES, parse};
pub use outgoing::names;
