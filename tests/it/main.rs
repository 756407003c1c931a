//! The integration tests, one program grouped by feature. Nearly every test starts the real
//! binary on a loopback port with its own temporary data directory (`support::Server`), so the
//! tests run in parallel; the few that load the machine hard take `support::heavy()` first.

mod admin;
mod clients;
mod crowd;
mod durability;
mod events;
mod janitor;
mod likes;
mod limits;
mod ops;
mod protocol;
mod support;
