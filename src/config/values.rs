//! Parsers for values that the file, the environment and the flags share. Each error names where
//! the value came from: a key (`server.host`), a variable (`SOCKET_HOST`) or a flag (`--host`).

use std::net::IpAddr;
use std::time::Duration;

use ipnet::IpNet;
use serde::{Deserialize, Deserializer};

use super::tables::Removed;
use super::{ConfigError, invalid};

/// Parses a duration in humantime's notation: `300ms`, `10s`, `5m`, `1h`, `30d`, or a sum such as
/// `1h 30m`. A bare number is refused: the unit is always written.
pub fn parse_duration(raw: &str) -> Result<Duration, String> {
    humantime::parse_duration(raw.trim())
        .map_err(|e| format!("invalid duration {raw:?}: {e}; write it like 300ms, 10s, 5m, 1h or 30d"))
}

/// A duration written in the file as a string (see [`parse_duration`]).
pub(super) fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let raw = String::deserialize(d)?;
    parse_duration(&raw).map_err(serde::de::Error::custom)
}

/// `[limits] outgoing_queue` counted packets in earlier releases; a file that still sets it would
/// mean something else today, so it is refused with the name of its successor.
pub(super) fn removed_outgoing_queue<'de, D: Deserializer<'de>>(_: D) -> Result<Removed, D::Error> {
    Err(serde::de::Error::custom(
        "limits.outgoing_queue was replaced by limits.outgoing_queue_bytes (unsent bytes per socket, default 1048576)",
    ))
}

/// An IP address, bracketed IPv6 included; `localhost` is the IPv4 loopback.
pub(super) fn parse_host(name: &str, raw: &str) -> Result<IpAddr, ConfigError> {
    let raw = raw.trim();
    if raw == "localhost" {
        return Ok(IpAddr::from([127, 0, 0, 1]));
    }
    raw.trim_matches(|c| c == '[' || c == ']')
        .parse()
        .map_err(|_| invalid(name, format!("{raw:?} is not an IP address")))
}

/// CIDR ranges or single addresses; blank entries are skipped.
pub(super) fn parse_proxies(name: &str, items: &[String]) -> Result<Vec<IpNet>, ConfigError> {
    items
        .iter()
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<IpNet>()
                .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| invalid(name, format!("{s:?} is not an address or CIDR range")))
        })
        .collect()
}

/// An origin as browsers send it: `scheme://host[:port]`, no path.
pub(super) fn parse_origin(name: &str, raw: &str) -> Result<String, ConfigError> {
    let o = raw.trim().trim_end_matches('/');
    let rest = o.strip_prefix("http://").or_else(|| o.strip_prefix("https://"));
    match rest {
        Some(host) if !host.is_empty() && !host.contains('/') => Ok(o.to_ascii_lowercase()),
        _ => Err(invalid(name, format!("{raw:?} is not an origin like https://live.example.com"))),
    }
}

/// A comma list, entries trimmed, blank ones skipped.
pub(super) fn split_list(raw: &str) -> Vec<String> {
    raw.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect()
}

pub(super) fn parse_bool(name: &str, raw: &str) -> Result<bool, ConfigError> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" | "" => Ok(false),
        other => Err(invalid(name, format!("{other:?} is not a boolean"))),
    }
}
