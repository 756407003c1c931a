//! `export` / `import`: every kind of state as JSON lines, so a studio can back up and move.
//!
//! One line per stored fact, tagged by `kind`. Import replays them through the same trees, so a
//! round trip gives the same rooms, likes, likers, events, sessions and admin users. Records
//! derived from the likes (room totals, tallies, indexes) are not exported: import rebuilds them
//! as each count and liker arrives, through the same transactional path as live likes.

use serde::{Deserialize, Serialize};

use super::codec::{decode, encode, key_part, key2};
use super::likes::PhotoLikes;
use super::{AdminUser, EventRecord, GuestSession, RoomRecord, Store, StoreError};
use crate::types::{LikerKey, PhotoId, Slug};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Record {
    Meta { format_version: u8, exported_at: String },
    Event(EventRecord),
    Session(GuestSession),
    Admin(AdminUser),
    Room { slug: Slug, record: RoomRecord },
    RoomGuest { slug: String, guest: String },
    LikeCount { slug: String, photo: String, count: u64, updated_ms: i64 },
    Liker { slug: String, photo: String, liker: String },
}

fn like_key(slug: &str, photo: &str) -> Result<(Slug, PhotoId), StoreError> {
    match (Slug::parse(slug), PhotoId::parse(photo)) {
        (Some(s), Some(p)) if s.as_str() == slug => Ok((s, p)),
        _ => Err(StoreError::Corrupt(format!("invalid slug or photo id in a like record: {slug:?} {photo:?}"))),
    }
}

fn parts(k: &[u8], n: usize) -> Result<Vec<String>, StoreError> {
    (0..n).map(|i| key_part(k, i).ok_or_else(|| StoreError::Corrupt("malformed key".into()))).collect()
}

impl Store {
    /// Calls `out` with every record; stops at the first error `out` returns.
    pub fn export(&self, out: &mut dyn FnMut(Record) -> std::io::Result<()>) -> Result<(), StoreError> {
        let io = |e: std::io::Error| StoreError::Sled(sled::Error::Io(e));
        out(Record::Meta { format_version: super::FORMAT_VERSION, exported_at: crate::clock::iso_now() })
            .map_err(io)?;
        for item in self.t()?.events.iter() {
            out(Record::Event(decode(&item?.1)?)).map_err(io)?;
        }
        for item in self.t()?.sessions.iter() {
            out(Record::Session(decode(&item?.1)?)).map_err(io)?;
        }
        for item in self.t()?.admins.iter() {
            out(Record::Admin(decode(&item?.1)?)).map_err(io)?;
        }
        for (slug, record) in self.rooms()? {
            out(Record::Room { slug, record }).map_err(io)?;
        }
        for item in self.t()?.room_guests.iter() {
            let p = parts(&item?.0, 2)?;
            out(Record::RoomGuest { slug: p[0].clone(), guest: p[1].clone() }).map_err(io)?;
        }
        for item in self.t()?.counts.iter() {
            let (k, v) = item?;
            let p = parts(&k, 2)?;
            let rec: PhotoLikes = decode(&v)?;
            out(Record::LikeCount {
                slug: p[0].clone(),
                photo: p[1].clone(),
                count: rec.count,
                updated_ms: rec.updated_ms,
            })
            .map_err(io)?;
        }
        for item in self.t()?.liked_by.iter() {
            let p = parts(&item?.0, 3)?;
            out(Record::Liker { slug: p[0].clone(), liker: p[1].clone(), photo: p[2].clone() }).map_err(io)?;
        }
        Ok(())
    }

    /// True when nothing but format metadata is stored.
    pub fn is_empty(&self) -> bool {
        let Ok(t) = self.t() else { return false };
        [&t.rooms, &t.room_guests, &t.counts, &t.liked_by, &t.events, &t.sessions, &t.admins]
            .iter()
            .all(|t| t.is_empty())
    }

    /// Writes one record (not yet durable: call `durable` when done).
    pub fn import(&self, rec: &Record) -> Result<(), StoreError> {
        match rec {
            Record::Meta { format_version, .. } => {
                if *format_version > super::FORMAT_VERSION {
                    return Err(StoreError::TooNew { found: *format_version });
                }
            }
            Record::Event(e) => {
                self.t()?.events.insert(e.slug.as_str().as_bytes(), encode(e))?;
            }
            Record::Session(s) => {
                self.t()?.sessions.insert(s.id.as_str().as_bytes(), encode(s))?;
                self.t()?.sessions_by_event.insert(key2(s.event_slug.as_str(), s.id.as_str()), &[])?;
            }
            Record::Admin(a) => {
                self.t()?.admins.insert(a.username.as_bytes(), encode(a))?;
            }
            Record::Room { slug, record } => {
                self.t()?.rooms.insert(slug.as_str().as_bytes(), encode(record))?;
            }
            Record::RoomGuest { slug, guest } => {
                self.t()?.room_guests.insert(key2(slug, guest), &[])?;
            }
            Record::LikeCount { slug, photo, count, updated_ms } => {
                let (slug, photo) = like_key(slug, photo)?;
                self.import_count(&slug, &photo, &PhotoLikes { count: *count, updated_ms: *updated_ms })?;
            }
            Record::Liker { slug, photo, liker } => {
                let (slug, photo) = like_key(slug, photo)?;
                self.import_liker(&slug, &photo, &LikerKey::from_stored(liker.clone()))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{EventStatus, GuestSessionId, LikerKey, PhotoId};

    #[tokio::test]
    async fn round_trip_gives_the_same_state() {
        let a = tempfile::tempdir().unwrap();
        let src = Store::open(a.path()).unwrap();
        let slug = Slug::parse("w").unwrap();
        let ev = EventRecord {
            slug: slug.clone(),
            name: Some("W".into()),
            status: EventStatus::Active,
            owner_id: Some("7".into()),
            access_code: None,
            created_ms: 5,
        };
        src.create_event(&ev).await.unwrap();
        let sess = GuestSession {
            id: GuestSessionId::parse("g1").unwrap(),
            event_slug: slug.clone(),
            created_ms: 1,
            expires_ms: i64::MAX,
        };
        src.put_session(&sess).await.unwrap();
        src.put_admin(&AdminUser {
            username: "alice".into(),
            phc: "$argon2id$x".into(),
            role: "ADMIN".into(),
            created_ms: 3,
        })
        .await
        .unwrap();
        let g = LikerKey::guest(&sess.id);
        src.record_join(&slug, Some(&g), 1).unwrap();
        src.like(&slug, &PhotoId::parse("p").unwrap(), &g).await.unwrap();
        src.set_like_count(&slug, &PhotoId::parse("q").unwrap(), 9).await.unwrap();

        let mut lines = Vec::new();
        src.export(&mut |r| {
            lines.push(serde_json::to_string(&r).unwrap());
            Ok(())
        })
        .unwrap();

        let b = tempfile::tempdir().unwrap();
        let dst = Store::open(b.path()).unwrap();
        assert!(dst.is_empty());
        for l in &lines {
            dst.import(&serde_json::from_str(l).unwrap()).unwrap();
        }
        let mut again = Vec::new();
        dst.export(&mut |r| {
            if !matches!(r, Record::Meta { .. }) {
                again.push(serde_json::to_string(&r).unwrap());
            }
            Ok(())
        })
        .unwrap();
        let original: Vec<String> = lines.into_iter().filter(|l| !l.contains("\"kind\":\"meta\"")).collect();
        assert_eq!(original, again);
        assert_eq!(dst.liked_by(&slug, &g, 10).unwrap(), vec![PhotoId::parse("p").unwrap()]);
        // Derived records are not exported; import rebuilt them.
        let (p, q) = (PhotoId::parse("p").unwrap(), PhotoId::parse("q").unwrap());
        assert_eq!(dst.room_like_summary(&slug, 5).unwrap(), (10, vec![(q.clone(), 9), (p.clone(), 1)]));
        assert_eq!(dst.room_likes(&slug, 5).unwrap(), src.room_likes(&slug, 5).unwrap());
        // Importing the same lines again (`--force`) changes no total.
        for l in &original {
            dst.import(&serde_json::from_str(l).unwrap()).unwrap();
        }
        assert_eq!(dst.room_like_summary(&slug, 5).unwrap().0, 10);
        assert_eq!(
            dst.like(&slug, &p, &g).await.unwrap(),
            crate::store::likes::LikeOutcome { changed: false, count: 1 }
        );
    }
}
