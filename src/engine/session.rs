//! One client: its outgoing queue, its transport, and where it is in its life.

use std::any::Any;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Instant;

use serde::Serialize;
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::Utf8Bytes;

use super::direct::{Direct, Sent};
use super::outbox::{Outbox, StateKey};
pub use super::phase::{Head, TransportKind};
pub(super) use super::phase::{Phase, Polling, SocketPhase, State};
use super::{Engine, Reason, Sid, frame};
use crate::limits::stream::ConnectionCloser;

pub struct Session {
    pub sid: Sid,
    engine: Arc<Engine>,
    out: Mutex<Outbox>,
    /// Wakes whoever writes: the websocket loop, or the pending long-poll.
    pub(super) outgoing: Notify,
    /// Wakes the session's task: posted packets, an upgrade, a close.
    pub(super) inbound: Notify,
    st: Mutex<State>,
    /// The handler's state of the connected socket.
    ext: Mutex<Option<Ext>>,
    /// Set with the phase `Closed`; read without the state's lock by every push.
    closed: AtomicBool,
    /// The websocket's writer, once the session is on a websocket: frames pushed while nothing
    /// waits are written through it at once.
    direct: OnceLock<Arc<Direct>>,
}

/// The handler's per-socket state, as the session holds it.
pub type Ext = Arc<dyn Any + Send + Sync>;

impl Session {
    pub(super) fn new(engine: &Arc<Engine>, head: Head) -> Arc<Session> {
        let polling = (!head.websocket).then(Box::<Polling>::default);
        let transport = if head.websocket { TransportKind::Websocket } else { TransportKind::Polling };
        let downstream = if head.websocket { head.extensions.get::<ConnectionCloser>().cloned() } else { None };
        let s = Arc::new(Session {
            sid: Sid::new(),
            engine: engine.clone(),
            out: Mutex::new(Outbox::default()),
            outgoing: Notify::new(),
            inbound: Notify::new(),
            st: Mutex::new(State {
                transport,
                phase: Phase::Open,
                socket: SocketPhase::Waiting,
                waiting_since: Some(Instant::now()),
                head: Some(head),
                downstream,
                rooms: Vec::new(),
                polling,
                upgraded: None,
                reason: None,
            }),
            ext: Mutex::new(None),
            closed: AtomicBool::new(false),
            direct: OnceLock::new(),
        });
        engine.insert(&s);
        s
    }

    pub(super) fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    pub(super) fn state(&self) -> MutexGuard<'_, State> {
        self.st.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn outbox(&self) -> MutexGuard<'_, Outbox> {
        self.out.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn ext_slot(&self) -> MutexGuard<'_, Option<Ext>> {
        self.ext.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The handler's state of the connected socket.
    pub fn ext<T: Any + Send + Sync>(&self) -> Option<Arc<T>> {
        self.ext_slot().clone().and_then(|e| e.downcast::<T>().ok())
    }

    /// Sets the handler's state of the socket now connecting.
    pub fn set_ext<T: Any + Send + Sync>(&self, value: T) {
        *self.ext_slot() = Some(Arc::new(value));
    }

    pub fn transport_kind(&self) -> TransportKind {
        self.state().transport
    }

    pub fn is_connected(&self) -> bool {
        let st = self.state();
        st.phase == Phase::Open && st.socket == SocketPhase::Connected
    }

    /// Bytes waiting to be sent.
    pub fn queued(&self) -> usize {
        self.outbox().bytes()
    }

    /// Plain loads of what [`Session::push_framed`] will touch; see [`Direct::warm`].
    pub(super) fn warm(&self) -> usize {
        let mut n = self.closed.load(Ordering::Relaxed) as usize + self.out.is_poisoned() as usize;
        if let Some(d) = self.direct.get() {
            n += d.warm();
        }
        n
    }

    /// Queues a frame. False when the session is closed, or when the frame would take its queue
    /// past its bound: then it is shed.
    pub fn push(self: &Arc<Self>, frame: &Utf8Bytes, key: Option<&StateKey>) -> bool {
        self.push_framed(frame, None, key)
    }

    /// [`Session::push`], with the frame's websocket bytes when the caller has them already
    /// (a broadcast frames its payload once for every member).
    pub(super) fn push_framed(
        self: &Arc<Self>,
        frame: &Utf8Bytes,
        framed: Option<&[u8]>,
        key: Option<&StateKey>,
    ) -> bool {
        if self.closed.load(Ordering::Acquire) {
            return false;
        }
        let direct = self.direct.get();
        let limit = self.engine.limits.queue_bytes;
        let mut out = self.outbox();
        if let Some(d) = direct
            && out.is_empty()
        {
            match d.try_frame(frame.as_bytes(), framed) {
                Sent::All => return true,
                Sent::Part => {
                    drop(out);
                    self.outgoing.notify_one();
                    return true;
                }
                Sent::No => {}
            }
        }
        let before = out.bytes();
        let after = out.push(frame.clone(), key);
        drop(out);
        self.engine.account(after, before);
        if after > limit {
            self.shed();
            return false;
        }
        self.outgoing.notify_one();
        true
    }

    /// Queues a frame that must go out even past the bound (the protocol's own small frames).
    pub(super) fn push_control(self: &Arc<Self>, frame: Utf8Bytes) {
        let mut out = self.outbox();
        let before = out.bytes();
        let after = out.push(frame, None);
        drop(out);
        self.engine.account(after, before);
        self.outgoing.notify_one();
    }

    /// Sends an event to this socket alone.
    pub fn emit<T: Serialize + ?Sized>(self: &Arc<Self>, event: &str, data: &T) -> bool {
        match frame::event(event, data) {
            Some(f) => self.push(&f, None),
            None => {
                tracing::error!(event, "cannot encode an event");
                false
            }
        }
    }

    /// Sends a state frame to this socket alone (see [`super::outbox`]).
    pub fn emit_state<T: Serialize + ?Sized>(self: &Arc<Self>, event: &str, data: &T, key: &StateKey) -> bool {
        frame::event(event, data).is_some_and(|f| self.push(&f, Some(key)))
    }

    /// Answers the client's event `id`.
    pub fn ack<T: Serialize + ?Sized>(self: &Arc<Self>, id: u64, data: &T) {
        if let Some(f) = frame::ack(id, data) {
            self.push(&f, None);
        }
    }

    /// The oldest queued frame, if any.
    pub(super) fn pop(&self) -> Option<Utf8Bytes> {
        let mut out = self.outbox();
        let before = out.bytes();
        let f = out.pop();
        if f.is_none() {
            out.release_if_empty();
        }
        let after = out.bytes();
        drop(out);
        self.engine.account(after, before);
        f
    }

    /// From now on frames go out through the websocket's writer.
    pub(super) fn set_direct(&self, direct: Arc<Direct>) {
        let _ = self.direct.set(direct);
    }

    /// Lets `f` take frames from the queue in order, under the queue's lock (so no frame is
    /// written directly meanwhile).
    pub(super) fn with_queue(&self, f: impl FnOnce(&mut dyn FnMut() -> Option<Utf8Bytes>)) {
        let mut out = self.outbox();
        let before = out.bytes();
        f(&mut || out.pop());
        out.release_if_empty();
        let after = out.bytes();
        drop(out);
        self.engine.account(after, before);
    }

    /// Everything queued, as one polling payload (`None` when nothing is).
    pub(super) fn take_payload(&self) -> Option<String> {
        let mut body: Option<String> = None;
        while let Some(f) = self.pop() {
            match &mut body {
                Some(b) => {
                    b.push(char::from(crate::wire::engineio::SEPARATOR));
                    b.push_str(&f);
                }
                None => body = Some(f.to_string()),
            }
        }
        body
    }

    pub(super) fn add_room(&self, room: &str) -> bool {
        let mut st = self.state();
        if st.phase == Phase::Closed {
            return false;
        }
        if !st.rooms.iter().any(|r| &**r == room) {
            st.rooms.push(Arc::from(room));
        }
        true
    }

    pub(super) fn remove_room(&self, room: &str) -> bool {
        let mut st = self.state();
        match st.rooms.iter().position(|r| &**r == room) {
            Some(i) => {
                st.rooms.swap_remove(i);
                true
            }
            None => false,
        }
    }

    pub(super) fn take_rooms(&self) -> Vec<Arc<str>> {
        std::mem::take(&mut self.state().rooms)
    }

    /// Server-side disconnect: the client is told (`41`), and the session closes once that is
    /// sent.
    pub fn disconnect(self: &Arc<Self>) {
        {
            let mut st = self.state();
            if st.phase != Phase::Open {
                return;
            }
            st.phase = Phase::Closing;
            st.reason.get_or_insert(Reason::ServerDisconnect);
        }
        self.push_control(frame::disconnect());
        self.end_socket(Reason::ServerDisconnect);
        self.inbound.notify_one();
    }

    /// Ends the session at once: the socket is gone, the sid unknown, and the current
    /// connection is closed (reset) whatever it has pending.
    ///
    /// Safe to call while a room's members are being iterated (a broadcast finds the overflow):
    /// the parts that take the rooms' lock run on a task of their own.
    pub fn shed(self: &Arc<Self>) {
        if !self.mark_closed(Reason::SlowConsumer) {
            return;
        }
        if let Some(t) = self.state().downstream.take() {
            t.close();
        }
        let s = self.clone();
        tokio::spawn(async move { s.forget(Reason::SlowConsumer) });
    }

    /// Closes the session now (what is queued is dropped) and tells the handler.
    pub(super) fn close(self: &Arc<Self>, reason: Reason) {
        if self.mark_closed(reason) {
            self.forget(reason);
        }
    }

    /// The first half of closing: no more frames are taken. False if it was closed already.
    fn mark_closed(&self, reason: Reason) -> bool {
        {
            let mut st = self.state();
            if st.phase == Phase::Closed {
                return false;
            }
            st.phase = Phase::Closed;
            st.reason.get_or_insert(reason);
            st.polling = None;
            st.upgraded = None;
            st.head = None;
        }
        self.closed.store(true, Ordering::Release);
        if let Some(d) = self.direct.get() {
            d.release();
        }
        let dropped = self.outbox().clear();
        self.engine.account(0, dropped);
        true
    }

    /// The second half: out of the tables and rooms, the handler told, the waiters woken.
    fn forget(self: &Arc<Self>, reason: Reason) {
        self.engine.remove(self);
        self.end_socket(reason);
        self.inbound.notify_one();
        self.outgoing.notify_one();
    }

    /// Tells the handler the socket is gone, once per connect, if it was connected; its state
    /// goes with it.
    pub(super) fn end_socket(self: &Arc<Self>, reason: Reason) {
        let was = {
            let mut st = self.state();
            std::mem::replace(&mut st.socket, SocketPhase::Waiting)
        };
        let ext = self.ext_slot().take();
        if let (SocketPhase::Connected, Some(ext)) = (was, ext) {
            let handler = self.engine.handler.clone();
            let s = self.clone();
            // On a task: this may be called while a room's members are being iterated, and the
            // handler leaves rooms and broadcasts.
            tokio::spawn(async move { handler.disconnect(&s, ext, reason) });
        }
    }
}
