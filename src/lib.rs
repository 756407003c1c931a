//! hafi-realtime: the real-time server of a photo-gallery platform.
//!
//! One binary, one port: HTTP routes (warp) and the Socket.IO gallery protocol (the project's own
//! wire layer, `engine`) share a hyper accept loop; state lives in an embedded sled database.
//! Data flows one way: wire → typed events (`protocol`) → authorization (`auth`, `socket`) →
//! state (`store`, `presence`) → broadcast (`engine`).
//!
//! # Layout
//!
//! One line per module: what it owns, and (→) every module it calls; `tests/it/layout.rs` checks
//! this list against the code. The arrows form no cycle, and modules below `state` never import
//! it. Every module is private: the crate's surface is the `pub use` list below (the binary's
//! `main`, and what the integration tests and benchmarks build a server or a store from), so the
//! compiler reports anything nothing uses.
//!
//! - `cli`: the command line, one file per command → `auth`, `clock`, `config`, `logs`, `passwords`,
//!   `server`, `shutdown`, `store`
//! - `server`: `run` serves a bound listener until shutdown; the accept loop → `auth`, `config`,
//!   `engine`, `http`, `janitor`, `limits`, `logs`, `notify`, `peer`, `shutdown`, `socket`, `state`, `store`
//! - `http`: the warp routes (`/api/*`, admin page, health, metrics) → `auth`, `clock`, `limits`,
//!   `metrics`, `passwords`, `peer`, `protocol`, `socket`, `state`, `store`, `types`
//! - `janitor`: retention and revocation sweeps on a timer → `clock`, `metrics`, `socket`, `state`, `types`
//! - `socket`: one dispatcher from wire events to operations, one file per event → `auth`, `clock`,
//!   `config`, `engine`, `error`, `limits`, `metrics`, `presence`, `protocol`, `state`, `store`, `types`
//! - `state`: the shared `App` handle (what every operation needs) → `admin_feed`, `auth`, `config`,
//!   `engine`, `limits`, `metrics`, `presence`, `revocations`, `shutdown`, `store`
//! - `presence`: who is in which room and when a busy room's count goes out → `engine`, `protocol`, `types`
//! - `engine`: Engine.IO 4 / Socket.IO 5 sessions, rooms, queues and direct writes → `limits`, `wire`
//! - `limits`: token buckets, connection gate, HTTP admission, per-socket buckets, `refuse` → `config`,
//!   `error`, `metrics`, `peer`, `protocol`, `shutdown`, `types`
//! - `protocol`: incoming events validated into types, every outgoing payload → `error`, `types`
//! - `error`: the wire's error messages, mapped from every error type in one place → `clock`, `store`
//! - `store`: sled, the only module that knows keys and encodings; likes (commit queue, like book),
//!   rooms, registry, admins, retention, backup, group commit, breaker → `clock`, `metrics`, `types`
//! - `auth`: tokens and identities → `store`, `types`
//! - `passwords`: argon2 hashes of admin passwords → `clock`, `store`, `types`
//! - `logs`: the log subscriber and the lines written around it → `clock`
//! - `admin_feed`: which rooms changed since the admin room was last told → `types`
//! - `revocations`: events whose access rules changed, waiting for the janitor → `types`
//! - `wire`, `config`, `metrics`, `peer`, `notify`, `shutdown`, `clock`, `types`: leaves (no imports)
#![forbid(unsafe_code)]

mod admin_feed;
mod auth;
mod cli;
mod clock;
mod config;
mod engine;
mod error;
mod http;
mod janitor;
mod limits;
mod logs;
mod metrics;
mod notify;
mod passwords;
mod peer;
mod presence;
mod protocol;
mod revocations;
mod server;
mod shutdown;
mod socket;
mod state;
mod store;
mod types;
mod wire;

pub use auth::{Identity, Tokens};
pub use cli::main;
pub use clock::now_ms;
pub use config::Config;
pub use error::WireError;
pub use protocol::{ClientEvent, parse as parse_event};
pub use server::{run, serve};
pub use shutdown::Shutdown;
pub use socket::ops::relay;
pub use state::App;
pub use store::{EventRecord, Flush, GuestSession, Store, StoreOptions};
pub use types::{EventStatus, GuestSessionId, LikerKey, PhotoId, Slug};
