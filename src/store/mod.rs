//! Storage in sled. This module alone knows the trees, the key layouts and the value encoding.
//!
//! Values are serde structs encoded with bincode 2 behind a one-byte format version, so a later
//! release can recognise (and convert) what an older one wrote, and refuse what a newer one wrote.
//! Changes that the durability contract covers (likes, like counts, events, sessions, admin users)
//! return only after a group commit made them durable; room totals and access times ride along
//! with the next flush (sled also flushes on its own every 500 ms).
//!
//! `codec` holds the encoding and the key layouts, `trees` the set of trees and opening them;
//! each record family has its file (`rooms`, `registry` for events and guest sessions, `admins`,
//! `likes`), and `retention` deletes what went idle or expired. Writes go through this file's
//! `write`, behind the breaker and the group commit.

mod admins;
pub mod backup;
mod breaker;
mod codec;
mod commit;
mod home;
mod likes;
mod migrate;
mod recover;
mod registry;
mod retention;
mod rooms;
mod trees;

pub use admins::AdminUser;
pub use breaker::{Breaker, Status as BreakerStatus};
pub use codec::FORMAT_VERSION;
pub use commit::{CommitError, Flush};
pub use likes::{LikeCaps, LikeLimit, StagedToggle};
pub use registry::{EventRecord, GuestSession};
pub use rooms::RoomRecord;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::de::DeserializeOwned;

use breaker::Permit;
use codec::{FORMAT_KEY, decode};
use commit::Committer;
use trees::{CurrentDb, Slot, Trees, open_trees};

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

    /// The format version the database records (the `check` command reports it).
    pub fn format_version(&self) -> Result<u8, StoreError> {
        Ok(self.t()?.meta.get(FORMAT_KEY)?.and_then(|v| v.first().copied()).unwrap_or(FORMAT_VERSION))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
