//! Connection-level limits with real websocket connections from several loopback addresses:
//! the per-IP cap (and its release), `X-Forwarded-For` from untrusted and trusted peers, the
//! `Origin` check (and `public_origin` as the server's own origin), and the per-IP new-connection
//! and HTTP API buckets.

use std::net::SocketAddr;
use std::time::Duration;

use crate::support::Server;
use tokio::net::TcpSocket;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};

type Ws = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

/// Opens an Engine.IO websocket from `source`, with optional extra headers; the HTTP status of a
/// refusal is the error.
async fn ws(server: &Server, source: [u8; 4], headers: &[(&str, &str)]) -> Result<Ws, u16> {
    let addr: SocketAddr = server.url.trim_start_matches("http://").parse().unwrap();
    let sock = TcpSocket::new_v4().unwrap();
    sock.bind(SocketAddr::from((source, 0))).unwrap();
    let stream = match sock.connect(addr).await {
        Ok(s) => s,
        Err(_) => return Err(0),
    };
    let url = format!("ws://{addr}/socket.io/?EIO=4&transport=websocket");
    let mut req = url.into_client_request().unwrap();
    for (k, v) in headers {
        req.headers_mut().insert(HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
    }
    match tokio::time::timeout(Duration::from_secs(5), tokio_tungstenite::client_async(req, stream)).await {
        Ok(Ok((ws, _))) => Ok(ws),
        Ok(Err(tokio_tungstenite::tungstenite::Error::Http(resp))) => Err(resp.status().as_u16()),
        Ok(Err(_)) => Err(1),
        Err(_) => Err(2),
    }
}

const CAP3: &str = "[limits]\nmax_connections_per_ip = 3\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_ip_cap_refuses_then_admits_after_close_and_ignores_untrusted_forwarded_for() {
    // Loopback is not a trusted proxy here, so X-Forwarded-For must be ignored.
    let server = Server::start_with(Some(CAP3), &[("TRUSTED_PROXIES", "10.9.9.9/32")]);
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(ws(&server, [127, 0, 0, 2], &[]).await.expect("under the cap"));
    }
    assert_eq!(ws(&server, [127, 0, 0, 2], &[]).await.err(), Some(429));
    assert_eq!(
        ws(&server, [127, 0, 0, 2], &[("x-forwarded-for", "198.51.100.7")]).await.err(),
        Some(429),
        "spoofed header escaped the cap"
    );
    // Another address has its own allowance.
    let _other = ws(&server, [127, 0, 0, 3], &[]).await.expect("other IP");
    // Closing one admits one again.
    let mut first = held.remove(0);
    first.close(None).await.unwrap();
    drop(first);
    let mut admitted = false;
    for _ in 0..40 {
        if ws(&server, [127, 0, 0, 2], &[]).await.is_ok() {
            admitted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(admitted, "a closed connection did not free its place");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trusted_proxy_forwarded_for_is_counted_per_client() {
    // Default TRUSTED_PROXIES includes loopback: the header names the client.
    let server = Server::start_with(Some("[limits]\nmax_connections_per_ip = 2\n"), &[]);
    let _a = ws(&server, [127, 0, 0, 2], &[("x-forwarded-for", "203.0.113.1")]).await.unwrap();
    let _b = ws(&server, [127, 0, 0, 2], &[("x-forwarded-for", "203.0.113.1")]).await.unwrap();
    assert_eq!(ws(&server, [127, 0, 0, 2], &[("x-forwarded-for", "203.0.113.1")]).await.err(), Some(429));
    // Same proxy, another client: its own allowance.
    let _c = ws(&server, [127, 0, 0, 2], &[("x-forwarded-for", "203.0.113.2")]).await.unwrap();
    // A client cannot pick its address by prepending to the proxy's header.
    assert_eq!(ws(&server, [127, 0, 0, 2], &[("x-forwarded-for", "192.0.2.99, 203.0.113.1")]).await.err(), Some(429));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_origin_is_refused() {
    let server = Server::start();
    assert_eq!(ws(&server, [127, 0, 0, 2], &[("origin", "https://evil.example")]).await.err(), Some(403));
    assert!(ws(&server, [127, 0, 0, 2], &[("origin", "http://localhost:3000")]).await.is_ok());
    assert!(ws(&server, [127, 0, 0, 2], &[]).await.is_ok(), "server-side clients send no Origin");
    let own = format!("http://{}", server.url.trim_start_matches("http://"));
    assert!(ws(&server, [127, 0, 0, 2], &[("origin", &own)]).await.is_ok(), "the admin page's own origin");
    // Polling from an allowed origin gets CORS headers; a foreign one is refused.
    let c = reqwest::Client::new();
    let ok = c
        .get(format!("{}/socket.io/?EIO=4&transport=polling", server.url))
        .header("origin", "http://localhost:3000")
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status().as_u16(), 200);
    assert_eq!(ok.headers()["access-control-allow-origin"], "http://localhost:3000");
    let bad = c
        .get(format!("{}/socket.io/?EIO=4&transport=polling", server.url))
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status().as_u16(), 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_connection_bucket_per_ip() {
    let server = Server::start_with(Some("[limits]\nconnect_per_ip = { rate = 1, per = \"10s\", burst = 3 }\n"), &[]);
    let c = reqwest::Client::new();
    let url = format!("{}/socket.io/?EIO=4&transport=polling", server.url);
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(c.get(&url).send().await.unwrap().status().as_u16());
    }
    assert_eq!(statuses, vec![200, 200, 200, 429]);
    let r = c.get(&url).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 429);
    assert!(r.headers()["retry-after"].to_str().unwrap().parse::<u64>().unwrap() >= 1);
    // Another client address is not affected.
    assert_eq!(ws(&server, [127, 0, 0, 5], &[]).await.err(), None);
    // The HTTP API has its own bucket; Socket.IO traffic does not drain it.
    assert_eq!(c.get(format!("{}/health", server.url)).send().await.unwrap().status().as_u16(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_api_bucket_per_ip() {
    let server = Server::start_with(Some("[limits]\nhttp_per_ip = { rate = 1, per = \"10s\", burst = 5 }\n"), &[]);
    let c = reqwest::Client::new();
    // Loading the front page and the admin page, three times over, spends none of it.
    let page = ["/", "/admin/", "/admin/app.js", "/admin/style.css", "/admin/qr.js"];
    for path in page.iter().cycle().take(3 * page.len()) {
        assert_eq!(c.get(format!("{}{path}", server.url)).send().await.unwrap().status().as_u16(), 200, "{path}");
    }
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(c.get(format!("{}/health", server.url)).send().await.unwrap().status().as_u16());
    }
    assert_eq!(statuses, vec![200, 200, 200, 200, 200, 429]);
    let r = c.get(format!("{}/api/admin/events", server.url)).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 429);
    assert!(r.headers()["retry-after"].to_str().unwrap().parse::<u64>().unwrap() >= 1);
    let body: serde_json::Value = r.json().await.unwrap();
    assert!(body["error"].is_string());
    // With the API's bucket empty, the page still loads.
    for path in page {
        assert_eq!(c.get(format!("{}{path}", server.url)).send().await.unwrap().status().as_u16(), 200, "{path}");
    }
    // Socket.IO traffic is not counted against it.
    let poll = c.get(format!("{}/socket.io/?EIO=4&transport=polling", server.url)).send().await.unwrap();
    assert_eq!(poll.status().as_u16(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_origin_is_the_own_origin_instead_of_the_host() {
    let c = reqwest::Client::new();
    let poll = |url: &str, origin: &str| {
        c.get(format!("{url}/socket.io/?EIO=4&transport=polling")).header("origin", origin.to_string()).send()
    };
    // Without it, an Origin matching the Host header is our own.
    let plain = Server::start();
    let host_origin = plain.url.clone();
    assert_eq!(poll(&plain.url, &host_origin).await.unwrap().status().as_u16(), 200);

    let server = Server::start_with(Some("[auth]\npublic_origin = \"https://live.example-studio.com\"\n"), &[]);
    let own = poll(&server.url, "https://live.example-studio.com").await.unwrap();
    assert_eq!(own.status().as_u16(), 200);
    assert_eq!(own.headers()["access-control-allow-origin"], "https://live.example-studio.com");
    let rebound = poll(&server.url, &server.url).await.unwrap();
    assert_eq!(rebound.status().as_u16(), 403, "an Origin that only matches the Host header");
    assert_eq!(
        poll(&server.url, "http://localhost:3000").await.unwrap().status().as_u16(),
        200,
        "allowed origins still are"
    );
}
