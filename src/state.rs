//! The shared application handle: cheap to clone, passed to every socket handler and HTTP route.

use std::ops::Deref;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use tokio::sync::Semaphore;

use crate::admin_feed::AdminFeed;
use crate::auth::Tokens;
use crate::limits::Limiters;
use crate::config::Config;
use crate::engine::Engine;
use crate::gate::Gate;
use crate::presence::Presence;
use crate::shutdown::Shutdown;
use crate::socket::revoke::Revoker;
use crate::store::Store;

pub struct Shared {
    pub config: Config,
    pub store: Store,
    pub presence: Presence,
    pub tokens: Tokens,
    pub shutdown: Shutdown,
    pub limiters: Limiters,
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

/// Handle to [`Shared`].
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
            limiters: Limiters::new(&config),
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
}
