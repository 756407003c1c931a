//! The TCP stream of one connection, counted under the caps of [`super::gate`], and its kill
//! switch.
//!
//! The stream is the only place where a connection can be ended from outside the tasks that own
//! it: a socket that stopped reading has a full queue, so no disconnect packet reaches it, and its
//! writer waits forever on a full TCP buffer. Its [`ConnectionCloser`] throws the switch: every
//! read and write then fails, the tasks parked on them are woken to see it, and the socket is
//! closed with a reset, which the peer sees even if it never reads again.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use super::gate::Slot;

/// One connection's kill switch.
///
/// Throwing it marks the connection dead and shuts the socket down: the kernel then wakes
/// whatever task waits on it (its read sees the end, its write an error), so no waker needs
/// registering on every read and write to make that happen.
#[derive(Default)]
pub struct KillSwitch {
    killed: AtomicBool,
    pub(super) stream: std::sync::OnceLock<Weak<TcpStream>>,
}

impl KillSwitch {
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
pub struct ConnectionCloser(Weak<KillSwitch>);

impl ConnectionCloser {
    pub(super) fn of(switch: &Arc<KillSwitch>) -> ConnectionCloser {
        ConnectionCloser(Arc::downgrade(switch))
    }

    /// Closes the connection at once (see the module docs); false when it was closed already.
    pub fn close(&self) -> bool {
        match self.0.upgrade() {
            Some(switch) => {
                switch.kill();
                true
            }
            None => false,
        }
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
        let _ = slot.kill_switch.stream.set(Arc::downgrade(&io));
        Counted { io, slot }
    }

    /// The stream, for writes made outside this object.
    pub fn stream(&self) -> Arc<TcpStream> {
        self.io.clone()
    }

    /// The kill switch of this connection.
    pub fn kill_switch(&self) -> Arc<KillSwitch> {
        self.slot.kill_switch.clone()
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        // A shed connection may hold megabytes its peer never read: a FIN would wait behind
        // them, a reset ends it now.
        if self.slot.kill_switch.is_killed() {
            let _ = socket2::SockRef::from(&*self.io).set_linger(Some(std::time::Duration::ZERO));
        }
    }
}

impl AsyncRead for Counted {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        loop {
            self.slot.kill_switch.check()?;
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

impl Counted {
    /// One write once the socket is writable, unless the connection was killed meanwhile.
    fn poll_write_with(
        &self,
        cx: &mut Context<'_>,
        write: impl Fn(&TcpStream) -> std::io::Result<usize>,
    ) -> Poll<std::io::Result<usize>> {
        loop {
            self.slot.kill_switch.check()?;
            std::task::ready!(self.io.poll_write_ready(cx))?;
            match write(&self.io) {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                other => return Poll::Ready(other),
            }
        }
    }
}

impl AsyncWrite for Counted {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        self.poll_write_with(cx, |io| io.try_write(buf))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.slot.kill_switch.check()?;
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        // Once killed, closing is the drop's reset; a shutdown would queue a FIN behind unread data.
        if !self.slot.kill_switch.is_killed() {
            let _ = socket2::SockRef::from(&*self.io).shutdown(std::net::Shutdown::Write);
        }
        Poll::Ready(Ok(()))
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        self.poll_write_with(cx, |io| io.try_write_vectored(bufs))
    }
    fn is_write_vectored(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::gate::Gate;

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
        let handle = req.extensions().get::<ConnectionCloser>().cloned().unwrap();
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
