//! The like book: each event's counts, totals, orderings and per-liker tallies, in memory.
//!
//! On disk a like is two records: the fact (`liked_by`) and its photo's count. Everything
//! derived from them (the room total, the distinct photos, the most-liked and most-recent
//! orderings, how many photos each liker likes) lives here instead, built from the counts the
//! first time an event is used and kept up to date by the writers. Writing those five derived
//! records with every like cost more than half of a like's time in sled; keeping them here costs
//! a few map updates, and a crash loses nothing, since they are rebuilt from the facts.
//!
//! Memory is bounded: an event holds at most the per-event cap of photos (SPEC §6), the book
//! holds at most [`MAX_PHOTOS`] photos over all its events and forgets the least recently used
//! events beyond that; tallies are dropped when an event has more than [`MAX_TALLIES`] likers.
//! Whatever is forgotten is rebuilt from disk when next needed.

use std::cmp::Reverse;
use std::collections::{BTreeSet, HashMap};

use super::PhotoLikes;
use crate::types::{LikerKey, PhotoId, Slug};

/// Photos held over all events. A photo costs about three copies of its id plus 100 bytes:
/// with ids of 40 characters, some 50 MB.
pub(super) const MAX_PHOTOS: usize = 200_000;

/// Likers whose tallies one event keeps.
const MAX_TALLIES: usize = 100_000;

/// One event's likes, derived from its count records.
#[derive(Default)]
pub(super) struct EventLikes {
    counts: HashMap<PhotoId, PhotoLikes>,
    /// Photos with a count above zero, most liked first, ties by photo id.
    by_count: BTreeSet<(Reverse<u64>, PhotoId)>,
    /// Every photo with a count record, most recently changed first, ties by photo id.
    by_time: BTreeSet<(Reverse<i64>, PhotoId)>,
    /// Wide, so that adding and taking back any u64 counts stays exact; readers saturate it.
    total: u128,
    /// Distinct photos each liker likes, filled in as likers are seen (see `Store::tally`).
    tallies: HashMap<LikerKey, u64>,
    used: u64,
}

impl EventLikes {
    /// The event as its count records describe it.
    pub(super) fn from_counts(counts: impl IntoIterator<Item = (PhotoId, PhotoLikes)>) -> EventLikes {
        let mut ev = EventLikes::default();
        for (photo, rec) in counts {
            ev.set(&photo, Some(rec));
        }
        ev
    }

    pub(super) fn count(&self, photo: &PhotoId) -> Option<&PhotoLikes> {
        self.counts.get(photo)
    }

    /// Distinct photos with a count record.
    pub(super) fn photos(&self) -> u64 {
        self.counts.len() as u64
    }

    pub(super) fn tally(&self, liker: &LikerKey) -> Option<u64> {
        self.tallies.get(liker).copied()
    }

    pub(super) fn set_tally(&mut self, liker: &LikerKey, n: u64) {
        if self.tallies.len() >= MAX_TALLIES && !self.tallies.contains_key(liker) {
            self.tallies.clear();
        }
        self.tallies.insert(liker.clone(), n);
    }

    /// Replaces a photo's count (`None`: no record) and everything derived from it.
    pub(super) fn set(&mut self, photo: &PhotoId, new: Option<PhotoLikes>) {
        let old = match &new {
            Some(rec) => self.counts.insert(photo.clone(), rec.clone()),
            None => self.counts.remove(photo),
        };
        if let Some(old) = old {
            self.by_time.remove(&(Reverse(old.updated_ms), photo.clone()));
            if old.count > 0 {
                self.by_count.remove(&(Reverse(old.count), photo.clone()));
            }
            self.total = self.total.saturating_sub(u128::from(old.count));
        }
        if let Some(new) = new {
            self.by_time.insert((Reverse(new.updated_ms), photo.clone()));
            if new.count > 0 {
                self.by_count.insert((Reverse(new.count), photo.clone()));
            }
            self.total = self.total.saturating_add(u128::from(new.count));
        }
    }

    /// Counts, most recently changed first, at most `limit`.
    pub(super) fn recent(&self, limit: usize) -> Vec<(PhotoId, u64)> {
        let count = |p: &PhotoId| self.counts.get(p).map_or(0, |r| r.count);
        self.by_time.iter().take(limit).map(|(_, p)| (p.clone(), count(p))).collect()
    }

    /// The total (saturated) and the `top` most liked photos.
    pub(super) fn summary(&self, top: usize) -> (u64, Vec<(PhotoId, u64)>) {
        let best = self.by_count.iter().take(top).map(|(Reverse(c), p)| (p.clone(), *c)).collect();
        (u64::try_from(self.total).unwrap_or(u64::MAX), best)
    }
}

/// Every event in memory. Writers change it after their transaction committed, setting absolute
/// values; an event is built from disk only under the likes lock, so never from a half-written
/// batch.
#[derive(Default)]
pub(in crate::store) struct LikeBook {
    events: HashMap<Slug, EventLikes>,
    photos: usize,
    tick: u64,
}

impl LikeBook {
    /// The event if it is in memory, marked as just used.
    pub(super) fn get(&mut self, slug: &Slug) -> Option<&mut EventLikes> {
        self.tick += 1;
        let tick = self.tick;
        let ev = self.events.get_mut(slug)?;
        ev.used = tick;
        Some(ev)
    }

    /// Keeps an event built from disk (under the likes lock, so no change happened meanwhile).
    pub(super) fn insert(&mut self, slug: &Slug, ev: EventLikes) {
        self.photos += ev.counts.len();
        if let Some(old) = self.events.insert(slug.clone(), ev) {
            self.photos -= old.counts.len();
        }
        self.get(slug);
        self.evict(slug);
    }

    /// Applies a committed change of one photo's count, if the event is in memory.
    pub(super) fn set(&mut self, slug: &Slug, photo: &PhotoId, new: Option<PhotoLikes>) {
        if let Some(ev) = self.events.get_mut(slug) {
            let before = ev.counts.len();
            ev.set(photo, new);
            self.photos = self.photos + ev.counts.len() - before;
        }
    }

    /// Applies a committed tally, if the event is in memory.
    pub(super) fn set_tally(&mut self, slug: &Slug, liker: &LikerKey, n: u64) {
        if let Some(ev) = self.events.get_mut(slug) {
            ev.set_tally(liker, n);
        }
    }

    /// Drops an event whose records were changed behind the book's back (import, deletion).
    pub(in crate::store) fn forget(&mut self, slug: &Slug) {
        if let Some(old) = self.events.remove(slug) {
            self.photos -= old.counts.len();
        }
    }

    /// Forgets the least recently used events other than `keep` while over [`MAX_PHOTOS`].
    fn evict(&mut self, keep: &Slug) {
        while self.photos > MAX_PHOTOS {
            let oldest = self.events.iter().filter(|(s, _)| *s != keep).min_by_key(|(_, ev)| ev.used);
            let Some(slug) = oldest.map(|(s, _)| s.clone()) else { return };
            self.forget(&slug);
        }
    }

    #[cfg(test)]
    pub(super) fn held(&self) -> (usize, usize) {
        (self.events.len(), self.photos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> PhotoId {
        PhotoId::parse(s).unwrap()
    }

    fn rec(count: u64, updated_ms: i64) -> Option<PhotoLikes> {
        Some(PhotoLikes { count, updated_ms })
    }

    #[test]
    fn orderings_follow_every_change() {
        let mut ev = EventLikes::from_counts([(p("a"), PhotoLikes { count: 3, updated_ms: 10 })]);
        ev.set(&p("b"), rec(5, 20));
        ev.set(&p("c"), rec(0, 30));
        ev.set(&p("a"), rec(5, 40));
        assert_eq!(ev.summary(10), (10, vec![(p("a"), 5), (p("b"), 5)]));
        assert_eq!(ev.recent(10), vec![(p("a"), 5), (p("c"), 0), (p("b"), 5)]);
        ev.set(&p("b"), None);
        assert_eq!(ev.summary(1), (5, vec![(p("a"), 5)]));
        assert_eq!(ev.recent(10), vec![(p("a"), 5), (p("c"), 0)]);
        assert_eq!(ev.photos(), 2);
    }

    #[test]
    fn the_book_forgets_the_least_recently_used_events_beyond_its_bound() {
        let mut book = LikeBook::default();
        let big = |n: usize, tag: &str| {
            EventLikes::from_counts((0..n).map(|i| (p(&format!("{tag}{i}")), PhotoLikes { count: 1, updated_ms: 0 })))
        };
        let (a, b, c) = (Slug::parse("a").unwrap(), Slug::parse("b").unwrap(), Slug::parse("c").unwrap());
        book.insert(&a, big(MAX_PHOTOS / 2, "a"));
        book.insert(&b, big(MAX_PHOTOS / 2, "b"));
        assert!(book.get(&a).is_some());
        book.insert(&c, big(10, "c"));
        assert_eq!(book.held(), (2, MAX_PHOTOS / 2 + 10));
        assert!(book.get(&b).is_none(), "b was the least recently used");
        book.set(&a, &p("new"), rec(1, 1));
        assert_eq!(book.held(), (2, MAX_PHOTOS / 2 + 11));
    }
}
