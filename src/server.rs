//! The server: [`run`] starts it on a bound listener (opens the store, builds the shared state)
//! and stops it cleanly; [`serve`] is its accept loop, one hyper 1 server for warp routes and
//! Socket.IO on one port.

use std::net::SocketAddr;
use std::time::Duration;

use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tower::{Service, ServiceBuilder};

use crate::auth::Tokens;
use crate::config::Config;
use crate::limits::IpKey;
use crate::limits::gate::Gate;
use crate::limits::http::{HttpAdmissionLayer, OverCap};
use crate::limits::stream::Counted;
use crate::peer::{PeerAddr, canonical, client_ip, forwarded_for};
use crate::shutdown::Shutdown;
use crate::state::App;
use crate::store::{Store, StoreError, StoreOptions};

/// Pending connections the kernel queues for us: a connect storm of thousands of guests must
/// not overflow it (the default of 128 makes clients wait for a SYN retry).
const LISTEN_BACKLOG: u32 = 4096;

/// Kernel send buffer per connection (Linux doubles it): far more than a phone's share of a
/// room's traffic in one round trip.
const SEND_BUFFER: u32 = 64 * 1024;

/// Binds the listening socket (address reuse on, a deep backlog).
pub fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    // Accepted connections inherit it. Linux would otherwise grow each connection's send buffer
    // up to 4 MiB: kernel memory per phone, and a reader that stopped would have megabytes
    // absorbed before the server's own queue bound (`outgoing_queue_bytes`) could see it.
    socket.set_send_buffer_size(SEND_BUFFER)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Builds the wire layer with the configured protocol limits.
fn engine(app: &App) -> std::sync::Arc<crate::engine::Engine> {
    let l = &app.config.limits;
    let limits = crate::engine::Limits {
        ping_interval: l.ping_interval,
        ping_timeout: l.ping_timeout,
        connect_timeout: l.connect_timeout,
        max_payload: l.max_payload_bytes as usize,
        queue_bytes: l.outgoing_queue_bytes,
        total_bytes: l.outgoing_total_bytes,
    };
    crate::engine::Engine::new(limits, std::sync::Arc::new(crate::socket::Gallery(app.clone())))
}

/// On shutdown: a server-side disconnect to every socket first (clients see `io server
/// disconnect` and do not reconnect into a dying process), while connections are still
/// accepted and served so that polling clients can fetch it; then `drain` closes everything.
async fn disconnect_all_on_shutdown(
    app: App,
    engine: std::sync::Arc<crate::engine::Engine>,
    drain: crate::shutdown::Shutdown,
) {
    app.shutdown.wait().await;
    tracing::info!("disconnecting clients");
    let _ = tokio::time::timeout(Duration::from_secs(3), async {
        engine.disconnect_all();
        for _ in 0..20 {
            if engine.session_count() == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // Let the last polls carry their disconnect packet out.
        tokio::time::sleep(Duration::from_millis(200)).await;
    })
    .await;
    drain.trigger();
}

/// Serves until shutdown fires; then disconnects every socket and returns.
pub async fn serve(app: App, listener: TcpListener) -> std::io::Result<()> {
    let engine = engine(&app);
    app.set_engine(engine.clone());
    tokio::spawn(crate::socket::admin_rooms::run(app.clone()));
    tokio::spawn(crate::socket::ops::watch_breaker(app.clone()));
    {
        let app = app.clone();
        tokio::spawn(async move { crate::limits::per_ip::sweep_every(&app.limiters, &app.shutdown).await });
    }
    tokio::spawn(crate::janitor::run(app.clone()));
    tokio::spawn(crate::socket::reap_roomless(app.clone()));
    let routes = warp::service(crate::http::routes(app.clone()));
    let wire = engine.clone();
    let inner = tower::service_fn(move |req: hyper::Request<Incoming>| {
        let (engine, mut routes) = (wire.clone(), routes.clone());
        async move {
            let path = req.uri().path();
            if path == "/socket.io" || path.starts_with("/socket.io/") {
                let resp = crate::engine::handle(&engine, req).await;
                return Ok::<_, std::convert::Infallible>(resp.map(|b| b.map_err(|e| match e {}).boxed_unsync()));
            }
            match routes.call(req).await {
                Ok(resp) => Ok(resp.map(|b| b.map_err(crate::limits::http::BoxError::from).boxed_unsync())),
                Err(e) => match e {},
            }
        }
    });
    let svc = ServiceBuilder::new()
        .layer(HttpAdmissionLayer::new(app.limiters.clone(), crate::limits::http::Origins::of(&app.config)))
        .service(inner);
    let gate = Gate::new(
        crate::limits::gate::effective_max_connections(app.config.limits.max_connections),
        app.config.limits.max_connections_per_ip,
    );
    app.set_gate(gate.clone());
    // Connections close only after every socket was told to disconnect.
    let drain = crate::shutdown::Shutdown::default();
    tokio::spawn(disconnect_all_on_shutdown(app.clone(), engine.clone(), drain.clone()));

    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Running out of file descriptors must not end the server: wait and retry.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = drain.wait() => break,
        };
        let _ = stream.set_nodelay(true);
        let trusted = app.config.trusted_proxies.clone();
        let prefix = app.config.limits.ipv6_prefix;
        let peer_ip = canonical(peer.ip());
        // A direct client is counted by its address now; behind a trusted proxy, by the
        // client address of its first request.
        let proxied = trusted.iter().any(|n| n.contains(&peer_ip));
        let direct = (!proxied).then(|| IpKey::of(peer_ip, prefix));
        let Some((stream, slot)) = crate::limits::gate::admit(&gate, stream, direct) else { continue };
        let svc = svc.clone();
        let conn_slot = slot.clone();
        let shutdown = drain.clone();
        let header_timeout = app.config.limits.header_read_timeout;
        tokio::spawn(async move {
            let hyper_svc = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
                let forwarded = forwarded_for(req.headers());
                let client_ip = client_ip(peer.ip(), forwarded.as_deref(), &trusted);
                let key = IpKey::of(client_ip, prefix);
                req.extensions_mut().insert(PeerAddr { client_ip, key });
                conn_slot.tag(&mut req);
                if let Err(full) = conn_slot.claim_ip(key) {
                    req.extensions_mut().insert(OverCap(full));
                }
                let mut svc = svc.clone();
                async move { svc.call(req).await }
            });
            // The timer bounds how long a request head may take, from connect and, on a kept-alive
            // connection, from the previous response: silent or trickling peers cannot hold a
            // connection (and their place under the caps) for ever. Upgraded websockets leave
            // hyper's reading behind and are governed by ping/pong instead.
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout)
                .serve_connection(TokioIo::new(Counted::new(stream, slot)), hyper_svc)
                .with_upgrades();
            let mut conn = std::pin::pin!(conn);
            tokio::select! {
                res = conn.as_mut() => if let Err(e) = res { tracing::debug!(error = %e, "connection ended with an error") },
                _ = shutdown.wait() => {
                    // Let in-flight responses finish (a polling client's pending poll carries its
                    // disconnect packet), then close.
                    conn.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(Duration::from_secs(2), conn.as_mut()).await;
                }
            }
        });
    }
    Ok(())
}

/// Why [`run`] did not start, or did not end cleanly.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("{0}")]
    Store(StoreError),
    #[error("cannot read the listening address: {0}")]
    Listener(std::io::Error),
    /// The configured secret cannot sign tokens: a configuration problem, not a runtime one.
    #[error("unusable secret: {0}")]
    Secret(jsonwebtoken::errors::Error),
    #[error("cannot read the admin users: {0}")]
    AdminUsers(StoreError),
    #[error("exiting after a storage failure")]
    StorageLost,
    #[error("shutdown was not clean: {0}")]
    Unclean(String),
}

/// Runs the server on `listener` until `shutdown` fires or storage is lost for good: opens the
/// data directory (one process owns it), serves, then disconnects every client and flushes.
/// `config.secret` must be resolved already (see `Config::secret`). Once the server is ready it
/// prints `listening on http://ADDR`, the line scripts and tests wait for, and tells systemd.
pub async fn run(config: Config, listener: TcpListener, shutdown: Shutdown) -> Result<(), RunError> {
    let opts = StoreOptions {
        group_commit: config.group_commit,
        cache_bytes: u64::from(config.cache_mb) << 20,
        commit_queue: config.commit_queue,
        commit_queue_wait: config.commit_queue_wait,
        ..Default::default()
    };
    if !config.group_commit {
        tracing::warn!("group commit is off: every durable write pays for its own flush");
    }
    let store = Store::open_with(&config.data_dir, opts).map_err(RunError::Store)?;
    let addr = listener.local_addr().map_err(RunError::Listener)?;
    let tokens = Tokens::new(config.secret.as_deref().unwrap_or_default()).map_err(RunError::Secret)?;
    // Login tokens are valid only for the admin users, with the passwords, stored now.
    let users = store.admins().map_err(RunError::AdminUsers)?;
    let tokens = tokens.with_admin_users(users.iter().map(|u| (u.username.as_str(), u.phc.as_str())));
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        addr = %addr,
        data_dir = %config.data_dir.display(),
        mode = config.mode.as_str(),
        "hafi-realtime starting"
    );
    let app = App::new(config, store.clone(), tokens, shutdown.clone());
    // The port accepts connections from here on (the kernel queues them until the loop runs).
    crate::notify::ready();
    crate::logs::announce(&format!("listening on http://{addr}"));
    {
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            shutdown.wait().await;
            crate::notify::stopping();
        });
    }
    {
        // A database that cannot be reopened after a fault leaves nothing to serve from: tell
        // the clients (shutdown disconnects them) and stop, for systemd to restart the process.
        let (store, shutdown) = (store.clone(), shutdown.clone());
        tokio::spawn(async move {
            tokio::select! {
                _ = store.wait_lost() => {
                    tracing::error!("storage is lost: shutting down to be restarted");
                    shutdown.trigger();
                }
                _ = shutdown.wait() => {}
            }
        });
    }
    let served = serve(app, listener).await;
    if store.is_lost() {
        return Err(RunError::StorageLost);
    }
    let flushed =
        tokio::time::timeout(Duration::from_secs(5), tokio::task::spawn_blocking(move || store.flush_now())).await;
    match (served, flushed) {
        (Ok(()), Ok(Ok(Ok(())))) => {
            tracing::info!("stopped cleanly");
            Ok(())
        }
        (served, flushed) => Err(RunError::Unclean(format!("served: {served:?}, flushed: {flushed:?}"))),
    }
}
