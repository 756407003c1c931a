//! The admin page, compiled into the binary so it works at a venue without internet.

use warp::http::{HeaderValue, StatusCode};
use warp::reply::Response;

struct Asset {
    name: &'static str,
    mime: &'static str,
    body: &'static str,
}

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

/// An entry of `static/admin/`, served under its file name.
macro_rules! asset {
    ($name:literal, $mime:expr) => {
        Asset { name: $name, mime: $mime, body: include_str!(concat!("../../static/admin/", $name)) }
    };
}

/// Every file of `static/admin/` (a unit test checks that none is left out). The scripts are ES
/// modules that import each other by these names, and `index.html` links the style sheets in
/// cascade order. Reads of these files do not count against `limits.http_per_ip` (see
/// `limits::http`), so the page may be split as its code needs.
const ASSETS: &[Asset] = &[
    asset!("index.html", HTML),
    asset!("app.js", JS),
    asset!("page.js", JS),
    asset!("server.js", JS),
    asset!("feed.js", JS),
    asset!("rooms.js", JS),
    asset!("manage.js", JS),
    asset!("guest.js", JS),
    asset!("sio.js", JS),
    asset!("qr.js", JS),
    asset!("qr-matrix.js", JS),
    asset!("style.css", CSS),
    asset!("panels.css", CSS),
    asset!("media.css", CSS),
];

/// Same-origin only: the page loads nothing from elsewhere, and nothing may frame it.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// The server's front page: names the server and links the admin page, so that someone who
/// opens the server's own address (a guest who scanned a wrong code, a studio checking it is up)
/// does not land on an error.
pub fn home() -> Response {
    with_headers(Response::new(include_str!("../../static/home.html").into()), HTML)
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn files_on_disk() -> BTreeSet<String> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("static/admin");
        std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect()
    }

    /// A file added to `static/admin/` but not to `ASSETS` would be a 404 for the browser.
    #[test]
    fn every_admin_file_is_served_with_the_type_of_its_extension() {
        let files = files_on_disk();
        assert!(files.len() > 5, "{files:?}");
        for name in &files {
            let want = match name.rsplit_once('.').map(|(_, ext)| ext) {
                Some("html") => "text/html; charset=utf-8",
                Some("js") => "text/javascript; charset=utf-8",
                Some("css") => "text/css; charset=utf-8",
                _ => panic!("static/admin/{name}: no content type is known for it"),
            };
            let Some(reply) = serve(name) else { panic!("static/admin/{name} is not served") };
            assert_eq!(reply.status(), StatusCode::OK, "{name}");
            assert_eq!(reply.headers()["content-type"], want, "{name}");
            assert_eq!(reply.headers()["content-security-policy"], CSP, "{name}");
            assert_eq!(reply.headers()["x-content-type-options"], "nosniff", "{name}");
        }
        let served: BTreeSet<String> = ASSETS.iter().map(|a| a.name.to_string()).collect();
        assert_eq!(served.len(), ASSETS.len(), "a name is listed twice");
        assert_eq!(served, files, "ASSETS and static/admin/ differ");
        assert_eq!(serve("").unwrap().headers()["content-type"], "text/html; charset=utf-8");
        assert!(serve("nope.js").is_none() && serve("../Cargo.toml").is_none());
    }

    /// Every module a script imports and every file `index.html` links is one the server has.
    #[test]
    fn every_file_the_page_refers_to_is_served() {
        let mut refs = Vec::new();
        for a in ASSETS {
            let text = a.body;
            let quoted = |start: &str, end: char| {
                text.match_indices(start)
                    .filter_map(|(i, m)| text[i + m.len()..].split(end).next())
                    .map(str::to_string)
                    .collect::<Vec<_>>()
            };
            if a.name.ends_with(".js") {
                refs.extend(quoted(" from './", '\'').into_iter().map(|r| (a.name, r)));
                refs.extend(quoted("import './", '\'').into_iter().map(|r| (a.name, r)));
            } else if a.name.ends_with(".html") {
                refs.extend(quoted("href=\"", '"').into_iter().map(|r| (a.name, r)));
                refs.extend(quoted("src=\"", '"').into_iter().map(|r| (a.name, r)));
            }
        }
        let local: Vec<_> = refs.iter().filter(|(_, r)| !r.starts_with('#') && !r.starts_with("data:")).collect();
        assert!(local.len() > 10, "{local:?}");
        for (from, name) in local {
            assert!(ASSETS.iter().any(|a| a.name == name.as_str()), "{from} refers to {name}, which is not served");
        }
        // Each script is reached: app.js is the page's only script tag and imports the rest.
        for a in ASSETS.iter().filter(|a| a.name.ends_with(".js") && a.name != "app.js") {
            assert!(refs.iter().any(|(f, r)| r == a.name && *f != a.name), "{} is imported by no module", a.name);
        }
        for a in ASSETS.iter().filter(|a| a.name.ends_with(".css")) {
            assert!(refs.iter().any(|(f, r)| *f == "index.html" && r == a.name), "index.html does not link {}", a.name);
        }
    }
}
