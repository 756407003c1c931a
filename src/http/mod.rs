//! HTTP routes (warp). Handlers return `Result<Response, ApiError>`; every failure becomes a JSON
//! `{"error": ...}` with the status the contract names.

mod admin;
mod assets;
mod gallery;
mod login;

use std::convert::Infallible;

use bytes::Bytes;
use serde::Serialize;
use serde_json::Value;
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use crate::auth::{Identity, bearer};
use crate::peer::PeerAddr;
use crate::state::App;
use crate::store::StoreError;

/// A failed API call.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    /// Seconds, for 429 and 503.
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: u16, message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            message: message.into(),
            retry_after: None,
        }
    }
    pub fn too_many(wait: std::time::Duration) -> ApiError {
        ApiError {
            retry_after: Some(wait.as_secs_f64().ceil().max(1.0) as u64),
            ..ApiError::new(429, "Too many requests")
        }
    }
    /// 503 for a moment of overload: the client may try again after `secs`.
    pub fn busy(secs: u64) -> ApiError {
        ApiError { retry_after: Some(secs.max(1)), ..ApiError::new(503, "Server busy") }
    }
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(400, message)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        if !matches!(e, StoreError::Unavailable) {
            tracing::error!(error = %e, "storage error in HTTP handler");
        }
        ApiError::new(503, "Service temporarily unavailable")
    }
}

pub type ApiResult = Result<Response, ApiError>;

/// A JSON response with a status.
pub fn json<T: Serialize>(status: u16, body: &T) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    warp::reply::with_status(warp::reply::json(body), status).into_response()
}

fn error_response(status: StatusCode, message: &str, retry_after: Option<u64>) -> Response {
    let mut r =
        warp::reply::with_status(warp::reply::json(&serde_json::json!({ "error": message })), status).into_response();
    let retry_after = retry_after.or((status == StatusCode::TOO_MANY_REQUESTS).then_some(1));
    if let Some(secs) = retry_after {
        let secs = secs.to_string();
        if let Ok(v) = warp::http::HeaderValue::from_str(&secs) {
            r.headers_mut().insert("retry-after", v);
        }
    }
    r
}

fn finish(result: ApiResult) -> Response {
    result.unwrap_or_else(|e| error_response(e.status, &e.message, e.retry_after))
}

/// The client the accept loop derived (peer, or a trusted proxy's `X-Forwarded-For`), with the
/// key its per-IP limits count by.
fn client() -> impl Filter<Extract = (PeerAddr,), Error = Infallible> + Clone {
    warp::ext::optional::<PeerAddr>().map(|p: Option<PeerAddr>| p.unwrap_or_else(PeerAddr::unknown))
}

/// Parses a JSON object body (an empty body is an empty object).
pub fn body_object(body: &Bytes) -> Result<serde_json::Map<String, Value>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(serde_json::Map::new());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(o)) => Ok(o),
        Ok(_) => Err(ApiError::bad_request("Body must be a JSON object")),
        Err(_) => Err(ApiError::bad_request("Invalid JSON body")),
    }
}

/// The identity of an `Authorization: Bearer` token, or 401.
pub fn require_token(app: &App, auth: &Option<String>) -> Result<Identity, ApiError> {
    bearer(auth.as_deref()).and_then(|t| app.tokens.verify(t)).ok_or_else(|| ApiError::new(401, "Unauthorized"))
}

/// An admin token, or 401 (no or bad token) / 403 (not an admin).
pub fn require_admin(app: &App, auth: &Option<String>) -> Result<Identity, ApiError> {
    let id = require_token(app, auth)?;
    if id.is_admin() { Ok(id) } else { Err(ApiError::new(403, "Admin access required")) }
}

fn with_app(app: App) -> impl Filter<Extract = (App,), Error = Infallible> + Clone {
    warp::any().map(move || app.clone())
}

fn auth_header() -> impl Filter<Extract = (Option<String>,), Error = Rejection> + Clone {
    warp::header::optional::<String>("authorization")
}

/// A request body is larger than `max_http_body_bytes`.
#[derive(Debug)]
struct BodyTooLarge;
impl warp::reject::Reject for BodyTooLarge {}

/// The request body, at most `limit` bytes: refused up front by `Content-Length`, and cut off
/// while reading when the length is not announced (chunked), so no body can fill memory.
fn body(limit: u64) -> impl Filter<Extract = (Bytes,), Error = Rejection> + Clone {
    warp::header::optional::<u64>("content-length")
        .and(warp::body::stream())
        .and_then(move |len: Option<u64>, stream| read_limited(len, stream, limit))
}

async fn read_limited<S, B>(len: Option<u64>, stream: S, limit: u64) -> Result<Bytes, Rejection>
where
    S: futures_util::Stream<Item = Result<B, warp::Error>>,
    B: warp::Buf,
{
    use futures_util::StreamExt;
    let mut stream = Box::pin(stream);
    if let Some(n) = len.filter(|n| *n > limit) {
        // Read a moderately oversized body to its end before refusing, so the client is not
        // reset mid-send and actually sees the 413; a huge one is refused at once.
        if n <= limit.saturating_mul(16) {
            while let Some(Ok(_)) = stream.next().await {}
        }
        return Err(warp::reject::custom(BodyTooLarge));
    }
    let mut out = bytes::BytesMut::new();
    while let Some(chunk) = stream.next().await {
        let mut chunk = chunk.map_err(|_| warp::reject::custom(BodyTooLarge))?;
        if out.len() as u64 + chunk.remaining() as u64 > limit {
            return Err(warp::reject::custom(BodyTooLarge));
        }
        while chunk.has_remaining() {
            let piece = chunk.chunk();
            let n = piece.len();
            out.extend_from_slice(piece);
            chunk.advance(n);
        }
    }
    Ok(out.freeze())
}

#[derive(Serialize)]
struct Health {
    status: &'static str,
    uptime: f64,
    connections: usize,
}

async fn health(app: App) -> Response {
    let degraded = app.store.breaker().status() == crate::store::BreakerStatus::Open;
    let body = Health {
        status: if degraded { "degraded" } else { "healthy" },
        uptime: app.started.elapsed().as_secs_f64(),
        connections: app.socket_count(),
    };
    json(if degraded { 503 } else { 200 }, &body)
}

/// Every route of the HTTP surface.
pub fn routes(app: App) -> BoxedFilter<(Response,)> {
    let limit = app.config.limits.max_http_body_bytes;
    let health = warp::path!("health").and(warp::get()).and(with_app(app.clone())).then(health);

    let rooms = warp::path!("api" / "admin" / "rooms")
        .and(warp::get())
        .and(with_app(app.clone()))
        .and(auth_header())
        .map(|app: App, auth| finish(admin::rooms(&app, &auth)));
    let list_events = warp::path!("api" / "admin" / "events")
        .and(warp::get())
        .and(with_app(app.clone()))
        .and(auth_header())
        .map(|app: App, auth| finish(admin::list_events(&app, &auth)));
    let create_event = warp::path!("api" / "admin" / "events")
        .and(warp::post())
        .and(with_app(app.clone()))
        .and(auth_header())
        .and(body(limit))
        .then(|app: App, auth, body| async move { finish(admin::create_event(&app, &auth, &body).await) });
    let get_event = warp::path!("api" / "admin" / "events" / String)
        .and(warp::get())
        .and(with_app(app.clone()))
        .and(auth_header())
        .map(|slug: String, app: App, auth| finish(admin::get_event(&app, &auth, &slug)));
    let patch_event = warp::path!("api" / "admin" / "events" / String)
        .and(warp::patch())
        .and(with_app(app.clone()))
        .and(auth_header())
        .and(body(limit))
        .then(|slug: String, app: App, auth, body| async move {
            finish(admin::patch_event(&app, &auth, &slug, &body).await)
        });
    let delete_event = warp::path!("api" / "admin" / "events" / String)
        .and(warp::delete())
        .and(with_app(app.clone()))
        .and(auth_header())
        .then(|slug: String, app: App, auth| async move { finish(admin::delete_event(&app, &auth, &slug).await) });
    let sessions = warp::path!("api" / "admin" / "guest-sessions")
        .and(warp::post())
        .and(with_app(app.clone()))
        .and(auth_header())
        .and(body(limit))
        .then(|app: App, auth, body| async move { finish(admin::create_session(&app, &auth, &body).await) });
    let emit = warp::path!("api" / "emit")
        .and(warp::post())
        .and(with_app(app.clone()))
        .and(auth_header())
        .and(body(limit))
        .then(|app: App, auth, body| async move { finish(admin::emit(&app, &auth, &body).await) });
    let access = warp::path!("api" / "gallery" / String / "access")
        .and(warp::post())
        .and(with_app(app.clone()))
        .and(client())
        .and(body(limit))
        .then(|slug: String, app: App, client, body| async move {
            finish(gallery::access(&app, &slug, client, &body).await)
        });

    let metrics = warp::path!("metrics").and(warp::get()).and(with_app(app.clone())).and(auth_header()).map(
        |app: App, auth: Option<String>| {
            if let Some(expected) = &app.config.metrics_token {
                let given = bearer(auth.as_deref()).unwrap_or("");
                let same = given.len() == expected.len()
                    && given.bytes().zip(expected.bytes()).fold(0u8, |a, (x, y)| a | (x ^ y)) == 0;
                if !same {
                    return error_response(StatusCode::UNAUTHORIZED, "Unauthorized", None);
                }
            }
            let mut r = Response::new(crate::metrics::render(&app.gauges()).into());
            r.headers_mut().insert(
                "content-type",
                warp::http::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            r
        },
    );
    let login = warp::path!("api" / "admin" / "login")
        .and(warp::post())
        .and(with_app(app.clone()))
        .and(client())
        .and(body(limit))
        .then(|app: App, client, body| async move { finish(login::login(&app, client, &body).await) });
    // `/admin` redirects to `/admin/` so the page's relative URLs resolve under it.
    let admin_page = warp::path("admin").and(warp::get()).and(warp::path::full()).and_then(
        |full: warp::path::FullPath| async move {
            match full.as_str().strip_prefix("/admin") {
                Some("") => Ok(warp::redirect::see_other(warp::http::Uri::from_static("/admin/")).into_response()),
                Some(rest) => rest.strip_prefix('/').and_then(assets::serve).ok_or_else(warp::reject::not_found),
                None => Err(warp::reject::not_found()),
            }
        },
    );

    let home = warp::path::end().and(warp::get()).map(assets::home);

    health
        .or(home)
        .unify()
        .or(metrics)
        .unify()
        .or(login)
        .unify()
        .or(admin_page)
        .unify()
        .or(rooms)
        .unify()
        .or(list_events)
        .unify()
        .or(create_event)
        .unify()
        .or(get_event)
        .unify()
        .or(patch_event)
        .unify()
        .or(delete_event)
        .unify()
        .or(sessions)
        .unify()
        .or(emit)
        .unify()
        .or(access)
        .unify()
        .recover(recover)
        .unify()
        .boxed()
}

/// Turns warp's rejections (no route, wrong method, body too large) into JSON errors.
async fn recover(r: Rejection) -> Result<Response, Infallible> {
    let (status, msg) = if r.is_not_found() {
        (StatusCode::NOT_FOUND, "Not found")
    } else if r.find::<BodyTooLarge>().is_some() || r.find::<warp::reject::PayloadTooLarge>().is_some() {
        crate::limits::refuse(crate::limits::Refusal::Http, "body_too_large");
        (StatusCode::PAYLOAD_TOO_LARGE, "Request body too large")
    } else if r.find::<warp::reject::LengthRequired>().is_some() {
        (StatusCode::LENGTH_REQUIRED, "Content-Length required")
    } else if r.find::<warp::reject::MethodNotAllowed>().is_some() {
        (StatusCode::METHOD_NOT_ALLOWED, "Method not allowed")
    } else if r.find::<warp::reject::MissingHeader>().is_some() || r.find::<warp::reject::InvalidHeader>().is_some() {
        (StatusCode::BAD_REQUEST, "Bad request header")
    } else {
        (StatusCode::BAD_REQUEST, "Bad request")
    };
    Ok(error_response(status, msg, None))
}
