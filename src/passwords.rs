//! Admin passwords: argon2id PHC strings, and a login check that takes about the same time
//! whether or not the user exists.

use std::sync::OnceLock;

use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};

use crate::clock::now_ms;
use crate::store::{AdminUser, Store, StoreError};

pub const MIN_PASSWORD: usize = 8;
pub const MAX_PASSWORD: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("username must be 1-64 characters of letters, digits, '.', '_', '-' or '@'")]
    BadUsername,
    #[error("password must be {MIN_PASSWORD}-{MAX_PASSWORD} characters")]
    BadPassword,
    #[error("cannot hash the password: {0}")]
    Hash(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub fn valid_username(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'@'))
}

/// Hashes a password into an argon2id PHC string.
pub fn hash(password: &str) -> Result<String, UserError> {
    let n = password.chars().count();
    if !(MIN_PASSWORD..=MAX_PASSWORD).contains(&n) {
        return Err(UserError::BadPassword);
    }
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| UserError::Hash(e.to_string()))
}

/// Checks a password against a PHC string.
pub fn verify(password: &str, phc: &str) -> bool {
    password.len() <= MAX_PASSWORD && Argon2::default().verify_password(password.as_bytes(), phc).is_ok()
}

/// A hash of nothing anyone knows, checked for unknown users so they cost the same time. Made on
/// first use: the first unknown user's login also pays for hashing it.
fn decoy() -> &'static str {
    static DECOY: OnceLock<String> = OnceLock::new();
    DECOY.get_or_init(|| {
        let mut pw = [0u8; 24];
        crate::types::random_bytes(&mut pw);
        hash(&crate::types::b64url(&pw)).unwrap_or_default()
    })
}

/// The user if `password` is theirs. Unknown users and wrong passwords take the same path.
pub fn check_login(store: &Store, username: &str, password: &str) -> Result<Option<AdminUser>, StoreError> {
    let user = if valid_username(username) { store.admin(username)? } else { None };
    let ok = match &user {
        Some(u) => verify(password, &u.phc),
        None => {
            verify(password, decoy());
            false
        }
    };
    Ok(user.filter(|_| ok))
}

/// Creates or replaces a user with a new password.
pub async fn set_user(store: &Store, username: &str, password: &str, role: &str) -> Result<AdminUser, UserError> {
    if !valid_username(username) {
        return Err(UserError::BadUsername);
    }
    let phc = hash(password)?;
    let created_ms = store.admin(username)?.map(|u| u.created_ms).unwrap_or_else(now_ms);
    let user = AdminUser { username: username.to_string(), phc, role: role.to_string(), created_ms };
    store.put_admin(&user).await?;
    Ok(user)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_and_verify() {
        let phc = hash("correct horse").unwrap();
        assert!(phc.starts_with("$argon2id$"));
        // The parameters of the contract: 19 MiB, two passes, one lane.
        assert!(phc.contains("$m=19456,t=2,p=1$"), "{phc}");
        assert!(verify("correct horse", &phc));
        assert!(!verify("wrong horse", &phc));
        assert!(hash("short").is_err());
    }

    #[tokio::test]
    async fn login_checks() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        set_user(&store, "alice", "s3cret-pass", "ADMIN").await.unwrap();
        assert!(check_login(&store, "alice", "s3cret-pass").unwrap().is_some());
        assert!(check_login(&store, "alice", "nope-nope").unwrap().is_none());
        assert!(check_login(&store, "bob", "s3cret-pass").unwrap().is_none());
        assert!(check_login(&store, "not valid!", "x").unwrap().is_none());
        assert!(matches!(set_user(&store, "bad name", "s3cret-pass", "ADMIN").await, Err(UserError::BadUsername)));
    }
}
