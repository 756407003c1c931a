//! hafi-realtime: the real-time server of a photo-gallery platform.
//!
//! One binary, one port: HTTP routes (warp) and the Socket.IO gallery protocol (the project's own
//! wire layer, `engine`) share a hyper accept loop; state lives in an embedded sled database.
//! Data flows one way: wire → typed events (`protocol`) → authorization (`auth`, `socket`) →
//! state (`store`, `presence`) → broadcast (`engine`).
//!
//! # Layout
//!
//! One line per module: what it owns, and (→) the modules it may call. The arrows form no cycle;
//! modules below `state` never import it. Every module is private: the crate's surface is the
//! `pub use` list below (the binary's `main`, and what the integration tests and benchmarks
//! build a server or a store from), so the compiler reports anything nothing uses.
//!
//! - `cli`: the command line, one file per command → `server`, `config`, `store`, `auth`, `passwords`, `logs`
//! - `server`: `run` serves a bound listener until shutdown; the accept loop → `http`, `socket`, `engine`,
//!   `janitor`, `limits`, `state`, `store`, `notify`
//! - `http`: the warp routes (`/api/*`, admin page, health, metrics) → `socket`, `state`, `store`, `auth`, `limits`
//! - `janitor`: retention and revocation sweeps on a timer → `socket`, `state`, `metrics`
//! - `socket`: one dispatcher from wire events to operations, one file per event → `state`, `engine`,
//!   `presence`, `store`, `protocol`, `auth`, `limits`, `error`
//! - `state`: the shared `App` handle (what every operation needs) → `engine`, `presence`, `store`,
//!   `limits`, `admin_feed`, `revocations`, `auth`, `config`
//! - `presence`: who is in which room and when a busy room's count goes out → `engine`, `protocol`
//! - `engine`: Engine.IO 4 / Socket.IO 5 sessions, rooms, queues and direct writes → `wire`, `limits`
//! - `wire`: the packet codecs (no imports)
//! - `limits`: token buckets, connection gate, HTTP admission, per-socket buckets, `refuse` →
//!   `metrics`, `peer`, `protocol`, `error`, `config`
//! - `protocol`: incoming events validated into types, every outgoing payload → `error`, `types`
//! - `error`: the wire's error messages, mapped from every error type in one place → `store`
//! - `store`: sled, the only module that knows keys and encodings; likes (commit queue, like book),
//!   rooms, registry, admins, retention, backup, group commit, breaker → `metrics`, `types`, `clock`
//! - `auth`: tokens and identities → `store`; `passwords`: argon2 hashes → `store`
//! - `admin_feed`, `revocations`: what the admin room and the janitor must look at → `types`
//! - `config`, `logs`, `metrics`, `peer`, `notify`, `shutdown`, `clock`, `types`: leaves
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
