//! A session's one task: reads what the client sends, writes what is queued (on a websocket),
//! and keeps the heartbeat and the timeouts. A polling session's reads and writes travel on HTTP
//! requests instead (see `http`); its task handles the posted packets in order and keeps time.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use futures_util::StreamExt;
use futures_util::stream::FuturesOrdered;
use serde_json::Value;

use super::session::{Head, Phase, SocketPhase, TransportKind};
use super::websocket::{self, Read, Socket, Ws};
use super::{Incoming, Later, Reason, Session, Sid, Step, frame};
use crate::wire::{EioPacket, MessageData, SioKind, SioPacket, engineio, socketio};

/// Binary attachments one packet may announce. The server's events carry none; a client that
/// sends some is answered, not served, so a few are plenty.
const MAX_ATTACHMENTS: usize = 16;

/// A BINARY_EVENT or BINARY_ACK waiting for its attachments.
struct Attachments {
    /// The event to answer once they are in (`None` for an ack, which is dropped).
    event: Option<Incoming>,
    remaining: usize,
    bytes: usize,
}

struct Reader {
    /// The unfinished parts of this session's events, finished in arrival order.
    pipeline: FuturesOrdered<Later>,
    attachments: Option<Attachments>,
    /// A ping is out and its pong not back.
    awaiting_pong: bool,
    /// When the heartbeat acts next: send a ping, or give up on the pong.
    beat: Instant,
}

pub async fn run(s: Arc<Session>, mut ws: Option<Box<Socket>>) {
    let limits = s.engine().limits().clone();
    let mut r = Reader {
        pipeline: FuturesOrdered::new(),
        attachments: None,
        awaiting_pong: false,
        beat: Instant::now() + limits.ping_interval,
    };
    let mut closing_since: Option<Instant> = None;
    let sleep = tokio::time::sleep_until(r.beat.into());
    tokio::pin!(sleep);
    if let Some(w) = &ws {
        s.set_direct(w.direct.clone());
    }
    loop {
        let (phase, upgraded, waiting_since, inbox) = {
            let mut st = s.state();
            let up = st.upgraded.take();
            if let Some(u) = &up {
                st.transport = TransportKind::Websocket;
                s.set_direct(u.direct.clone());
            }
            let inbox = st.polling.as_mut().map(|p| {
                p.inbox_bytes = 0;
                std::mem::take(&mut p.inbox)
            });
            if up.is_some() {
                st.polling = None;
            }
            let waiting = (st.socket == SocketPhase::Waiting).then_some(st.waiting_since).flatten();
            (st.phase, up, waiting, inbox)
        };
        for packet in inbox.into_iter().flatten() {
            if let Err(reason) = boxed(on_packet(&s, &mut r, packet)).await {
                s.close(reason);
                break;
            }
        }
        if let Some(up) = upgraded {
            ws = Some(up);
        }
        match phase {
            Phase::Closed => break,
            Phase::Closing => {
                if let Some(w) = ws.as_mut() {
                    websocket::write_queued(&s, &w.direct, limits.ping_timeout).await;
                    websocket::close(w).await;
                    s.close(Reason::ServerDisconnect);
                    break;
                }
                closing_since.get_or_insert_with(Instant::now);
            }
            Phase::Open => {}
        }
        if let Some(w) = ws.as_mut()
            && (s.queued() > 0 || w.direct.has_pending())
            && !websocket::write_queued(&s, &w.direct, limits.ping_interval + limits.ping_timeout).await
        {
            s.close(Reason::TransportError);
            break;
        }
        let mut deadline = r.beat;
        if let Some(since) = waiting_since {
            deadline = deadline.min(since + limits.connect_timeout);
        }
        if let Some(since) = closing_since {
            deadline = deadline.min(since + limits.ping_timeout);
        }
        if sleep.deadline() != deadline.into() {
            sleep.as_mut().reset(deadline.into());
        }
        enum Ev {
            Wake,
            Read(Read),
            Timer,
        }
        let ev = tokio::select! {
            biased;
            _ = s.inbound.notified() => Ev::Wake,
            read = read_opt(ws.as_deref_mut().map(|w| &mut w.ws)) => Ev::Read(read),
            _ = s.outgoing.notified(), if ws.is_some() => Ev::Wake,
            Some(finish) = r.pipeline.next(), if !r.pipeline.is_empty() => {
                finish();
                Ev::Wake
            }
            _ = &mut sleep => Ev::Timer,
        };
        let now = Instant::now();
        let outcome = match ev {
            Ev::Wake => Ok(()),
            Ev::Read(Read::Text(t)) => match engineio::decode_ws_text(&t) {
                Ok(p) => boxed(on_packet(&s, &mut r, p)).await,
                Err(e) => {
                    tracing::debug!(sid = %s.sid, error = %e, "malformed Engine.IO packet");
                    Err(Reason::TransportError)
                }
            },
            Ev::Read(Read::Binary(b)) => boxed(on_packet(&s, &mut r, engineio::decode_ws_binary(b))).await,
            Ev::Read(Read::Closed) => Err(Reason::TransportClose),
            Ev::Read(Read::Error) => Err(Reason::TransportError),
            Ev::Timer => {
                if closing_since.is_some_and(|t| now >= t + limits.ping_timeout) {
                    Err(Reason::ServerDisconnect)
                } else if waiting_since.is_some_and(|t| now >= t + limits.connect_timeout) {
                    Err(Reason::TransportClose)
                } else if now < r.beat {
                    Ok(())
                } else if r.awaiting_pong {
                    Err(Reason::PingTimeout)
                } else {
                    r.awaiting_pong = true;
                    r.beat = now + limits.ping_timeout;
                    s.push_control(frame::ping());
                    Ok(())
                }
            }
        };
        if let Err(reason) = outcome {
            s.close(reason);
            break;
        }
    }
    // Whatever is still in flight finishes: its effects are durable and their broadcasts are
    // owed to the others (its answers go nowhere).
    while let Some(finish) = r.pipeline.next().await {
        finish();
    }
}

/// Puts a packet's handling on the heap for as long as it runs. Handling an event awaits the
/// store and the rooms; inlined, that state would be part of every session's task for the whole
/// life of its connection, idle or not: 632 of its 1,488 bytes (measured with `size_of_val`).
fn boxed<F: Future>(f: F) -> Pin<Box<F>> {
    Box::pin(f)
}

async fn read_opt(ws: Option<&mut Ws>) -> Read {
    match ws {
        Some(ws) => websocket::read(ws).await,
        None => std::future::pending().await,
    }
}

async fn on_packet(s: &Arc<Session>, r: &mut Reader, packet: EioPacket) -> Result<(), Reason> {
    match packet {
        EioPacket::Pong(_) => {
            if r.awaiting_pong {
                r.awaiting_pong = false;
                r.beat = Instant::now() + s.engine().limits().ping_interval;
            }
            Ok(())
        }
        EioPacket::Message(MessageData::Text(text)) => {
            if r.attachments.is_some() {
                return Err(Reason::TransportError);
            }
            match socketio::decode(&text) {
                Ok(p) => on_sio(s, r, p).await,
                Err(e) => {
                    tracing::debug!(sid = %s.sid, error = %e, "malformed Socket.IO packet");
                    Err(Reason::TransportError)
                }
            }
        }
        EioPacket::Message(MessageData::Binary(b)) => {
            let Some(att) = r.attachments.as_mut() else { return Err(Reason::TransportError) };
            att.remaining -= 1;
            att.bytes += b.len();
            if att.bytes > s.engine().limits().max_payload {
                return Err(Reason::TransportError);
            }
            if att.remaining == 0
                && let Some(ev) = r.attachments.take().and_then(|a| a.event)
            {
                dispatch(s, r, ev).await;
            }
            Ok(())
        }
        EioPacket::Close => Err(Reason::ClientClose),
        EioPacket::Noop | EioPacket::Ping(_) => Ok(()),
        EioPacket::Open(_) | EioPacket::Upgrade => Err(Reason::TransportError),
    }
}

async fn on_sio(s: &Arc<Session>, r: &mut Reader, p: SioPacket) -> Result<(), Reason> {
    if p.namespace != "/" {
        if p.kind == SioKind::Connect {
            s.push_control(frame::connect_error(&p.namespace, "Invalid namespace"));
        }
        return Ok(());
    }
    if p.kind.is_binary() && !p.data.as_deref().is_some_and(|d| socketio::placeholders_fit(d, p.attachments)) {
        return Err(Reason::TransportError);
    }
    match p.kind {
        SioKind::Connect => {
            connect(s, p.data.as_deref());
            Ok(())
        }
        SioKind::Disconnect => {
            if s.state().socket != SocketPhase::Connected {
                return Err(Reason::TransportError);
            }
            // The socket goes; the connection stays, and may connect again.
            s.end_socket(Reason::ClientDisconnect);
            s.state().waiting_since = Some(Instant::now());
            Ok(())
        }
        SioKind::Event | SioKind::BinaryEvent => {
            // An event for a socket that is not connected is a client out of step: the reference
            // server closes its connection too.
            if s.state().socket != SocketPhase::Connected {
                return Err(Reason::TransportError);
            }
            let event = incoming(&p);
            if p.kind == SioKind::BinaryEvent && p.attachments > 0 {
                if p.attachments > MAX_ATTACHMENTS {
                    return Err(Reason::TransportError);
                }
                r.attachments = Some(Attachments { event, remaining: p.attachments, bytes: 0 });
            } else if let Some(ev) = event {
                dispatch(s, r, ev).await;
            }
            Ok(())
        }
        SioKind::Ack => Ok(()),
        SioKind::BinaryAck => {
            if p.attachments > MAX_ATTACHMENTS {
                return Err(Reason::TransportError);
            }
            if p.attachments > 0 {
                r.attachments = Some(Attachments { event: None, remaining: p.attachments, bytes: 0 });
            }
            Ok(())
        }
        SioKind::ConnectError => Err(Reason::TransportError),
    }
}

fn incoming(p: &SioPacket) -> Option<Incoming> {
    let args: Vec<Value> = serde_json::from_str(p.data.as_deref()?.get()).ok()?;
    let mut args = args.into_iter();
    let name = match args.next()? {
        Value::String(n) => n,
        _ => return None,
    };
    Some(Incoming { name, data: args.next(), ack: p.ack_id, binary: p.kind == SioKind::BinaryEvent })
}

fn connect(s: &Arc<Session>, auth: Option<&serde_json::value::RawValue>) {
    let head = {
        let mut st = s.state();
        if st.socket == SocketPhase::Connected || st.phase != Phase::Open {
            return;
        }
        // A socket that connects again after a DISCONNECT has no handshake head any more.
        st.head.take().unwrap_or_else(|| Head::empty(st.transport == TransportKind::Websocket))
    };
    let handler = s.engine().handler.clone();
    match handler.connect(s, auth, &head) {
        Ok(()) => {
            {
                let mut st = s.state();
                st.socket = SocketPhase::Connected;
                st.waiting_since = None;
            }
            s.push_control(frame::connected(&Sid::new().to_string()));
        }
        Err(message) => {
            // Kept for a retry on the same session (the connect timeout still runs).
            s.state().head = Some(head);
            s.push_control(frame::connect_error("/", &message));
        }
    }
}

async fn dispatch(s: &Arc<Session>, r: &mut Reader, ev: Incoming) {
    let handler = s.engine().handler.clone();
    let mut step = handler.event(s, ev);
    if let Step::Blocked(ev) = step {
        while let Some(finish) = r.pipeline.next().await {
            finish();
        }
        step = handler.event(s, ev);
    }
    match step {
        Step::Now(finish) if r.pipeline.is_empty() => finish(),
        Step::Now(finish) => r.pipeline.push_back(Box::pin(std::future::ready(finish))),
        Step::Later(f) => r.pipeline.push_back(f),
        // The handler blocks only on events still in flight, and none is.
        Step::Blocked(ev) => tracing::warn!(sid = %s.sid, event = %ev.name, "event dropped: blocked twice"),
    }
}

#[cfg(test)]
#[path = "task_tests.rs"]
mod tests;
