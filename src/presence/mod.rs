//! Who is in which room right now: memory only, rebuilt by re-joins after a restart.
//!
//! `guestCount` counts distinct guest sessions, not sockets: a phone with three tabs open is one
//! guest. Each room keeps, per session, how many of its sockets are in the room; per-session
//! entries go as soon as their last socket leaves. A room itself stays in memory while it has
//! members or recent activity; the janitor evicts it once it has been empty and quiet for
//! `rooms.idle_evict` (its counters live on disk and come back with the next join).
//!
//! Presence broadcasts are coalesced per room (see [`Lane`]): when a venue's Wi-Fi comes back
//! and G guests re-join at once, one message per join to the whole room would be G² messages,
//! enough to fill every phone's outgoing queue and have it shed.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::engine::Sid;
use crate::types::{GuestSessionId, Slug};

mod lane;
mod window;

pub use lane::{Lane, Op};
pub use window::{Kind, Now};

/// How far a room's stored access time may lag its activity.
pub const PERSIST_EVERY: Duration = Duration::from_secs(1);

struct Room {
    /// Every member socket, with its guest session if it is a guest.
    sockets: HashMap<Sid, Option<GuestSessionId>>,
    /// Sockets per guest session in this room.
    guests: HashMap<GuestSessionId, u32>,
    /// Last join, leave or event in this room.
    last_activity: Instant,
    /// When activity was last written to the room's stored access time.
    persisted: Instant,
}

impl Default for Room {
    fn default() -> Room {
        Room {
            sockets: HashMap::new(),
            guests: HashMap::new(),
            last_activity: Instant::now(),
            persisted: Instant::now(),
        }
    }
}

#[derive(Default)]
struct Inner {
    /// Boxed: an evicted room's slot in the table then costs a pointer, not a whole `Room`.
    rooms: HashMap<Slug, Box<Room>>,
    /// Connected sockets per guest session (all rooms), for the per-session cap.
    session_sockets: HashMap<GuestSessionId, usize>,
    /// Presence lanes of the rooms that are busy now; a quiet room has none.
    lanes: HashMap<Slug, Arc<Lane>>,
}

/// Shrinks a table that is mostly empty, keeping room to grow so that it does not thrash.
fn shrink<K: Eq + std::hash::Hash, V>(table: &mut HashMap<K, V>) {
    if table.capacity() > 4 * table.len() + 64 {
        table.shrink_to(2 * table.len());
    }
}

/// Shared presence table. Critical sections are a few hash operations; a `std` mutex is right.
#[derive(Default)]
pub struct Presence {
    inner: Mutex<Inner>,
}

/// What a join or leave did to a room.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Change {
    /// Distinct guests in the room afterwards.
    pub guest_count: usize,
    /// False when the socket already was (for a join) or was not (for a leave) a member.
    pub changed: bool,
}

impl Presence {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds `sid` (a guest of `guest`, or not a guest) to the room of `slug`.
    pub fn join(&self, slug: &Slug, sid: Sid, guest: Option<&GuestSessionId>) -> Change {
        let mut inner = self.lock();
        let room = inner.rooms.entry(slug.clone()).or_default();
        room.last_activity = Instant::now();
        let changed = match room.sockets.entry(sid) {
            Entry::Occupied(_) => false,
            Entry::Vacant(v) => {
                v.insert(guest.cloned());
                if let Some(g) = guest {
                    *room.guests.entry(g.clone()).or_insert(0) += 1;
                }
                true
            }
        };
        Change { guest_count: room.guests.len(), changed }
    }

    /// Removes `sid` from the room of `slug`.
    pub fn leave(&self, slug: &Slug, sid: Sid) -> Change {
        let mut inner = self.lock();
        let Some(room) = inner.rooms.get_mut(slug) else {
            return Change { guest_count: 0, changed: false };
        };
        room.last_activity = Instant::now();
        let changed = match room.sockets.remove(&sid) {
            None => false,
            Some(None) => true,
            Some(Some(g)) => {
                if let Entry::Occupied(mut e) = room.guests.entry(g) {
                    *e.get_mut() -= 1;
                    if *e.get() == 0 {
                        e.remove();
                    }
                }
                true
            }
        };
        if room.sockets.is_empty() {
            // An empty room may stay in memory for `idle_evict`; without its members' capacity.
            room.sockets = HashMap::new();
            room.guests = HashMap::new();
        }
        Change { guest_count: room.guests.len(), changed }
    }

    /// Notes activity in a room. True when the stored access time is due for a write: the room
    /// is not in memory, or it was last written `PERSIST_EVERY` ago (access times may lag that
    /// much, and a busy room must not cost a disk write per like).
    pub fn touch(&self, slug: &Slug) -> bool {
        let now = Instant::now();
        match self.lock().rooms.get_mut(slug) {
            Some(r) => {
                r.last_activity = now;
                let due = now.duration_since(r.persisted) >= PERSIST_EVERY;
                if due {
                    r.persisted = now;
                }
                due
            }
            None => true,
        }
    }

    /// Drops the rooms that have had no member and no activity for `idle`; returns them.
    ///
    /// The tables give back the memory a past crowd of rooms and sessions left behind: a hash
    /// table keeps its largest size otherwise, and RSS would stay at the busiest hour's.
    pub fn evict_idle(&self, idle: Duration) -> Vec<Slug> {
        let now = Instant::now();
        let mut evicted = Vec::new();
        let mut inner = self.lock();
        inner.rooms.retain(|slug, r| {
            let keep = !r.sockets.is_empty() || now.duration_since(r.last_activity) < idle;
            if !keep {
                evicted.push(slug.clone());
            }
            keep
        });
        shrink(&mut inner.rooms);
        shrink(&mut inner.session_sockets);
        evicted
    }

    /// When the next empty room becomes evictable (None: no empty room).
    pub fn next_eviction(&self, idle: Duration) -> Option<Instant> {
        self.lock().rooms.values().filter(|r| r.sockets.is_empty()).map(|r| r.last_activity + idle).min()
    }

    /// Distinct guests in a room now.
    pub fn guest_count(&self, slug: &Slug) -> usize {
        self.lock().rooms.get(slug).map(|r| r.guests.len()).unwrap_or(0)
    }

    /// Whether a room is held in memory (members, or recent activity).
    pub fn is_live(&self, slug: &Slug) -> bool {
        self.lock().rooms.contains_key(slug)
    }

    /// Rooms in memory and their distinct guests.
    pub fn live_rooms(&self) -> Vec<(Slug, usize)> {
        self.lock().rooms.iter().map(|(s, r)| (s.clone(), r.guests.len())).collect()
    }

    /// Distinct guests online over all rooms (a guest in two rooms counts twice).
    pub fn guests_online(&self) -> usize {
        self.lock().rooms.values().map(|r| r.guests.len()).sum()
    }

    /// Counts a new socket of `session`, unless it already has `max`.
    pub fn add_session_socket(&self, session: &GuestSessionId, max: usize) -> bool {
        let mut inner = self.lock();
        let n = inner.session_sockets.entry(session.clone()).or_insert(0);
        if *n >= max {
            if *n == 0 {
                inner.session_sockets.remove(session);
            }
            return false;
        }
        *n += 1;
        true
    }

    /// Forgets one socket of `session`.
    pub fn remove_session_socket(&self, session: &GuestSessionId) {
        let mut inner = self.lock();
        if let Entry::Occupied(mut e) = inner.session_sockets.entry(session.clone()) {
            *e.get_mut() = e.get().saturating_sub(1);
            if *e.get() == 0 {
                e.remove();
            }
        }
    }

    #[cfg(test)]
    fn capacities(&self) -> (usize, usize) {
        let inner = self.lock();
        (inner.rooms.capacity(), inner.session_sockets.capacity())
    }

    /// Sizes of the internal tables: (rooms, room memberships, sessions with sockets).
    pub fn table_sizes(&self) -> (usize, usize, usize) {
        let inner = self.lock();
        (inner.rooms.len(), inner.rooms.values().map(|r| r.sockets.len()).sum(), inner.session_sockets.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_distinct_guests_and_shrinks() {
        let p = Presence::default();
        let s = Slug::parse("w").unwrap();
        let g1 = GuestSessionId::parse("g1").unwrap();
        let g2 = GuestSessionId::parse("g2").unwrap();
        let (a, b, c, d) = (Sid::new(), Sid::new(), Sid::new(), Sid::new());
        assert_eq!(p.join(&s, a, Some(&g1)).guest_count, 1);
        assert_eq!(p.join(&s, b, Some(&g1)).guest_count, 1);
        assert_eq!(p.join(&s, c, Some(&g2)).guest_count, 2);
        assert_eq!(p.join(&s, d, None).guest_count, 2);
        assert!(!p.join(&s, d, None).changed);
        assert_eq!(p.leave(&s, a).guest_count, 2);
        assert_eq!(p.leave(&s, b).guest_count, 1);
        assert!(!p.leave(&s, b).changed);
        p.leave(&s, c);
        p.leave(&s, d);
        // Empty but recent: kept until idle.
        assert!(p.is_live(&s));
        assert_eq!(p.table_sizes(), (1, 0, 0));
        assert!(p.evict_idle(Duration::from_secs(60)).is_empty());
        assert!(p.next_eviction(Duration::from_secs(60)).is_some());
        assert_eq!(p.evict_idle(Duration::ZERO), vec![s.clone()]);
        assert!(!p.is_live(&s));
        assert_eq!(p.table_sizes(), (0, 0, 0));
        assert!(p.next_eviction(Duration::ZERO).is_none());
    }

    #[test]
    fn tables_give_memory_back_after_a_crowd() {
        let p = Presence::default();
        let crowd: Vec<_> = (0..5000)
            .map(|i| {
                (
                    Slug::parse(&format!("room-{i}")).unwrap(),
                    GuestSessionId::parse(&format!("g{i}")).unwrap(),
                    Sid::new(),
                )
            })
            .collect();
        for (s, g, sid) in &crowd {
            assert!(p.add_session_socket(g, 8));
            p.join(s, *sid, Some(g));
        }
        for (s, g, sid) in &crowd {
            p.leave(s, *sid);
            p.remove_session_socket(g);
        }
        let (rooms, sessions) = p.capacities();
        assert!(rooms >= 5000 && sessions >= 5000, "{rooms} {sessions}");
        assert_eq!(p.evict_idle(Duration::ZERO).len(), 5000);
        assert!(p.capacities().0 <= 64, "{:?}", p.capacities());
        assert!(p.capacities().1 <= 64, "{:?}", p.capacities());
    }

    #[test]
    fn access_time_writes_are_throttled_per_room() {
        let p = Presence::default();
        let s = Slug::parse("busy").unwrap();
        assert!(p.touch(&s), "a room not in memory is always written");
        p.join(&s, Sid::new(), None);
        assert!(!p.touch(&s), "just joined: the join wrote it");
        assert!(!p.touch(&s));
    }

    #[test]
    fn session_socket_cap() {
        let p = Presence::default();
        let g = GuestSessionId::parse("g").unwrap();
        assert!(p.add_session_socket(&g, 2));
        assert!(p.add_session_socket(&g, 2));
        assert!(!p.add_session_socket(&g, 2));
        p.remove_session_socket(&g);
        assert!(p.add_session_socket(&g, 2));
        p.remove_session_socket(&g);
        p.remove_session_socket(&g);
        assert_eq!(p.table_sizes().2, 0);
    }
}
