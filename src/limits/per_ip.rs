//! What per-IP limits count by, and the per-IP rate tables of the process.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};
use std::time::Duration;

use super::bucket::{FailureBuckets, KeyedBuckets};
use crate::config::Config;
use crate::shutdown::Shutdown;
use crate::types::Slug;

/// What every per-IP limit counts by: an IPv4 address, or the IPv6 network of the configured
/// prefix length. One phone or household usually holds a whole /64, so counting single IPv6
/// addresses would hand every client an unlimited supply of fresh identities.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct IpKey(IpAddr);

impl IpKey {
    /// The limit key of a client address. IPv4-mapped IPv6 addresses are the IPv4 client they
    /// carry; other IPv6 addresses are cut to their first `v6_prefix` bits (clamped to 0..=128).
    pub fn of(ip: IpAddr, v6_prefix: u8) -> IpKey {
        match ip {
            IpAddr::V4(_) => IpKey(ip),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => IpKey(IpAddr::V4(v4)),
                None => {
                    let bits = u32::from(v6_prefix.min(128));
                    let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
                    IpKey(IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask)))
                }
            },
        }
    }

    /// The address (or network address) this key stands for.
    pub fn addr(self) -> IpAddr {
        self.0
    }
}

impl fmt::Display for IpKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

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
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
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
