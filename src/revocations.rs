//! Events whose access rules an admin changed (status, owner, deletion), waiting for the
//! janitor to check their sockets (see `socket::revoke`).

use std::sync::Mutex;

use tokio::sync::Notify;

use crate::types::Slug;

/// Events that admin actions changed since the janitor last looked, and the janitor's wake-up.
#[derive(Default)]
pub struct Revoker {
    changed: Mutex<Vec<Slug>>,
    wake: Notify,
}

impl Revoker {
    /// An event's status or owner changed, or it was deleted: check its sockets now.
    pub fn event_changed(&self, slug: &Slug) {
        {
            let mut changed = self.changed.lock().unwrap_or_else(|p| p.into_inner());
            if !changed.contains(slug) {
                changed.push(slug.clone());
            }
        }
        // A permit is kept when the janitor is busy, so the change is not missed.
        self.wake.notify_one();
    }

    /// Resolves when [`Revoker::event_changed`] was called.
    pub async fn woken(&self) {
        self.wake.notified().await;
    }

    /// The events changed since the last call.
    pub fn take(&self) -> Vec<Slug> {
        std::mem::take(&mut *self.changed.lock().unwrap_or_else(|p| p.into_inner()))
    }
}
