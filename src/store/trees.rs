//! The tree set of one open database, and opening it.

use std::path::Path;
use std::sync::{Arc, Mutex};

use super::codec::{FORMAT_KEY, FORMAT_VERSION};
use super::{Flush, StoreError, likes, migrate};

pub(super) struct Trees {
    pub(super) db: sled::Db,
    /// slug → RoomRecord
    pub(super) rooms: sled::Tree,
    /// slug \0 guest → () : every guest that ever joined (for `totalGuests`)
    pub(super) room_guests: sled::Tree,
    /// slug \0 photo → PhotoLikes
    pub(super) counts: sled::Tree,
    /// slug \0 liker \0 photo → () : who likes what (also gives `likedByMe`)
    pub(super) liked_by: sled::Tree,
    /// What is derived from `counts` and `liked_by`, in memory. It belongs to this open database,
    /// so a reopen after a fault (see `recover.rs`) starts from what is really on disk.
    pub(super) book: Mutex<likes::LikeBook>,
    /// slug → EventRecord
    pub(super) events: sled::Tree,
    /// session id → GuestSession
    pub(super) sessions: sled::Tree,
    /// slug \0 session id → () : sessions of an event, to delete them with it
    pub(super) sessions_by_event: sled::Tree,
    /// username → AdminUser
    pub(super) admins: sled::Tree,
    pub(super) meta: sled::Tree,
}

impl Trees {
    pub(super) fn book(&self) -> std::sync::MutexGuard<'_, likes::LikeBook> {
        // The book only ever holds whole changes (each is applied under this lock); keep going.
        self.book.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Opens sled under `dir` with every tree, checking the format version.
pub(super) fn open_trees(dir: &Path, cache_bytes: u64) -> Result<Trees, StoreError> {
    let db = sled::Config::new()
        .path(dir.join("db"))
        .cache_capacity(cache_bytes)
        .flush_every_ms(Some(500))
        .open()
        .map_err(|e| match e {
            sled::Error::Io(ref io) if io.to_string().contains("lock") => StoreError::Locked(dir.display().to_string()),
            other => StoreError::Sled(other),
        })?;
    let meta = db.open_tree("meta")?;
    let found = match meta.get(FORMAT_KEY)? {
        Some(v) => v.first().copied().unwrap_or(0),
        None => {
            meta.insert(FORMAT_KEY, &[FORMAT_VERSION])?;
            FORMAT_VERSION
        }
    };
    if found > FORMAT_VERSION {
        return Err(StoreError::TooNew { found });
    }
    let t = Trees {
        rooms: db.open_tree("rooms")?,
        room_guests: db.open_tree("room_guests")?,
        counts: db.open_tree("like_counts")?,
        liked_by: db.open_tree("liked_by")?,
        book: Mutex::default(),
        events: db.open_tree("events")?,
        sessions: db.open_tree("guest_sessions")?,
        sessions_by_event: db.open_tree("guest_sessions_by_event")?,
        admins: db.open_tree("admin_users")?,
        meta,
        db,
    };
    if found < FORMAT_VERSION {
        migrate::upgrade(&t, found)?;
    }
    Ok(t)
}

/// The open database, replaceable in place: after a storage fault that sled keeps sticky, the
/// store reopens its directory and every clone of the handle moves to the new one.
/// `None` only after a reopen failed, while the process is on its way out.
pub(super) type Slot = Arc<std::sync::RwLock<Option<Arc<Trees>>>>;

/// Flushes whichever database is current (the group commit's target).
pub(super) struct CurrentDb(pub(super) Slot);

impl Flush for CurrentDb {
    fn flush(&self) -> Result<(), String> {
        let t = self.0.read().unwrap_or_else(|p| p.into_inner()).clone().ok_or("storage is closed")?;
        sled::Tree::flush(&t.db).map(|_| ()).map_err(|e| e.to_string())
    }
}
