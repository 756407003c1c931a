//! Rooms: the per-room counters that outlive presence, and every guest that ever joined.

use serde::{Deserialize, Serialize};

use super::codec::{decode, encode, key2};
use super::{Store, StoreError};
use crate::clock::now_ms;
use crate::types::{LikerKey, Slug};

/// Per-room counters that outlive presence.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct RoomRecord {
    pub total_guests: u64,
    pub peak_guests: u64,
    pub last_access_ms: i64,
    pub created_ms: i64,
}

impl Store {
    /// Notes a join: counts `guest` towards the room's total if it is new, raises the peak to
    /// `concurrent`, and touches the access time. Not awaited for durability (may lag ≤ 1 s).
    pub fn record_join(
        &self,
        slug: &Slug,
        guest: Option<&LikerKey>,
        concurrent: u64,
    ) -> Result<RoomRecord, StoreError> {
        let is_new_guest = match guest {
            Some(g) => self.t()?.room_guests.insert(key2(slug.as_str(), g.as_str()), &[])?.is_none(),
            None => false,
        };
        self.update_room(slug, |r| {
            if is_new_guest {
                r.total_guests = r.total_guests.saturating_add(1);
            }
            r.peak_guests = r.peak_guests.max(concurrent);
        })
    }

    /// Touches the access time of a room (activity).
    pub fn touch_room(&self, slug: &Slug) -> Result<RoomRecord, StoreError> {
        self.update_room(slug, |_| {})
    }

    fn update_room(&self, slug: &Slug, f: impl Fn(&mut RoomRecord)) -> Result<RoomRecord, StoreError> {
        let now = now_ms();
        let mut result = RoomRecord::default();
        let mut decode_err = None;
        self.t()?.rooms.update_and_fetch(slug.as_str().as_bytes(), |old| {
            let mut r = match old.map(decode::<RoomRecord>) {
                Some(Ok(r)) => r,
                Some(Err(e)) => {
                    decode_err = Some(e);
                    RoomRecord { created_ms: now, ..Default::default() }
                }
                None => RoomRecord { created_ms: now, ..Default::default() },
            };
            f(&mut r);
            r.last_access_ms = now;
            result = r.clone();
            Some(encode(&r))
        })?;
        if let Some(e) = decode_err {
            tracing::warn!(room = %slug, error = %e, "room record was unreadable and has been reset");
        }
        Ok(result)
    }

    pub fn room(&self, slug: &Slug) -> Result<Option<RoomRecord>, StoreError> {
        Self::get(&self.t()?.rooms, slug.as_str().as_bytes())
    }

    /// Every room that has a record.
    pub fn rooms(&self) -> Result<Vec<(Slug, RoomRecord)>, StoreError> {
        let mut out = Vec::new();
        for item in self.t()?.rooms.iter() {
            let (k, v) = item?;
            if let Some(slug) = std::str::from_utf8(&k).ok().and_then(Slug::parse) {
                out.push((slug, decode(&v)?));
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slug(s: &str) -> Slug {
        Slug::parse(s).unwrap()
    }

    #[tokio::test]
    async fn room_totals_count_distinct_guests() {
        let dir = tempfile::tempdir().unwrap();
        let st = Store::open(dir.path()).unwrap();
        let s = slug("w");
        let g1 = LikerKey::from_stored("g1".into());
        st.record_join(&s, Some(&g1), 1).unwrap();
        st.record_join(&s, Some(&g1), 1).unwrap();
        let r = st.record_join(&s, Some(&LikerKey::from_stored("g2".into())), 2).unwrap();
        assert_eq!((r.total_guests, r.peak_guests), (2, 2));
        let r = st.record_join(&s, None, 1).unwrap();
        assert_eq!((r.total_guests, r.peak_guests), (2, 2));
    }
}
