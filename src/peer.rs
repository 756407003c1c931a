//! Who a request is from: the TCP peer, the client behind a trusted proxy, and the key every
//! per-IP limit counts it by.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use ipnet::IpNet;

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

/// The TCP peer of a request, the client address derived from it (for logs), and the key the
/// client is counted by in every per-IP limit.
#[derive(Clone, Copy, Debug)]
pub struct PeerAddr {
    pub client_ip: IpAddr,
    pub key: IpKey,
}

impl PeerAddr {
    /// Stands in when a request did not come through the accept loop (it always does when
    /// served): all such requests share one key.
    pub fn unknown() -> PeerAddr {
        let ip = IpAddr::from([0, 0, 0, 0]);
        PeerAddr { client_ip: ip, key: IpKey::of(ip, 128) }
    }
}

/// Every `X-Forwarded-For` line of a request as one comma-separated list, in order. A proxy may
/// append to the client's line or add a line of its own; read either way, the right-most
/// entries are the proxies'. A line that is not text becomes an entry that does not parse, so
/// nothing to its left is believed.
pub fn forwarded_for(headers: &http::HeaderMap) -> Option<String> {
    let mut joined: Option<String> = None;
    for line in headers.get_all("x-forwarded-for") {
        let text = String::from_utf8_lossy(line.as_bytes());
        match &mut joined {
            Some(list) => {
                list.push(',');
                list.push_str(&text);
            }
            None => joined = Some(text.into_owned()),
        }
    }
    joined
}

/// One `X-Forwarded-For` entry: an address, or an address with a port (`1.2.3.4:80`,
/// `[2001:db8::1]:443`), which some proxies write.
fn forwarded_entry(raw: &str) -> Option<IpAddr> {
    let raw = raw.trim();
    raw.parse::<IpAddr>()
        .ok()
        .or_else(|| raw.parse::<SocketAddr>().ok().map(|a| a.ip()))
        .or_else(|| raw.strip_prefix('[').and_then(|r| r.strip_suffix(']')).and_then(|r| r.parse().ok()))
}

/// The client IP: the TCP peer, or — when the peer is a trusted proxy — the right-most address
/// of `X-Forwarded-For` that is not itself a trusted proxy.
pub fn client_ip(peer: IpAddr, forwarded: Option<&str>, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|n| n.contains(&canonical(*ip)));
    if !is_trusted(&peer) {
        return canonical(peer);
    }
    let Some(header) = forwarded else { return canonical(peer) };
    let mut last = canonical(peer);
    for part in header.rsplit(',') {
        match forwarded_entry(part) {
            Some(ip) => {
                last = canonical(ip);
                if !is_trusted(&last) {
                    return last;
                }
            }
            None => return last,
        }
    }
    last
}

/// IPv4-mapped IPv6 addresses are the IPv4 client they carry.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_for_only_from_trusted_proxies() {
        let trusted: Vec<IpNet> = vec!["127.0.0.1/8".parse().unwrap(), "::1/128".parse().unwrap()];
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(client_ip(ip("203.0.113.9"), Some("1.2.3.4"), &trusted), ip("203.0.113.9"));
        assert_eq!(client_ip(ip("127.0.0.1"), Some("1.2.3.4"), &trusted), ip("1.2.3.4"));
        assert_eq!(client_ip(ip("127.0.0.1"), Some("6.6.6.6, 1.2.3.4, 127.0.0.5"), &trusted), ip("1.2.3.4"));
        assert_eq!(client_ip(ip("127.0.0.1"), Some("garbage"), &trusted), ip("127.0.0.1"));
        assert_eq!(client_ip(ip("127.0.0.1"), None, &trusted), ip("127.0.0.1"));
        assert_eq!(client_ip(ip("::ffff:10.0.0.1"), None, &trusted), ip("10.0.0.1"));
        assert_eq!(client_ip(ip("127.0.0.1"), Some("1.2.3.4:5678"), &trusted), ip("1.2.3.4"));
        assert_eq!(client_ip(ip("127.0.0.1"), Some("[2001:db8::7]:443"), &trusted), ip("2001:db8::7"));
    }

    #[test]
    fn forwarded_for_lines_are_one_list() {
        let trusted: Vec<IpNet> = vec!["127.0.0.1/8".parse().unwrap()];
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let mut h = http::HeaderMap::new();
        assert_eq!(forwarded_for(&h), None);
        // The client wrote the first line, the proxy added the second.
        h.append("x-forwarded-for", http::HeaderValue::from_static("198.51.100.1, 192.0.2.7"));
        h.append("x-forwarded-for", http::HeaderValue::from_static("203.0.113.50"));
        let list = forwarded_for(&h).unwrap();
        assert_eq!(list, "198.51.100.1, 192.0.2.7,203.0.113.50");
        assert_eq!(client_ip(ip("127.0.0.1"), Some(&list), &trusted), ip("203.0.113.50"));
        // A trusted hop on the last line is skipped, as within one line.
        h.append("x-forwarded-for", http::HeaderValue::from_static("127.0.0.9"));
        assert_eq!(client_ip(ip("127.0.0.1"), forwarded_for(&h).as_deref(), &trusted), ip("203.0.113.50"));
        // Bytes that are not text stop the walk: nothing left of them is believed.
        let mut h = http::HeaderMap::new();
        h.append("x-forwarded-for", http::HeaderValue::from_static("198.51.100.1"));
        h.append("x-forwarded-for", http::HeaderValue::from_bytes(b"\xff\xfe").unwrap());
        assert_eq!(client_ip(ip("127.0.0.1"), forwarded_for(&h).as_deref(), &trusted), ip("127.0.0.1"));
    }
}
