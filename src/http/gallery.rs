//! Public gallery access: how a guest at a venue without the web app gets a session.

use bytes::Bytes;
use serde_json::Value;

use super::admin::{SessionJson, store_session};
use super::{ApiError, ApiResult, body_object, json};
use crate::state::App;
use crate::types::{EventStatus, Slug};

pub async fn access(app: &App, raw: &str, body: &Bytes) -> ApiResult {
    let slug = Slug::parse(raw).ok_or_else(|| ApiError::new(404, "Event not found"))?;
    let o = body_object(body)?;
    let code = match o.get("access_code").or_else(|| o.get("accessCode")) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.as_str()),
        Some(_) => return Err(ApiError::bad_request("access_code must be a string")),
    };
    let Some(event) = app.store.event(&slug)? else {
        return Err(ApiError::new(404, "Event not found"));
    };
    if event.status != EventStatus::Active {
        return Err(ApiError::new(403, "Event is not open"));
    }
    if let Some(expected) = &event.access_code
        && !code.is_some_and(|c| expected.matches(c))
    {
        return Err(ApiError::new(403, "Invalid access code"));
    }
    let s = store_session(app, &slug, None, None).await?;
    Ok(json(201, &SessionJson::from(&s)))
}
