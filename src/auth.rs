//! Tokens, secrets and the identities they prove.
//!
//! Only HS256 is accepted: the web app and this server share one secret, and accepting any other
//! algorithm would let a token choose how it is checked.

use std::path::Path;
use std::time::Duration;

use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::types::{GuestSessionId, LikerKey, Slug};

/// Who is on the other end of a socket or an HTTP request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Identity {
    /// A token with role `ADMIN`: every event, the admin room.
    Admin { user_id: String },
    /// A token with any other role: the events whose `ownerId` is this user.
    Owner { user_id: String },
    /// A guest session of exactly one event.
    Guest { session: GuestSessionId, slug: Slug },
}

impl Identity {
    pub fn is_admin(&self) -> bool {
        matches!(self, Identity::Admin { .. })
    }

    /// Whose like a like from this identity is.
    pub fn liker(&self) -> LikerKey {
        match self {
            Identity::Admin { user_id } | Identity::Owner { user_id } => LikerKey::user(user_id),
            Identity::Guest { session, .. } => LikerKey::guest(session),
        }
    }

    /// A short label for logs: never a token, never a full session id.
    pub fn kind(&self) -> &'static str {
        match self {
            Identity::Admin { .. } => "admin",
            Identity::Owner { .. } => "owner",
            Identity::Guest { .. } => "guest",
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    user_id: serde_json::Value,
    role: String,
    exp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    iat: Option<u64>,
}

/// Signs and checks HS256 tokens with the shared secret.
#[derive(Clone)]
pub struct Tokens {
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tokens(<secret>)")
    }
}

impl Tokens {
    /// Fails only for an empty secret.
    pub fn new(secret: &str) -> Result<Tokens, jsonwebtoken::errors::Error> {
        Ok(Tokens { encoding: EncodingKey::from_secret(secret.as_bytes())?, decoding: DecodingKey::from_secret(secret.as_bytes())? })
    }

    /// Mints a token; returns it with its expiry in epoch seconds.
    pub fn mint(&self, user_id: &str, role: &str, ttl: Duration) -> Result<(String, u64), jsonwebtoken::errors::Error> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let exp = now.saturating_add(ttl.as_secs().max(1));
        let claims = Claims { user_id: serde_json::Value::String(user_id.to_string()), role: role.to_string(), exp, iat: Some(now) };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)?;
        Ok((token, exp))
    }

    /// Checks signature, algorithm and expiry; returns the identity the token proves, or `None`.
    pub fn verify(&self, token: &str) -> Option<Identity> {
        let mut v = Validation::new(Algorithm::HS256);
        v.leeway = 5;
        v.set_required_spec_claims(&["exp"]);
        let data = jsonwebtoken::decode::<Claims>(token.trim(), &self.decoding, &v).ok()?;
        let user_id = match data.claims.user_id {
            serde_json::Value::String(s) if !s.is_empty() && s.len() <= 256 => s,
            serde_json::Value::Number(n) => n.to_string(),
            _ => return None,
        };
        if data.claims.role.is_empty() {
            return None;
        }
        Some(if data.claims.role == "ADMIN" { Identity::Admin { user_id } } else { Identity::Owner { user_id } })
    }
}

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

/// The file in the data directory that keeps the development secret across restarts.
pub const DEV_SECRET_FILE: &str = "dev-secret";

/// Returns the configured secret, or in development the one kept in the data directory
/// (generated on first use). The bool is true when a new secret was generated.
pub fn dev_secret(data_dir: &Path) -> std::io::Result<(String, bool)> {
    let path = data_dir.join(DEV_SECRET_FILE);
    match std::fs::read_to_string(&path) {
        Ok(s) if s.trim().len() >= 32 => return Ok((s.trim().to_string(), false)),
        Ok(_) | Err(_) => {}
    }
    std::fs::create_dir_all(data_dir)?;
    let mut bytes = [0u8; 32];
    random_bytes(&mut bytes);
    let secret = b64url(&bytes);
    write_private(&path, secret.as_bytes())?;
    Ok((secret, true))
}

fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(data)?;
    f.sync_all()
}

/// The bearer token of an `Authorization` header, if any.
pub fn bearer(header: Option<&str>) -> Option<&str> {
    let h = header?.trim();
    let (scheme, rest) = h.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim()).filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_roles() {
        let t = Tokens::new("0123456789abcdef0123456789abcdef").unwrap();
        let (tok, _) = t.mint("42", "ADMIN", Duration::from_secs(60)).unwrap();
        assert_eq!(t.verify(&tok), Some(Identity::Admin { user_id: "42".into() }));
        let (tok, _) = t.mint("7", "PHOTOGRAPHER", Duration::from_secs(60)).unwrap();
        assert_eq!(t.verify(&tok), Some(Identity::Owner { user_id: "7".into() }));
    }

    #[test]
    fn rejects_wrong_secret_expired_and_other_algorithms() {
        let t = Tokens::new("0123456789abcdef0123456789abcdef").unwrap();
        let other = Tokens::new("ffffffffffffffffffffffffffffffff").unwrap();
        let (tok, _) = other.mint("1", "ADMIN", Duration::from_secs(60)).unwrap();
        assert!(t.verify(&tok).is_none());
        let expired = Claims { user_id: "1".into(), role: "ADMIN".into(), exp: 1000, iat: None };
        let tok = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &expired, &t.encoding).unwrap();
        assert!(t.verify(&tok).is_none());
        let hs512 = Claims { user_id: "1".into(), role: "ADMIN".into(), exp: u64::MAX / 2, iat: None };
        let tok = jsonwebtoken::encode(&Header::new(Algorithm::HS512), &hs512, &t.encoding).unwrap();
        assert!(t.verify(&tok).is_none());
        // `alg: none` with an empty signature.
        let none = format!("{}.{}.", b64url(br#"{"alg":"none","typ":"JWT"}"#), b64url(br#"{"user_id":"1","role":"ADMIN","exp":99999999999}"#));
        assert!(t.verify(&none).is_none());
        assert!(t.verify("garbage").is_none());
    }

    #[test]
    fn numeric_user_id_and_missing_claims() {
        let t = Tokens::new("0123456789abcdef0123456789abcdef").unwrap();
        let c = serde_json::json!({"user_id": 12, "role": "ADMIN", "exp": u64::MAX / 2});
        let tok = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &c, &t.encoding).unwrap();
        assert_eq!(t.verify(&tok), Some(Identity::Admin { user_id: "12".into() }));
        let c = serde_json::json!({"user_id": 12, "exp": u64::MAX / 2});
        let tok = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &c, &t.encoding).unwrap();
        assert!(t.verify(&tok).is_none());
        let c = serde_json::json!({"user_id": 12, "role": "ADMIN"});
        let tok = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &c, &t.encoding).unwrap();
        assert!(t.verify(&tok).is_none());
    }

    #[test]
    fn bearer_header() {
        assert_eq!(bearer(Some("Bearer abc")), Some("abc"));
        assert_eq!(bearer(Some("bearer  abc ")), Some("abc"));
        assert_eq!(bearer(Some("Basic abc")), None);
        assert_eq!(bearer(Some("Bearer ")), None);
        assert_eq!(bearer(None), None);
    }
}
