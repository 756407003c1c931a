//! Engine.IO session ids.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// A session id: 128 random bits, written as 22 url-safe base64 characters.
///
/// `Copy` and 16 bytes, so tables keyed by it (rooms, presence) hold no heap string per member;
/// random, because a sid in a polling URL is all that ties a request to its session.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sid([u8; 16]);

impl Sid {
    pub fn new() -> Sid {
        let mut bytes = [0u8; 16];
        // The OS random source does not fail on a running Linux system; a zero sid would only
        // be guessable, so fall back to the clock's bits rather than panic.
        if getrandom::fill(&mut bytes).is_err() {
            let t =
                std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
            bytes = t.to_le_bytes();
        }
        Sid(bytes)
    }
}

impl Default for Sid {
    fn default() -> Sid {
        Sid::new()
    }
}

impl fmt::Display for Sid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = [0u8; 22];
        match URL_SAFE_NO_PAD.encode_slice(self.0, &mut buf) {
            Ok(n) => f.write_str(std::str::from_utf8(&buf[..n]).map_err(|_| fmt::Error)?),
            Err(_) => Err(fmt::Error),
        }
    }
}

impl fmt::Debug for Sid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[derive(Debug, PartialEq, Eq)]
pub struct BadSid;

impl FromStr for Sid {
    type Err = BadSid;
    fn from_str(s: &str) -> Result<Sid, BadSid> {
        if s.len() != 22 {
            return Err(BadSid);
        }
        let mut bytes = [0u8; 16];
        match URL_SAFE_NO_PAD.decode_slice(s, &mut bytes) {
            Ok(16) => Ok(Sid(bytes)),
            _ => Err(BadSid),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_other_strings() {
        let a = Sid::new();
        let text = a.to_string();
        assert_eq!(text.len(), 22);
        assert_eq!(text.parse::<Sid>(), Ok(a));
        assert_ne!(Sid::new(), a);
        for bad in ["", "abc", "lv_VI97HAXpY6yYWAAAC", "!!!!!!!!!!!!!!!!!!!!!!", &format!("{text}A")] {
            assert_eq!(bad.parse::<Sid>(), Err(BadSid), "{bad}");
        }
    }
}
