//! The admin page, compiled into the binary so it works at a venue without internet.

use warp::http::{HeaderValue, StatusCode};
use warp::reply::Response;

struct Asset {
    name: &'static str,
    mime: &'static str,
    body: &'static str,
}

const ASSETS: [Asset; 5] = [
    Asset { name: "index.html", mime: "text/html; charset=utf-8", body: include_str!("../../static/admin/index.html") },
    Asset { name: "app.js", mime: "text/javascript; charset=utf-8", body: include_str!("../../static/admin/app.js") },
    Asset { name: "style.css", mime: "text/css; charset=utf-8", body: include_str!("../../static/admin/style.css") },
    Asset { name: "sio.js", mime: "text/javascript; charset=utf-8", body: include_str!("../../static/admin/sio.js") },
    Asset { name: "qr.js", mime: "text/javascript; charset=utf-8", body: include_str!("../../static/admin/qr.js") },
];

/// Same-origin only: the page loads nothing from elsewhere, and nothing may frame it.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// The server's front page: names the server and links the admin page, so that someone who
/// opens the server's own address (a guest who scanned a wrong code, a studio checking it is up)
/// does not land on an error.
pub fn home() -> Response {
    with_headers(Response::new(include_str!("../../static/home.html").into()), "text/html; charset=utf-8")
}

fn with_headers(mut r: Response, mime: &'static str) -> Response {
    *r.status_mut() = StatusCode::OK;
    let h = r.headers_mut();
    h.insert("content-type", HeaderValue::from_static(mime));
    h.insert("cache-control", HeaderValue::from_static("no-cache"));
    h.insert("content-security-policy", HeaderValue::from_static(CSP));
    h.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    r
}

/// Serves `/admin/<name>`; an empty name is the page itself.
pub fn serve(name: &str) -> Option<Response> {
    let name = if name.is_empty() { "index.html" } else { name };
    let asset = ASSETS.iter().find(|a| a.name == name)?;
    Some(with_headers(Response::new(asset.body.into()), asset.mime))
}
