//! Storage in sled. This module alone knows the trees, the key layouts and the value encoding.
//!
//! Values are serde structs encoded with bincode 2 behind a one-byte format version, so a later
//! release can recognise (and convert) what an older one wrote, and refuse what a newer one wrote.
//! Changes that the durability contract covers (likes, like counts, events, sessions, admin users)
//! return only after a group commit made them durable; room totals and access times ride along
//! with the next flush (sled also flushes on its own every 500 ms).

pub mod backup;
mod breaker;
mod commit;
mod home;
mod likes;
mod migrate;
mod recover;

pub use breaker::{Breaker, Status as BreakerStatus};
pub use commit::{CommitError, Flush};
pub use home::prepare as prepare_data_dir;
pub use likes::{LikeCaps, LikeLimit, LikeOutcome, StagedToggle};

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize, de::DeserializeOwned};

use crate::clock::now_ms;
use crate::types::{AccessCode, EventStatus, GuestSessionId, LikerKey, Slug};
use breaker::Permit;
use commit::Committer;

/// Format of every stored value and of the database as a whole. Format 2 added like aggregates
/// and indexes on disk; format 3 keeps them in memory instead (see `likes`) and a like's fact
/// in `liked_by` alone. Values of every kind are encoded as in 1.
pub const FORMAT_VERSION: u8 = 3;
const FORMAT_KEY: &[u8] = b"format_version";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage error: {0}")]
    Sled(#[from] sled::Error),
    #[error("stored value is corrupt: {0}")]
    Corrupt(String),
    #[error("the data directory {0} is in use by another hafi-realtime process")]
    Locked(String),
    #[error(
        "the data directory was written by a newer hafi-realtime (format {found}, this build reads up to {FORMAT_VERSION})"
    )]
    TooNew { found: u8 },
    #[error(transparent)]
    Commit(#[from] CommitError),
    #[error("storage is unavailable (circuit breaker open)")]
    Unavailable,
    /// Not a fault: a like that would go past a cap of SPEC §6 was refused and nothing changed.
    #[error("like limit reached ({0})")]
    LikeLimit(LikeLimit),
    /// Not a fault: the commit queue is full, or the write waited too long in it (SPEC §7).
    #[error("server busy")]
    Busy { retry_after_ms: u64 },
}

/// Wraps the group commit's flush target (tests inject faults with it).
pub type FlushWrapper = Box<dyn FnOnce(Arc<dyn Flush>) -> Arc<dyn Flush> + Send>;

/// How to open a store. The defaults are production's; tests wrap the flush to inject faults.
pub struct StoreOptions {
    pub flush_wrapper: Option<FlushWrapper>,
    pub breaker_open_for: Duration,
    /// Group commit (the default); `false` flushes once per write, for comparison.
    pub group_commit: bool,
    /// sled's page cache, in bytes.
    pub cache_bytes: u64,
    /// Likes admitted to the commit queue and not yet answered, at most.
    pub commit_queue: usize,
    /// The longest a like may wait in the commit queue before it is applied.
    pub commit_queue_wait: Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            flush_wrapper: None,
            breaker_open_for: breaker::OPEN_FOR,
            group_commit: true,
            cache_bytes: 8 << 20,
            commit_queue: 4096,
            commit_queue_wait: Duration::from_millis(250),
        }
    }
}

/// Per-room counters that outlive presence.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct RoomRecord {
    pub total_guests: u64,
    pub peak_guests: u64,
    pub last_access_ms: i64,
    pub created_ms: i64,
}

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

/// A studio admin who can log in to the admin page and the HTTP API.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct AdminUser {
    pub username: String,
    /// argon2id PHC string.
    pub phc: String,
    pub role: String,
    pub created_ms: i64,
}

fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    let mut out = vec![FORMAT_VERSION];
    // Encoding plain structs into a Vec cannot fail.
    if let Ok(bytes) = bincode::serde::encode_to_vec(v, bincode::config::standard()) {
        out.extend_from_slice(&bytes);
    }
    out
}

/// Reads a value written by this format or an older one: no record kind has changed its
/// encoding since format 1, so the version byte only has to be one this build knows.
fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, StoreError> {
    match bytes.split_first() {
        Some((&(1..=FORMAT_VERSION), rest)) => bincode::serde::decode_from_slice(rest, bincode::config::standard())
            .map(|(v, _)| v)
            .map_err(|e| StoreError::Corrupt(e.to_string())),
        Some((&v, _)) if v > FORMAT_VERSION => Err(StoreError::TooNew { found: v }),
        _ => Err(StoreError::Corrupt("unknown format version".into())),
    }
}

fn key2(a: &str, b: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(a.len() + b.len() + 1);
    k.extend_from_slice(a.as_bytes());
    k.push(0);
    k.extend_from_slice(b.as_bytes());
    k
}

fn key3(a: &str, b: &str, c: &str) -> Vec<u8> {
    let mut k = key2(a, b);
    k.push(0);
    k.extend_from_slice(c.as_bytes());
    k
}

fn prefix(a: &str) -> Vec<u8> {
    let mut k = a.as_bytes().to_vec();
    k.push(0);
    k
}

/// The part of a key after its `n`-th separator.
fn key_part(key: &[u8], n: usize) -> Option<String> {
    key.split(|&b| b == 0).nth(n).and_then(|p| std::str::from_utf8(p).ok()).map(str::to_string)
}

struct Trees {
    db: sled::Db,
    /// slug → RoomRecord
    rooms: sled::Tree,
    /// slug \0 guest → () : every guest that ever joined (for `totalGuests`)
    room_guests: sled::Tree,
    /// slug \0 photo → PhotoLikes
    counts: sled::Tree,
    /// slug \0 liker \0 photo → () : who likes what (also gives `likedByMe`)
    liked_by: sled::Tree,
    /// What is derived from `counts` and `liked_by`, in memory. It belongs to this open database,
    /// so a reopen after a fault (see `recover.rs`) starts from what is really on disk.
    book: Mutex<likes::LikeBook>,
    /// slug → EventRecord
    events: sled::Tree,
    /// session id → GuestSession
    sessions: sled::Tree,
    /// slug \0 session id → () : sessions of an event, to delete them with it
    sessions_by_event: sled::Tree,
    /// username → AdminUser
    admins: sled::Tree,
    meta: sled::Tree,
}

impl Trees {
    fn book(&self) -> std::sync::MutexGuard<'_, likes::LikeBook> {
        // The book only ever holds whole changes (each is applied under this lock); keep going.
        self.book.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Opens sled under `dir` with every tree, checking the format version.
fn open_trees(dir: &Path, cache_bytes: u64) -> Result<Trees, StoreError> {
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
type Slot = Arc<std::sync::RwLock<Option<Arc<Trees>>>>;

/// Flushes whichever database is current (the group commit's target).
struct CurrentDb(Slot);

impl Flush for CurrentDb {
    fn flush(&self) -> Result<(), String> {
        let t = self.0.read().unwrap_or_else(|p| p.into_inner()).clone().ok_or("storage is closed")?;
        sled::Tree::flush(&t.db).map(|_| ()).map_err(|e| e.to_string())
    }
}

/// Cheap-to-clone handle to the database.
#[derive(Clone)]
pub struct Store {
    slot: Slot,
    /// Serialises like/unlike/set-count so "is it liked" and "the count" change together.
    likes_lock: Arc<Mutex<()>>,
    /// Likes and unlikes waiting to be applied, a batch per transaction (see `likes::queue`).
    likes_queue: Arc<likes::LikeQueue>,
    commit: Committer,
    breaker: Arc<Breaker>,
    home: Arc<home::Home>,
    cache_bytes: u64,
    /// Set once a reopen failed (see `recover.rs`).
    lost: Arc<tokio::sync::watch::Sender<bool>>,
}

impl Store {
    /// Opens (or creates) the database under `dir`. Must run inside a tokio runtime.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        Store::open_with(dir, StoreOptions::default())
    }

    /// [`Store::open`] with options.
    pub fn open_with(dir: &Path, opts: StoreOptions) -> Result<Store, StoreError> {
        let home = home::Home::claim(dir)?;
        let t = open_trees(dir, opts.cache_bytes)?;
        // sled created its files following the umask: take other users' access away again.
        if let Err(e) = home::prepare(dir) {
            tracing::warn!(error = %e, dir = %dir.display(), "cannot make the data directory private");
        }
        let slot: Slot = Arc::new(std::sync::RwLock::new(Some(Arc::new(t))));
        let mut target: Arc<dyn Flush> = Arc::new(CurrentDb(slot.clone()));
        if let Some(wrap) = opts.flush_wrapper {
            target = wrap(target);
        }
        let commit = Committer::start_with(target, opts.group_commit);
        let breaker = Arc::new(Breaker::new(opts.breaker_open_for));
        Ok(Store {
            slot,
            likes_lock: Arc::new(Mutex::new(())),
            likes_queue: likes::LikeQueue::new(opts.commit_queue, opts.commit_queue_wait),
            commit,
            breaker,
            home: Arc::new(home),
            cache_bytes: opts.cache_bytes,
            lost: Arc::new(tokio::sync::watch::channel(false).0),
        })
    }

    /// Waits until every change made so far is on disk (no breaker: for CLI commands).
    pub async fn durable(&self) -> Result<(), StoreError> {
        Ok(self.commit.durable().await?)
    }

    /// The database as it is now: a cheap `Arc` clone, held for one operation and never across
    /// an `.await`, so a reopen (see `recover.rs`) finds every old handle released at once.
    fn t(&self) -> Result<Arc<Trees>, StoreError> {
        self.slot.read().unwrap_or_else(|p| p.into_inner()).clone().ok_or(StoreError::Unavailable)
    }

    pub fn breaker(&self) -> &Breaker {
        &self.breaker
    }

    /// Admission through the breaker. The trial write after a cool-down first gets the database
    /// out of a sticky error if it is in one (see `recover.rs`).
    fn admit(&self) -> Result<Permit, StoreError> {
        let permit = self.breaker.admit().ok_or(StoreError::Unavailable)?;
        if permit.is_trial()
            && let Err(e) = self.recover_for_trial()
        {
            self.breaker.record(permit, false, Duration::ZERO);
            return Err(e);
        }
        Ok(permit)
    }

    /// Makes what `permit`'s write changed durable, and tells the breaker how it went: the
    /// flush's own time counts as the disk's speed, not the time spent waiting for it.
    async fn commit(&self, permit: Permit, ticket: commit::Ticket) -> Result<(), StoreError> {
        match ticket.wait().await {
            Ok(took) => {
                self.breaker.record(permit, true, took);
                Ok(())
            }
            Err(e) => {
                self.breaker.record(permit, false, Duration::ZERO);
                Err(e.into())
            }
        }
    }

    /// A durable write through the breaker: admit, apply, flush, report. Never queued behind
    /// likes: the registry, sessions, admin users and admin counts are not starved by a storm.
    async fn write<T>(&self, apply: impl FnOnce() -> Result<T, StoreError>) -> Result<T, StoreError> {
        let permit = self.admit()?;
        match apply() {
            Ok(v) => self.commit(permit, self.commit.ticket()).await.map(|()| v),
            Err(e) => {
                self.breaker.record(permit, false, Duration::ZERO);
                Err(e)
            }
        }
    }

    /// Likes admitted to the commit queue and not yet answered.
    pub fn likes_pending(&self) -> usize {
        self.likes_queue.pending()
    }

    /// Flushes synchronously (shutdown, CLI commands).
    pub fn flush_now(&self) -> Result<(), StoreError> {
        sled::Tree::flush(&self.t()?.db)?;
        Ok(())
    }

    fn get<T: DeserializeOwned>(tree: &sled::Tree, key: &[u8]) -> Result<Option<T>, StoreError> {
        tree.get(key)?.map(|v| decode(&v)).transpose()
    }

    // ---- rooms -------------------------------------------------------------------------------

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

    // ---- events ------------------------------------------------------------------------------

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

    // ---- admin users -------------------------------------------------------------------------

    pub fn admin(&self, username: &str) -> Result<Option<AdminUser>, StoreError> {
        Self::get(&self.t()?.admins, username.as_bytes())
    }

    pub fn admins(&self) -> Result<Vec<AdminUser>, StoreError> {
        self.t()?.admins.iter().map(|item| decode(&item?.1)).collect()
    }

    /// Creates or replaces an admin user; durable on return.
    pub async fn put_admin(&self, user: &AdminUser) -> Result<(), StoreError> {
        self.write(|| {
            self.t()?.admins.insert(user.username.as_bytes(), encode(user))?;
            Ok(())
        })
        .await
    }

    /// Removes an admin user; `Ok(false)` if there was none. Durable on return.
    pub async fn remove_admin(&self, username: &str) -> Result<bool, StoreError> {
        self.write(|| Ok(self.t()?.admins.remove(username.as_bytes())?.is_some())).await
    }

    // ---- retention ---------------------------------------------------------------------------

    /// Removes guest sessions that expired before `now_ms`; returns how many.
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

    /// Number of stored guest sessions.
    pub fn session_count(&self) -> usize {
        self.t().map(|t| t.sessions.len()).unwrap_or(0)
    }

    /// Number of trees' worth of format metadata; used by `check`.
    pub fn format_version(&self) -> Result<u8, StoreError> {
        Ok(self.t()?.meta.get(FORMAT_KEY)?.and_then(|v| v.first().copied()).unwrap_or(FORMAT_VERSION))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::PhotoId;

    fn slug(s: &str) -> Slug {
        Slug::parse(s).unwrap()
    }
    fn photo(s: &str) -> PhotoId {
        PhotoId::parse(s).unwrap()
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

    #[test]
    fn newer_format_is_refused() {
        assert!(matches!(decode::<RoomRecord>(&[FORMAT_VERSION + 1, 0]), Err(StoreError::TooNew { .. })));
        assert!(matches!(decode::<RoomRecord>(&[]), Err(StoreError::Corrupt(_))));
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

    #[tokio::test]
    async fn second_open_of_same_dir_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let _a = Store::open(dir.path()).unwrap();
        match Store::open(dir.path()) {
            Err(StoreError::Locked(_)) => {}
            Err(e) => panic!("unexpected error {e}"),
            Ok(_) => panic!("second open succeeded"),
        }
    }
}
