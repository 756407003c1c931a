//! `POST /api/admin/login`: username and password → an admin token.

use std::net::IpAddr;

use bytes::Bytes;
use serde_json::Value;

use super::{ApiError, ApiResult, body_object, json};
use crate::clock::iso_ms;
use crate::passwords;
use crate::state::App;

const INVALID: &str = "Invalid credentials";

pub async fn login(app: &App, ip: IpAddr, body: &Bytes) -> ApiResult {
    if let Err(wait) = app.limiters.login.check(&ip) {
        tracing::info!(reason = "login_rate", %ip, "request refused");
        return Err(ApiError::too_many(wait));
    }
    let o = body_object(body)?;
    let (Some(Value::String(username)), Some(Value::String(password))) = (o.get("username"), o.get("password")) else {
        return Err(ApiError::bad_request("username and password are required"));
    };
    let (store, username, password) = (app.store.clone(), username.clone(), password.clone());
    // argon2 is deliberately slow: keep it off the async workers.
    let checked = tokio::task::spawn_blocking(move || passwords::check_login(&store, &username, &password))
        .await
        .map_err(|_| ApiError::new(500, "Login failed"))??;
    let Some(user) = checked else {
        tracing::info!(reason = "bad_credentials", %ip, "login refused");
        return Err(ApiError::new(401, INVALID));
    };
    let (token, exp) = app.tokens.mint_login(&user, app.config.token_ttl).map_err(|_| ApiError::new(500, "Login failed"))?;
    tracing::info!(user = %user.username, %ip, "admin logged in");
    Ok(json(200, &serde_json::json!({ "token": token, "expiresAt": iso_ms(exp as i64 * 1000) })))
}
