//! Joining and leaving rooms (`event:join`, `event:leave`, `admin:join`), and presence as the
//! room sees it: a join or leave changes the count in [`crate::presence`], and this is where the
//! change goes out (`guest:joined` / `guest:left`), at once or when a busy room's window ends.

use std::sync::Arc;
use std::time::Instant;

use serde_json::Value;

use super::Conn;
use crate::auth::Identity;
use crate::clock::iso_now;
use crate::engine::{Session, Sid, StateKey};
use crate::error::WireError;
use crate::presence::{Change, Kind, Lane, Now, Op};
use crate::protocol::outgoing::{self as out, Presence as PresencePayload, names};
use crate::state::App;
use crate::types::{ADMIN_ROOM, GuestSessionId, LikerKey, Slug};

pub(super) fn guest_of(identity: &Identity) -> Option<&GuestSessionId> {
    match identity {
        Identity::Guest { session, .. } => Some(session),
        _ => None,
    }
}

/// `event:join`: checks access, joins the room, tells the room, and sends the joiner its
/// snapshot.
pub fn join(app: &App, s: &Arc<Session>, conn: &Conn, slug: &Slug) -> Result<Value, WireError> {
    if !super::ops::can_access(app, &conn.identity, slug)? {
        return Err(WireError::AccessDenied);
    }
    let Some(engine) = app.engine() else { return Err(WireError::Unavailable) };
    let guest = guest_of(&conn.identity);
    engine.join(s, &slug.room());
    {
        let mut rooms = conn.rooms();
        if !rooms.contains(slug) {
            rooms.push(slug.clone());
        }
    }
    *conn.roomless() = None;
    let change = announce_join(app, s, slug, guest);
    let record = app.store.record_join(slug, guest.map(LikerKey::guest).as_ref(), change.guest_count as u64)?;
    app.admin_feed.touch(slug);

    let max = app.config.snapshot_max_photos;
    let likes =
        app.store.room_likes(slug, max)?.into_iter().map(|(p, c)| (p.as_str().to_string(), Value::from(c))).collect();
    let liked_by_me =
        app.store.liked_by(slug, &conn.identity.liker(), max)?.into_iter().map(|p| p.as_str().to_string()).collect();
    let snapshot = out::Snapshot {
        event_slug: slug.as_str(),
        guest_count: change.guest_count,
        total_guests: record.total_guests,
        peak_guests: record.peak_guests,
        likes,
        liked_by_me,
        timestamp: iso_now(),
    };
    s.emit(names::SNAPSHOT, &snapshot);
    Ok(serde_json::json!({ "ok": true, "guestCount": change.guest_count }))
}

/// Leaves one room and tells the room; a socket that was not in it changes nothing.
pub fn leave(app: &App, s: &Session, conn: &Conn, slug: &Slug) {
    {
        let mut rooms = conn.rooms();
        let Some(i) = rooms.iter().position(|r| r == slug) else { return };
        rooms.swap_remove(i);
        if rooms.is_empty() {
            *conn.roomless() = Some(std::time::Instant::now());
        }
    }
    if let Some(engine) = app.engine() {
        engine.leave(s, &slug.room());
    }
    announce_leave(app, s.sid, slug);
    if let Err(e) = app.store.touch_room(slug) {
        tracing::warn!(error = %e, "cannot record room access");
    }
    app.admin_feed.touch(slug);
}

/// Who may be in the admin room: admins only.
pub fn may_join_admin_room(identity: &Identity) -> Result<(), WireError> {
    if identity.is_admin() { Ok(()) } else { Err(WireError::AdminRequired) }
}

/// `admin:join`: the admin room, for admins only.
pub fn admin_join(app: &App, s: &Arc<Session>, conn: &Conn) -> Result<Value, WireError> {
    may_join_admin_room(&conn.identity)?;
    if let Some(engine) = app.engine() {
        engine.join(s, ADMIN_ROOM);
    }
    Ok(serde_json::json!({ "ok": true }))
}

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
