//! Websocket transport: the upgrade response, the probe of a polling session's upgrade, and
//! reading and writing frames for the session's task.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

use super::direct::{Direct, WsIo};
use super::session::{Phase, TransportKind};
use super::{Engine, Session};
use crate::limits::stream::{ConnectionCloser, Counted};

pub type Ws = WebSocketStream<WsIo>;

/// A websocket and the writer its frames go through (see [`super::direct`]).
pub struct Socket {
    pub ws: Ws,
    pub direct: Arc<Direct>,
}

/// Buffers sized for phones that send tiny messages and receive bursts: a 512-byte read buffer
/// (tungstenite's default is 128 KiB per connection), frames gathered up to 16 KiB before a
/// write, and messages held to `maxPayload`, so a larger one is refused while it arrives.
///
/// The read buffer is kept for the connection's life, idle or not. Every gallery event but a
/// long comment fits one read of 512 bytes; a larger frame still arrives whole, over more reads.
/// Against 1 KiB it saves 500 B of the ~6 KB an idle connection costs; 256 B saved 250 B more
/// with no measurable cost in a like storm (BENCHMARKS.md, "Per-connection cost after the
/// layout work").
pub fn config(max_payload: usize) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(512)
        .write_buffer_size(16 * 1024)
        .max_write_buffer_size(usize::MAX)
        .max_message_size(Some(max_payload))
        .max_frame_size(Some(max_payload))
}

/// The websocket on an upgraded connection. `None` when the connection did not come through
/// the accept loop's counted stream, which every served connection does.
pub async fn accept(upgraded: Upgraded, max_payload: usize) -> Option<Socket> {
    let parts = upgraded.downcast::<TokioIo<Counted>>().ok()?;
    let conn = parts.io.into_inner();
    let direct = Direct::new(&conn);
    let io = WsIo::new(conn, direct.clone());
    let ws = WebSocketStream::from_partially_read(io, parts.read_buf.to_vec(), Role::Server, Some(config(max_payload)))
        .await;
    Some(Socket { ws, direct })
}

/// What arrived on a websocket.
pub enum Read {
    Text(Utf8Bytes),
    Binary(bytes::Bytes),
    /// Closed by the peer, or broken: the session ends.
    Closed,
    /// Too large, or not a websocket frame at all: a protocol error.
    Error,
}

pub async fn read(ws: &mut Ws) -> Read {
    loop {
        return match ws.next().await {
            Some(Ok(Message::Text(t))) => Read::Text(t),
            Some(Ok(Message::Binary(b))) => Read::Binary(b),
            // tungstenite answers pings itself (with the next write or flush).
            Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
            Some(Ok(Message::Close(_))) | None => Read::Closed,
            Some(Err(e)) => {
                tracing::debug!(error = %e, "websocket read failed");
                Read::Error
            }
        };
    }
}

/// Writes everything the session has queued: framed into one buffer (up to a cap) and written
/// with as few `write` calls as the kernel allows. Bounded in time: a peer that takes no data for
/// `limit` is given up on.
pub async fn write_queued(s: &Session, direct: &Direct, limit: Duration) -> bool {
    let work = async {
        loop {
            s.with_queue(|next| direct.take_from(next));
            direct.drain().await?;
            if s.queued() == 0 {
                return Ok::<(), std::io::Error>(());
            }
        }
    };
    matches!(tokio::time::timeout(limit, work).await, Ok(Ok(())))
}

/// The probe of a polling session's upgrade (`2probe` → `3probe`, then `5`): on success the
/// websocket is handed to the session's task; on failure the session stays on polling.
pub async fn probe(engine: Arc<Engine>, s: Arc<Session>, upgraded: Upgraded, transport: Option<ConnectionCloser>) {
    let Some(Socket { mut ws, direct }) = accept(upgraded, engine.limits.max_payload).await else { return };
    let wait = engine.limits.ping_interval + engine.limits.ping_timeout;
    let first = tokio::time::timeout(wait, read(&mut ws)).await;
    if !matches!(&first, Ok(Read::Text(t)) if t.as_str() == "2probe")
        || ws.send(Message::Text(Utf8Bytes::from_static("3probe"))).await.is_err()
    {
        return;
    }
    {
        let mut st = s.state();
        if st.phase != Phase::Open || st.transport != TransportKind::Polling {
            return;
        }
        st.transport = TransportKind::Upgrading;
    }
    // A pending long-poll is answered with a noop, so the client can move over.
    s.outgoing.notify_one();
    let upgrade = tokio::time::timeout(wait, read(&mut ws)).await;
    let mut st = s.state();
    if st.transport != TransportKind::Upgrading || st.phase == Phase::Closed {
        return;
    }
    if matches!(&upgrade, Ok(Read::Text(t)) if t.as_str() == "5") {
        st.upgraded = Some(Box::new(Socket { ws, direct }));
        st.downstream = transport;
        drop(st);
        s.inbound.notify_one();
    } else {
        st.transport = TransportKind::Polling;
    }
}

/// Ends a websocket politely: a close frame once everything queued is out.
pub async fn close(sock: &mut Socket) {
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        let _ = sock.ws.close(None).await;
        sock.direct.drain().await
    })
    .await;
}
