//! The project's own Engine.IO 4 / Socket.IO 5 server (SPEC §11), built for one message to
//! thousands of phones.
//!
//! - [`Engine`] holds the sessions and the rooms, and answers `/socket.io/` requests
//!   ([`http`]): handshakes, long-polls, posts and websocket upgrades.
//! - [`Session`] is one client (one Engine.IO session carrying one Socket.IO socket on `/`):
//!   its outgoing queue ([`outbox`]), bounded in bytes, and its transport's current connection.
//! - Each session has one task ([`task`]) that reads, writes and keeps the heartbeat.
//! - What the events mean is not known here: a [`Handler`] (the `socket` module) is told of
//!   connects, events and disconnects, and answers through the session.
//!
//! A broadcast encodes its frame once ([`frame`]); every recipient's queue holds the same
//! buffer, and a connection writes everything queued before it flushes once.

mod direct;
pub mod frame;
mod http;
pub mod outbox;
mod phase;
mod session;
mod sid;
mod task;
mod websocket;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use serde_json::Value;
use serde_json::value::RawValue;
use tokio_tungstenite::tungstenite::Utf8Bytes;

pub use outbox::StateKey;
pub use session::{Ext, Head, Session, TransportKind};
pub use sid::Sid;

/// The protocol's limits, from the configuration.
#[derive(Clone, Debug)]
pub struct Limits {
    pub ping_interval: Duration,
    pub ping_timeout: Duration,
    pub connect_timeout: Duration,
    pub max_payload: usize,
    /// Unsent bytes one socket may have; past it the socket is shed.
    pub queue_bytes: usize,
    /// Unsent bytes of all sockets together; past it the largest queues are shed.
    pub total_bytes: usize,
}

/// One client event, decoded.
#[derive(Debug)]
pub struct Incoming {
    pub name: String,
    /// The first argument after the name, if any.
    pub data: Option<Value>,
    /// The client asked for an acknowledgement with this id.
    pub ack: Option<u64>,
    /// It came as a BINARY_EVENT (its attachments were read and dropped).
    pub binary: bool,
}

/// The last part of an event's handling: its broadcast and its answer. Run in the order the
/// session's events arrived.
pub type Finish = Box<dyn FnOnce() + Send>;

/// The part of an event's handling that waits (for a disk flush, say), then says how to finish.
/// It runs while later events are read.
pub type Later = Pin<Box<dyn Future<Output = Finish> + Send>>;

/// What the handler made of an event.
pub enum Step {
    /// Finish it, after the session's earlier events have finished (at once if none is
    /// waiting).
    Now(Finish),
    /// Finish it when this future is done, and after the events ahead of it.
    Later(Later),
    /// Cannot even start before the session's earlier events have finished: hand it back once
    /// they have.
    Blocked(Incoming),
}

/// Why a socket ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    ClientDisconnect,
    ClientClose,
    TransportClose,
    TransportError,
    PingTimeout,
    ServerDisconnect,
    SlowConsumer,
}

/// What the application does with sockets.
pub trait Handler: Send + Sync + 'static {
    /// A CONNECT to `/`. `Ok` connects the socket (the handler keeps its own state in the
    /// session with [`Session::set_ext`]); `Err(message)` is sent as CONNECT_ERROR.
    fn connect(&self, s: &Arc<Session>, auth: Option<&RawValue>, head: &Head) -> Result<(), String>;
    /// An event of a connected socket.
    fn event(&self, s: &Arc<Session>, ev: Incoming) -> Step;
    /// The connected socket is gone (once per connect); `ext` is the state it had set.
    fn disconnect(&self, s: &Arc<Session>, ext: Ext, reason: Reason);
}

type Members = HashMap<Sid, Arc<Session>>;

/// Members whose memory is touched together before their frames are written.
const WARM_BATCH: usize = 8;

/// A room at least this large is written to by two threads (when the machine has two cores).
const SPLIT_AT: usize = 2048;

/// Writes `frame` to every target; how many took it. Targets are taken a few at a time: their
/// memory is read first, all together, so that the cache misses of the batch overlap (see
/// `Direct::warm`), then they are written to.
fn deliver<'a>(
    mut targets: impl Iterator<Item = &'a Arc<Session>>,
    frame: &Utf8Bytes,
    framed: &[u8],
    key: Option<&StateKey>,
) -> usize {
    let mut n = 0;
    let mut batch: [Option<&Arc<Session>>; WARM_BATCH] = [None; WARM_BATCH];
    loop {
        let mut filled = 0;
        let mut sink = 0usize;
        for slot in batch.iter_mut() {
            *slot = targets.next();
            if let Some(s) = slot {
                sink = sink.wrapping_add(s.warm());
                filled += 1;
            }
        }
        std::hint::black_box(sink);
        n += batch[..filled].iter().flatten().filter(|s| s.push_framed(frame, Some(framed), key)).count();
        if filled < WARM_BATCH {
            return n;
        }
    }
}

pub struct Engine {
    limits: Limits,
    handler: Arc<dyn Handler>,
    sessions: Mutex<HashMap<Sid, Arc<Session>>>,
    /// A read lock per broadcast, a write lock per join or leave: broadcasts to one room are
    /// far more frequent than membership changes.
    rooms: RwLock<HashMap<Arc<str>, Members>>,
    /// Unsent bytes of every session together.
    queued: AtomicUsize,
    /// A pass that sheds the largest queues is running.
    shedding: AtomicBool,
    /// Large rooms are written to by two threads.
    split: bool,
}

fn shrink<K: Eq + std::hash::Hash, V>(table: &mut HashMap<K, V>) {
    if table.capacity() > 4 * table.len() + 64 {
        table.shrink_to(2 * table.len());
    }
}

impl Engine {
    pub fn new(limits: Limits, handler: Arc<dyn Handler>) -> Arc<Engine> {
        Arc::new(Engine {
            limits,
            handler,
            sessions: Mutex::new(HashMap::new()),
            rooms: RwLock::new(HashMap::new()),
            queued: AtomicUsize::new(0),
            shedding: AtomicBool::new(false),
            split: std::thread::available_parallelism().is_ok_and(|n| n.get() > 1),
        })
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    fn table(&self) -> std::sync::MutexGuard<'_, HashMap<Sid, Arc<Session>>> {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn session(&self, sid: &Sid) -> Option<Arc<Session>> {
        self.table().get(sid).cloned()
    }

    fn insert(&self, s: &Arc<Session>) {
        self.table().insert(s.sid, s.clone());
    }

    /// Forgets a closed session: its sid is unknown from now on, and it leaves every room.
    fn remove(&self, s: &Session) {
        {
            let mut t = self.table();
            t.remove(&s.sid);
            shrink(&mut t);
        }
        for room in s.take_rooms() {
            self.leave_room(&room, s.sid);
        }
    }

    /// Every connected socket.
    pub fn sockets(&self) -> Vec<Arc<Session>> {
        self.table().values().filter(|s| s.is_connected()).cloned().collect()
    }

    /// Sessions by transport: (websocket, polling).
    pub fn transport_counts(&self) -> (usize, usize) {
        self.table().values().fold((0, 0), |(ws, p), s| match s.transport_kind() {
            TransportKind::Websocket => (ws + 1, p),
            _ => (ws, p + 1),
        })
    }

    fn rooms_read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<Arc<str>, Members>> {
        self.rooms.read().unwrap_or_else(|p| p.into_inner())
    }

    fn rooms_write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<Arc<str>, Members>> {
        self.rooms.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds a session to a room (no-op for a closed session, which would never leave it).
    pub fn join(&self, s: &Arc<Session>, room: &str) {
        if !s.add_room(room) {
            return;
        }
        let mut rooms = self.rooms_write();
        match rooms.get_mut(room) {
            Some(m) => {
                m.insert(s.sid, s.clone());
            }
            None => {
                rooms.insert(Arc::from(room), HashMap::from([(s.sid, s.clone())]));
            }
        }
    }

    pub fn leave(&self, s: &Session, room: &str) {
        if s.remove_room(room) {
            self.leave_room(room, s.sid);
        }
    }

    fn leave_room(&self, room: &str, sid: Sid) {
        let mut rooms = self.rooms_write();
        if let Some(m) = rooms.get_mut(room) {
            m.remove(&sid);
            if m.is_empty() {
                rooms.remove(room);
                shrink(&mut rooms);
            } else {
                shrink(m);
            }
        }
    }

    /// Members of a room now.
    pub fn room_len(&self, room: &str) -> usize {
        self.rooms_read().get(room).map_or(0, HashMap::len)
    }

    /// Queues `frame` for every member of `room` but `except`; returns how many took it. A
    /// member whose queue overflows is shed (see [`Session::push`]), not waited for.
    pub fn broadcast(&self, room: &str, except: Option<Sid>, frame: &Utf8Bytes, key: Option<&StateKey>) -> usize {
        let rooms = self.rooms_read();
        let Some(members) = rooms.get(room) else { return 0 };
        let framed = direct::framed(frame.as_bytes());
        let send = |part: &mut dyn Iterator<Item = (&Sid, &Arc<Session>)>| {
            deliver(part.filter(|(sid, _)| Some(**sid) != except).map(|(_, s)| s), frame, &framed, key)
        };
        if members.len() < SPLIT_AT || !self.split {
            return send(&mut members.iter());
        }
        // A crowd is written to by two threads, half each: the last phone of a large room gets
        // the frame in half the time. (Sessions push from any thread; a shed spawns on the
        // runtime, which the other thread enters.)
        let half = members.len() / 2;
        let runtime = tokio::runtime::Handle::try_current().ok();
        std::thread::scope(|scope| {
            let other = std::thread::Builder::new().name("hafi-broadcast".into()).spawn_scoped(scope, || {
                let _entered = runtime.as_ref().map(tokio::runtime::Handle::enter);
                send(&mut members.iter().skip(half))
            });
            let mine = send(&mut members.iter().take(half));
            match other {
                Ok(t) => mine + t.join().unwrap_or(0),
                Err(_) => mine + send(&mut members.iter().skip(half)),
            }
        })
    }

    /// Counts bytes into or out of the total, and sheds the largest queues when it is over.
    fn account(self: &Arc<Engine>, added: usize, removed: usize) {
        if added >= removed {
            let now = self.queued.fetch_add(added - removed, Ordering::AcqRel) + added - removed;
            if now > self.limits.total_bytes && !self.shedding.swap(true, Ordering::AcqRel) {
                let engine = self.clone();
                tokio::spawn(async move {
                    engine.shed_largest();
                    engine.shedding.store(false, Ordering::Release);
                });
            }
        } else {
            self.queued.fetch_sub(removed - added, Ordering::AcqRel);
        }
    }

    /// Unsent bytes of all sessions.
    pub fn queued_bytes(&self) -> usize {
        self.queued.load(Ordering::Acquire)
    }

    /// Sheds sessions, largest queue first, until the total is back under three quarters of
    /// its cap (a margin, so the next broadcast does not start another pass at once).
    fn shed_largest(&self) {
        let target = self.limits.total_bytes / 4 * 3;
        let mut all: Vec<(usize, Arc<Session>)> = self.table().values().map(|s| (s.queued(), s.clone())).collect();
        all.sort_unstable_by_key(|(b, _)| std::cmp::Reverse(*b));
        for (bytes, s) in all {
            if self.queued_bytes() <= target || bytes == 0 {
                break;
            }
            s.shed();
        }
    }

    /// Tells every socket it is disconnected (server-side) and closes its session once that
    /// is sent.
    pub fn disconnect_all(&self) {
        let all: Vec<Arc<Session>> = self.table().values().cloned().collect();
        for s in all {
            s.disconnect();
        }
    }

    /// Sessions open now.
    pub fn session_count(&self) -> usize {
        self.table().len()
    }
}

pub use http::handle;
