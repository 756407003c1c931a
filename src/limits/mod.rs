//! Admission limits: what keeps one client, or a crowd of them, from taking more than its share.
//!
//! - [`bucket`]: the token bucket every rate limit uses, and its keyed tables;
//! - [`per_ip`]: what a per-IP limit counts by, and the process's per-IP rate tables;
//! - [`gate`]: caps on open connections, in total and per IP, held as long as the TCP connection;
//! - [`stream`]: the counted TCP stream and its kill switch;
//! - [`http`]: the tower layer in front of every request (per-IP rates, `Origin`, CORS);
//! - [`socket`]: the per-socket event buckets and the abuse disconnect.
//!
//! Whatever refuses something because of a limit records it with [`refuse`], the one record of a
//! refusal: counted in `/metrics` and logged.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

pub mod bucket;
pub mod gate;
pub mod http;
pub mod per_ip;
pub mod socket;
pub mod stream;

pub use per_ip::{IpKey, Limiters};

pub use crate::metrics::Refusal;

/// When each refusal reason was last logged (process-wide, like the counters it goes with).
static LOGGED: LazyLock<Mutex<HashMap<&'static str, Instant>>> = LazyLock::new(|| Mutex::new(HashMap::new()));

/// Records a refusal: counts it in `/metrics` (`hafi_connections_refused_total`,
/// `hafi_events_refused_total` or `hafi_http_refused_total`, by `reason`), and logs it at most
/// once per second per reason, so abuse cannot flood the logs.
pub fn refuse(kind: Refusal, reason: &'static str) {
    crate::metrics::count_refusal(kind, reason);
    let now = Instant::now();
    let mut t = LOGGED.lock().unwrap_or_else(|p| p.into_inner());
    let due = t.get(reason).is_none_or(|l| now.duration_since(*l) >= Duration::from_secs(1));
    if due {
        t.insert(reason, now);
        tracing::info!(reason, kind = ?kind, "refused");
    }
}
