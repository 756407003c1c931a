//! A busy room's lane: its window, and the order of its changes and messages (see [`Lane`]).

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use super::window::{End, Kind, Now, Pending, Window};
use super::{Change, Presence, shrink};
use crate::engine::Sid;
use crate::types::{GuestSessionId, Slug};

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
        let lane = inner
            .lanes
            .entry(slug.clone())
            .or_insert_with(|| Arc::new(Lane { slug: slug.clone(), state: Mutex::default() }));
        lane.clone()
    }

    /// Applies `op` to the room of `slug` and, under the room's lane, lets `send` send what goes
    /// out at once. Returns the change, and the lane if a window opened (start its timer task).
    pub fn announce(
        &self,
        slug: &Slug,
        op: Op<'_>,
        now: Instant,
        send: impl FnOnce(Now, Change),
    ) -> (Change, Option<Arc<Lane>>) {
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

    use std::time::Duration;

    fn at(t0: Instant, ms: u64) -> Instant {
        t0 + Duration::from_millis(ms)
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
}
