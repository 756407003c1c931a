//! Likes: who likes which photo, each photo's count, and the records derived from them.
//!
//! Besides the facts (likers, counts) each room keeps a total, a tally per liker and two
//! indexes (by count, by change time). They change in the same sled transaction as the facts,
//! so the admin feed, the join snapshot and the caps of SPEC §6 read a handful of records
//! instead of every photo of an event, and a crash can never leave them disagreeing.

use serde::{Deserialize, Serialize};
use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionError, TransactionalTree};

use super::{Store, StoreError, decode, encode, key2, key3, prefix};
use crate::clock::now_ms;
use crate::types::{LikerKey, PhotoId, Slug};

mod queue;
#[cfg(test)]
mod tests;

pub(super) use queue::LikeQueue;
pub use queue::StagedToggle;

/// The stored count of one photo.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub(super) struct PhotoLikes {
    pub(super) count: u64,
    pub(super) updated_ms: i64,
}

/// Like totals of one room. `total` is wide so that adding and taking back any u64 counts stays
/// exact; readers saturate it.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq)]
pub(super) struct RoomLikes {
    pub(super) total: u128,
    /// Distinct photo ids with a count record.
    pub(super) photos: u64,
}

/// The caps on what likes may add to an event (SPEC §6). Unlikes are never capped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LikeCaps {
    /// Distinct photos one identity may like in an event.
    pub per_identity: u64,
    /// Distinct photo ids with a like record in an event.
    pub per_event: u64,
}

impl LikeCaps {
    pub fn new(per_identity: usize, per_event: usize) -> LikeCaps {
        LikeCaps { per_identity: per_identity as u64, per_event: per_event as u64 }
    }
}

impl Default for LikeCaps {
    /// The contract's defaults (SPEC §6).
    fn default() -> Self {
        LikeCaps::new(2000, 100_000)
    }
}

/// Which cap refused a like.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LikeLimit {
    #[error("distinct photos per identity")]
    PerIdentity,
    #[error("distinct photos per event")]
    PerEvent,
}

/// What a like or unlike did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LikeOutcome {
    pub changed: bool,
    pub count: u64,
}

/// How a toggle treats caps and emptied counts.
#[derive(Clone, Copy)]
enum Mode {
    Capped(LikeCaps),
    /// Taking back a change that did not persist: never refused, and a count it empties is
    /// removed, as it most likely did not exist before.
    Undo,
}

type TxResult<T> = Result<T, ConflictableTransactionError<StoreError>>;

fn abort<T>(e: StoreError) -> TxResult<T> {
    Err(ConflictableTransactionError::Abort(e))
}

/// Order-preserving bytes of a change time, inverted so that newer sorts first.
fn time_rank(ms: i64) -> [u8; 8] {
    (!((ms as u64) ^ (1 << 63))).to_be_bytes()
}

/// Count bytes, inverted so that higher sorts first.
fn count_rank(count: u64) -> [u8; 8] {
    (!count).to_be_bytes()
}

/// `slug \0 rank \0 photo`. The rank is fixed-width binary (it may hold zero bytes), so the
/// photo is found by position, not by separator.
pub(super) fn rank_key(slug: &str, rank: [u8; 8], photo: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(slug.len() + photo.len() + 10);
    k.extend_from_slice(slug.as_bytes());
    k.push(0);
    k.extend_from_slice(&rank);
    k.push(0);
    k.extend_from_slice(photo.as_bytes());
    k
}

fn rank_key_parts(key: &[u8], slug_len: usize) -> Option<([u8; 8], PhotoId)> {
    let rank: [u8; 8] = key.get(slug_len + 1..slug_len + 9)?.try_into().ok()?;
    let photo = std::str::from_utf8(key.get(slug_len + 10..)?).ok().and_then(PhotoId::parse)?;
    Some((rank, photo))
}

pub(super) fn time_key(slug: &str, rec: &PhotoLikes, photo: &str) -> Vec<u8> {
    rank_key(slug, time_rank(rec.updated_ms), photo)
}

pub(super) fn count_key(slug: &str, count: u64, photo: &str) -> Vec<u8> {
    rank_key(slug, count_rank(count), photo)
}

/// The like trees inside one transaction.
struct Tx<'a> {
    likers: &'a TransactionalTree,
    liked_by: &'a TransactionalTree,
    counts: &'a TransactionalTree,
    tallies: &'a TransactionalTree,
    rooms: &'a TransactionalTree,
    by_count: &'a TransactionalTree,
    by_time: &'a TransactionalTree,
}

impl Tx<'_> {
    fn read<T: serde::de::DeserializeOwned>(tree: &TransactionalTree, key: &[u8]) -> TxResult<Option<T>> {
        match tree.get(key)?.map(|v| decode::<T>(&v)).transpose() {
            Ok(v) => Ok(v),
            Err(e) => abort(e),
        }
    }

    fn count(&self, slug: &Slug, photo: &PhotoId) -> TxResult<Option<PhotoLikes>> {
        Self::read(self.counts, &key2(slug.as_str(), photo.as_str()))
    }

    fn room(&self, slug: &Slug) -> TxResult<RoomLikes> {
        Ok(Self::read(self.rooms, slug.as_str().as_bytes())?.unwrap_or_default())
    }

    fn tally(&self, slug: &Slug, liker: &LikerKey) -> TxResult<u64> {
        Ok(Self::read(self.tallies, &key2(slug.as_str(), liker.as_str()))?.unwrap_or(0))
    }

    /// Replaces a photo's count record (`None`: absent) and everything derived from it.
    fn put_count(
        &self,
        slug: &Slug,
        photo: &PhotoId,
        old: Option<&PhotoLikes>,
        new: Option<&PhotoLikes>,
    ) -> TxResult<()> {
        let (s, p) = (slug.as_str(), photo.as_str());
        let mut room = self.room(slug)?;
        if let Some(old) = old {
            self.by_time.remove(time_key(s, old, p))?;
            if old.count > 0 {
                self.by_count.remove(count_key(s, old.count, p))?;
            }
            room.total = room.total.saturating_sub(u128::from(old.count));
            room.photos = room.photos.saturating_sub(1);
        }
        match new {
            Some(new) => {
                self.counts.insert(key2(s, p), encode(new))?;
                self.by_time.insert(time_key(s, new, p), encode(&new.count))?;
                if new.count > 0 {
                    self.by_count.insert(count_key(s, new.count, p), &[] as &[u8])?;
                }
                room.total = room.total.saturating_add(u128::from(new.count));
                room.photos = room.photos.saturating_add(1);
            }
            None => {
                self.counts.remove(key2(s, p))?;
            }
        }
        if room == RoomLikes::default() {
            self.rooms.remove(s.as_bytes())?;
        } else {
            self.rooms.insert(s.as_bytes(), encode(&room))?;
        }
        Ok(())
    }

    /// Marks or clears one liker's like, with its tally. Returns whether it changed.
    fn put_liker(&self, slug: &Slug, photo: &PhotoId, liker: &LikerKey, like: bool) -> TxResult<bool> {
        let (s, p, l) = (slug.as_str(), photo.as_str(), liker.as_str());
        let k = key3(s, p, l);
        if self.likers.get(&k)?.is_some() == like {
            return Ok(false);
        }
        let tally = self.tally(slug, liker)?;
        let tk = key2(s, l);
        if like {
            self.likers.insert(k, &[] as &[u8])?;
            self.liked_by.insert(key3(s, l, p), &[] as &[u8])?;
            self.tallies.insert(tk, encode(&tally.saturating_add(1)))?;
        } else {
            self.likers.remove(k)?;
            self.liked_by.remove(key3(s, l, p))?;
            match tally.saturating_sub(1) {
                0 => self.tallies.remove(tk)?,
                n => self.tallies.insert(tk, encode(&n))?,
            };
        }
        Ok(true)
    }
}

impl Tx<'_> {
    /// One like or unlike inside a transaction. A cap refuses it with `Ok(Err(limit))`, which
    /// changes nothing and does not abort the transaction (a batch holds other likes).
    fn toggle(
        &self,
        slug: &Slug,
        photo: &PhotoId,
        liker: &LikerKey,
        like: bool,
        mode: Mode,
        now: i64,
    ) -> TxResult<Result<LikeOutcome, LikeLimit>> {
        let old = self.count(slug, photo)?;
        let before = old.as_ref().map_or(0, |p| p.count);
        let present = self.likers.get(key3(slug.as_str(), photo.as_str(), liker.as_str()))?.is_some();
        if present == like {
            return Ok(Ok(LikeOutcome { changed: false, count: before }));
        }
        if let (true, Mode::Capped(caps)) = (like, mode) {
            if self.tally(slug, liker)? >= caps.per_identity {
                return Ok(Err(LikeLimit::PerIdentity));
            }
            if old.is_none() && self.room(slug)?.photos >= caps.per_event {
                return Ok(Err(LikeLimit::PerEvent));
            }
        }
        self.put_liker(slug, photo, liker, like)?;
        let count = if like { before.saturating_add(1) } else { before.saturating_sub(1) };
        let new = PhotoLikes { count, updated_ms: now };
        let emptied = matches!(mode, Mode::Undo) && count == 0;
        self.put_count(slug, photo, old.as_ref(), (!emptied).then_some(&new))?;
        Ok(Ok(LikeOutcome { changed: true, count }))
    }
}

impl Store {
    pub(super) fn likes_guard(&self) -> std::sync::MutexGuard<'_, ()> {
        // A panic while holding the lock leaves sled consistent (each op is atomic); keep going.
        self.likes_lock.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` as one sled transaction over every like tree, under the likes lock.
    fn transact<T>(&self, f: impl Fn(&Tx) -> TxResult<T>) -> Result<T, StoreError> {
        let _g = self.likes_guard();
        let t = self.t()?;
        let trees =
            (&t.likers, &t.liked_by, &t.counts, &t.liker_tallies, &t.like_rooms, &t.likes_by_count, &t.likes_by_time);
        trees
            .transaction(|(likers, liked_by, counts, tallies, rooms, by_count, by_time)| {
                f(&Tx { likers, liked_by, counts, tallies, rooms, by_count, by_time })
            })
            .map_err(|e| match e {
                TransactionError::Abort(e) => e,
                TransactionError::Storage(e) => StoreError::Sled(e),
            })
    }

    /// One toggle as its own transaction (the tests' way to apply and undo without a flush).
    /// A refused like is `StoreError::LikeLimit`.
    #[cfg(test)]
    fn apply_like(
        &self,
        slug: &Slug,
        photo: &PhotoId,
        liker: &LikerKey,
        like: bool,
        mode: Mode,
    ) -> Result<LikeOutcome, StoreError> {
        let now = now_ms();
        self.transact(|tx| tx.toggle(slug, photo, liker, like, mode, now))?.map_err(StoreError::LikeLimit)
    }

    /// Applies a batch of likes and unlikes, in order, as one transaction: one commit of the
    /// trees for the whole batch, and a crash keeps all of it or none. A like refused by a cap
    /// is refused alone; the others go ahead.
    pub(super) fn apply_toggles<'a>(
        &self,
        toggles: impl Iterator<Item = &'a queue::Toggle> + Clone,
    ) -> Result<Vec<queue::Applied>, StoreError> {
        let now = now_ms();
        self.transact(|tx| {
            toggles.clone().map(|t| tx.toggle(&t.slug, &t.photo, &t.liker, t.like, Mode::Capped(t.caps), now)).collect()
        })
    }

    /// Takes back toggles whose flush failed (pass them newest first), as one transaction.
    pub(super) fn undo_toggles<'a>(
        &self,
        toggles: impl Iterator<Item = &'a queue::Toggle> + Clone,
    ) -> Result<(), StoreError> {
        let now = now_ms();
        self.transact(|tx| {
            for t in toggles.clone() {
                // Undo is never refused by a cap.
                let _ = tx.toggle(&t.slug, &t.photo, &t.liker, !t.like, Mode::Undo, now)?;
            }
            Ok(())
        })
    }

    /// Like or unlike through the breaker, durable on return.
    async fn toggle(
        &self,
        slug: &Slug,
        photo: &PhotoId,
        liker: &LikerKey,
        like: bool,
        caps: LikeCaps,
    ) -> Result<LikeOutcome, StoreError> {
        let staged = self.stage_toggle(slug, photo, liker, like, caps)?;
        self.finish_toggle(staged).await
    }

    /// Records `liker`'s like of `photo` under the default caps; durable when it returns
    /// `changed`. The socket path stages likes with the configured caps instead.
    pub async fn like(&self, slug: &Slug, photo: &PhotoId, liker: &LikerKey) -> Result<LikeOutcome, StoreError> {
        self.toggle(slug, photo, liker, true, LikeCaps::default()).await
    }

    /// Removes `liker`'s like of `photo` if present; durable when it returns `changed`.
    pub async fn unlike(&self, slug: &Slug, photo: &PhotoId, liker: &LikerKey) -> Result<LikeOutcome, StoreError> {
        self.toggle(slug, photo, liker, false, LikeCaps::default()).await
    }

    /// Stores `count` as the truth (the web app's database is the source); durable on return.
    /// Never refused by a cap: the web app is trusted, and its photos count towards the event's
    /// distinct photos like any other.
    pub async fn set_like_count(&self, slug: &Slug, photo: &PhotoId, count: u64) -> Result<(), StoreError> {
        let now = now_ms();
        self.write(|| {
            self.transact(|tx| {
                tx.put_count(slug, photo, tx.count(slug, photo)?.as_ref(), Some(&PhotoLikes { count, updated_ms: now }))
            })
        })
        .await
    }

    /// Writes a count record as exported (import): not yet durable, never capped.
    pub(super) fn import_count(&self, slug: &Slug, photo: &PhotoId, rec: &PhotoLikes) -> Result<(), StoreError> {
        self.transact(|tx| tx.put_count(slug, photo, tx.count(slug, photo)?.as_ref(), Some(rec)))
    }

    /// Marks a liker as exported (import); the count comes with its own record.
    pub(super) fn import_liker(&self, slug: &Slug, photo: &PhotoId, liker: &LikerKey) -> Result<(), StoreError> {
        self.transact(|tx| tx.put_liker(slug, photo, liker, true).map(|_| ()))
    }

    /// Like counts of a room, most recently changed first (ties by photo id), at most `limit`:
    /// the first `limit` entries of the change-time index.
    pub fn room_likes(&self, slug: &Slug, limit: usize) -> Result<Vec<(PhotoId, u64)>, StoreError> {
        let s = slug.as_str();
        let mut out = Vec::with_capacity(limit.min(1024));
        for item in self.t()?.likes_by_time.scan_prefix(prefix(s)).take(limit) {
            let (k, v) = item?;
            if let Some((_, photo)) = rank_key_parts(&k, s.len()) {
                out.push((photo, decode::<u64>(&v)?));
            }
        }
        Ok(out)
    }

    /// Sum of the like counts of a room and its `top` most liked photos (ties by photo id):
    /// one aggregate record and the first `top` entries of the count index.
    pub fn room_like_summary(&self, slug: &Slug, top: usize) -> Result<(u64, Vec<(PhotoId, u64)>), StoreError> {
        let s = slug.as_str();
        let t = self.t()?;
        let room: RoomLikes = Self::get(&t.like_rooms, s.as_bytes())?.unwrap_or_default();
        let mut best = Vec::with_capacity(top.min(1024));
        for item in t.likes_by_count.scan_prefix(prefix(s)).take(top) {
            if let Some((rank, photo)) = rank_key_parts(&item?.0, s.len()) {
                best.push((photo, !u64::from_be_bytes(rank)));
            }
        }
        Ok((u64::try_from(room.total).unwrap_or(u64::MAX), best))
    }

    /// Photos of a room that `liker` likes, at most `limit`.
    pub fn liked_by(&self, slug: &Slug, liker: &LikerKey, limit: usize) -> Result<Vec<PhotoId>, StoreError> {
        let mut p = key2(slug.as_str(), liker.as_str());
        p.push(0);
        let mut out = Vec::new();
        for item in self.t()?.liked_by.scan_prefix(p).take(limit) {
            let (k, _) = item?;
            if let Some(photo) = super::key_part(&k, 2).and_then(|p| PhotoId::parse(&p)) {
                out.push(photo);
            }
        }
        Ok(out)
    }
}
