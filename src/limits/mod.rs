//! Admission limits: what keeps one client, or a crowd of them, from taking more than its share.
//!
//! - [`bucket`]: the token bucket every rate limit uses, and its keyed tables;
//! - [`per_ip`]: what a per-IP limit counts by, and the process's per-IP rate tables;
//! - [`gate`]: caps on open connections, in total and per IP, held as long as the TCP connection;
//! - [`stream`]: the counted TCP stream and its kill switch;
//! - [`http`]: the tower layer in front of every request (per-IP rates, `Origin`, CORS);
//! - [`socket`]: the per-socket event buckets and the abuse disconnect.

pub mod bucket;
pub mod gate;
pub mod http;
pub mod per_ip;
pub mod socket;
pub mod stream;

pub use bucket::{Blocked, FailureBuckets, KeyedBuckets, TokenBucket};
pub use per_ip::{IpKey, Limiters};
