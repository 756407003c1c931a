//! Shared test support: the server launcher (`server`), HTTP (`http`), sockets through the
//! `rust_socketio` client (`sock`), raw Engine.IO / Socket.IO clients (`raw`), tokens signed with
//! the test secret, and the guard that keeps the heaviest tests from running at the same time.

use std::time::Duration;

use serde_json::Value;

pub mod cli;
mod http;
pub mod raw;
mod server;
mod sock;

pub use http::{Http, forwarded, post_as, retry_after};
pub use server::{SECRET, Server, listening_url};
pub use sock::{CONNECT_ERROR, Sock};

/// One program runs all these tests, two at a time on a two-core machine. The heaviest few load
/// both cores, or hold thousands of sockets, for seconds on end: a room of 2,100 websockets, floods
/// that fill megabytes of outgoing queues, 3,000 rooms joined and left, 60 logins hashed at once,
/// the socket.io-client suite. Two of them side by side would push each other past their time limits, so each holds
/// this guard for its whole run and they take turns, while the light tests go on beside them. A
/// tokio mutex, because the guard is held across awaits; it has no poisoning, so a heavy test that
/// fails lets the next one run.
static HEAVY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Waits until no other heavy test runs; hold the guard until the test ends.
pub async fn heavy() -> tokio::sync::MutexGuard<'static, ()> {
    HEAVY.lock().await
}

/// `heavy` for a test that is not async.
pub fn heavy_blocking() -> tokio::sync::MutexGuard<'static, ()> {
    HEAVY.blocking_lock()
}

/// An HS256 token signed with the test secret.
pub fn token(user: &str, role: &str) -> String {
    let t = hafi_realtime::Tokens::new(SECRET).expect("tokens");
    t.mint(user, role, Duration::from_secs(3600)).expect("mint").0
}

pub fn admin_token() -> String {
    token("admin-1", "ADMIN")
}

/// Waits until `count` reaches `n`; fails the test after `secs` seconds, naming `what`.
pub async fn wait_for_count(count: &std::sync::atomic::AtomicUsize, n: usize, secs: u64, what: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    while count.load(std::sync::atomic::Ordering::Acquire) < n {
        assert!(
            std::time::Instant::now() < deadline,
            "only {} of {n} {what}",
            count.load(std::sync::atomic::Ordering::Acquire)
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The room `slug` as `/api/admin/rooms` lists it; `Null` when it is not listed.
pub async fn room(http: &Http, slug: &str) -> Value {
    let (_, body) = http.call("GET", "/api/admin/rooms", Some(&admin_token()), None).await;
    body["rooms"].as_array().unwrap().iter().find(|r| r["slug"] == slug).cloned().unwrap_or(Value::Null)
}
