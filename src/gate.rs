//! Connection caps: in total and per client IP, for as long as the TCP connection lives; and a
//! kill switch per connection.
//!
//! The slot that counts a connection is owned by the connection's IO object, and hyper keeps
//! that object inside an upgraded websocket; so the count lasts exactly as long as the TCP
//! connection, whatever protocol it carries. Behind a trusted proxy the client is known only
//! from the first request's `X-Forwarded-For`, so the per-IP part of the slot can be filled in
//! then.
//!
//! The same IO object is the only place where a connection can be ended from outside the tasks
//! that own it: a socket that stopped reading has a full queue, so no disconnect packet reaches
//! it, and its writer waits forever on a full TCP buffer. Its [`Transport`] handle throws the
//! switch: every read and write then fails, the tasks parked on them are woken to see it, and
//! the socket is closed with a reset, which the peer sees even if it never reads again.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::limits::IpKey;

pub struct Gate {
    max_total: usize,
    max_per_ip: usize,
    total: AtomicUsize,
    per_ip: Mutex<HashMap<IpKey, usize>>,
}

/// Why a connection was not let in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Full {
    Total,
    PerIp,
}

impl Gate {
    pub fn new(max_total: usize, max_per_ip: usize) -> Arc<Gate> {
        Arc::new(Gate { max_total, max_per_ip, total: AtomicUsize::new(0), per_ip: Mutex::new(HashMap::new()) })
    }

    fn ips(&self) -> std::sync::MutexGuard<'_, HashMap<IpKey, usize>> {
        self.per_ip.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes a place in the total; the IP part is added with [`Slot::claim_ip`].
    pub fn enter(self: &Arc<Gate>) -> Result<Slot, Full> {
        let prev = self.total.fetch_add(1, Ordering::AcqRel);
        if prev >= self.max_total {
            self.total.fetch_sub(1, Ordering::AcqRel);
            return Err(Full::Total);
        }
        Ok(Slot { gate: self.clone(), ip: Mutex::new(None), wire: Arc::default() })
    }

    fn take_ip(&self, ip: IpKey) -> bool {
        let mut t = self.ips();
        let n = t.entry(ip).or_insert(0);
        if *n >= self.max_per_ip {
            if *n == 0 {
                t.remove(&ip);
            }
            return false;
        }
        *n += 1;
        true
    }

    fn release_ip(&self, ip: IpKey) {
        let mut t = self.ips();
        if let Some(n) = t.get_mut(&ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                t.remove(&ip);
            }
        }
    }

    /// Connections now, and distinct IPs in the per-IP table.
    pub fn sizes(&self) -> (usize, usize) {
        (self.total.load(Ordering::Acquire), self.ips().len())
    }
}

/// One connection's place; released on drop.
pub struct Slot {
    gate: Arc<Gate>,
    ip: Mutex<Option<IpKey>>,
    wire: Arc<Wire>,
}

/// One connection's kill switch.
///
/// Throwing it marks the connection dead and shuts the socket down: the kernel then wakes
/// whatever task waits on it (its read sees the end, its write an error), so no waker needs
/// registering on every read and write to make that happen.
#[derive(Default)]
pub struct Wire {
    killed: AtomicBool,
    stream: std::sync::OnceLock<Weak<TcpStream>>,
}

impl Wire {
    fn kill(&self) {
        self.killed.store(true, Ordering::Release);
        if let Some(tcp) = self.stream.get().and_then(Weak::upgrade) {
            let sock = socket2::SockRef::from(&*tcp);
            // A reset, not a FIN queued behind megabytes the peer never read.
            let _ = sock.set_linger(Some(std::time::Duration::ZERO));
            let _ = sock.shutdown(std::net::Shutdown::Both);
        }
    }

    pub fn is_killed(&self) -> bool {
        self.killed.load(Ordering::Acquire)
    }

    fn check(&self) -> std::io::Result<()> {
        if self.is_killed() {
            return Err(std::io::Error::new(std::io::ErrorKind::ConnectionAborted, "connection shed"));
        }
        Ok(())
    }
}

/// A handle that closes one TCP connection, in the extensions of every request it carries.
///
/// Weak: a polling session outlives the connections of its requests and keeps its handshake
/// request's extensions, and must not keep a closed connection's state alive.
#[derive(Clone)]
pub struct Transport(Weak<Wire>);

impl Transport {
    /// Closes the connection at once (see the module docs); false when it was closed already.
    pub fn close(&self) -> bool {
        match self.0.upgrade() {
            Some(wire) => {
                wire.kill();
                true
            }
            None => false,
        }
    }
}

impl Slot {
    /// Counts this connection against the client `ip` (once; later calls with any IP are no-ops).
    pub fn claim_ip(&self, ip: IpKey) -> Result<(), Full> {
        let mut mine = self.ip.lock().unwrap_or_else(|p| p.into_inner());
        if mine.is_some() {
            return Ok(());
        }
        if !self.gate.take_ip(ip) {
            return Err(Full::PerIp);
        }
        *mine = Some(ip);
        Ok(())
    }

    /// Puts this connection's [`Transport`] into the request's extensions: the wire layer
    /// keeps the one its session's frames go down, to close it when the session is shed.
    pub fn tag<B>(&self, req: &mut http::Request<B>) {
        req.extensions_mut().insert(Transport(Arc::downgrade(&self.wire)));
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(ip) = self.ip.get_mut().ok().and_then(|ip| ip.take()) {
            self.gate.release_ip(ip);
        }
        self.gate.total.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A TCP stream that carries its [`Slot`].
///
/// The stream is shared (`Arc`) so that a websocket's writes can be made by whoever has a frame
/// for it (see `engine::direct`) while its task reads; `&TcpStream` can do both.
pub struct Counted {
    io: Arc<TcpStream>,
    pub slot: Arc<Slot>,
}

impl Counted {
    pub fn new(io: TcpStream, slot: Arc<Slot>) -> Counted {
        let io = Arc::new(io);
        let _ = slot.wire.stream.set(Arc::downgrade(&io));
        Counted { io, slot }
    }

    /// The stream, for writes made outside this object.
    pub fn stream(&self) -> Arc<TcpStream> {
        self.io.clone()
    }

    /// The kill switch of this connection.
    pub fn wire(&self) -> Arc<Wire> {
        self.slot.wire.clone()
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        // A shed connection may hold megabytes its peer never read: a FIN would wait behind
        // them, a reset ends it now.
        if self.slot.wire.is_killed() {
            let _ = socket2::SockRef::from(&*self.io).set_linger(Some(std::time::Duration::ZERO));
        }
    }
}

impl AsyncRead for Counted {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        loop {
            self.slot.wire.check()?;
            std::task::ready!(self.io.poll_read_ready(cx))?;
            match self.io.try_read(buf.initialize_unfilled()) {
                Ok(n) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl AsyncWrite for Counted {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        loop {
            self.slot.wire.check()?;
            std::task::ready!(self.io.poll_write_ready(cx))?;
            match self.io.try_write(buf) {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                other => return Poll::Ready(other),
            }
        }
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.slot.wire.check()?;
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        // Once killed, closing is the drop's reset; a shutdown would queue a FIN behind unread data.
        if !self.slot.wire.is_killed() {
            let _ = socket2::SockRef::from(&*self.io).shutdown(std::net::Shutdown::Write);
        }
        Poll::Ready(Ok(()))
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        loop {
            self.slot.wire.check()?;
            std::task::ready!(self.io.poll_write_ready(cx))?;
            match self.io.try_write_vectored(bufs) {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                other => return Poll::Ready(other),
            }
        }
    }
    fn is_write_vectored(&self) -> bool {
        true
    }
}

/// The open-file limit raised to its hard limit; returns the soft limit now in force.
pub fn raise_fd_limit() -> u64 {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => n,
        Err(_) => rlimit::getrlimit(rlimit::Resource::NOFILE).map(|(soft, _)| soft).unwrap_or(1024),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_and_release() {
        let g = Gate::new(3, 2);
        let ip = IpKey::of([127, 0, 0, 2].into(), 64);
        let a = g.enter().unwrap();
        a.claim_ip(ip).unwrap();
        let b = g.enter().unwrap();
        b.claim_ip(ip).unwrap();
        let c = g.enter().unwrap();
        assert_eq!(c.claim_ip(ip), Err(Full::PerIp));
        assert!(matches!(g.enter(), Err(Full::Total)));
        drop(a);
        c.claim_ip(ip).unwrap();
        drop(b);
        drop(c);
        assert_eq!(g.sizes(), (0, 0));
    }

    fn get(uri: &str) -> http::Request<()> {
        http::Request::get(uri).body(()).unwrap()
    }

    #[tokio::test]
    async fn a_killed_connection_fails_its_pending_read_and_ends_for_its_peer() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut peer = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let g = Gate::new(10, 10);
        let slot = Arc::new(g.enter().unwrap());
        let mut req = get("/");
        slot.tag(&mut req);
        let handle = req.extensions().get::<Transport>().cloned().unwrap();
        let mut io = Counted::new(server, slot);
        // Unread data on the way out, as for a peer that stopped reading.
        io.write_all(&[7u8; 4096]).await.unwrap();
        let reader = tokio::spawn(async move {
            let mut buf = [0u8; 16];
            let r = io.read(&mut buf).await;
            (r.map_err(|e| e.kind()), io)
        });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(handle.close());
        let (r, io) = tokio::time::timeout(std::time::Duration::from_secs(2), reader).await.expect("woken").unwrap();
        assert_eq!(r.err(), Some(std::io::ErrorKind::ConnectionAborted));
        drop(io);
        assert!(!handle.close(), "gone with its connection");
        let mut got = Vec::new();
        // Data the peer's kernel already holds arrives before the end; with a full window (a
        // reader that stopped, as `tests/it/queues/defaults.rs` shows) the end is a reset.
        let end = tokio::time::timeout(std::time::Duration::from_secs(2), peer.read_to_end(&mut got))
            .await
            .expect("peer sees the end");
        let end = end.map_err(|e| e.kind());
        assert!(matches!(end, Ok(_) | Err(std::io::ErrorKind::ConnectionReset)), "{end:?} after {} bytes", got.len());
    }
}
