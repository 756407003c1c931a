//! Public gallery access: how a guest at a venue without the web app gets a session.
//!
//! Anyone may ask, so every way in is bounded: new sessions per client (a venue's NAT gets room
//! for a crowd), and wrong access codes per client and per event. While a failure bucket is
//! empty every attempt is refused before the code is compared, the right code too; otherwise a
//! guesser would learn the code from which attempt was let through.

use bytes::Bytes;
use serde_json::Value;

use super::admin::{SessionJson, store_session};
use super::{ApiError, ApiResult, body_object, json};
use crate::limits::{Refusal, refuse};
use crate::peer::PeerAddr;
use crate::state::App;
use crate::types::{EventStatus, Slug};

pub async fn access(app: &App, raw: &str, client: PeerAddr, body: &Bytes) -> ApiResult {
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
    if let Some(expected) = &event.access_code {
        refuse_while_guessing(app, &slug, client)?;
        if !code.is_some_and(|c| expected.matches(c)) {
            app.limiters.code_failures_ip.fail(&client.key);
            app.limiters.code_failures_event.fail(&slug);
            tracing::info!(reason = "wrong_access_code", ip = %client.client_ip, event = %slug, "gallery access refused");
            return Err(ApiError::new(403, "Invalid access code"));
        }
    }
    if let Err(wait) = app.limiters.gallery_access.check(&client.key) {
        refuse(Refusal::Http, "gallery_access_rate");
        return Err(ApiError::too_many(wait));
    }
    let s = store_session(app, &slug, None, None).await?;
    Ok(json(201, &SessionJson::from(&s)))
}

/// 429 while this client or this event has no wrong code left to spend. The event's bucket is
/// asked first and always, so the admins hear of an attack on the first refusal, whichever
/// client it reaches.
fn refuse_while_guessing(app: &App, slug: &Slug, client: PeerAddr) -> Result<(), ApiError> {
    let per_event = app.limiters.code_failures_event.blocked(slug);
    let per_ip = app.limiters.code_failures_ip.blocked(&client.key);
    if let Some(b) = per_event
        && b.tripped_now
    {
        tracing::warn!(event = %slug, ip = %client.client_ip, "access code guessing: wrong codes for this event refused until the limit refills");
        crate::socket::ops::security_notice(
            app,
            "Too many wrong access codes: access to this event is paused for a while",
            slug,
        );
    }
    let waits =
        [per_event.map(|b| (b.retry_after, "access_code_event")), per_ip.map(|b| (b.retry_after, "access_code_ip"))];
    match waits.into_iter().flatten().max_by_key(|(wait, _)| *wait) {
        Some((wait, reason)) => {
            refuse(Refusal::Http, reason);
            Err(ApiError::too_many(wait))
        }
        None => Ok(()),
    }
}
