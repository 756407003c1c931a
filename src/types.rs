//! Validated domain values. Anything that crosses the wire is parsed into one of these before it
//! reaches storage or presence, so the rest of the code never sees an unchecked string.

use std::fmt;

use base64::Engine as _;
use serde::{Deserialize, Serialize};

/// An event slug: 1–100 characters of `[a-z0-9-]`. Input is lower-cased first, because the web
/// app and old clients are not consistent about case.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Slug(String);

impl Slug {
    pub const MAX_LEN: usize = 100;

    pub fn parse(raw: &str) -> Option<Slug> {
        let lower = raw.trim().to_ascii_lowercase();
        let ok = !lower.is_empty()
            && lower.len() <= Self::MAX_LEN
            && lower.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        ok.then_some(Slug(lower))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The Socket.IO room of this event.
    pub fn room(&self) -> String {
        format!("event:{}", self.0)
    }
}

impl fmt::Display for Slug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A photo id as the web app names it: a string of 1–128 characters or an integer; always handled
/// (and sent out) as a string.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PhotoId(String);

impl PhotoId {
    pub const MAX_LEN: usize = 128;

    pub fn parse(raw: &str) -> Option<PhotoId> {
        let ok = !raw.is_empty()
            && raw.chars().count() <= Self::MAX_LEN
            && !raw.contains('\0')
            && !raw.chars().any(char::is_control);
        ok.then(|| PhotoId(raw.to_string()))
    }

    /// Accepts a JSON string or integer.
    pub fn from_json(v: &serde_json::Value) -> Option<PhotoId> {
        match v {
            serde_json::Value::String(s) => PhotoId::parse(s),
            serde_json::Value::Number(n) if n.is_i64() || n.is_u64() => PhotoId::parse(&n.to_string()),
            _ => None,
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PhotoId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A guest session id: 1–128 characters of `[A-Za-z0-9_-]`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct GuestSessionId(String);

impl GuestSessionId {
    pub fn parse(raw: &str) -> Option<GuestSessionId> {
        let ok = !raw.is_empty()
            && raw.len() <= 128
            && raw.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        ok.then(|| GuestSessionId(raw.to_string()))
    }

    /// A fresh id: `guest_` and 128 random bits, url-safe.
    pub fn generate() -> GuestSessionId {
        let mut bytes = [0u8; 16];
        random_bytes(&mut bytes);
        GuestSessionId(format!("guest_{}", b64url(&bytes)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for GuestSessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Event lifecycle as the web app defines it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum EventStatus {
    Draft,
    Active,
    Archived,
}

impl EventStatus {
    pub fn parse(raw: &str) -> Option<EventStatus> {
        match raw {
            "DRAFT" => Some(EventStatus::Draft),
            "ACTIVE" => Some(EventStatus::Active),
            "ARCHIVED" => Some(EventStatus::Archived),
            _ => None,
        }
    }
}

/// An event access code: 6 characters of `[A-Z0-9]`, compared case-insensitively (stored upper).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessCode(String);

impl AccessCode {
    pub fn parse(raw: &str) -> Option<AccessCode> {
        let up = raw.trim().to_ascii_uppercase();
        let ok = up.len() == 6 && up.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
        ok.then_some(AccessCode(up))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Constant-time comparison, so the code cannot be guessed one character at a time.
    pub fn matches(&self, candidate: &str) -> bool {
        let cand = candidate.trim().to_ascii_uppercase();
        if cand.len() != self.0.len() {
            return false;
        }
        cand.bytes().zip(self.0.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
    }
}

/// The one who liked a photo: a guest session, or `user:<id>` for owners and admins.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct LikerKey(String);

impl LikerKey {
    pub fn guest(id: &GuestSessionId) -> LikerKey {
        LikerKey(id.as_str().to_string())
    }

    pub fn user(user_id: &str) -> LikerKey {
        LikerKey(format!("user:{user_id}"))
    }

    pub fn from_stored(raw: String) -> LikerKey {
        LikerKey(raw)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The room of the studio's admins (event rooms are [`Slug::room`]).
pub const ADMIN_ROOM: &str = "admin";

/// Fills `buf` from the operating system's random source.
pub fn random_bytes(buf: &mut [u8]) {
    // The OS source failing is not recoverable in any meaningful way for a server that must mint
    // unguessable ids; refuse loudly rather than hand out predictable ones.
    getrandom::fill(buf).expect("operating system random source unavailable");
}

/// URL-safe base64 without padding.
pub fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slug_rules() {
        assert_eq!(Slug::parse("Wedding-2026").unwrap().as_str(), "wedding-2026");
        assert!(Slug::parse("").is_none());
        assert!(Slug::parse("a b").is_none());
        assert!(Slug::parse("a_b").is_none());
        assert!(Slug::parse(&"a".repeat(101)).is_none());
        assert!(Slug::parse(&"a".repeat(100)).is_some());
        assert!(Slug::parse("é").is_none());
    }

    #[test]
    fn photo_id_rules() {
        assert_eq!(PhotoId::from_json(&serde_json::json!(42)).unwrap().as_str(), "42");
        assert!(PhotoId::from_json(&serde_json::json!(1.5)).is_none());
        assert!(PhotoId::from_json(&serde_json::json!("")).is_none());
        assert!(PhotoId::from_json(&serde_json::json!("x".repeat(129))).is_none());
        assert!(PhotoId::from_json(&serde_json::json!(null)).is_none());
        assert!(PhotoId::from_json(&serde_json::json!("a\0b")).is_none());
    }

    #[test]
    fn access_code_rules() {
        let c = AccessCode::parse("ab12cd").unwrap();
        assert!(c.matches("AB12CD"));
        assert!(c.matches("ab12cd"));
        assert!(!c.matches("AB12CE"));
        assert!(!c.matches("AB12C"));
        assert!(AccessCode::parse("ABC").is_none());
        assert!(AccessCode::parse("ABC-12").is_none());
    }

    #[test]
    fn generated_session_ids_are_valid() {
        let id = GuestSessionId::generate();
        assert!(id.as_str().starts_with("guest_"));
        assert!(GuestSessionId::parse(id.as_str()).is_some());
        assert_ne!(id, GuestSessionId::generate());
    }
}
