//! The value codec and the key layouts: every stored value is a serde struct in bincode 2 behind
//! a one-byte format version; a key joins its parts with a 0 byte.

use serde::{Serialize, de::DeserializeOwned};

use super::StoreError;

/// Format of every stored value and of the database as a whole. Format 2 added like aggregates
/// and indexes on disk; format 3 keeps them in memory instead (see `likes`) and a like's fact
/// in `liked_by` alone. Values of every kind are encoded as in 1.
pub const FORMAT_VERSION: u8 = 3;
pub(super) const FORMAT_KEY: &[u8] = b"format_version";

pub(super) fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    let mut out = vec![FORMAT_VERSION];
    // Encoding plain structs into a Vec cannot fail.
    if let Ok(bytes) = bincode::serde::encode_to_vec(v, bincode::config::standard()) {
        out.extend_from_slice(&bytes);
    }
    out
}

/// Reads a value written by this format or an older one: no record kind has changed its
/// encoding since format 1, so the version byte only has to be one this build knows.
pub(super) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, StoreError> {
    match bytes.split_first() {
        Some((&(1..=FORMAT_VERSION), rest)) => bincode::serde::decode_from_slice(rest, bincode::config::standard())
            .map(|(v, _)| v)
            .map_err(|e| StoreError::Corrupt(e.to_string())),
        Some((&v, _)) if v > FORMAT_VERSION => Err(StoreError::TooNew { found: v }),
        _ => Err(StoreError::Corrupt("unknown format version".into())),
    }
}

pub(super) fn key2(a: &str, b: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(a.len() + b.len() + 1);
    k.extend_from_slice(a.as_bytes());
    k.push(0);
    k.extend_from_slice(b.as_bytes());
    k
}

pub(super) fn key3(a: &str, b: &str, c: &str) -> Vec<u8> {
    let mut k = key2(a, b);
    k.push(0);
    k.extend_from_slice(c.as_bytes());
    k
}

pub(super) fn prefix(a: &str) -> Vec<u8> {
    let mut k = a.as_bytes().to_vec();
    k.push(0);
    k
}

/// The part of a key after its `n`-th separator.
pub(super) fn key_part(key: &[u8], n: usize) -> Option<String> {
    key.split(|&b| b == 0).nth(n).and_then(|p| std::str::from_utf8(p).ok()).map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::RoomRecord;

    #[test]
    fn newer_format_is_refused() {
        assert!(matches!(decode::<RoomRecord>(&[FORMAT_VERSION + 1, 0]), Err(StoreError::TooNew { .. })));
        assert!(matches!(decode::<RoomRecord>(&[]), Err(StoreError::Corrupt(_))));
    }
}
