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

/// An HS256 token signed with the test secret.
pub fn token(user: &str, role: &str) -> String {
    let t = hafi_realtime::auth::Tokens::new(SECRET).expect("tokens");
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
