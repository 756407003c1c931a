//! The shared application handle: cheap to clone, passed to every socket handler and HTTP route.

use std::ops::Deref;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use tokio::sync::Semaphore;

use crate::admin_feed::AdminFeed;
use crate::auth::Tokens;
use crate::config::Config;
use crate::engine::Engine;
use crate::limits::Limiters;
use crate::limits::gate::Gate;
use crate::presence::Presence;
use crate::revocations::Revoker;
use crate::shutdown::Shutdown;
use crate::store::Store;

pub struct Shared {
    pub config: Config,
    pub store: Store,
    pub presence: Presence,
    pub tokens: Tokens,
    pub shutdown: Shutdown,
    pub limiters: Arc<Limiters>,
    pub admin_feed: AdminFeed,
    /// Events whose sockets must be checked for lost access now.
    pub revoker: Revoker,
    /// Places for password checks running at once (`limits.login_concurrency`): each argon2
    /// check holds about 19 MiB while it runs, so their number bounds login's memory.
    pub login_slots: Arc<Semaphore>,
    pub started: Instant,
    /// Sockets connected to the namespace now.
    pub sockets: AtomicUsize,
    engine: OnceLock<Arc<Engine>>,
    gate: OnceLock<Arc<Gate>>,
}

/// The shared state, cheap to clone: every task and connection holds one (`Shared` is what it
/// points to).
#[derive(Clone)]
pub struct App(Arc<Shared>);

impl Deref for App {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

impl App {
    pub fn new(config: Config, store: Store, tokens: Tokens, shutdown: Shutdown) -> App {
        App(Arc::new(Shared {
            limiters: Arc::new(Limiters::new(&config)),
            admin_feed: AdminFeed::default(),
            revoker: Revoker::default(),
            login_slots: Arc::new(Semaphore::new(config.limits.login_concurrency.max(1))),
            config,
            store,
            presence: Presence::default(),
            tokens,
            shutdown,
            started: Instant::now(),
            sockets: AtomicUsize::new(0),
            engine: OnceLock::new(),
            gate: OnceLock::new(),
        }))
    }

    /// Set once, when the wire layer is built (its handler needs this handle first).
    pub fn set_engine(&self, engine: Arc<Engine>) {
        let _ = self.0.engine.set(engine);
    }

    /// The wire layer, once the server runs.
    pub fn engine(&self) -> Option<&Arc<Engine>> {
        self.0.engine.get()
    }

    /// Set once by the accept loop.
    pub fn set_gate(&self, gate: Arc<Gate>) {
        let _ = self.0.gate.set(gate);
    }

    /// The connection gate, once the accept loop runs.
    pub fn gate(&self) -> Option<&Arc<Gate>> {
        self.0.gate.get()
    }

    /// TCP connections open now, and client IPs holding them.
    pub fn connection_counts(&self) -> (usize, usize) {
        self.0.gate.get().map(|g| g.sizes()).unwrap_or((0, 0))
    }

    pub fn socket_count(&self) -> usize {
        self.sockets.load(Ordering::Relaxed)
    }

    /// The state `/metrics` shows, read now.
    pub fn gauges(&self) -> crate::metrics::Gauges {
        let (websocket, polling) = self.engine().map(|e| e.transport_counts()).unwrap_or((0, 0));
        let (tcp_connections, ips) = self.connection_counts();
        let (rooms, memberships, sessions) = self.presence.table_sizes();
        let l = &self.limiters;
        crate::metrics::Gauges {
            websocket,
            polling,
            tcp_connections,
            rooms_in_memory: rooms,
            guests_online: self.presence.guests_online(),
            breaker_open: self.store.breaker().status() == crate::store::BreakerStatus::Open,
            uptime_s: self.started.elapsed().as_secs_f64(),
            tables: vec![
                ("connections_per_ip", ips),
                ("connect_rate_per_ip", l.connect.len()),
                ("http_rate_per_ip", l.http.len()),
                ("login_rate_per_ip", l.login.len()),
                ("gallery_access_per_ip", l.gallery_access.len()),
                ("access_code_failures_per_ip", l.code_failures_ip.len()),
                ("access_code_failures_per_event", l.code_failures_event.len()),
                ("presence_rooms", rooms),
                ("presence_members", memberships),
                ("session_sockets", sessions),
            ],
        }
    }

    /// Emits `data` as `event` to `room`; returns how many sockets took it.
    ///
    /// The frame is encoded once and every member's queue shares it; a member whose queue is
    /// over its bound is shed by the wire layer instead of holding the room back.
    pub fn broadcast<T: serde::Serialize + ?Sized>(&self, room: &str, event: &str, data: &T) -> usize {
        self.broadcast_keyed(room, None, event, data, None)
    }

    /// [`App::broadcast`] to everyone in `room` but `except`; with a `key`, the frame is state
    /// and replaces the older frame of that key still waiting in a member's queue.
    pub fn broadcast_keyed<T: serde::Serialize + ?Sized>(
        &self,
        room: &str,
        except: Option<crate::engine::Sid>,
        event: &str,
        data: &T,
        key: Option<&crate::engine::StateKey>,
    ) -> usize {
        let Some(engine) = self.engine() else { return 0 };
        let Some(frame) = crate::engine::frame::event(event, data) else {
            tracing::error!(event, "cannot encode a broadcast");
            return 0;
        };
        let delivered = engine.broadcast(room, except, &frame, key);
        crate::metrics::METRICS.deliveries.inc_by(delivered as u64);
        delivered
    }
}
