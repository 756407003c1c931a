//! HTTP through reqwest: status and JSON body, and the admin calls most tests start with.

use std::time::Duration;

use serde_json::{Value, json};

use super::{Server, admin_token};

pub struct Http {
    pub base: String,
    client: reqwest::Client,
}

impl Http {
    pub fn new(server: &Server) -> Http {
        Http::with_base(&server.url)
    }

    pub fn with_base(base: &str) -> Http {
        Http { base: base.to_string(), client: reqwest::Client::new() }
    }

    /// Sends a request; returns status and JSON body (Null when empty or not JSON).
    pub async fn call(&self, method: &str, path: &str, token: Option<&str>, body: Option<Value>) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = self.client.request(method, format!("{}{}", self.base, path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("http request");
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub async fn raw(&self, method: &str, path: &str, token: Option<&str>, body: &str) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = self.client.request(method, format!("{}{}", self.base, path)).body(body.to_string());
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.expect("http request");
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub async fn create_event(&self, slug: &str, owner: Option<&str>) {
        let (st, body) = self
            .call(
                "POST",
                "/api/admin/events",
                Some(&admin_token()),
                Some(json!({"slug": slug, "name": slug, "ownerId": owner})),
            )
            .await;
        assert_eq!(st, 201, "create event: {body}");
    }

    pub async fn guest_session(&self, slug: &str) -> String {
        let (st, body) = self
            .call("POST", "/api/admin/guest-sessions", Some(&admin_token()), Some(json!({"eventSlug": slug})))
            .await;
        assert_eq!(st, 201, "guest session: {body}");
        body["guestSessionId"].as_str().expect("id").to_string()
    }
}

/// An `X-Forwarded-For` naming `ip`, as a proxy on loopback sends it.
pub fn forwarded(ip: &str) -> reqwest::header::HeaderMap {
    let mut h = reqwest::header::HeaderMap::new();
    h.insert("x-forwarded-for", ip.parse().unwrap());
    h
}

/// POST with a JSON body, as a client behind the loopback proxy whose address is `ip`.
pub async fn post_as(c: &reqwest::Client, url: String, ip: &str, body: Value) -> reqwest::Response {
    c.post(url).headers(forwarded(ip)).json(&body).timeout(Duration::from_secs(30)).send().await.expect("request")
}

/// The `Retry-After` seconds of a refusal; 0 when there are none.
pub fn retry_after(r: &reqwest::Response) -> u64 {
    r.headers().get("retry-after").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok()).unwrap_or(0)
}
