//! `POST /api/admin/login`: username and password → an admin token.

use bytes::Bytes;
use serde_json::Value;

use super::{ApiError, ApiResult, body_object, json};
use crate::clock::iso_ms;
use crate::limits::{Refusal, refuse};
use crate::passwords;
use crate::peer::PeerAddr;
use crate::state::App;

const INVALID: &str = "Invalid credentials";

pub async fn login(app: &App, client: PeerAddr, body: &Bytes) -> ApiResult {
    let ip = client.client_ip;
    if let Err(wait) = app.limiters.login.check(&client.key) {
        refuse(Refusal::Http, "login_rate");
        return Err(ApiError::too_many(wait));
    }
    let o = body_object(body)?;
    let (Some(Value::String(username)), Some(Value::String(password))) = (o.get("username"), o.get("password")) else {
        return Err(ApiError::bad_request("username and password are required"));
    };
    // A check that finds every place taken is refused at once rather than queued: waiting
    // logins would pile up memory and threads, and a client can simply try again.
    let Ok(slot) = app.login_slots.clone().try_acquire_owned() else {
        refuse(Refusal::Http, "login_busy");
        return Err(ApiError::busy(1));
    };
    let (store, username, password) = (app.store.clone(), username.clone(), password.clone());
    // argon2 is deliberately slow: keep it off the async workers. The place is held by the
    // blocking job itself, so a client that hangs up does not free it before the hash is done.
    let checked = tokio::task::spawn_blocking(move || {
        let _slot = slot;
        passwords::check_login(&store, &username, &password)
    })
    .await
    .map_err(|_| ApiError::new(500, "Login failed"))??;
    let Some(user) = checked else {
        tracing::info!(reason = "bad_credentials", %ip, "login refused");
        return Err(ApiError::new(401, INVALID));
    };
    let (token, exp) =
        app.tokens.mint_login(&user, app.config.token_ttl).map_err(|_| ApiError::new(500, "Login failed"))?;
    tracing::info!(user = %user.username, %ip, "admin logged in");
    Ok(json(200, &serde_json::json!({ "token": token, "expiresAt": iso_ms(exp as i64 * 1000) })))
}
