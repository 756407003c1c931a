//! The Socket.IO side: the handshake (who is this?), and the one place that maps wire events to
//! operations.

pub mod guard;
pub mod ops;
pub mod payload;
pub mod revoke;

use std::net::IpAddr;
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde::Serialize;
use serde_json::Value;
use socketioxide::SocketIo;
use socketioxide::extract::{AckSender, Event, SocketRef, State, TryData};
use socketioxide::handler::{ConnectHandler, FromMessageParts};
use socketioxide::socket::{DisconnectReason, Socket};

use crate::auth::{Identity, bearer};
use crate::clock::{iso_now, now_ms};
use crate::error::{ConnectRefusal, WireError};
use crate::gate::Transport;
use crate::metrics::{self, Refusal};
use crate::server::PeerAddr;
use crate::state::App;
use crate::types::{GuestSessionId, LikerKey, PhotoId, Slug};
use payload::ClientEvent;

/// Per-socket context, stored in the socket's extensions by the handshake.
///
/// It lives exactly as long as the socket, so its `Drop` releases what the socket holds (the
/// connection count, the guest session's socket slot) even when the socket goes away on a path
/// where no disconnect handler runs.
pub struct Conn {
    pub identity: Identity,
    pub ip: Option<IpAddr>,
    /// Event rooms this socket is in (the admin room is not tracked here). Nearly always one,
    /// so a vector, which costs a tenth of a set's node.
    pub rooms: Mutex<Vec<Slug>>,
    /// Arrival order of this socket's events (see [`Turn`]).
    next_ticket: AtomicU64,
    /// Whose turn it is to be applied, and to finish: flush, broadcast, answer.
    turns: Turns,
    /// Photos with a like or unlike of this socket between its two turns. A second one on the
    /// same photo is not applied early, so a failed flush is undone in the right order.
    liking: Mutex<Vec<(Slug, PhotoId)>>,
    /// Rate limits of this socket's events.
    guard: Mutex<guard::SocketGuard>,
    /// Set once the socket was found not reading (see [`shed_slow_consumer`]).
    shed: std::sync::atomic::AtomicBool,
    /// Since when this socket has been in no event room (`None` while it is in one).
    roomless_since: Mutex<Option<std::time::Instant>>,
    /// The connection of a websocket handshake, which is this socket's own for its whole life.
    /// (A polling handshake's connection is a keep-alive one that other requests share; a
    /// polling or upgraded socket's current connection is found through the gate instead.)
    transport: Option<Transport>,
    app: App,
}

/// An event's place in its socket's queue, taken when the packet arrives.
///
/// socketioxide runs every message handler as its own task, so two events from one socket could
/// run in either order; a client that sends `admin:join` and then `admin:notification`, or
/// `event:join` and then `photo:like`, expects them handled in that order (as the Node server
/// did). Extractors run synchronously in arrival order, before the task is spawned, so the
/// ticket is taken here and the handler waits for its turn.
///
/// An event has two turns with the same number. In the first it is checked and, if it is a like,
/// applied; then the next event may start. In the second, after the events ahead of it have
/// finished, it waits for its flush, broadcasts and answers. So a socket's effects stay in
/// order while its likes share flushes instead of queueing one flush and one broadcast each.
struct Turn(Option<(Arc<Conn>, u64)>);

impl<A: socketioxide::adapter::Adapter> FromMessageParts<A> for Turn {
    type Error = Infallible;
    fn from_message_parts(s: &Arc<Socket<A>>, _: &mut socketioxide::handler::Value, _: &Option<i64>) -> Result<Turn, Infallible> {
        Ok(Turn(s.extensions.get::<Arc<Conn>>().map(|c| {
            let t = c.next_ticket.fetch_add(1, Ordering::AcqRel);
            (c, t)
        })))
    }
}

/// Where a socket's events are in their two turns: the next ticket to be checked and applied,
/// and the next to finish. One small lock and one `Notify` per socket, since a socket has at most
/// a few events in flight and most have none.
#[derive(Default)]
struct Turns {
    at: Mutex<TurnsAt>,
    moved: tokio::sync::Notify,
}

#[derive(Default, Clone, Copy)]
struct TurnsAt {
    applied: u64,
    finished: u64,
}

impl Turns {
    fn at(&self) -> TurnsAt {
        *self.at.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn advance(&self, step: impl FnOnce(&mut TurnsAt)) {
        step(&mut self.at.lock().unwrap_or_else(|p| p.into_inner()));
        self.moved.notify_waiters();
    }

    /// Waits until `ready` holds. The waiter is registered before each check, so an advance
    /// between the check and the wait is not missed.
    async fn until(&self, ready: impl Fn(TurnsAt) -> bool) {
        loop {
            let moved = self.moved.notified();
            tokio::pin!(moved);
            moved.as_mut().enable();
            if ready(self.at()) {
                return;
            }
            moved.await;
        }
    }
}

/// Holds the first turn; passes it on when dropped, whatever happened to this event.
struct Applying {
    conn: Arc<Conn>,
    ticket: u64,
}

impl Drop for Applying {
    fn drop(&mut self) {
        self.conn.turns.advance(|t| t.applied += 1);
    }
}

/// Holds the second turn; passes it on when dropped.
struct Finishing(Arc<Conn>);

impl Drop for Finishing {
    fn drop(&mut self) {
        self.0.turns.advance(|t| t.finished += 1);
    }
}

impl Turn {
    async fn wait(self) -> Option<Applying> {
        let (conn, ticket) = self.0?;
        conn.turns.until(|t| t.applied >= ticket).await;
        Some(Applying { conn, ticket })
    }
}

impl Applying {
    /// Lets the next event start, and waits until every event ahead of this one has finished.
    /// Every event must come through here exactly once, or its socket's later events stall.
    async fn finish(self) -> Finishing {
        let (conn, ticket) = (self.conn.clone(), self.ticket);
        drop(self);
        conn.turns.until(|t| t.finished >= ticket).await;
        Finishing(conn)
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.app.sockets.fetch_sub(1, Ordering::Relaxed);
        if let Some(session) = guest_of(&self.identity) {
            self.app.presence.remove_session_socket(session);
        }
    }
}

impl Conn {
    fn rooms(&self) -> std::sync::MutexGuard<'_, Vec<Slug>> {
        self.rooms.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn roomless(&self) -> std::sync::MutexGuard<'_, Option<std::time::Instant>> {
        self.roomless_since.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn liking(&self) -> std::sync::MutexGuard<'_, Vec<(Slug, PhotoId)>> {
        self.liking.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn guard(&self) -> std::sync::MutexGuard<'_, guard::SocketGuard> {
        self.guard.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Registers the namespace with its handshake middleware.
pub fn register(io: &SocketIo) {
    io.ns("/", on_connect.with(authenticate));
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

/// Connect middleware: refuses with one of the contract's messages, or stores the [`Conn`].
async fn authenticate(s: SocketRef, TryData(auth): TryData<Value>, State(app): State<App>) -> Result<(), ConnectRefusal> {
    let auth = auth.unwrap_or(Value::Null);
    let parts = s.req_parts();
    let header = parts.headers.get(http::header::AUTHORIZATION).and_then(|h| h.to_str().ok());
    let ip = parts.extensions.get::<PeerAddr>().map(|p| p.client_ip);
    let own_connection = parts.uri.query().is_some_and(|q| q.split('&').any(|kv| kv == "transport=websocket"));
    let transport = parts.extensions.get::<Transport>().filter(|_| own_connection).cloned();
    let identity = match identify(&app, &auth, bearer(header)) {
        Ok(id) => id,
        Err(refusal) => {
            app.limiters.note_refusal(Refusal::Connection, refusal.reason());
            return Err(refusal);
        }
    };
    if let Identity::Guest { session, .. } = &identity
        && !app.presence.add_session_socket(session, app.config.limits.max_sockets_per_session)
    {
        app.limiters.note_refusal(Refusal::Connection, "session_socket_cap");
        return Err(ConnectRefusal::TooManyConnections);
    }
    app.sockets.fetch_add(1, Ordering::Relaxed);
    s.extensions.insert(Arc::new(Conn {
        identity,
        ip,
        rooms: Mutex::new(Vec::new()),
        next_ticket: AtomicU64::new(0),
        turns: Turns::default(),
        liking: Mutex::new(Vec::new()),
        guard: Mutex::new(guard::SocketGuard::new(&app.config.limits.events)),
        shed: std::sync::atomic::AtomicBool::new(false),
        roomless_since: Mutex::new(Some(std::time::Instant::now())),
        transport,
        app: app.clone(),
    }));
    // Handlers are registered here, before the CONNECT reply goes out: socketioxide spawns the
    // connect handler only after sending it, and a client that emits at once (socket.io-client
    // flushes its buffer on connect) would otherwise race an empty handler table.
    s.on_fallback(dispatch);
    s.on_disconnect(on_disconnect);
    Ok(())
}

async fn on_connect(s: SocketRef) {
    tracing::debug!(sid = %s.id, "socket connected");
}

fn conn(s: &SocketRef) -> Option<Arc<Conn>> {
    s.extensions.get::<Arc<Conn>>()
}

/// Sends an `error` reply, at most one per second per event name (the rest are dropped).
fn send_error(s: &SocketRef, conn: &Conn, event: &str, err: &WireError) {
    if conn.guard().may_reply(event) {
        let _ = s.emit("error", &err.payload(event));
    }
}

/// What the first turn decided about an event.
enum Checked {
    Refused { error: WireError, disconnect: bool },
    Invalid(WireError),
    /// Boxed: a staged like is much larger than the other outcomes.
    Valid(ClientEvent, Option<Box<ops::Staged>>),
}

/// The photo a like or unlike acts on.
fn liked_photo(ev: &ClientEvent) -> Option<(Slug, PhotoId)> {
    match ev {
        ClientEvent::Like { slug, photo, .. } | ClientEvent::Unlike { slug, photo } => Some((slug.clone(), photo.clone())),
        _ => None,
    }
}

/// The first turn: rate limit, parse, and apply a like unless one on the same photo is still
/// between its turns.
fn check(app: &App, conn: &Conn, name: &str, data: Option<&Value>) -> Checked {
    metrics::received(name);
    let l = &app.config.limits;
    let verdict = conn.guard().check(name, conn.identity.is_admin(), &l.events, l.abuse_disconnect_after, l.abuse_window);
    if let guard::Verdict::Refuse { error, disconnect } = verdict {
        return Checked::Refused { error, disconnect };
    }
    let ev = match payload::parse(name, data) {
        Ok(ev) => ev,
        Err(e) => return Checked::Invalid(e),
    };
    let Some(photo) = liked_photo(&ev) else { return Checked::Valid(ev, None) };
    let mut liking = conn.liking();
    let busy = liking.contains(&photo);
    liking.push(photo);
    drop(liking);
    let staged = if busy { None } else { ops::stage(app, &conn.identity, &ev) };
    Checked::Valid(ev, staged.map(Box::new))
}

/// Every client event arrives here and goes through its two turns (see [`Turn`]). `Turn` comes
/// last so a ticket is only taken once every other extractor has succeeded (otherwise the
/// handler would not run and the queue would stall).
async fn dispatch(s: SocketRef, Event(name): Event, TryData(data): TryData<Value>, ack: AckSender, State(app): State<App>, turn: Turn) {
    let Some(applying) = turn.wait().await else { return };
    let conn = applying.conn.clone();
    let checked = check(&app, &conn, &name, data.ok().as_ref());
    let _finishing = applying.finish().await;
    let result = match checked {
        Checked::Refused { error, disconnect } => {
            app.limiters.note_refusal(Refusal::Event, "rate_limited");
            let _ = ack.send(&serde_json::json!({ "ok": false, "error": error.to_string() }));
            send_error(&s, &conn, &name, &error);
            if disconnect && s.connected() {
                tracing::warn!(sid = %s.id, ip = ?conn.ip, kind = conn.identity.kind(), "socket disconnected for repeated abuse");
                app.limiters.note_refusal(Refusal::Event, "abuse_disconnect");
                let _ = s.disconnect();
            }
            return;
        }
        Checked::Invalid(e) => Err(e),
        Checked::Valid(ev, staged) => {
            let r = run(&app, &s, &conn, &ev, staged.map(|b| *b)).await;
            if let Some(photo) = liked_photo(&ev) {
                let mut liking = conn.liking();
                if let Some(i) = liking.iter().position(|p| *p == photo) {
                    liking.swap_remove(i);
                }
            }
            r
        }
    };
    match result {
        Ok(reply) => {
            let _ = ack.send(&reply);
        }
        Err(e) => {
            metrics::refused(Refusal::Event, e.reason());
            let _ = ack.send(&serde_json::json!({ "ok": false, "error": e.to_string() }));
            send_error(&s, &conn, &name, &e);
        }
    }
}

async fn run(app: &App, s: &SocketRef, conn: &Conn, ev: &ClientEvent, staged: Option<ops::Staged>) -> Result<Value, WireError> {
    match ev {
        ClientEvent::Join(slug) => join(app, s, conn, slug).await,
        ClientEvent::Leave(slug) => {
            leave(app, s, conn, slug).await;
            Ok(serde_json::json!({ "ok": true }))
        }
        ClientEvent::AdminJoin => {
            if !conn.identity.is_admin() {
                return Err(WireError::AdminRequired);
            }
            s.join(ops::ADMIN_ROOM);
            Ok(serde_json::json!({ "ok": true }))
        }
        other => ops::relay_staged(app, &conn.identity, other, staged).await.map(|r| r.ack),
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Snapshot<'a> {
    event_slug: &'a str,
    guest_count: usize,
    total_guests: u64,
    peak_guests: u64,
    likes: serde_json::Map<String, Value>,
    liked_by_me: Vec<String>,
    timestamp: String,
}

fn guest_of(identity: &Identity) -> Option<&GuestSessionId> {
    match identity {
        Identity::Guest { session, .. } => Some(session),
        _ => None,
    }
}

async fn join(app: &App, s: &SocketRef, conn: &Conn, slug: &Slug) -> Result<Value, WireError> {
    if !ops::can_access(app, &conn.identity, slug)? {
        return Err(WireError::AccessDenied);
    }
    let guest = guest_of(&conn.identity);
    s.join(slug.room());
    {
        let mut rooms = conn.rooms();
        if !rooms.contains(slug) {
            rooms.push(slug.clone());
        }
    }
    *conn.roomless() = None;
    let change = crate::presence::announce_join(app, s, slug, guest);
    let record = app.store.record_join(slug, guest.map(LikerKey::guest).as_ref(), change.guest_count as u64)?;
    app.admin_feed.touch(slug);

    let max = app.config.snapshot_max_photos;
    let likes = app
        .store
        .room_likes(slug, max)?
        .into_iter()
        .map(|(p, c)| (p.as_str().to_string(), Value::from(c)))
        .collect();
    let liked_by_me = app.store.liked_by(slug, &conn.identity.liker(), max)?.into_iter().map(|p| p.as_str().to_string()).collect();
    let snapshot = Snapshot {
        event_slug: slug.as_str(),
        guest_count: change.guest_count,
        total_guests: record.total_guests,
        peak_guests: record.peak_guests,
        likes,
        liked_by_me,
        timestamp: iso_now(),
    };
    let _ = s.emit("event:snapshot", &snapshot);
    Ok(serde_json::json!({ "ok": true, "guestCount": change.guest_count }))
}

/// Leaves one room and tells the room; a socket that was not in it changes nothing.
async fn leave(app: &App, s: &SocketRef, conn: &Conn, slug: &Slug) {
    {
        let mut rooms = conn.rooms();
        let Some(i) = rooms.iter().position(|r| r == slug) else { return };
        rooms.swap_remove(i);
        if rooms.is_empty() {
            *conn.roomless() = Some(std::time::Instant::now());
        }
    }
    s.leave(slug.room());
    crate::presence::announce_leave(app, s.id, slug);
    if let Err(e) = app.store.touch_room(slug) {
        tracing::warn!(error = %e, "cannot record room access");
    }
    app.admin_feed.touch(slug);
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
        let Some(io) = app.io() else { continue };
        for s in io.sockets() {
            let Some(conn) = conn(&s) else { continue };
            let idle = conn.roomless().is_some_and(|t| t.elapsed() >= timeout);
            if idle && !conn.identity.is_admin() {
                app.limiters.note_refusal(Refusal::Connection, "no_room_timeout");
                let _ = s.disconnect();
            }
        }
    }
}

/// A socket whose outgoing queue is full has stopped reading. It leaves its rooms at once (so
/// the room goes on without it and counts it gone), and then its transport is closed at once: a
/// disconnect packet cannot get into the full queue, and a phone that sees no close shows
/// "connected" while it receives nothing. A closed connection makes it reconnect and catch up
/// from the snapshot; presence coalescing keeps the crowd of reconnects from shedding others.
///
/// A websocket's connection is closed, and with it the session. A polling session outlives its
/// connections: the one its last poll came on is closed, and the session is disconnected
/// server-side as soon as its queue has room for that (or by the heartbeat when it never has).
pub fn shed_slow_consumer(app: &App, s: SocketRef) {
    let Some(conn) = conn(&s) else { return };
    if conn.shed.swap(true, Ordering::AcqRel) {
        return;
    }
    app.limiters.note_refusal(Refusal::Connection, "slow_consumer");
    tracing::debug!(sid = %s.id, ip = ?conn.ip, "slow consumer shed");
    let app = app.clone();
    tokio::spawn(async move {
        let rooms: Vec<Slug> = conn.rooms().iter().cloned().collect();
        for slug in rooms {
            leave(&app, &s, &conn, &slug).await;
        }
        s.leave_all();
        if let Some(current) = app.gate().and_then(|g| g.downstream_of(s.id)) {
            current.close();
        }
        if let Some(own) = &conn.transport {
            own.close();
        }
        for _ in 0..100 {
            if !s.connected() || s.clone().disconnect().is_ok() {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    });
}

async fn on_disconnect(s: SocketRef, State(app): State<App>, reason: DisconnectReason) {
    let Some(conn) = conn(&s) else { return };
    tracing::debug!(sid = %s.id, ?reason, "socket disconnected");
    let rooms: Vec<Slug> = conn.rooms().iter().cloned().collect();
    for slug in rooms {
        leave(&app, &s, &conn, &slug).await;
    }
}
