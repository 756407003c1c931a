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

use crate::limits::stream::{Counted, KillSwitch};

/// Framed bytes the task moves from the queue into the pending buffer at once; the rest stay
/// in the queue, where state frames can still be replaced.
const PENDING_CAP: usize = 64 * 1024;

/// Frames up to this size are copied into one buffer for a direct write.
const SMALL_FRAME: usize = 1024;

pub struct Direct {
    kill_switch: Arc<KillSwitch>,
    /// The connection's socket. Not behind the lock, so that [`Direct::warm`] can read it
    /// without one; [`Direct::release`] shuts it down, and the descriptor is closed once the
    /// session and its reader are gone.
    socket: Arc<TcpStream>,
    /// One lock for the pending bytes: a direct write takes it anyway, and tungstenite's own
    /// writes go into the same bytes.
    out: Mutex<Out>,
}

struct Out {
    pending: Vec<u8>,
    /// False once the session closed: nothing more is written.
    open: bool,
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

fn framed_owned(h: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(h.len() + payload.len());
    v.extend_from_slice(h);
    v.extend_from_slice(payload);
    v
}

fn append_frame(buf: &mut Vec<u8>, payload: &[u8]) {
    let (h, n) = header(payload.len());
    buf.extend_from_slice(&h[..n]);
    buf.extend_from_slice(payload);
}

/// `payload` as one websocket text frame, header included: a broadcast frames its payload once
/// and every member's socket is sent the same bytes.
pub fn framed(payload: &[u8]) -> Vec<u8> {
    let mut buf = Vec::with_capacity(payload.len() + 10);
    append_frame(&mut buf, payload);
    buf
}

impl Direct {
    pub fn new(conn: &Counted) -> Arc<Direct> {
        Arc::new(Direct {
            kill_switch: conn.kill_switch(),
            socket: conn.stream(),
            out: Mutex::new(Out { pending: Vec::new(), open: true }),
        })
    }

    /// Reads (plain loads only: no lock, no atomic read-modify-write, which would order the
    /// loads) the memory a direct write will touch. A broadcast calls it for several members
    /// before writing to them, so their cache misses overlap instead of coming one after the
    /// other: with thousands of members, each one's memory is cold by the time its turn comes.
    pub fn warm(&self) -> usize {
        use std::os::fd::AsRawFd;
        usize::from(self.out.is_poisoned())
            + usize::from(self.kill_switch.is_killed())
            + self.socket.as_raw_fd() as usize
    }

    fn out(&self) -> MutexGuard<'_, Out> {
        self.out.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The session closed: nothing more is written, and the peer is told at once (the
    /// descriptor itself closes when the session's last holder lets go).
    pub fn release(&self) {
        let mut out = self.out();
        out.open = false;
        out.pending = Vec::new();
        let _ = socket2::SockRef::from(&*self.socket).shutdown(std::net::Shutdown::Write);
    }

    fn gone() -> io::Error {
        io::Error::new(io::ErrorKind::ConnectionAborted, "connection closed")
    }

    /// Writes a text frame now if nothing waits before it; `framed` is the same frame with its
    /// header when the caller has it (a broadcast). The caller holds the session's queue lock,
    /// so no frame can slip in between.
    pub fn try_frame(&self, payload: &[u8], framed: Option<&[u8]>) -> Sent {
        let mut out = self.out();
        if !out.open || !out.pending.is_empty() || self.kill_switch.is_killed() {
            return Sent::No;
        }
        let sock = socket2::SockRef::from(&*self.socket);
        let mut small = [0u8; SMALL_FRAME];
        let bytes: &[u8] = match framed {
            Some(f) => f,
            None => {
                let (h, n) = header(payload.len());
                let total = n + payload.len();
                if total > SMALL_FRAME {
                    // Rare (a large reply): the kernel's vectored path is fine for it.
                    let written = sock.send_vectored(&[IoSlice::new(&h[..n]), IoSlice::new(payload)]);
                    return Self::sent(&mut out, written, total, || framed_owned(&h[..n], payload));
                }
                // One plain `send` of one buffer: copying a small frame costs less than the
                // kernel's vectored path. (The socket is non-blocking.)
                small[..n].copy_from_slice(&h[..n]);
                small[n..total].copy_from_slice(payload);
                &small[..total]
            }
        };
        let written = sock.send(bytes);
        Self::sent(&mut out, written, bytes.len(), || bytes.to_vec())
    }

    /// What a direct write of `total` bytes did; a partial write leaves the rest pending.
    fn sent(out: &mut Out, written: io::Result<usize>, total: usize, whole: impl FnOnce() -> Vec<u8>) -> Sent {
        match written {
            Ok(done) if done == total => Sent::All,
            Ok(done) => {
                let mut rest = whole();
                rest.drain(..done);
                out.pending = rest;
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
        let Out { pending, open } = &mut *out;
        if !*open {
            return Err(Self::gone());
        }
        let tcp = &*self.socket;
        while !pending.is_empty() {
            if self.kill_switch.is_killed() {
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
            self.socket.writable().await?;
        }
        Ok(())
    }

    fn poll_drain(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            if self.write_some()? {
                return Poll::Ready(Ok(()));
            }
            std::task::ready!(self.socket.poll_write_ready(cx))?;
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
