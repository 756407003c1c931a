//! hafi-realtime: the real-time server of a photo-gallery platform.
//!
//! One binary, one port: HTTP routes (warp) and the Socket.IO gallery protocol (the project's own wire layer, `engine`)
//! share a hyper accept loop; state lives in an embedded sled database.
#![forbid(unsafe_code)]

pub mod admin_feed;
pub mod auth;
pub mod cli;
pub mod clock;
pub mod config;
pub mod engine;
pub mod error;
pub mod http;
pub mod janitor;
pub mod limits;
pub mod logs;
pub mod metrics;
pub mod notify;
pub mod passwords;
pub mod peer;
pub mod presence;
pub mod protocol;
pub mod revocations;
pub mod server;
pub mod shutdown;
pub mod socket;
pub mod state;
pub mod store;
pub mod types;
pub mod wire;
