//! The integration tests, one program grouped by feature. Nearly every test starts the real
//! binary on a loopback port with its own temporary data directory (`support::Server`), so the
//! tests run in parallel; the few that load the machine hard take `support::heavy()` first.
//!
//! The harness starts tests in the order of their names, and a test waiting for `heavy()` keeps
//! its thread idle: the longest heavy test, the socket.io-client suite (`clients`), comes early so
//! light tests run beside it, and the heavy crowds and floods (`queues`) come last, one after the
//! other.

mod admin;
mod clients;
mod durability;
mod events;
mod janitor;
mod layout;
mod likes;
mod limits;
mod ops;
mod protocol;
mod queues;
mod support;
