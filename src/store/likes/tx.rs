//! One batch of like changes as one sled transaction over the two like trees.
//!
//! A batch reads nothing derived from sled: before the transaction, what it needs from the like
//! book (the counts of its photos, its likers' tallies, each event's distinct photos) is copied
//! into a [`Before`]; inside, each change is written to sled and staged; once the transaction
//! has committed, the staged values go into the book. The likes lock is held throughout, so
//! nothing else changes the like trees or the book's events meanwhile.

use std::cell::RefCell;
use std::collections::HashMap;

use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionError, TransactionalTree};

use super::book::EventLikes;
use super::{LikeCaps, LikeLimit, LikeOutcome, PhotoLikes};
use crate::store::codec::{decode, encode, key_part, key2, key3, prefix};
use crate::store::trees::Trees;
use crate::store::{Store, StoreError};
use crate::types::{LikerKey, PhotoId, Slug};

pub(super) type TxResult<T> = Result<T, ConflictableTransactionError<StoreError>>;

/// How a toggle treats caps and emptied counts.
#[derive(Clone, Copy)]
pub(super) enum Mode {
    Capped(LikeCaps),
    /// Taking back a change that did not persist: never refused, and a count it empties is
    /// removed, as it most likely did not exist before.
    Undo,
}

/// What a batch touches, as the book had it before the batch.
#[derive(Default)]
pub(super) struct Before {
    counts: HashMap<(Slug, PhotoId), Option<PhotoLikes>>,
    tallies: HashMap<(Slug, LikerKey), u64>,
    photos: HashMap<Slug, u64>,
}

/// What a batch changed, to go into the book once it committed.
#[derive(Default)]
pub(super) struct Staged {
    counts: HashMap<(Slug, PhotoId), Option<PhotoLikes>>,
    tallies: HashMap<(Slug, LikerKey), u64>,
    photos: HashMap<Slug, i64>,
}

/// The like trees inside one transaction.
pub(super) struct Tx<'a> {
    liked_by: &'a TransactionalTree,
    counts: &'a TransactionalTree,
    before: &'a Before,
    /// A `RefCell` because sled hands the transaction closure shared references only; a fresh
    /// one is made for every attempt of the closure.
    staged: RefCell<Staged>,
}

impl Tx<'_> {
    pub(super) fn count(&self, slug: &Slug, photo: &PhotoId) -> Option<PhotoLikes> {
        let key = (slug.clone(), photo.clone());
        match self.staged.borrow().counts.get(&key) {
            Some(staged) => staged.clone(),
            None => self.before.counts.get(&key).cloned().flatten(),
        }
    }

    fn photos(&self, slug: &Slug) -> u64 {
        let base = self.before.photos.get(slug).copied().unwrap_or(0);
        let delta = self.staged.borrow().photos.get(slug).copied().unwrap_or(0);
        base.saturating_add_signed(delta)
    }

    fn tally(&self, slug: &Slug, liker: &LikerKey) -> u64 {
        let key = (slug.clone(), liker.clone());
        let staged = self.staged.borrow().tallies.get(&key).copied();
        staged.or_else(|| self.before.tallies.get(&key).copied()).unwrap_or(0)
    }

    /// Replaces a photo's count record (`None`: absent).
    pub(super) fn put_count(&self, slug: &Slug, photo: &PhotoId, new: Option<PhotoLikes>) -> TxResult<()> {
        let existed = self.count(slug, photo).is_some();
        let k = key2(slug.as_str(), photo.as_str());
        match &new {
            Some(rec) => self.counts.insert(k, encode(rec))?,
            None => self.counts.remove(k)?,
        };
        let mut staged = self.staged.borrow_mut();
        let delta = i64::from(new.is_some()) - i64::from(existed);
        *staged.photos.entry(slug.clone()).or_default() += delta;
        staged.counts.insert((slug.clone(), photo.clone()), new);
        Ok(())
    }

    /// Marks or clears one liker's like, with its tally. Returns whether it changed.
    pub(super) fn put_liker(&self, slug: &Slug, photo: &PhotoId, liker: &LikerKey, like: bool) -> TxResult<bool> {
        let k = key3(slug.as_str(), liker.as_str(), photo.as_str());
        if self.liked_by.get(&k)?.is_some() == like {
            return Ok(false);
        }
        let tally = self.tally(slug, liker);
        if like {
            self.liked_by.insert(k, &[] as &[u8])?;
        } else {
            self.liked_by.remove(k)?;
        }
        let n = if like { tally.saturating_add(1) } else { tally.saturating_sub(1) };
        self.staged.borrow_mut().tallies.insert((slug.clone(), liker.clone()), n);
        Ok(true)
    }

    /// One like or unlike. A cap refuses it with `Ok(Err(limit))`, which changes nothing and
    /// does not abort the transaction (a batch holds other likes).
    pub(super) fn toggle(
        &self,
        slug: &Slug,
        photo: &PhotoId,
        liker: &LikerKey,
        like: bool,
        mode: Mode,
        now: i64,
    ) -> TxResult<Result<LikeOutcome, LikeLimit>> {
        let old = self.count(slug, photo);
        let before = old.as_ref().map_or(0, |p| p.count);
        let present = self.liked_by.get(key3(slug.as_str(), liker.as_str(), photo.as_str()))?.is_some();
        if present == like {
            return Ok(Ok(LikeOutcome { changed: false, count: before }));
        }
        if let (true, Mode::Capped(caps)) = (like, mode) {
            if self.tally(slug, liker) >= caps.per_identity {
                return Ok(Err(LikeLimit::PerIdentity));
            }
            if old.is_none() && self.photos(slug) >= caps.per_event {
                return Ok(Err(LikeLimit::PerEvent));
            }
        }
        self.put_liker(slug, photo, liker, like)?;
        let count = if like { before.saturating_add(1) } else { before.saturating_sub(1) };
        let emptied = matches!(mode, Mode::Undo) && count == 0;
        self.put_count(slug, photo, (!emptied).then_some(PhotoLikes { count, updated_ms: now }))?;
        Ok(Ok(LikeOutcome { changed: true, count }))
    }
}

/// What a batch will touch: each item is an event with, optionally, a photo and a liker.
pub(super) type Touch<'a> = (&'a Slug, Option<&'a PhotoId>, Option<&'a LikerKey>);

impl Store {
    pub(in crate::store) fn likes_guard(&self) -> std::sync::MutexGuard<'_, ()> {
        // A panic while holding the lock leaves sled consistent (each op is atomic); keep going.
        self.likes_lock.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` as one sled transaction over the like trees, under the likes lock, then puts
    /// what it changed into the book. `touch` names everything `f` reads.
    pub(super) fn transact<'a, T>(
        &self,
        touch: impl Iterator<Item = Touch<'a>>,
        f: impl Fn(&Tx) -> TxResult<T>,
    ) -> Result<T, StoreError> {
        let _g = self.likes_guard();
        let t = self.t()?;
        let before = prepare(&t, touch)?;
        let (out, staged) = (&t.liked_by, &t.counts)
            .transaction(|(liked_by, counts)| {
                let tx = Tx { liked_by, counts, before: &before, staged: RefCell::default() };
                let out = f(&tx)?;
                Ok((out, tx.staged.into_inner()))
            })
            .map_err(|e| match e {
                TransactionError::Abort(e) => e,
                TransactionError::Storage(e) => StoreError::Sled(e),
            })?;
        let mut book = t.book();
        for ((slug, photo), rec) in staged.counts {
            book.set(&slug, &photo, rec);
        }
        for ((slug, liker), n) in staged.tallies {
            book.set_tally(&slug, &liker, n);
        }
        Ok(out)
    }

    /// Runs `f` on an event's likes, building it from disk first if the book does not hold it.
    /// Readers call this without the likes lock; it is taken only to build the event.
    pub(super) fn with_event<T>(&self, slug: &Slug, f: impl FnOnce(&mut EventLikes) -> T) -> Result<T, StoreError> {
        let t = self.t()?;
        if let Some(ev) = t.book().get(slug) {
            return Ok(f(ev));
        }
        let _g = self.likes_guard();
        with_loaded(&t, slug, f)
    }
}

/// [`Store::with_event`] under the likes lock.
fn with_loaded<T>(t: &Trees, slug: &Slug, f: impl FnOnce(&mut EventLikes) -> T) -> Result<T, StoreError> {
    if let Some(ev) = t.book().get(slug) {
        return Ok(f(ev));
    }
    let mut counts = Vec::new();
    for item in t.counts.scan_prefix(prefix(slug.as_str())) {
        let (k, v) = item?;
        let Some(photo) = key_part(&k, 1).and_then(|p| PhotoId::parse(&p)) else { continue };
        match decode::<PhotoLikes>(&v) {
            Ok(rec) => counts.push((photo, rec)),
            Err(e) => tracing::warn!(room = %slug.as_str(), error = %e, "unreadable like count left out"),
        }
    }
    let mut ev = EventLikes::from_counts(counts);
    let out = f(&mut ev);
    t.book().insert(slug, ev);
    Ok(out)
}

/// Copies what a batch touches out of the book (building events and tallies from disk where
/// the book lacks them). Runs under the likes lock.
fn prepare<'a>(t: &Trees, touch: impl Iterator<Item = Touch<'a>>) -> Result<Before, StoreError> {
    let mut before = Before::default();
    for (slug, photo, liker) in touch {
        let missing_tally = with_loaded(t, slug, |ev| {
            before.photos.insert(slug.clone(), ev.photos());
            if let Some(photo) = photo {
                before.counts.insert((slug.clone(), photo.clone()), ev.count(photo).cloned());
            }
            let liker = liker?;
            match ev.tally(liker) {
                Some(n) => {
                    before.tallies.insert((slug.clone(), liker.clone()), n);
                    None
                }
                None => Some(liker),
            }
        })?;
        if let Some(liker) = missing_tally {
            let key = (slug.clone(), liker.clone());
            if before.tallies.contains_key(&key) {
                continue;
            }
            let mut p = key2(slug.as_str(), liker.as_str());
            p.push(0);
            let n = t.liked_by.scan_prefix(p).keys().try_fold(0u64, |n, k| k.map(|_| n + 1))?;
            t.book().set_tally(slug, liker, n);
            before.tallies.insert(key, n);
        }
    }
    Ok(before)
}
