//! The Socket.IO side of the gallery: who a new socket is, and the one place that maps its
//! events to operations. The wire layer ([`crate::engine`]) calls in through [`Gallery`].

#[cfg(test)]
mod access_tests;
pub mod admin_rooms;
pub mod membership;
pub mod ops;
pub mod revoke;

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use serde_json::Value;
use serde_json::value::RawValue;

use crate::auth::{Identity, bearer};
use crate::clock::now_ms;
use crate::engine::{Ext, Finish, Handler, Head, Incoming, Reason, Session, Step};
use crate::error::{ConnectRefusal, WireError};
use crate::limits::socket::{SocketLimiter, Verdict};
use crate::limits::{Refusal, refuse};
use crate::metrics;
use crate::protocol::outgoing::names;
use crate::protocol::{self, ClientEvent};
use crate::state::App;
use crate::types::{GuestSessionId, PhotoId, Slug};

/// Per-socket state, kept in its session by the handshake.
///
/// It lives exactly as long as the session, so its `Drop` releases what the socket holds (the
/// socket count, the guest session's socket slot) on every path.
pub struct Conn {
    pub identity: Identity,
    /// Event rooms this socket is in (the admin room is not tracked here). Nearly always one,
    /// so a vector, which costs a tenth of a set's node.
    pub rooms: Mutex<Vec<Slug>>,
    /// Ordering keys of this socket's events still in flight (see
    /// [`ClientEvent::ordering_key`]). Another event with the same key waits for it, so a failed
    /// flush is undone in the right order.
    in_flight: Mutex<Vec<(Slug, PhotoId)>>,
    /// Rate limits of this socket's events.
    limiter: Mutex<SocketLimiter>,
    /// Since when this socket has been in no event room (`None` while it is in one).
    roomless_since: Mutex<Option<std::time::Instant>>,
    app: App,
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.app.sockets.fetch_sub(1, Ordering::Relaxed);
        if let Some(session) = membership::guest_of(&self.identity) {
            self.app.presence.remove_session_socket(session);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Conn {
    fn rooms(&self) -> std::sync::MutexGuard<'_, Vec<Slug>> {
        lock(&self.rooms)
    }

    fn roomless(&self) -> std::sync::MutexGuard<'_, Option<std::time::Instant>> {
        lock(&self.roomless_since)
    }

    fn in_flight(&self) -> std::sync::MutexGuard<'_, Vec<(Slug, PhotoId)>> {
        lock(&self.in_flight)
    }

    fn limiter(&self) -> std::sync::MutexGuard<'_, SocketLimiter> {
        lock(&self.limiter)
    }

    fn landed(&self, key: &(Slug, PhotoId)) {
        let mut in_flight = self.in_flight();
        if let Some(i) = in_flight.iter().position(|k| k == key) {
            in_flight.swap_remove(i);
        }
    }
}

/// The socket's state, for a session that has connected.
pub fn conn(s: &Session) -> Option<Arc<Conn>> {
    s.ext::<Conn>()
}

fn auth_str<'a>(auth: &'a Value, key: &str) -> Option<&'a str> {
    auth.get(key).and_then(Value::as_str).filter(|s| !s.is_empty())
}

/// Decides who a new connection is, in the order of the contract: token, then guest session.
fn identify(app: &App, auth: &Value, header_token: Option<&str>) -> Result<Identity, ConnectRefusal> {
    // socket.io-client always sends an object (or nothing); anything else is not a client of
    // ours.
    if !(auth.is_object() || auth.is_null()) {
        return Err(ConnectRefusal::AuthenticationFailed);
    }
    let token = auth_str(auth, "token").or(header_token);
    if let Some(identity) = token.and_then(|t| app.tokens.verify(t)) {
        return Ok(identity);
    }
    // An invalid token falls through to guest credentials, as the Node server did.
    let Some(raw_session) = auth_str(auth, "guestSessionId") else {
        return Err(ConnectRefusal::AuthenticationRequired);
    };
    let raw_slug = auth_str(auth, "eventSlug").or_else(|| auth_str(auth, "eventId"));
    let slug = raw_slug.and_then(Slug::parse).ok_or(ConnectRefusal::InvalidEvent)?;
    let session = GuestSessionId::parse(raw_session).ok_or(ConnectRefusal::InvalidGuestSession)?;
    if !app.config.guest_session_validation {
        return Ok(Identity::Guest { session, slug });
    }
    let fail = |e| {
        tracing::error!(error = %e, "storage error during handshake");
        ConnectRefusal::AuthenticationFailed
    };
    if !revoke::session_admits(app.store.session(&session).map_err(fail)?.as_ref(), &slug, now_ms()) {
        return Err(ConnectRefusal::InvalidGuestSession);
    }
    if !revoke::event_admits_guests(app.store.event(&slug).map_err(fail)?.as_ref()) {
        return Err(ConnectRefusal::InvalidEvent);
    }
    Ok(Identity::Guest { session, slug })
}

/// The gallery's side of every socket.
pub struct Gallery(pub App);

impl Handler for Gallery {
    fn connect(&self, s: &Arc<Session>, auth: Option<&RawValue>, head: &Head) -> Result<(), String> {
        let app = &self.0;
        let auth = auth.and_then(|a| serde_json::from_str::<Value>(a.get()).ok()).unwrap_or(Value::Null);
        let identity = identify(app, &auth, bearer(head.authorization.as_deref())).map_err(|refusal| {
            refuse(Refusal::Connection, refusal.reason());
            refusal.to_string()
        })?;
        if let Identity::Guest { session, .. } = &identity
            && !app.presence.add_session_socket(session, app.config.limits.max_sockets_per_session)
        {
            refuse(Refusal::Connection, "session_socket_cap");
            return Err(ConnectRefusal::TooManyConnections.to_string());
        }
        app.sockets.fetch_add(1, Ordering::Relaxed);
        s.set_ext(Conn {
            identity,
            rooms: Mutex::new(Vec::new()),
            in_flight: Mutex::new(Vec::new()),
            limiter: Mutex::new(SocketLimiter::new(&app.config.limits.events)),
            roomless_since: Mutex::new(Some(std::time::Instant::now())),
            app: app.clone(),
        });
        tracing::debug!(sid = %s.sid, "socket connected");
        Ok(())
    }

    fn event(&self, s: &Arc<Session>, ev: Incoming) -> Step {
        let app = &self.0;
        let Some(conn) = conn(s) else { return Step::Now(Box::new(|| {})) };
        let parsed =
            if ev.binary { Err(WireError::InvalidPayload) } else { protocol::parse(&ev.name, ev.data.as_ref()) };
        let key = parsed.as_ref().ok().and_then(ClientEvent::ordering_key);
        if key.as_ref().is_some_and(|k| conn.in_flight().contains(k)) {
            return Step::Blocked(ev);
        }
        metrics::received(if protocol::EVENT_NAMES.contains(&ev.name.as_str()) { &ev.name } else { "unknown" });
        let l = &app.config.limits;
        let verdict = conn.limiter().check(
            &ev.name,
            conn.identity.is_admin(),
            &l.events,
            l.abuse_disconnect_after,
            l.abuse_window,
        );
        let (s, app, name, ack) = (s.clone(), app.clone(), ev.name, ev.ack);
        if let Verdict::Refuse { error, disconnect } = verdict {
            return Step::Now(Box::new(move || refused(&s, &name, ack, &error, disconnect)));
        }
        let ev = match parsed {
            Ok(ev) => ev,
            Err(e) => return Step::Now(Box::new(move || reply(&s, &name, ack, Err(e)))),
        };
        match ops::plan(&app, &conn.identity, &ev) {
            ops::Plan::Now => Step::Now(Box::new(move || {
                let r = match conn_of(&s) {
                    Some(conn) => run(&app, &s, &conn, &ev),
                    None => Ok(Value::Null),
                };
                reply(&s, &name, ack, r)
            })),
            // Applied already; its flush is awaited while the socket's later events are read,
            // and it finishes (broadcast, answer) in its turn.
            ops::Plan::Later(waiting) => {
                if let Some(k) = &key {
                    conn.in_flight().push(k.clone());
                }
                Step::Later(Box::pin(async move {
                    let finishing = waiting.await;
                    Box::new(move || {
                        if let (Some(conn), Some(k)) = (conn_of(&s), &key) {
                            conn.landed(k);
                        }
                        reply(&s, &name, ack, finishing())
                    }) as Finish
                }))
            }
        }
    }

    fn disconnect(&self, s: &Arc<Session>, ext: Ext, reason: Reason) {
        let Ok(conn) = ext.downcast::<Conn>() else { return };
        tracing::debug!(sid = %s.sid, ?reason, "socket disconnected");
        if reason == Reason::SlowConsumer {
            refuse(Refusal::Connection, "slow_consumer");
        }
        let rooms: Vec<Slug> = conn.rooms().clone();
        for slug in rooms {
            membership::leave(&self.0, s, &conn, &slug);
        }
    }
}

fn conn_of(s: &Arc<Session>) -> Option<Arc<Conn>> {
    conn(s)
}

/// Sends an `error` reply, at most one per second per event name (the rest are dropped).
fn send_error(s: &Arc<Session>, event: &str, err: &WireError) {
    if conn(s).is_some_and(|c| c.limiter().may_reply(event)) {
        s.emit(names::ERROR, &err.payload(event));
    }
}

/// Answers an event: the acknowledgement when one was asked for, and an `error` event for a
/// refusal.
fn reply(s: &Arc<Session>, name: &str, ack: Option<u64>, result: Result<Value, WireError>) {
    match result {
        Ok(v) => {
            if let Some(id) = ack {
                s.ack(id, &v);
            }
        }
        Err(e) => {
            refuse(Refusal::Event, e.reason());
            if let Some(id) = ack {
                s.ack(id, &serde_json::json!({ "ok": false, "error": e.to_string() }));
            }
            send_error(s, name, &e);
        }
    }
}

/// Answers an event refused by the socket's rate limits; repeated abuse ends the socket.
fn refused(s: &Arc<Session>, name: &str, ack: Option<u64>, error: &WireError, disconnect: bool) {
    refuse(Refusal::Event, "rate_limited");
    if let Some(id) = ack {
        s.ack(id, &serde_json::json!({ "ok": false, "error": error.to_string() }));
    }
    send_error(s, name, error);
    if disconnect && s.is_connected() {
        let kind = conn(s).map(|c| c.identity.kind());
        tracing::warn!(sid = %s.sid, ?kind, "socket disconnected for repeated abuse");
        refuse(Refusal::Event, "abuse_disconnect");
        s.disconnect();
    }
}

/// Runs an event that finishes at once.
fn run(app: &App, s: &Arc<Session>, conn: &Conn, ev: &ClientEvent) -> Result<Value, WireError> {
    match ev {
        ClientEvent::Join(slug) => membership::join(app, s, conn, slug),
        ClientEvent::Leave(slug) => {
            membership::leave(app, s, conn, slug);
            Ok(serde_json::json!({ "ok": true }))
        }
        ClientEvent::AdminJoin => membership::admin_join(app, s, conn),
        other => ops::relay_now(app, &conn.identity, other).map(|r| r.ack),
    }
}

/// Disconnects sockets that have been in no event room for `no_room_timeout` (admins exempt:
/// the admin page lives in the admin room). One pass over the sockets every few seconds costs
/// less than a timer per socket. Runs until shutdown.
pub async fn reap_roomless(app: App) {
    let timeout = app.config.limits.no_room_timeout;
    let every = (timeout / 4).clamp(std::time::Duration::from_millis(100), std::time::Duration::from_secs(5));
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = app.shutdown.wait() => return,
        }
        let Some(engine) = app.engine() else { continue };
        for s in engine.sockets() {
            let Some(conn) = conn(&s) else { continue };
            let idle = conn.roomless().is_some_and(|t| t.elapsed() >= timeout);
            if idle && !conn.identity.is_admin() {
                refuse(Refusal::Connection, "no_room_timeout");
                s.disconnect();
            }
        }
    }
}
