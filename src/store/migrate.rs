//! Upgrades an older data directory in place when it is opened.
//!
//! Format 1 → 2: the like aggregates and indexes (see `likes`) are built from the counts and
//! likers in one pass over each. The format key moves to 2 only after everything built is on
//! disk, so a crash part-way leaves a format-1 directory whose upgrade simply starts again.

use super::likes::{PhotoLikes, RoomLikes, count_key, time_key};
use super::{FORMAT_KEY, FORMAT_VERSION, StoreError, Trees, decode, encode};

/// Writes are applied in batches of this many records, so memory stays flat however large the
/// directory is.
const BATCH: usize = 10_000;

/// Batched inserts into one tree.
struct Writer<'a> {
    tree: &'a sled::Tree,
    batch: sled::Batch,
    pending: usize,
}

impl<'a> Writer<'a> {
    fn new(tree: &'a sled::Tree) -> Self {
        Writer { tree, batch: sled::Batch::default(), pending: 0 }
    }

    fn insert(&mut self, k: Vec<u8>, v: Vec<u8>) -> Result<(), StoreError> {
        self.batch.insert(k, v);
        self.pending += 1;
        if self.pending >= BATCH {
            self.finish()?;
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<(), StoreError> {
        self.tree.apply_batch(std::mem::take(&mut self.batch))?;
        self.pending = 0;
        Ok(())
    }
}

/// Splits `a \0 rest` at its first separator.
fn split_first(key: &[u8]) -> Option<(&str, &str)> {
    let i = key.iter().position(|&b| b == 0)?;
    Some((std::str::from_utf8(&key[..i]).ok()?, std::str::from_utf8(&key[i + 1..]).ok()?))
}

/// Brings a directory of format `found` up to this build's format.
pub(super) fn upgrade(t: &Trees, found: u8) -> Result<(), StoreError> {
    tracing::info!(from = found, to = FORMAT_VERSION, "upgrading the data directory");
    // What an interrupted upgrade left behind is rebuilt from scratch.
    for tree in [&t.like_rooms, &t.liker_tallies, &t.likes_by_count, &t.likes_by_time] {
        tree.clear()?;
    }
    build_counts(t)?;
    build_tallies(t)?;
    t.db.flush()?;
    t.meta.insert(FORMAT_KEY, &[FORMAT_VERSION])?;
    t.db.flush()?;
    Ok(())
}

/// Room totals and both indexes, from the counts (which are sorted by room).
fn build_counts(t: &Trees) -> Result<(), StoreError> {
    let (mut by_time, mut by_count, mut rooms) =
        (Writer::new(&t.likes_by_time), Writer::new(&t.likes_by_count), Writer::new(&t.like_rooms));
    let mut room: Option<(String, RoomLikes)> = None;
    for item in t.counts.iter() {
        let (k, v) = item?;
        let Some((slug, photo)) = split_first(&k) else { continue };
        let rec: PhotoLikes = match decode(&v) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(room = slug, error = %e, "unreadable like count left out of the indexes");
                continue;
            }
        };
        if room.as_ref().is_none_or(|(s, _)| s != slug) {
            if let Some((s, r)) = room.take() {
                rooms.insert(s.into_bytes(), encode(&r))?;
            }
            room = Some((slug.to_string(), RoomLikes::default()));
        }
        if let Some((_, r)) = room.as_mut() {
            r.total = r.total.saturating_add(u128::from(rec.count));
            r.photos = r.photos.saturating_add(1);
        }
        by_time.insert(time_key(slug, &rec, photo), encode(&rec.count))?;
        if rec.count > 0 {
            by_count.insert(count_key(slug, rec.count, photo), Vec::new())?;
        }
    }
    if let Some((s, r)) = room {
        rooms.insert(s.into_bytes(), encode(&r))?;
    }
    by_time.finish()?;
    by_count.finish()?;
    rooms.finish()
}

/// Per-liker tallies, from `liked_by` (sorted by room, then liker).
fn build_tallies(t: &Trees) -> Result<(), StoreError> {
    let mut tallies = Writer::new(&t.liker_tallies);
    let mut current: Option<(Vec<u8>, u64)> = None;
    for item in t.liked_by.iter() {
        let (k, _) = item?;
        // slug \0 liker \0 photo: neither the slug nor the photo holds a separator.
        let Some(end) = k.iter().rposition(|&b| b == 0) else { continue };
        let owner = &k[..end];
        match current.as_mut() {
            Some((o, n)) if o.as_slice() == owner => *n += 1,
            _ => {
                if let Some((o, n)) = current.replace((owner.to_vec(), 1)) {
                    tallies.insert(o, encode(&n))?;
                }
            }
        }
    }
    if let Some((o, n)) = current {
        tallies.insert(o, encode(&n))?;
    }
    tallies.finish()
}
