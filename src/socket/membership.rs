//! Presence as the room sees it: a join or leave changes the count in [`crate::presence`], and
//! this is where the change goes out (`guest:joined` / `guest:left`), at once or when a busy
//! room's window ends.

use std::sync::Arc;
use std::time::Instant;

use crate::clock::iso_now;
use crate::engine::{Session, Sid, StateKey};
use crate::presence::{Change, Kind, Lane, Now, Op};
use crate::protocol::outgoing::Presence as PresencePayload;
use crate::state::App;
use crate::types::{GuestSessionId, Slug};

fn presence_payload(guest_count: usize, slug: &Slug) -> PresencePayload<'_> {
    PresencePayload { guest_count, event_slug: slug.as_str(), timestamp: iso_now() }
}

/// A room's guest count is state: `guest:joined` and `guest:left` replace each other in a
/// reader's queue (see [`crate::engine::outbox`]).
fn state_key(slug: &Slug) -> StateKey {
    StateKey::from(format!("p:{}", slug.as_str()))
}

/// Adds `s` (already in the room's Socket.IO room) to the room of `slug`, and tells the room:
/// the joiner at once, before its snapshot; the others at once if the room was quiet, else when
/// the window ends.
pub fn announce_join(app: &App, s: &Arc<Session>, slug: &Slug, guest: Option<&GuestSessionId>) -> Change {
    let event = Kind::Joined.event();
    let key = state_key(slug);
    let (change, opened) = app.presence.announce(slug, Op::Join(s.sid, guest), Instant::now(), |now, change| {
        let payload = presence_payload(change.guest_count, slug);
        match now {
            Now::Room => {
                app.broadcast_keyed(&slug.room(), None, event, &payload, Some(&key));
            }
            Now::Joiner => {
                s.emit_state(event, &payload, &key);
            }
            Now::Later => {}
        }
    });
    if let Some(lane) = opened {
        tokio::spawn(run_lane(app.clone(), lane));
    }
    change
}

/// Takes `sid` (already out of the room's Socket.IO room) out of the room of `slug`, and tells
/// the room: at once if it was quiet, else when the window ends.
pub fn announce_leave(app: &App, sid: Sid, slug: &Slug) -> Change {
    let (change, opened) = app.presence.announce(slug, Op::Leave(sid), Instant::now(), |now, change| {
        if now == Now::Room {
            let payload = presence_payload(change.guest_count, slug);
            app.broadcast_keyed(&slug.room(), None, Kind::Left.event(), &payload, Some(&state_key(slug)));
        }
    });
    if let Some(lane) = opened {
        tokio::spawn(run_lane(app.clone(), lane));
    }
    change
}

/// The timer of one busy room (see [`Lane`]): runs until a window passes without change.
pub async fn run_lane(app: App, lane: Arc<Lane>) {
    let room = lane.slug().room();
    let key = state_key(lane.slug());
    let Some(mut at) = lane.window_ends() else { return };
    loop {
        tokio::time::sleep_until(at.into()).await;
        let next = app.presence.end_window(&lane, Instant::now(), |p, count| {
            let payload = presence_payload(count, lane.slug());
            app.broadcast_keyed(&room, p.except, p.kind.event(), &payload, Some(&key));
        });
        match next {
            Some(t) => at = t,
            None => return,
        }
    }
}
