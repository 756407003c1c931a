//! Tokens, secrets and the identities they prove.
//!
//! Only HS256 is accepted: the web app and this server share one secret, and accepting any other
//! algorithm would let a token choose how it is checked.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::store::AdminUser;
use crate::types::{GuestSessionId, LikerKey, Slug, b64url, random_bytes};

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
    /// The admin user a login token was minted for; such a token lives only as long as the
    /// user and its password do.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    adm: Option<String>,
    /// [`fingerprint`] of that user's password hash when the token was minted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pwf: Option<String>,
}

/// A short digest of an admin user's password hash (PHC string): it changes whenever the
/// password does (a new salt each time), and reveals nothing of the hash or its salt.
pub fn fingerprint(phc: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(phc.as_bytes());
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// Signs and checks HS256 tokens with the shared secret.
#[derive(Clone)]
pub struct Tokens {
    encoding: EncodingKey,
    decoding: DecodingKey,
    /// Admin users known at start, by username, with the [`fingerprint`] of their password.
    /// Admin users change only while the server is stopped, so this is read once.
    admins: Arc<HashMap<String, String>>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tokens(<secret>)")
    }
}

impl Tokens {
    /// Fails only for an empty secret.
    pub fn new(secret: &str) -> Result<Tokens, jsonwebtoken::errors::Error> {
        Ok(Tokens {
            encoding: EncodingKey::from_secret(secret.as_bytes())?,
            decoding: DecodingKey::from_secret(secret.as_bytes())?,
            admins: Arc::default(),
        })
    }

    /// Ties login tokens to these admin users: `(username, PHC string)` pairs, as stored now.
    /// A login token of a user not listed, or minted under another password, is refused.
    pub fn with_admin_users<'a>(mut self, users: impl IntoIterator<Item = (&'a str, &'a str)>) -> Tokens {
        self.admins = Arc::new(users.into_iter().map(|(name, phc)| (name.to_string(), fingerprint(phc))).collect());
        self
    }

    /// Mints a token that no admin user is tied to (the `token` command's); returns it with its
    /// expiry in epoch seconds.
    pub fn mint(&self, user_id: &str, role: &str, ttl: Duration) -> Result<(String, u64), jsonwebtoken::errors::Error> {
        self.mint_claims(user_id, role, ttl, None)
    }

    /// Mints a login token for an admin user: valid while that user exists with the password it
    /// has now.
    pub fn mint_login(&self, user: &AdminUser, ttl: Duration) -> Result<(String, u64), jsonwebtoken::errors::Error> {
        self.mint_claims(&user.username, &user.role, ttl, Some(user))
    }

    fn mint_claims(
        &self,
        user_id: &str,
        role: &str,
        ttl: Duration,
        tied: Option<&AdminUser>,
    ) -> Result<(String, u64), jsonwebtoken::errors::Error> {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let exp = now.saturating_add(ttl.as_secs().max(1));
        let claims = Claims {
            user_id: serde_json::Value::String(user_id.to_string()),
            role: role.to_string(),
            exp,
            iat: Some(now),
            adm: tied.map(|u| u.username.clone()),
            pwf: tied.map(|u| fingerprint(&u.phc)),
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)?;
        Ok((token, exp))
    }

    /// Checks signature, algorithm, expiry, `nbf` when present, and for a login token that its
    /// admin user still has the password it was minted under; returns the identity the token
    /// proves, or `None`.
    pub fn verify(&self, token: &str) -> Option<Identity> {
        let mut v = Validation::new(Algorithm::HS256);
        v.leeway = 5;
        v.validate_nbf = true;
        v.set_required_spec_claims(&["exp"]);
        let data = jsonwebtoken::decode::<Claims>(token.trim(), &self.decoding, &v).ok()?;
        if let Some(user) = &data.claims.adm {
            let current = self.admins.get(user)?;
            if data.claims.pwf.as_deref() != Some(current.as_str()) {
                return None;
            }
        }
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
        let expired = Claims { user_id: "1".into(), role: "ADMIN".into(), exp: 1000, iat: None, adm: None, pwf: None };
        let tok = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &expired, &t.encoding).unwrap();
        assert!(t.verify(&tok).is_none());
        let hs512 =
            Claims { user_id: "1".into(), role: "ADMIN".into(), exp: u64::MAX / 2, iat: None, adm: None, pwf: None };
        let tok = jsonwebtoken::encode(&Header::new(Algorithm::HS512), &hs512, &t.encoding).unwrap();
        assert!(t.verify(&tok).is_none());
        // `alg: none` with an empty signature.
        let none = format!(
            "{}.{}.",
            b64url(br#"{"alg":"none","typ":"JWT"}"#),
            b64url(br#"{"user_id":"1","role":"ADMIN","exp":99999999999}"#)
        );
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

    fn now() -> u64 {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
    }

    #[test]
    fn not_before_is_enforced_when_present() {
        let t = Tokens::new("0123456789abcdef0123456789abcdef").unwrap();
        let sign =
            |c: serde_json::Value| jsonwebtoken::encode(&Header::new(Algorithm::HS256), &c, &t.encoding).unwrap();
        let exp = now() + 3600;
        let later = sign(serde_json::json!({"user_id": "1", "role": "ADMIN", "exp": exp, "nbf": now() + 600}));
        assert!(t.verify(&later).is_none());
        let past = sign(serde_json::json!({"user_id": "1", "role": "ADMIN", "exp": exp, "nbf": now() - 600}));
        assert_eq!(t.verify(&past), Some(Identity::Admin { user_id: "1".into() }));
        // Within the clock leeway.
        let now_ish = sign(serde_json::json!({"user_id": "1", "role": "ADMIN", "exp": exp, "nbf": now() + 2}));
        assert!(t.verify(&now_ish).is_some());
        let malformed = sign(serde_json::json!({"user_id": "1", "role": "ADMIN", "exp": exp, "nbf": "soon"}));
        assert!(t.verify(&malformed).is_none());
    }

    fn user(name: &str, phc: &str) -> AdminUser {
        AdminUser { username: name.into(), phc: phc.into(), role: "ADMIN".into(), created_ms: 0 }
    }

    #[test]
    fn login_tokens_follow_their_admin_user() {
        let secret = "0123456789abcdef0123456789abcdef";
        let alice = user("alice", "$argon2id$v=19$m=19456,t=2,p=1$c2FsdDE$aGFzaDE");
        let at_start = Tokens::new(secret).unwrap().with_admin_users([("alice", alice.phc.as_str())]);
        let (login, _) = at_start.mint_login(&alice, Duration::from_secs(60)).unwrap();
        let (plain, _) = at_start.mint("alice", "ADMIN", Duration::from_secs(60)).unwrap();
        assert_eq!(at_start.verify(&login), Some(Identity::Admin { user_id: "alice".into() }));

        // The next start sees a new password: the login token is refused, the plain one is not.
        let changed = Tokens::new(secret)
            .unwrap()
            .with_admin_users([("alice", "$argon2id$v=19$m=19456,t=2,p=1$c2FsdDI$aGFzaDI")]);
        assert!(changed.verify(&login).is_none());
        assert!(changed.verify(&plain).is_some());
        // The user is gone.
        let removed = Tokens::new(secret).unwrap().with_admin_users([("bob", alice.phc.as_str())]);
        assert!(removed.verify(&login).is_none());
        assert!(removed.verify(&plain).is_some());

        // A token naming a user without a fingerprint is refused, and the fingerprint hides the hash.
        let sign = |c: serde_json::Value| {
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), &c, &at_start.encoding).unwrap()
        };
        let bare = sign(serde_json::json!({"user_id": "alice", "role": "ADMIN", "exp": now() + 60, "adm": "alice"}));
        assert!(at_start.verify(&bare).is_none());
        let f = fingerprint(&alice.phc);
        assert_eq!(f.len(), 16);
        assert!(f.bytes().all(|b| b.is_ascii_hexdigit()));
        assert!(!alice.phc.contains(&f));
        assert_ne!(f, fingerprint("$argon2id$v=19$m=19456,t=2,p=1$c2FsdDI$aGFzaDI"));
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
