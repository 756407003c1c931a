//! Websocket frames written straight to the socket by whoever has them.
//!
//! A broadcast to a room of phones that keep up finds each member's queue empty: the frame is
//! written to the member's socket there and then, one non-blocking `write` per member, with no
//! task woken and nothing queued (the floor of fan-out is that very write). Only when the kernel
//! takes less than the whole frame does the rest wait here, and the session's task writes it
//! once the socket has room; frames pushed meanwhile wait in the session's queue, where they are
//! bounded and conflated. Frames leave in the order they were pushed: a frame is written
//! directly only while nothing else waits.
//!
//! tungstenite keeps reading the connection, and its own writes (pongs, the close frame) go
//! through [`WsIo`] into the same pending bytes, so whole frames never interleave.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::gate::{Counted, Wire};

/// Framed bytes the task moves from the queue into the pending buffer at once; the rest stay
/// in the queue, where state frames can still be replaced.
const PENDING_CAP: usize = 64 * 1024;

/// Frames up to this size are copied into one buffer for a direct write.
const SMALL_FRAME: usize = 1024;

pub struct Direct {
    wire: Arc<Wire>,
    /// One lock for the socket and its pending bytes: a direct write takes it anyway, and
    /// [`Direct::release`] can let the socket go while the session lingers.
    out: Mutex<Out>,
}

struct Out {
    pending: Vec<u8>,
    tcp: Option<Arc<TcpStream>>,
}

/// How a direct write went.
#[derive(Debug, PartialEq, Eq)]
pub enum Sent {
    /// The kernel took the whole frame.
    All,
    /// It took part; the rest is pending and the session's task must write it.
    Part,
    /// Nothing was written (bytes are pending already, or the socket is full): queue the frame.
    No,
}

/// The header of an unmasked, final text frame of `len` bytes.
fn header(len: usize) -> ([u8; 10], usize) {
    let mut h = [0u8; 10];
    h[0] = 0x81;
    if len < 126 {
        h[1] = len as u8;
        (h, 2)
    } else if len <= u16::MAX as usize {
        h[1] = 126;
        h[2..4].copy_from_slice(&(len as u16).to_be_bytes());
        (h, 4)
    } else {
        h[1] = 127;
        h[2..10].copy_from_slice(&(len as u64).to_be_bytes());
        (h, 10)
    }
}

fn append_frame(buf: &mut Vec<u8>, payload: &[u8]) {
    let (h, n) = header(payload.len());
    buf.extend_from_slice(&h[..n]);
    buf.extend_from_slice(payload);
}

impl Direct {
    pub fn new(conn: &Counted) -> Arc<Direct> {
        Arc::new(Direct { wire: conn.wire(), out: Mutex::new(Out { pending: Vec::new(), tcp: Some(conn.stream()) }) })
    }

    fn out(&self) -> MutexGuard<'_, Out> {
        self.out.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Lets go of the socket (the session closed): it is closed once its reader goes too.
    pub fn release(&self) {
        let mut out = self.out();
        out.tcp = None;
        out.pending = Vec::new();
    }

    fn gone() -> io::Error {
        io::Error::new(io::ErrorKind::ConnectionAborted, "connection closed")
    }

    /// Writes a text frame now if nothing waits before it. The caller holds the session's queue
    /// lock, so no frame can slip in between.
    pub fn try_frame(&self, payload: &[u8]) -> Sent {
        let mut out = self.out();
        let Out { pending, tcp } = &mut *out;
        let Some(tcp) = tcp.as_deref() else { return Sent::No };
        if !pending.is_empty() || self.wire.is_killed() {
            return Sent::No;
        }
        let (h, n) = header(payload.len());
        let total = n + payload.len();
        // One plain `send` of one buffer: most frames are a few hundred bytes, and copying them
        // costs less than the kernel's vectored path. (The socket is non-blocking.)
        let mut small = [0u8; SMALL_FRAME];
        let sock = socket2::SockRef::from(tcp);
        let written = if total <= SMALL_FRAME {
            small[..n].copy_from_slice(&h[..n]);
            small[n..total].copy_from_slice(payload);
            sock.send(&small[..total])
        } else {
            sock.send_vectored(&[IoSlice::new(&h[..n]), IoSlice::new(payload)])
        };
        match written {
            Ok(done) if done == total => Sent::All,
            Ok(done) => {
                let mut rest = Vec::with_capacity(total - done);
                rest.extend_from_slice(&h[..n]);
                rest.extend_from_slice(payload);
                rest.drain(..done);
                *pending = rest;
                Sent::Part
            }
            Err(_) => Sent::No,
        }
    }

    pub fn has_pending(&self) -> bool {
        !self.out().pending.is_empty()
    }

    /// Frames the queue's frames into the pending bytes, up to a cap; `next` gives them in order.
    /// The caller holds the queue lock.
    pub fn take_from(&self, mut next: impl FnMut() -> Option<tokio_tungstenite::tungstenite::Utf8Bytes>) {
        let mut out = self.out();
        while out.pending.len() < PENDING_CAP {
            let Some(f) = next() else { break };
            append_frame(&mut out.pending, f.as_bytes());
        }
    }

    /// Writes pending bytes until none are left or the socket is full. `Ok(true)`: all written.
    fn write_some(&self) -> io::Result<bool> {
        let mut out = self.out();
        let Out { pending, tcp } = &mut *out;
        let Some(tcp) = tcp.as_deref() else { return Err(Self::gone()) };
        while !pending.is_empty() {
            if self.wire.is_killed() {
                return Err(io::Error::new(io::ErrorKind::ConnectionAborted, "connection shed"));
            }
            match tcp.try_write(pending) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    pending.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) => return Err(e),
            }
        }
        if pending.capacity() > PENDING_CAP {
            *pending = Vec::new();
        }
        Ok(true)
    }

    /// Writes every pending byte, waiting for room in the socket as needed.
    pub async fn drain(&self) -> io::Result<()> {
        while !self.write_some()? {
            let tcp = self.out().tcp.clone().ok_or_else(Self::gone)?;
            tcp.writable().await?;
        }
        Ok(())
    }

    fn poll_drain(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            if self.write_some()? {
                return Poll::Ready(Ok(()));
            }
            let tcp = self.out().tcp.clone().ok_or_else(Self::gone)?;
            std::task::ready!(tcp.poll_write_ready(cx))?;
        }
    }
}

/// The connection as tungstenite sees it: reads from the socket, writes into [`Direct`].
pub struct WsIo {
    conn: Counted,
    direct: Arc<Direct>,
}

impl WsIo {
    pub fn new(conn: Counted, direct: Arc<Direct>) -> WsIo {
        WsIo { conn, direct }
    }
}

impl AsyncRead for WsIo {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.conn).poll_read(cx, buf)
    }
}

impl AsyncWrite for WsIo {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        // Whole buffers only: tungstenite hands over complete frames, and they must not be split
        // by a direct write. Written out by the next flush or drain.
        self.direct.out().pending.extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.direct.poll_drain(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.direct.poll_drain(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_follow_the_three_length_forms() {
        assert_eq!(header(5).0[..2], [0x81, 5]);
        let (h, n) = header(300);
        assert_eq!(&h[..n], &[0x81, 126, 1, 44]);
        let (h, n) = header(70_000);
        assert_eq!(&h[..n], &[0x81, 127, 0, 0, 0, 0, 0, 1, 0x11, 0x70]);
    }
}
