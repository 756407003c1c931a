//! Coalescing of one room's presence changes: the first change of a quiet room goes at once,
//! later ones within [`WINDOW`] merge into one message at its end.

use std::time::{Duration, Instant};

use crate::engine::Sid;
use crate::protocol::names;

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
}
