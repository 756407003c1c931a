//! Wall-clock helpers. Every server→client payload carries a JavaScript-style ISO timestamp.

use chrono::{SecondsFormat, TimeZone, Utc};

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

/// Now as `2026-11-28T13:44:27.123Z`, the shape of JavaScript's `toISOString()`.
pub fn iso_now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// A stored millisecond time in the same shape.
pub fn iso_ms(ms: i64) -> String {
    match Utc.timestamp_millis_opt(ms).single() {
        Some(t) => t.to_rfc3339_opts(SecondsFormat::Millis, true),
        None => String::from("1970-01-01T00:00:00.000Z"),
    }
}

/// Parses an ISO-8601 / RFC 3339 time into epoch milliseconds.
pub fn parse_iso(raw: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(raw).ok().map(|t| t.timestamp_millis())
}

#[cfg(test)]
mod tests {
    #[test]
    fn iso_shape() {
        let s = super::iso_ms(1_700_000_000_123);
        assert_eq!(s, "2023-11-14T22:13:20.123Z");
        assert_eq!(super::parse_iso(&s), Some(1_700_000_000_123));
    }
}
