//! Access that ends while a socket is connected.
//!
//! A guest may stay only while its session exists, belongs to its event and has not expired, and
//! the event exists and is not archived; an owner only while the events whose rooms it is in
//! still name it as `ownerId`. Every check of that — when a guest or owner acts, and when the
//! janitor looks for sockets that lost access — goes through the predicates here, so the
//! handshake's rules and the disconnects cannot drift apart.
//!
//! Admin actions over HTTP (`Revoker::event_changed`, in [`crate::revocations`]) wake the janitor at once for that event;
//! expiry, which nobody announces, is found by a pass over all sockets every [`CHECK_EVERY`].
//!
//! A revoked socket is disconnected from the server side, owners included: an owner socket in
//! several events loses all of them when one is reassigned. Quietly taking it out of one room
//! would leave a client that believes it is still a member and receives nothing; a disconnect is
//! a signal every client handles, and its reconnect re-joins, with a fresh snapshot, the events
//! it still owns.

use std::collections::HashMap;
use std::time::Duration;

use crate::engine::Session;

use crate::auth::Identity;
use crate::clock::now_ms;
use crate::limits::{Refusal, refuse};
use crate::socket::Conn;
use crate::state::App;
use crate::store::{EventRecord, GuestSession, StoreError};
use crate::types::{EventStatus, GuestSessionId, Slug};

/// How often every connected socket's access is checked. A session that expires is cut off at
/// most this long after its expiry; each pass reads each distinct session and event once.
pub const CHECK_EVERY: Duration = Duration::from_secs(2);

/// Does this stored session let a guest into `slug` at `now_ms`?
pub fn session_admits(session: Option<&GuestSession>, slug: &Slug, now_ms: i64) -> bool {
    session.is_some_and(|s| s.event_slug == *slug && s.expires_ms > now_ms)
}

/// Does this event (as stored) admit its guests?
pub fn event_admits_guests(event: Option<&EventRecord>) -> bool {
    event.is_some_and(|e| e.status != EventStatus::Archived)
}

/// Is `user_id` the owner of this event (as stored)?
pub fn event_owned_by(event: Option<&EventRecord>, user_id: &str) -> bool {
    event.is_some_and(|e| e.owner_id.as_deref() == Some(user_id))
}

/// May this guest still act in its event? Read at use time, so a revoked guest is refused even
/// before the janitor's pass has disconnected it. Without guest session validation nothing about
/// guests is stored, so nothing can end their access either.
pub fn guest_still_valid(app: &App, session: &GuestSessionId, slug: &Slug) -> Result<bool, StoreError> {
    if !app.config.guest_session_validation {
        return Ok(true);
    }
    Ok(session_admits(app.store.session(session)?.as_ref(), slug, now_ms())
        && event_admits_guests(app.store.event(slug)?.as_ref()))
}

/// Which sockets a pass looks at.
pub enum Scope {
    /// Every socket, sessions included (the periodic pass).
    All,
    /// Sockets of these events, after admin actions: only the events are read (deleting an
    /// event deletes its sessions, and archiving does not touch them).
    Events(Vec<Slug>),
}

impl Scope {
    fn covers(&self, slug: &Slug) -> bool {
        match self {
            Scope::All => true,
            Scope::Events(slugs) => slugs.contains(slug),
        }
    }
}

/// What one pass has read from the store: each event and session at most once. `None` records
/// a failed read: the sockets that depend on it are left alone until a pass can read it.
struct Reads<'a> {
    app: &'a App,
    events: HashMap<Slug, Option<Option<EventRecord>>>,
    sessions: HashMap<GuestSessionId, Option<Option<GuestSession>>>,
    failed: bool,
}

impl Reads<'_> {
    fn event(&mut self, slug: &Slug) -> Option<Option<&EventRecord>> {
        let app = self.app;
        once(&mut self.events, &mut self.failed, slug, || app.store.event(slug))
    }

    fn session(&mut self, id: &GuestSessionId) -> Option<Option<&GuestSession>> {
        let app = self.app;
        once(&mut self.sessions, &mut self.failed, id, || app.store.session(id))
    }
}

/// Reads `key` the first time a pass asks for it; later asks get the same answer.
fn once<'m, K: Eq + std::hash::Hash + Clone, V>(
    reads: &'m mut HashMap<K, Option<Option<V>>>,
    failed: &mut bool,
    key: &K,
    read: impl FnOnce() -> Result<Option<V>, StoreError>,
) -> Option<Option<&'m V>> {
    let got = reads.entry(key.clone()).or_insert_with(|| read().map_err(|e| note_failure(failed, &e)).ok());
    got.as_ref().map(Option::as_ref)
}

fn note_failure(failed: &mut bool, e: &StoreError) {
    if !*failed {
        tracing::warn!(error = %e, "cannot read the registry to check connected sockets");
    }
    *failed = true;
}

/// Has this socket lost access? `false` when that cannot be told now.
fn lost_access(conn: &Conn, scope: &Scope, reads: &mut Reads<'_>, guests_checked: bool, now: i64) -> bool {
    match &conn.identity {
        Identity::Admin { .. } => false,
        Identity::Guest { session, slug } => {
            if !guests_checked || !scope.covers(slug) {
                return false;
            }
            if reads.event(slug).is_some_and(|e| !event_admits_guests(e)) {
                return true;
            }
            matches!(scope, Scope::All) && reads.session(session).is_some_and(|s| !session_admits(s, slug, now))
        }
        Identity::Owner { user_id } => {
            let rooms: Vec<Slug> = conn
                .rooms
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .filter(|s| scope.covers(s))
                .cloned()
                .collect();
            rooms.iter().any(|slug| reads.event(slug).is_some_and(|e| !event_owned_by(e, user_id)))
        }
    }
}

/// Disconnects, from the server side, every connected socket in `scope` that has lost access;
/// returns how many.
pub fn pass(app: &App, scope: &Scope) -> usize {
    let Some(engine) = app.engine() else { return 0 };
    if matches!(scope, Scope::Events(slugs) if slugs.is_empty()) {
        return 0;
    }
    let mut reads = Reads { app, events: HashMap::new(), sessions: HashMap::new(), failed: false };
    let (guests_checked, now) = (app.config.guest_session_validation, now_ms());
    let mut cut = 0;
    for s in engine.sockets() {
        let Some(conn) = crate::socket::conn(&s) else { continue };
        if lost_access(&conn, scope, &mut reads, guests_checked, now) {
            cut_off(&s, &conn);
            cut += 1;
        }
    }
    cut
}

fn cut_off(s: &std::sync::Arc<Session>, conn: &Conn) {
    refuse(Refusal::Connection, "access_revoked");
    tracing::debug!(sid = %s.sid, kind = conn.identity.kind(), "access ended: socket disconnected");
    // It leaves its rooms at once; the disconnect packet goes out after what is queued.
    s.disconnect();
}
