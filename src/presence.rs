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
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::engine::Sid;
use crate::protocol::names;
use crate::types::{GuestSessionId, Slug};

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
        Room { sockets: HashMap::new(), guests: HashMap::new(), last_activity: Instant::now(), persisted: Instant::now() }
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

/// How long a busy room gathers its presence changes into one broadcast.
pub const WINDOW: Duration = Duration::from_millis(250);

/// Which presence event a change is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Joined,
    Left,
}

impl Kind {
    pub fn event(self) -> &'static str {
        match self {
            Kind::Joined => names::GUEST_JOINED,
            Kind::Left => names::GUEST_LEFT,
        }
    }
}

/// What a change asks to be sent at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Now {
    /// The room was quiet: the whole room hears it now (a joiner with the rest, before its
    /// snapshot), and a window opens.
    Room,
    /// The room is busy: the joiner hears it now, the others when the window ends.
    Joiner,
    /// The room is busy and nobody is owed a message now (a leave).
    Later,
}

/// The broadcast a window owes when it ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pending {
    /// Named after the window's last change.
    pub kind: Kind,
    /// The joiner whose join was the window's last change: it was told at once, with the count
    /// this broadcast carries. Earlier joiners of the window are not skipped, since their own
    /// message predates the last change.
    pub except: Option<Sid>,
}

/// Where a window stands when its end has come.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    /// Send this now; a new window opens, so the next change waits its turn too.
    Send(Pending),
    /// Nothing changed during the window: the room is quiet again.
    Quiet,
    /// Not yet (a timer that woke early).
    At(Instant),
}

/// One room's coalescing state; `open` is `None` while the room is quiet.
#[derive(Debug, Default)]
pub struct Window {
    open: Option<(Instant, Option<Pending>)>,
}

impl Window {
    /// A join (`joiner` is its socket) or a leave, at `now`.
    pub fn change(&mut self, now: Instant, kind: Kind, joiner: Option<Sid>) -> Now {
        match &mut self.open {
            None => {
                self.open = Some((now + WINDOW, None));
                Now::Room
            }
            Some((_, pending)) => {
                *pending = Some(Pending { kind, except: joiner });
                if joiner.is_some() { Now::Joiner } else { Now::Later }
            }
        }
    }

    /// When the open window ends.
    pub fn ends(&self) -> Option<Instant> {
        self.open.map(|(at, _)| at)
    }

    /// The window's end, at `now`.
    pub fn end(&mut self, now: Instant) -> End {
        match &mut self.open {
            None => End::Quiet,
            Some((at, _)) if now < *at => End::At(*at),
            Some((at, pending)) => match pending.take() {
                Some(p) => {
                    *at = now + WINDOW;
                    End::Send(p)
                }
                None => {
                    self.open = None;
                    End::Quiet
                }
            },
        }
    }
}

/// The presence messages of one busy room.
///
/// Every membership change of the room, and everything sent about it, happens under this lock:
/// so a room's presence messages go out in the order of its changes and each carries the count
/// of its moment (a window's end could otherwise send an older count after a joiner's newer
/// one). Sending is a non-blocking push per member, so the lock is held briefly. A window's
/// message goes to the members at its end: one who left meanwhile is not sent it.
///
/// Each busy room has a timer task of its own (`socket::membership::run_lane`): it sleeps until the window ends,
/// sends what the window gathered, and ends, with the lane, after a window without change. One
/// task per busy room rather than one for all rooms: it wakes exactly at its room's deadline with
/// no shared timer queue to keep in order, one large room's broadcast does not hold back the
/// others', and nothing needs sweeping: a quiet room has neither task nor lane, so memory
/// follows the rooms that changed within the last two windows.
pub struct Lane {
    slug: Slug,
    state: Mutex<LaneState>,
}

#[derive(Default)]
struct LaneState {
    window: Window,
    /// Set when the lane leaves the table; a change that raced for it takes a fresh one.
    retired: bool,
}

impl Lane {
    fn lock(&self) -> MutexGuard<'_, LaneState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn slug(&self) -> &Slug {
        &self.slug
    }

    /// When the lane's current window ends, if one is open.
    pub fn window_ends(&self) -> Option<Instant> {
        self.lock().window.ends()
    }
}

/// A membership change.
#[derive(Clone, Copy, Debug)]
pub enum Op<'a> {
    Join(Sid, Option<&'a GuestSessionId>),
    Leave(Sid),
}

impl Presence {
    fn lane(&self, slug: &Slug) -> Arc<Lane> {
        let mut inner = self.lock();
        let lane = inner.lanes.entry(slug.clone()).or_insert_with(|| Arc::new(Lane { slug: slug.clone(), state: Mutex::default() }));
        lane.clone()
    }

    /// Applies `op` to the room of `slug` and, under the room's lane, lets `send` send what goes
    /// out at once. Returns the change, and the lane if a window opened (start its timer task).
    pub fn announce(&self, slug: &Slug, op: Op<'_>, now: Instant, send: impl FnOnce(Now, Change)) -> (Change, Option<Arc<Lane>>) {
        let mut send = Some(send);
        loop {
            let lane = self.lane(slug);
            let mut st = lane.lock();
            if st.retired {
                continue;
            }
            let (change, kind, joiner) = match op {
                Op::Join(sid, guest) => (self.join(slug, sid, guest), Kind::Joined, Some(sid)),
                Op::Leave(sid) => (self.leave(slug, sid), Kind::Left, None),
            };
            let now = st.window.change(now, kind, joiner);
            if let Some(send) = send.take() {
                send(now, change);
            }
            drop(st);
            return (change, (now == Now::Room).then_some(lane));
        }
    }

    /// Ends `lane`'s window if its time has come: `send` gets what the window owes and the
    /// room's count now, under the lane. Returns when to come back; `None` once the room is quiet
    /// and the lane gone.
    pub fn end_window(&self, lane: &Arc<Lane>, now: Instant, send: impl FnOnce(Pending, usize)) -> Option<Instant> {
        let mut st = lane.lock();
        match st.window.end(now) {
            End::At(at) => Some(at),
            End::Send(p) => {
                send(p, self.guest_count(&lane.slug));
                st.window.ends()
            }
            End::Quiet => {
                st.retired = true;
                let mut inner = self.lock();
                if inner.lanes.get(&lane.slug).is_some_and(|l| Arc::ptr_eq(l, lane)) {
                    inner.lanes.remove(&lane.slug);
                    shrink(&mut inner.lanes);
                }
                None
            }
        }
    }

    /// Rooms with a presence lane (busy now).
    pub fn busy_rooms(&self) -> usize {
        self.lock().lanes.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(t0: Instant, ms: u64) -> Instant {
        t0 + Duration::from_millis(ms)
    }

    #[test]
    fn first_change_of_a_quiet_room_goes_at_once() {
        let t0 = Instant::now();
        let mut w = Window::default();
        assert_eq!(w.change(t0, Kind::Joined, Some(Sid::new())), Now::Room);
        assert_eq!(w.ends(), Some(at(t0, 250)));
        // A window without further change: nothing owed, and the room is quiet again.
        assert_eq!(w.end(at(t0, 100)), End::At(at(t0, 250)), "a timer that wakes early waits");
        assert_eq!(w.end(at(t0, 250)), End::Quiet);
        assert_eq!(w.ends(), None);
        assert_eq!(w.change(at(t0, 300), Kind::Left, None), Now::Room, "quiet again: at once");
    }

    #[test]
    fn changes_within_a_window_merge_into_one_named_after_the_last() {
        let t0 = Instant::now();
        let mut w = Window::default();
        let (a, b, c) = (Sid::new(), Sid::new(), Sid::new());
        assert_eq!(w.change(t0, Kind::Joined, Some(a)), Now::Room);
        assert_eq!(w.change(at(t0, 10), Kind::Joined, Some(b)), Now::Joiner);
        assert_eq!(w.change(at(t0, 20), Kind::Left, None), Now::Later);
        assert_eq!(w.change(at(t0, 30), Kind::Joined, Some(c)), Now::Joiner);
        // One message for the three, named after the last, skipping only the last joiner (told
        // at once with the same count); b, told earlier, gets it.
        assert_eq!(w.end(at(t0, 250)), End::Send(Pending { kind: Kind::Joined, except: Some(c) }));
        // The room stays busy for another window: the next change waits for its end.
        assert_eq!(w.ends(), Some(at(t0, 500)));
        assert_eq!(w.change(at(t0, 260), Kind::Joined, Some(a)), Now::Joiner);
        assert_eq!(w.change(at(t0, 270), Kind::Left, None), Now::Later);
        assert_eq!(w.end(at(t0, 500)), End::Send(Pending { kind: Kind::Left, except: None }));
        assert_eq!(w.end(at(t0, 750)), End::Quiet);
    }

    #[test]
    fn the_last_change_is_never_lost() {
        let t0 = Instant::now();
        let mut w = Window::default();
        w.change(t0, Kind::Joined, Some(Sid::new()));
        // A change just before the window's end, and a timer that fires late.
        w.change(at(t0, 249), Kind::Left, None);
        assert_eq!(w.end(at(t0, 400)), End::Send(Pending { kind: Kind::Left, except: None }));
        assert_eq!(w.ends(), Some(at(t0, 650)), "the next window counts from the send");
        // A steady stream of changes: each window that had one ends with exactly one send.
        let mut sends = 0;
        let mut last = None;
        for i in 0..40u64 {
            let now = at(t0, 400 + i * 30);
            if let Some(end) = w.ends().filter(|e| *e <= now)
                && let End::Send(_) = w.end(end)
            {
                sends += 1;
            }
            let kind = if i % 3 == 0 { Kind::Left } else { Kind::Joined };
            if w.change(now, kind, None) == Now::Room {
                sends += 1;
            }
            last = Some(kind);
        }
        while let Some(end) = w.ends() {
            if let End::Send(p) = w.end(end) {
                sends += 1;
                assert_eq!(Some(p.kind), last, "named after the last change");
            }
        }
        // 40 changes over 1.2 s: one send per 250 ms, not one per change.
        assert!((5..=6).contains(&sends), "{sends}");
    }

    #[test]
    fn lanes_order_changes_and_go_away_when_the_room_is_quiet() {
        let p = Presence::default();
        let s = Slug::parse("party").unwrap();
        let g = GuestSessionId::parse("g1").unwrap();
        let t0 = Instant::now();
        let (a, b) = (Sid::new(), Sid::new());
        let mut told = Vec::new();
        let (c, lane) = p.announce(&s, Op::Join(a, Some(&g)), t0, |now, c| told.push((now, c.guest_count)));
        assert_eq!(c.guest_count, 1);
        let lane = lane.expect("a quiet room opens a window");
        assert_eq!(p.busy_rooms(), 1);
        let (_, none) = p.announce(&s, Op::Join(b, None), at(t0, 5), |now, c| told.push((now, c.guest_count)));
        assert!(none.is_none(), "one timer per busy room");
        p.announce(&s, Op::Leave(a), at(t0, 6), |now, c| told.push((now, c.guest_count)));
        assert_eq!(told, vec![(Now::Room, 1), (Now::Joiner, 1), (Now::Later, 0)]);
        let mut sent = Vec::new();
        assert_eq!(p.end_window(&lane, at(t0, 100), |_, _| panic!("early")), Some(at(t0, 250)));
        let next = p.end_window(&lane, at(t0, 250), |pending, count| sent.push((pending, count)));
        assert_eq!(sent, vec![(Pending { kind: Kind::Left, except: None }, 0)]);
        assert_eq!(p.end_window(&lane, next.unwrap(), |_, _| panic!("nothing changed")), None);
        assert_eq!(p.busy_rooms(), 0, "a quiet room keeps no lane");
        // A change after the lane retired opens a fresh one.
        let (_, fresh) = p.announce(&s, Op::Leave(b), at(t0, 600), |now, _| assert_eq!(now, Now::Room));
        assert!(fresh.is_some_and(|l| !Arc::ptr_eq(&l, &lane)));
    }

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
            .map(|i| (Slug::parse(&format!("room-{i}")).unwrap(), GuestSessionId::parse(&format!("g{i}")).unwrap(), Sid::new()))
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
