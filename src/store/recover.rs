//! Recovery from a storage fault in the same process.
//!
//! sled keeps an I/O error sticky: after one failed write (a full disk, a read-only remount),
//! every later operation on that database fails the same way, even once the fault is gone. So
//! before the breaker's trial write the store checks the database; if it is stuck, and the
//! filesystem takes a probe write again, it drops every handle and opens the directory anew.
//! What was acknowledged was flushed before it was acknowledged, so the reopened database holds
//! it. A reopen that fails after the probe succeeded leaves nothing to serve from: the store
//! reports itself lost and the server exits non-zero, for systemd to restart it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::trees::{Trees, open_trees};
use super::{Store, StoreError};

/// How long a reopen waits for operations still holding the old database to finish. They hold
/// it for one synchronous call each, so this is a backstop.
const RELEASE_WAIT: Duration = Duration::from_secs(2);

impl Store {
    /// Runs before the breaker's trial write: a database stuck on an old error is reopened first.
    /// An error here fails the trial (the breaker stays open).
    pub(super) fn recover_for_trial(&self) -> Result<(), StoreError> {
        let stuck = match self.t()?.db.flush() {
            Ok(_) => return Ok(()),
            Err(e) => e,
        };
        if let Err(e) = self.home.probe() {
            tracing::warn!(error = %e, "storage still failing: the data directory does not take writes");
            return Err(StoreError::Sled(stuck));
        }
        tracing::warn!(error = %stuck, "storage engine kept an earlier error; reopening the database");
        self.reopen()
    }

    /// Replaces the database with a fresh open of the same directory.
    pub fn reopen(&self) -> Result<(), StoreError> {
        let mut slot = self.slot.write().unwrap_or_else(|p| p.into_inner());
        let Some(old) = slot.take() else { return Err(StoreError::Unavailable) };
        // sled holds its files locked until the last handle is gone: wait for the old database
        // to be ours alone, then drop it.
        let old = match release(old) {
            Ok(trees) => trees,
            Err(still_shared) => {
                *slot = Some(still_shared);
                return Err(StoreError::Unavailable);
            }
        };
        drop(old);
        match open_trees(&self.home.dir, self.cache_bytes) {
            Ok(t) => {
                *slot = Some(Arc::new(t));
                tracing::warn!(dir = %self.home.dir.display(), "storage reopened");
                Ok(())
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot reopen the database: the server will exit");
                self.lost.send_replace(true);
                Err(e)
            }
        }
    }

    /// True once a reopen has failed: nothing can be stored any more in this process.
    pub fn is_lost(&self) -> bool {
        *self.lost.borrow()
    }

    /// Resolves once the store is lost (see [`Store::is_lost`]).
    pub async fn wait_lost(&self) {
        let mut rx = self.lost.subscribe();
        let _ = rx.wait_for(|lost| *lost).await;
    }
}

fn release(mut old: Arc<Trees>) -> Result<Trees, Arc<Trees>> {
    let deadline = Instant::now() + RELEASE_WAIT;
    loop {
        match Arc::try_unwrap(old) {
            Ok(trees) => return Ok(trees),
            Err(shared) if Instant::now() >= deadline => return Err(shared),
            Err(shared) => {
                old = shared;
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{LikerKey, PhotoId, Slug};

    #[tokio::test]
    async fn reopen_keeps_data_and_the_directory_lock() {
        let dir = tempfile::tempdir().unwrap();
        let st = Store::open(dir.path()).unwrap();
        let (s, p) = (Slug::parse("w").unwrap(), PhotoId::parse("p").unwrap());
        st.like(&s, &p, &LikerKey::from_stored("g".into())).await.unwrap();
        st.reopen().unwrap();
        assert!(!st.is_lost());
        assert_eq!(st.room_likes(&s, 10).unwrap(), vec![(p.clone(), 1)]);
        // Writes go to the reopened database and are durable there.
        st.like(&s, &p, &LikerKey::from_stored("h".into())).await.unwrap();
        assert_eq!(st.room_likes(&s, 10).unwrap(), vec![(p, 2)]);
        assert!(matches!(Store::open(dir.path()), Err(StoreError::Locked(_))));
    }

    #[tokio::test]
    async fn a_healthy_database_is_not_reopened_for_a_trial() {
        let dir = tempfile::tempdir().unwrap();
        let st = Store::open(dir.path()).unwrap();
        let before = Arc::as_ptr(&st.t().unwrap());
        st.recover_for_trial().unwrap();
        assert_eq!(before, Arc::as_ptr(&st.t().unwrap()));
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn data_directory_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let _st = Store::open(&data).unwrap();
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&data), 0o700);
        for entry in std::fs::read_dir(&data).unwrap() {
            let path = entry.unwrap().path();
            assert_eq!(mode(&path) & 0o077, 0, "{} is open to other users", path.display());
        }
    }
}
