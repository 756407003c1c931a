//! Which rooms changed since the admin room was last told (see `socket::admin_rooms`, which
//! sends their summaries), and which events' admins heard that a cap on liked photos was
//! reached.

use std::collections::HashSet;
use std::sync::Mutex;

use tokio::sync::Notify;

use crate::types::Slug;

#[derive(Default)]
pub struct AdminFeed {
    dirty: Mutex<HashSet<Slug>>,
    wake: Notify,
    /// Events whose cap on liked photos admins have been told about. Bounded by the events
    /// that reached the cap, each of which holds that many records on disk.
    like_cap_told: Mutex<HashSet<Slug>>,
}

impl AdminFeed {
    /// Marks a room as changed.
    pub fn touch(&self, slug: &Slug) {
        let mut d = self.dirty.lock().unwrap_or_else(|p| p.into_inner());
        if d.insert(slug.clone()) && d.len() == 1 {
            self.wake.notify_one();
        }
    }

    /// True the first time (in this process) that `slug` reached its cap on liked photos.
    pub fn first_like_cap(&self, slug: &Slug) -> bool {
        self.like_cap_told.lock().unwrap_or_else(|p| p.into_inner()).insert(slug.clone())
    }

    /// Resolves when a room was marked since the last [`AdminFeed::take`] emptied the set.
    pub async fn woken(&self) {
        self.wake.notified().await;
    }

    /// The rooms marked since the last call.
    pub fn take(&self) -> HashSet<Slug> {
        std::mem::take(&mut *self.dirty.lock().unwrap_or_else(|p| p.into_inner()))
    }
}
