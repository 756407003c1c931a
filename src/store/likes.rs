//! Likes: who likes which photo and each photo's count.
//!
//! On disk a like is its fact (`liked_by`: event, liker, photo) and its photo's count record,
//! changed together in one sled transaction, so a crash never tears them. Everything derived
//! from them (room totals, orderings, per-liker tallies) is kept in memory by the like book
//! (`book.rs`); the join snapshot, the admin feed and the caps of SPEC §6 read it there.

use serde::{Deserialize, Serialize};

use super::codec::{key_part, key2};
use super::{Store, StoreError};
use crate::clock::now_ms;
use crate::types::{LikerKey, PhotoId, Slug};

mod book;
mod queue;
#[cfg(test)]
mod tests;
mod tx;

pub(super) use book::LikeBook;
pub(super) use queue::LikeQueue;
pub use queue::StagedToggle;
use tx::Mode;

/// The stored count of one photo.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub(super) struct PhotoLikes {
    pub(super) count: u64,
    pub(super) updated_ms: i64,
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

impl Store {
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
        self.transact(std::iter::once((slug, Some(photo), Some(liker))), |tx| {
            tx.toggle(slug, photo, liker, like, mode, now)
        })?
        .map_err(StoreError::LikeLimit)
    }

    /// Applies a batch of likes and unlikes, in order, as one transaction: one commit of the
    /// trees for the whole batch, and a crash keeps all of it or none. A like refused by a cap
    /// is refused alone; the others go ahead.
    pub(super) fn apply_toggles<'a>(
        &self,
        toggles: impl Iterator<Item = &'a queue::Toggle> + Clone,
    ) -> Result<Vec<queue::Applied>, StoreError> {
        let now = now_ms();
        let touch = toggles.clone().map(|t| (&t.slug, Some(&t.photo), Some(&t.liker)));
        self.transact(touch, |tx| {
            toggles.clone().map(|t| tx.toggle(&t.slug, &t.photo, &t.liker, t.like, Mode::Capped(t.caps), now)).collect()
        })
    }

    /// Takes back toggles whose flush failed (pass them newest first), as one transaction.
    pub(super) fn undo_toggles<'a>(
        &self,
        toggles: impl Iterator<Item = &'a queue::Toggle> + Clone,
    ) -> Result<(), StoreError> {
        let now = now_ms();
        let touch = toggles.clone().map(|t| (&t.slug, Some(&t.photo), Some(&t.liker)));
        self.transact(touch, |tx| {
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
            self.transact(std::iter::once((slug, Some(photo), None)), |tx| {
                tx.put_count(slug, photo, Some(PhotoLikes { count, updated_ms: now }))
            })
        })
        .await
    }

    /// Writes a count record as exported (import): not yet durable, never capped.
    pub(super) fn import_count(&self, slug: &Slug, photo: &PhotoId, rec: &PhotoLikes) -> Result<(), StoreError> {
        self.transact(std::iter::once((slug, Some(photo), None)), |tx| tx.put_count(slug, photo, Some(rec.clone())))
    }

    /// Marks a liker as exported (import); the count comes with its own record.
    pub(super) fn import_liker(&self, slug: &Slug, photo: &PhotoId, liker: &LikerKey) -> Result<(), StoreError> {
        self.transact(std::iter::once((slug, Some(photo), Some(liker))), |tx| {
            tx.put_liker(slug, photo, liker, true).map(|_| ())
        })
    }

    /// Like counts of a room, most recently changed first (ties by photo id), at most `limit`.
    pub fn room_likes(&self, slug: &Slug, limit: usize) -> Result<Vec<(PhotoId, u64)>, StoreError> {
        self.with_event(slug, |ev| ev.recent(limit))
    }

    /// Sum of the like counts of a room and its `top` most liked photos (ties by photo id).
    pub fn room_like_summary(&self, slug: &Slug, top: usize) -> Result<(u64, Vec<(PhotoId, u64)>), StoreError> {
        self.with_event(slug, |ev| ev.summary(top))
    }

    /// Photos of a room that `liker` likes, at most `limit`.
    pub fn liked_by(&self, slug: &Slug, liker: &LikerKey, limit: usize) -> Result<Vec<PhotoId>, StoreError> {
        let mut p = key2(slug.as_str(), liker.as_str());
        p.push(0);
        let mut out = Vec::new();
        for item in self.t()?.liked_by.scan_prefix(p).take(limit) {
            let (k, _) = item?;
            if let Some(photo) = key_part(&k, 2).and_then(|p| PhotoId::parse(&p)) {
                out.push(photo);
            }
        }
        Ok(out)
    }
}
