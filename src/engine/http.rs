//! `/socket.io/` requests: handshakes, long-polls, posts and websocket upgrades, with the
//! Engine.IO error answers of the reference server.

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::upgrade::Upgraded;

use super::session::{Head, Phase, TransportKind};
use super::websocket::{self, Socket};
use super::{Engine, Reason, Session, Sid, frame, task};
use crate::limits::stream::ConnectionCloser;
use crate::wire::{DecodeError, EioPacket, OpenData, engineio};

pub type Body = Full<Bytes>;

/// Engine.IO's error answers: a code and a message, as the reference server sends them.
#[derive(Clone, Copy, Debug)]
enum EioError {
    UnknownTransport = 0,
    UnknownSid = 1,
    BadHandshakeMethod = 2,
    BadRequest = 3,
    UnsupportedVersion = 5,
}

impl EioError {
    fn message(self) -> &'static str {
        match self {
            EioError::UnknownTransport => "Transport unknown",
            EioError::UnknownSid => "Session ID unknown",
            EioError::BadHandshakeMethod => "Bad handshake method",
            EioError::BadRequest => "Bad request",
            EioError::UnsupportedVersion => "Unsupported protocol version",
        }
    }

    fn response(self) -> Response<Body> {
        let body = serde_json::json!({ "code": self as u8, "message": self.message() }).to_string();
        respond(StatusCode::BAD_REQUEST, "application/json", body)
    }
}

fn respond(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Response<Body> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

fn text(body: impl Into<Bytes>) -> Response<Body> {
    respond(StatusCode::OK, "text/plain; charset=UTF-8", body)
}

struct Query<'a> {
    eio: Option<&'a str>,
    transport: Option<&'a str>,
    sid: Option<&'a str>,
}

fn query(q: &str) -> Query<'_> {
    let mut out = Query { eio: None, transport: None, sid: None };
    for kv in q.split('&') {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        match k {
            "EIO" => out.eio = Some(v),
            "transport" => out.transport = Some(v),
            "sid" => out.sid = Some(v),
            _ => {}
        }
    }
    out
}

fn is_upgrade<B>(req: &Request<B>) -> bool {
    let has = |name: header::HeaderName, token: &str| {
        req.headers()
            .get_all(name)
            .iter()
            .any(|v| v.to_str().is_ok_and(|v| v.split(',').any(|p| p.trim().eq_ignore_ascii_case(token))))
    };
    req.method() == Method::GET && has(header::CONNECTION, "upgrade") && has(header::UPGRADE, "websocket")
}

/// Answers one `/socket.io/` request.
pub async fn handle(engine: &Arc<Engine>, mut req: Request<Incoming>) -> Response<Body> {
    let raw_query = req.uri().query().unwrap_or("").to_owned();
    let q = query(&raw_query);
    if q.eio != Some("4") {
        return EioError::UnsupportedVersion.response();
    }
    let websocket = match q.transport {
        Some("polling") => false,
        Some("websocket") => true,
        _ => return EioError::UnknownTransport.response(),
    };
    let Some(sid) = q.sid else {
        return handshake(engine, req, websocket);
    };
    let Some(s) = sid.parse::<Sid>().ok().and_then(|sid| engine.session(&sid)) else {
        return EioError::UnknownSid.response();
    };
    if websocket {
        if !is_upgrade(&req) || s.transport_kind() != TransportKind::Polling {
            return EioError::BadRequest.response();
        }
        return upgrade(engine, &mut req, move |engine, upgraded, ext| {
            Box::pin(websocket::probe(engine, s, upgraded, ext.get::<ConnectionCloser>().cloned()))
        });
    }
    match *req.method() {
        Method::GET => poll(&s, req.extensions().get::<ConnectionCloser>().cloned()).await,
        Method::POST => post(engine, &s, req).await,
        _ => EioError::BadHandshakeMethod.response(),
    }
}

type Task = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;
type OnUpgrade = Box<dyn FnOnce(Arc<Engine>, hyper::upgrade::Upgraded, http::Extensions) -> Task + Send>;

/// The 101 answer; `then` runs on the upgraded connection, with the request's extensions.
fn upgrade<F>(engine: &Arc<Engine>, req: &mut Request<Incoming>, then: F) -> Response<Body>
where
    F: FnOnce(Arc<Engine>, hyper::upgrade::Upgraded, http::Extensions) -> Task + Send + 'static,
{
    let key = req.headers().get(header::SEC_WEBSOCKET_KEY);
    let version_ok = req.headers().get(header::SEC_WEBSOCKET_VERSION).is_some_and(|v| v == "13");
    let (Some(key), true) = (key, version_ok) else {
        return EioError::BadRequest.response();
    };
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    let on_upgrade = hyper::upgrade::on(&mut *req);
    let ext = std::mem::take(req.extensions_mut());
    let engine = engine.clone();
    let then: OnUpgrade = Box::new(then);
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => then(engine, upgraded, ext).await,
            Err(e) => tracing::debug!(error = %e, "websocket upgrade failed"),
        }
    });
    let mut r = respond(StatusCode::SWITCHING_PROTOCOLS, "text/plain", Bytes::new());
    r.headers_mut().remove(header::CONTENT_TYPE);
    let h = r.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    if let Ok(v) = HeaderValue::from_str(&accept) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
    }
    r
}

/// A websocket session's start: the websocket, its session, and the OPEN packet on its way. A
/// future of its own, so that its state shares room with the session's task in the connection's
/// future instead of sitting beside it for the connection's life (416 of 1,904 bytes, measured).
async fn open_websocket(engine: &Arc<Engine>, upgraded: Upgraded, head: Head) -> Option<(Arc<Session>, Box<Socket>)> {
    let mut sock = websocket::accept(upgraded, engine.limits().max_payload).await?;
    let s = Session::new(engine, head);
    let open = open_packet(engine, &s, true).encode_polling();
    let sent =
        futures_util::SinkExt::send(&mut sock.ws, tokio_tungstenite::tungstenite::Message::Text(open.into())).await;
    if sent.is_err() {
        s.close(Reason::TransportError);
        return None;
    }
    Some((s, Box::new(sock)))
}

fn open_packet(engine: &Engine, s: &Session, websocket: bool) -> EioPacket {
    let l = engine.limits();
    EioPacket::Open(OpenData {
        sid: s.sid.to_string(),
        upgrades: if websocket { Vec::new() } else { vec!["websocket".into()] },
        ping_interval: l.ping_interval.as_millis() as u64,
        ping_timeout: l.ping_timeout.as_millis() as u64,
        max_payload: l.max_payload as u64,
    })
}

fn handshake(engine: &Arc<Engine>, mut req: Request<Incoming>, websocket: bool) -> Response<Body> {
    if req.method() != Method::GET {
        return EioError::BadHandshakeMethod.response();
    }
    let authorization = req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).map(str::to_owned);
    if websocket {
        if !is_upgrade(&req) {
            return EioError::BadRequest.response();
        }
        return upgrade(engine, &mut req, move |engine, upgraded, extensions| {
            Box::pin(async move {
                let head = Head { authorization, extensions, websocket: true };
                if let Some((s, sock)) = open_websocket(&engine, upgraded, head).await {
                    task::run(s, Some(sock)).await;
                }
            })
        });
    }
    let extensions = std::mem::take(req.extensions_mut());
    let s = Session::new(engine, Head { authorization, extensions, websocket: false });
    let open = open_packet(engine, &s, false).encode_polling();
    tokio::spawn(task::run(s, None));
    text(open)
}

/// Clears the session's pending-GET mark however the request ends (the client may go away).
struct PollGuard<'a>(&'a Session);

impl Drop for PollGuard<'_> {
    fn drop(&mut self) {
        if let Some(p) = self.0.state().polling.as_mut() {
            p.get_pending = false;
        }
    }
}

async fn poll(s: &Arc<Session>, transport: Option<ConnectionCloser>) -> Response<Body> {
    {
        let mut st = s.state();
        let overlap = match st.polling.as_mut() {
            None => return EioError::BadRequest.response(),
            Some(p) => std::mem::replace(&mut p.get_pending, true),
        };
        if overlap {
            drop(st);
            tracing::debug!(sid = %s.sid, "two long-polls at once: session closed");
            s.close(Reason::TransportError);
            return EioError::BadRequest.response();
        }
        st.downstream = transport;
    }
    let _guard = PollGuard(s);
    loop {
        let woken = s.outgoing.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        let (phase, kind, reason) = {
            let st = s.state();
            (st.phase, st.transport, st.reason)
        };
        if phase == Phase::Closed {
            // A client that closed reads no more: its pending long-poll just ends.
            return text(if reason == Some(Reason::ClientClose) { frame::noop() } else { frame::close() });
        }
        if kind != TransportKind::Polling {
            return text(frame::noop());
        }
        // When closing, the last frames go out first and the close packet on the next poll:
        // socket.io-client handles a payload's close before the packets in front of it, so a
        // `41` sent together with `1` would be reported as "transport close".
        if let Some(body) = s.take_payload() {
            return text(body);
        }
        if phase == Phase::Closing {
            s.close(Reason::ServerDisconnect);
            return text(frame::close());
        }
        woken.await;
    }
}

/// Clears the session's pending-POST mark however the request ends.
struct PostGuard<'a>(&'a Session);

impl Drop for PostGuard<'_> {
    fn drop(&mut self) {
        if let Some(p) = self.0.state().polling.as_mut() {
            p.post_pending = false;
        }
    }
}

async fn post(engine: &Arc<Engine>, s: &Arc<Session>, req: Request<Incoming>) -> Response<Body> {
    let max = engine.limits().max_payload;
    {
        let mut st = s.state();
        let overlap = match st.polling.as_mut() {
            None => return EioError::BadRequest.response(),
            Some(p) => std::mem::replace(&mut p.post_pending, true),
        };
        if overlap {
            drop(st);
            s.close(Reason::TransportError);
            return EioError::BadRequest.response();
        }
    }
    let _guard = PostGuard(s);
    // Refused before it is read whole: the body is read through a limit of maxPayload.
    let body = match Limited::new(req.into_body(), max).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            return respond(StatusCode::PAYLOAD_TOO_LARGE, "application/json", r#"{"code":3,"message":"Bad request"}"#);
        }
        Err(_) => return EioError::BadRequest.response(),
    };
    let packets = match engineio::decode_polling_payload(&body, max) {
        Ok(p) => p,
        Err(DecodeError::PayloadTooLarge { .. }) => {
            return respond(StatusCode::PAYLOAD_TOO_LARGE, "application/json", r#"{"code":3,"message":"Bad request"}"#);
        }
        Err(e) => {
            tracing::debug!(sid = %s.sid, error = %e, "malformed polling payload: session closed");
            s.close(Reason::TransportError);
            return EioError::BadRequest.response();
        }
    };
    {
        let mut st = s.state();
        let Some(p) = st.polling.as_mut() else { return EioError::BadRequest.response() };
        // Posts are answered at once and handled by the session's task; a client that posts
        // faster than its events are handled is not served without bound.
        if p.inbox_bytes + body.len() > 4 * max {
            drop(st);
            s.close(Reason::TransportError);
            return EioError::BadRequest.response();
        }
        p.inbox_bytes += body.len();
        p.inbox.extend(packets);
    }
    s.inbound.notify_one();
    text("ok")
}
