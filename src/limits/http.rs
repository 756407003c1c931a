//! The tower layer in front of every request: connection-cap refusals decided in the accept
//! loop, per-IP token buckets (new Socket.IO sessions; HTTP API requests, with `/socket.io/`
//! traffic left out so polling clients do not drain it, and the compiled-in pages left out so
//! that loading the admin page, a dozen files, never spends an admin's API budget or gets a file
//! refused), the `Origin` check on Socket.IO requests, and CORS for polling clients of the
//! allowed origins.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::BodyExt;
use http_body_util::combinators::UnsyncBoxBody;
use tower::{Layer, Service};

use super::gate::Full;
use super::per_ip::Limiters;
use super::{Refusal, refuse};
use crate::config::Config;
use crate::peer::PeerAddr;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
pub type Body = UnsyncBoxBody<Bytes, BoxError>;

/// Put into a request's extensions by the accept loop when its connection is over a cap.
#[derive(Clone, Copy, Debug)]
pub struct OverCap(pub Full);

/// The origins whose pages may open sockets, from the configuration.
#[derive(Debug, Default)]
pub struct Origins {
    /// `allowed_origins`.
    pub allowed: Vec<String>,
    /// `public_origin`, the server's own.
    pub own: Option<String>,
}

impl Origins {
    pub fn of(config: &Config) -> Origins {
        Origins { allowed: config.allowed_origins.clone(), own: config.public_origin.clone() }
    }
}

#[derive(Clone)]
pub struct HttpAdmissionLayer {
    limiters: Arc<Limiters>,
    origins: Arc<Origins>,
}

impl HttpAdmissionLayer {
    pub fn new(limiters: Arc<Limiters>, origins: Origins) -> Self {
        HttpAdmissionLayer { limiters, origins: Arc::new(origins) }
    }
}

impl<S> Layer<S> for HttpAdmissionLayer {
    type Service = HttpAdmission<S>;
    fn layer(&self, inner: S) -> HttpAdmission<S> {
        HttpAdmission { inner, limiters: self.limiters.clone(), origins: self.origins.clone() }
    }
}

#[derive(Clone)]
pub struct HttpAdmission<S> {
    inner: S,
    limiters: Arc<Limiters>,
    origins: Arc<Origins>,
}

fn answer(status: StatusCode, message: &str, retry_after: Option<Duration>) -> Response<Body> {
    let body = serde_json::json!({ "error": message }).to_string();
    let mut r =
        Response::new(http_body_util::Full::new(Bytes::from(body)).map_err(|e: Infallible| match e {}).boxed_unsync());
    *r.status_mut() = status;
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Some(wait) = retry_after {
        let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
        if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
            r.headers_mut().insert(header::RETRY_AFTER, v);
        }
    }
    r
}

/// Whether a browser page from `origin` may talk to us: an allowed origin, or our own (the
/// admin page). Our own origin is `public_origin` when configured; otherwise it can only be
/// judged by the request's `Host`, which a DNS-rebinding page controls.
fn origin_allowed(origins: &Origins, origin: &str, host: Option<&str>) -> bool {
    let origin = origin.trim_end_matches('/');
    if origins.allowed.iter().any(|o| o.trim_end_matches('/') == origin) {
        return true;
    }
    if let Some(own) = &origins.own {
        return own.trim_end_matches('/').eq_ignore_ascii_case(origin);
    }
    let Some(host) = host else { return false };
    origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
        .is_some_and(|o| o.eq_ignore_ascii_case(host))
}

/// A read of the front page or of the admin page's files: answered from memory, like a 404, so
/// the connection caps are limit enough.
fn is_page(method: &Method, path: &str) -> bool {
    (method == Method::GET || method == Method::HEAD)
        && (path == "/" || path == "/admin" || path.starts_with("/admin/"))
}

/// API answers are per caller and often carry tokens or session ids: no cache may keep them.
fn no_store(headers: &mut http::HeaderMap) {
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

fn cors(headers: &mut http::HeaderMap, origin: &HeaderValue) {
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
    headers.insert(header::ACCESS_CONTROL_ALLOW_CREDENTIALS, HeaderValue::from_static("true"));
    headers.append(header::VARY, HeaderValue::from_static("Origin"));
}

/// Copies a request's URI and headers out of hyper's read buffer before the engine sees it.
/// The engine itself keeps only the `Authorization` value and the extensions, until CONNECT;
/// but header values are slices of the connection's read buffer, and letting them go first is
/// measurably cheaper: without this copy a connect storm cost about 9 % more server CPU per
/// connection (BENCHMARKS.md, "Per-connection cost after the layout work"), most likely because
/// hyper cannot reuse a buffer that something still points into.
fn detach_head<B>(req: Request<B>) -> Request<B> {
    let (mut parts, body) = req.into_parts();
    let mut headers = http::HeaderMap::with_capacity(parts.headers.len());
    for (name, value) in parts.headers.iter() {
        if let (Ok(n), Ok(v)) =
            (header::HeaderName::from_bytes(name.as_str().as_bytes()), HeaderValue::from_bytes(value.as_bytes()))
        {
            headers.append(n, v);
        }
    }
    parts.headers = headers;
    if let Ok(uri) = parts.uri.to_string().parse() {
        parts.uri = uri;
    }
    Request::from_parts(parts, body)
}

impl<S, ReqB, ResB> Service<Request<ReqB>> for HttpAdmission<S>
where
    S: Service<Request<ReqB>, Response = Response<ResB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    ResB: hyper::body::Body<Data = Bytes> + Send + 'static,
    ResB::Error: Into<BoxError>,
    ReqB: Send + 'static,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        let (limiters, origins) = (&self.limiters, &self.origins);
        let is_api = req.uri().path().starts_with("/api/");
        let early = |mut r: Response<Body>| -> Self::Future {
            if is_api {
                no_store(r.headers_mut());
            }
            Box::pin(async move { Ok(r) })
        };
        if let Some(OverCap(full)) = req.extensions().get::<OverCap>() {
            refuse(
                Refusal::Connection,
                if *full == Full::Total { "max_connections" } else { "max_connections_per_ip" },
            );
            return early(answer(StatusCode::TOO_MANY_REQUESTS, "Too many connections", Some(Duration::from_secs(1))));
        }
        let ip = req.extensions().get::<PeerAddr>().copied().unwrap_or_else(PeerAddr::unknown).key;
        let is_socket = req.uri().path().starts_with("/socket.io/") || req.uri().path() == "/socket.io";
        let is_page = is_page(req.method(), req.uri().path());
        let mut allowed_origin = None;
        if is_socket {
            if let Some(origin) = req.headers().get(header::ORIGIN) {
                let host = req.headers().get(header::HOST).and_then(|h| h.to_str().ok());
                if !origin.to_str().is_ok_and(|o| origin_allowed(origins, o, host)) {
                    refuse(Refusal::Connection, "origin");
                    return early(answer(StatusCode::FORBIDDEN, "Origin not allowed", None));
                }
                allowed_origin = Some(origin.clone());
            }
            if req.method() == Method::OPTIONS {
                let mut r = answer(StatusCode::NO_CONTENT, "", None);
                *r.body_mut() = http_body_util::Empty::new().map_err(|e: Infallible| match e {}).boxed_unsync();
                if let Some(o) = &allowed_origin {
                    cors(r.headers_mut(), o);
                    r.headers_mut().insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("GET, POST"));
                    r.headers_mut().insert(
                        header::ACCESS_CONTROL_ALLOW_HEADERS,
                        HeaderValue::from_static("content-type, authorization"),
                    );
                }
                return early(r);
            }
            // A request without `sid` opens a new Engine.IO session: that is a new connection.
            let new_session = !req.uri().query().is_some_and(|q| q.split('&').any(|kv| kv.starts_with("sid=")));
            if new_session && let Err(wait) = limiters.connect.check(&ip) {
                refuse(Refusal::Connection, "connect_rate");
                return early(answer(StatusCode::TOO_MANY_REQUESTS, "Too many connections", Some(wait)));
            }
        } else if !is_page && let Err(wait) = limiters.http.check(&ip) {
            refuse(Refusal::Http, "http_rate");
            return early(answer(StatusCode::TOO_MANY_REQUESTS, "Too many requests", Some(wait)));
        }
        let req = if is_socket { detach_head(req) } else { req };
        let fut = self.inner.call(req);
        Box::pin(async move {
            let resp = fut.await?;
            let mut resp = resp.map(|b| b.map_err(Into::into).boxed_unsync());
            if let Some(o) = &allowed_origin {
                cors(resp.headers_mut(), o);
            }
            if is_api {
                no_store(resp.headers_mut());
            }
            Ok(resp)
        })
    }
}
