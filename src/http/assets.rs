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

/// Serves `/admin/<name>`; an empty name is the page itself.
pub fn serve(name: &str) -> Option<Response> {
    let name = if name.is_empty() { "index.html" } else { name };
    let asset = ASSETS.iter().find(|a| a.name == name)?;
    let mut r = Response::new(asset.body.into());
    *r.status_mut() = StatusCode::OK;
    let h = r.headers_mut();
    h.insert("content-type", HeaderValue::from_static(asset.mime));
    h.insert("cache-control", HeaderValue::from_static("no-cache"));
    h.insert("content-security-policy", HeaderValue::from_static(CSP));
    h.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    Some(r)
}
