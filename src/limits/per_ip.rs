//! The per-IP rate tables of the process (what they count by is `peer::IpKey`).

use std::time::Duration;

use super::bucket::{FailureBuckets, KeyedBuckets};
use crate::config::Config;
pub use crate::peer::IpKey;
use crate::shutdown::Shutdown;
use crate::types::Slug;

/// The per-IP rate tables of the process.
pub struct Limiters {
    pub login: KeyedBuckets<IpKey>,
    pub http: KeyedBuckets<IpKey>,
    pub connect: KeyedBuckets<IpKey>,
    /// New guest sessions from the public gallery access route.
    pub gallery_access: KeyedBuckets<IpKey>,
    /// Wrong access codes per client.
    pub code_failures_ip: FailureBuckets<IpKey>,
    /// Wrong access codes per event, whoever sends them; only existing events get a key.
    pub code_failures_event: FailureBuckets<Slug>,
}

impl Limiters {
    pub fn new(config: &Config) -> Limiters {
        let l = &config.limits;
        Limiters {
            login: KeyedBuckets::new(l.login_per_ip),
            http: KeyedBuckets::new(l.http_per_ip),
            connect: KeyedBuckets::new(l.connect_per_ip),
            gallery_access: KeyedBuckets::new(l.gallery_access_per_ip),
            code_failures_ip: FailureBuckets::new(l.access_code_failures_per_ip),
            code_failures_event: FailureBuckets::new(l.access_code_failures_per_event),
        }
    }

    /// Forgets every bucket that has refilled.
    pub fn sweep(&self) {
        self.login.sweep();
        self.http.sweep();
        self.connect.sweep();
        self.gallery_access.sweep();
        self.code_failures_ip.sweep();
        self.code_failures_event.sweep();
    }
}

/// Forgets per-IP buckets that have refilled, every few seconds until shutdown, so the tables
/// hold only recently active clients.
pub async fn sweep_every(limiters: &Limiters, shutdown: &Shutdown) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(5)) => limiters.sweep(),
            _ = shutdown.wait() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_keys_group_ipv6_networks() {
        let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
        let key = |s: &str, p: u8| IpKey::of(ip(s), p).addr();
        assert_eq!(key("203.0.113.9", 64), ip("203.0.113.9"));
        assert_eq!(key("::ffff:10.0.0.1", 64), ip("10.0.0.1"));
        assert_eq!(IpKey::of(ip("::ffff:10.0.0.1"), 64), IpKey::of(ip("10.0.0.1"), 64));
        assert_eq!(key("2001:db8:1:2:aaaa:bbbb:cccc:dddd", 64), ip("2001:db8:1:2::"));
        assert_eq!(IpKey::of(ip("2001:db8:1:2::1"), 64), IpKey::of(ip("2001:db8:1:2::ffff"), 64));
        assert_ne!(IpKey::of(ip("2001:db8:1:2::1"), 64), IpKey::of(ip("2001:db8:1:3::1"), 64));
        assert_eq!(key("2001:db8:1:2::1", 48), ip("2001:db8:1::"));
        assert_eq!(IpKey::of(ip("2001:db8:1:2::1"), 48), IpKey::of(ip("2001:db8:1:3::1"), 48));
        assert_eq!(key("2001:db8:1:2::1", 128), ip("2001:db8:1:2::1"));
        assert_ne!(IpKey::of(ip("2001:db8:1:2::1"), 128), IpKey::of(ip("2001:db8:1:2::2"), 128));
        assert_eq!(key("2001:db8::1", 0), ip("::"));
        assert_eq!(key("2001:db8::1", 200), ip("2001:db8::1"));
    }
}
