//! The event registry and guest sessions. Sessions are also indexed by event, so that deleting an
//! event deletes its sessions.

use serde::{Deserialize, Serialize};

use super::codec::{decode, encode, key_part, key2, prefix};
use super::{Store, StoreError};
use crate::types::{AccessCode, EventStatus, GuestSessionId, Slug};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct EventRecord {
    pub slug: Slug,
    pub name: Option<String>,
    pub status: EventStatus,
    pub owner_id: Option<String>,
    pub access_code: Option<AccessCode>,
    pub created_ms: i64,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct GuestSession {
    pub id: GuestSessionId,
    pub event_slug: Slug,
    pub created_ms: i64,
    pub expires_ms: i64,
}

impl Store {
    pub fn event(&self, slug: &Slug) -> Result<Option<EventRecord>, StoreError> {
        Self::get(&self.t()?.events, slug.as_str().as_bytes())
    }

    pub fn events(&self) -> Result<Vec<EventRecord>, StoreError> {
        self.t()?.events.iter().map(|item| decode(&item?.1)).collect()
    }

    /// Creates an event; `Ok(false)` when the slug is taken. Durable on `Ok(true)`.
    pub async fn create_event(&self, rec: &EventRecord) -> Result<bool, StoreError> {
        self.write(|| {
            Ok(self
                .t()?
                .events
                .compare_and_swap(rec.slug.as_str().as_bytes(), None as Option<&[u8]>, Some(encode(rec)))?
                .is_ok())
        })
        .await
    }

    /// Writes an event record whole; durable on return.
    pub async fn put_event(&self, rec: &EventRecord) -> Result<(), StoreError> {
        self.write(|| {
            self.t()?.events.insert(rec.slug.as_str().as_bytes(), encode(rec))?;
            Ok(())
        })
        .await
    }

    /// Deletes an event and its guest sessions; `Ok(false)` if there was none. Durable on return.
    pub async fn delete_event(&self, slug: &Slug) -> Result<bool, StoreError> {
        self.write(|| {
            let existed = self.t()?.events.remove(slug.as_str().as_bytes())?.is_some();
            for item in self.t()?.sessions_by_event.scan_prefix(prefix(slug.as_str())) {
                let (k, _) = item?;
                if let Some(id) = key_part(&k, 1) {
                    self.t()?.sessions.remove(id.as_bytes())?;
                }
                self.t()?.sessions_by_event.remove(k)?;
            }
            Ok(existed)
        })
        .await
    }

    // ---- guest sessions ----------------------------------------------------------------------

    pub fn session(&self, id: &GuestSessionId) -> Result<Option<GuestSession>, StoreError> {
        Self::get(&self.t()?.sessions, id.as_str().as_bytes())
    }

    /// Stores a guest session; durable on return.
    pub async fn put_session(&self, s: &GuestSession) -> Result<(), StoreError> {
        self.write(|| {
            if let Some(old) = self.session(&s.id)? {
                self.t()?.sessions_by_event.remove(key2(old.event_slug.as_str(), old.id.as_str()))?;
            }
            self.t()?.sessions.insert(s.id.as_str().as_bytes(), encode(s))?;
            self.t()?.sessions_by_event.insert(key2(s.event_slug.as_str(), s.id.as_str()), &[])?;
            Ok(())
        })
        .await
    }

    /// Number of stored guest sessions.
    pub fn session_count(&self) -> usize {
        self.t().map(|t| t.sessions.len()).unwrap_or(0)
    }
}
