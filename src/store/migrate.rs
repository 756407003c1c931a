//! Upgrades an older data directory in place when it is opened.
//!
//! Formats 1 and 2 kept every like twice (`likers` by photo, `liked_by` by liker), and format 2
//! also kept room totals, tallies and two indexes on disk. Format 3 keeps the facts in `liked_by`
//! alone and derives the rest in memory. The upgrade copies any fact missing from `liked_by`,
//! then drops the other trees; the format key moves to 3 only after that is on disk, so a crash
//! part-way leaves an older directory whose upgrade simply starts again.

use super::StoreError;
use super::codec::{FORMAT_KEY, FORMAT_VERSION, key3};
use super::trees::Trees;

/// Writes are applied in batches of this many records, so memory stays flat however large the
/// directory is.
const BATCH: usize = 10_000;

/// Trees of formats 1 and 2 that format 3 no longer has.
const DROPPED: [&str; 5] = ["likers", "like_rooms", "liker_tallies", "likes_by_count", "likes_by_time"];

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

/// Brings a directory of format `found` up to this build's format.
pub(super) fn upgrade(t: &Trees, found: u8) -> Result<(), StoreError> {
    tracing::info!(from = found, to = FORMAT_VERSION, "upgrading the data directory");
    if t.db.tree_names().iter().any(|n| n.as_ref() == b"likers") {
        let likers = t.db.open_tree("likers")?;
        let mut liked_by = Writer::new(&t.liked_by);
        for item in likers.iter() {
            let (k, _) = item?;
            // slug \0 photo \0 liker → slug \0 liker \0 photo (none of them holds a separator).
            let parts: Vec<&[u8]> = k.split(|&b| b == 0).collect();
            let [slug, photo, liker] = parts.as_slice() else { continue };
            let (Ok(slug), Ok(photo), Ok(liker)) =
                (std::str::from_utf8(slug), std::str::from_utf8(photo), std::str::from_utf8(liker))
            else {
                continue;
            };
            liked_by.insert(key3(slug, liker, photo), Vec::new())?;
        }
        liked_by.finish()?;
    }
    t.db.flush()?;
    for name in DROPPED {
        t.db.drop_tree(name)?;
    }
    t.meta.insert(FORMAT_KEY, &[FORMAT_VERSION])?;
    t.db.flush()?;
    Ok(())
}
