//! Retention: idle rooms and expired guest sessions are deleted.

use super::codec::{decode, key_part, key2, prefix};
use super::{GuestSession, Store, StoreError};
use crate::types::Slug;

impl Store {
    /// Removes guest sessions that expired at or before `now_ms`, and any that cannot be read;
    /// returns how many expired.
    pub fn remove_expired_sessions(&self, now_ms: i64) -> Result<usize, StoreError> {
        let mut n = 0;
        for item in self.t()?.sessions.iter() {
            let (k, v) = item?;
            let s: GuestSession = match decode(&v) {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "unreadable guest session removed");
                    self.t()?.sessions.remove(&k)?;
                    continue;
                }
            };
            if s.expires_ms <= now_ms {
                self.t()?.sessions.remove(&k)?;
                self.t()?.sessions_by_event.remove(key2(s.event_slug.as_str(), s.id.as_str()))?;
                n += 1;
            }
        }
        Ok(n)
    }

    /// Deletes every room last accessed before `cutoff_ms` (and not `keep`), with its likes,
    /// likers, guests and guest sessions; returns the rooms deleted. The event registry keeps
    /// its record (the web app owns it).
    pub fn delete_idle_rooms(&self, cutoff_ms: i64, keep: &dyn Fn(&Slug) -> bool) -> Result<Vec<Slug>, StoreError> {
        let mut deleted = Vec::new();
        for (slug, rec) in self.rooms()? {
            if rec.last_access_ms >= cutoff_ms || keep(&slug) {
                continue;
            }
            let p = prefix(slug.as_str());
            let t = self.t()?;
            // Under the likes lock, so a like arriving meanwhile cannot leave the like book
            // holding counts that are gone.
            let likes = self.likes_guard();
            for tree in [&t.room_guests, &t.counts, &t.liked_by] {
                for item in tree.scan_prefix(&p) {
                    tree.remove(item?.0)?;
                }
            }
            t.book().forget(&slug);
            drop(likes);
            for item in self.t()?.sessions_by_event.scan_prefix(&p) {
                let (k, _) = item?;
                if let Some(id) = key_part(&k, 1) {
                    self.t()?.sessions.remove(id.as_bytes())?;
                }
                self.t()?.sessions_by_event.remove(k)?;
            }
            t.rooms.remove(slug.as_str().as_bytes())?;
            deleted.push(slug);
        }
        Ok(deleted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::RoomRecord;
    use crate::store::codec::encode;
    use crate::types::{GuestSessionId, LikerKey, PhotoId};

    fn slug(s: &str) -> Slug {
        Slug::parse(s).unwrap()
    }
    fn photo(s: &str) -> PhotoId {
        PhotoId::parse(s).unwrap()
    }

    #[tokio::test]
    async fn retention_deletes_old_rooms_with_their_likes_and_sessions() {
        let dir = tempfile::tempdir().unwrap();
        let st = Store::open(dir.path()).unwrap();
        let (old, new) = (slug("old"), slug("new"));
        let g = LikerKey::from_stored("g".into());
        for s in [&old, &new] {
            st.record_join(s, Some(&g), 1).unwrap();
            st.like(s, &photo("p"), &g).await.unwrap();
            let sess = GuestSession {
                id: GuestSessionId::parse(&format!("s-{s}")).unwrap(),
                event_slug: s.clone(),
                created_ms: 0,
                expires_ms: i64::MAX,
            };
            st.put_session(&sess).await.unwrap();
        }
        let cutoff = st.room(&new).unwrap().unwrap().last_access_ms;
        // Make `old` older than the cutoff.
        st.t()
            .unwrap()
            .rooms
            .insert(old.as_str().as_bytes(), encode(&RoomRecord { last_access_ms: cutoff - 10, ..Default::default() }))
            .unwrap();
        let deleted = st.delete_idle_rooms(cutoff, &|_| false).unwrap();
        assert_eq!(deleted, vec![old.clone()]);
        assert!(st.room(&old).unwrap().is_none());
        assert!(st.room_likes(&old, 10).unwrap().is_empty());
        assert!(st.liked_by(&old, &g, 10).unwrap().is_empty());
        assert!(st.session(&GuestSessionId::parse("s-old").unwrap()).unwrap().is_none());
        assert_eq!(st.room_likes(&new, 10).unwrap().len(), 1);
        assert!(st.session(&GuestSessionId::parse("s-new").unwrap()).unwrap().is_some());
    }

    #[tokio::test]
    async fn expired_sessions_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let st = Store::open(dir.path()).unwrap();
        for (id, exp) in [("a", 10), ("b", i64::MAX)] {
            let s = GuestSession {
                id: GuestSessionId::parse(id).unwrap(),
                event_slug: slug("w"),
                created_ms: 0,
                expires_ms: exp,
            };
            st.put_session(&s).await.unwrap();
        }
        assert_eq!(st.remove_expired_sessions(100).unwrap(), 1);
        assert!(st.session(&GuestSessionId::parse("a").unwrap()).unwrap().is_none());
        assert!(st.session(&GuestSessionId::parse("b").unwrap()).unwrap().is_some());
    }
}
