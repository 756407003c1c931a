//! Wire payloads → typed client events. Everything a client sends passes through `parse`; a
//! payload that does not fit is `Invalid payload` and never reaches state.

use serde_json::{Map, Value};

use crate::error::WireError;
use crate::types::{PhotoId, Slug};

/// Comment text limits (characters, after trimming).
pub const COMMENT_MAX: usize = 2000;
/// Limit for every other string field a client may attach to a comment.
pub const COMMENT_FIELD_MAX: usize = 256;
const FILENAME_MAX: usize = 255;
const NOTIFICATION_TYPE_MAX: usize = 64;

/// A client event, validated.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientEvent {
    Join(Slug),
    Leave(Slug),
    Like { slug: Slug, photo: PhotoId, like_count: Option<u64> },
    Unlike { slug: Slug, photo: PhotoId },
    Comment { slug: Slug, photo: PhotoId, comment: Value },
    UploadProgress { slug: Slug, photo: PhotoId, progress: Value, filename: String },
    UploadComplete { slug: Slug, photo: Value },
    EventUpdate { slug: Slug, updates: Value },
    AdminJoin,
    AdminNotification { kind: String, data: Value },
}

impl ClientEvent {
    /// The room an event acts on, if any.
    pub fn slug(&self) -> Option<&Slug> {
        match self {
            ClientEvent::Join(s) | ClientEvent::Leave(s) => Some(s),
            ClientEvent::Like { slug, .. }
            | ClientEvent::Unlike { slug, .. }
            | ClientEvent::Comment { slug, .. }
            | ClientEvent::UploadProgress { slug, .. }
            | ClientEvent::UploadComplete { slug, .. }
            | ClientEvent::EventUpdate { slug, .. } => Some(slug),
            ClientEvent::AdminJoin | ClientEvent::AdminNotification { .. } => None,
        }
    }
}

impl ClientEvent {
    /// What this event must not overtake an earlier event of the same socket on: a like's or
    /// unlike's photo (their effects are applied on arrival and undone if their flush fails).
    pub fn ordering_key(&self) -> Option<(Slug, PhotoId)> {
        match self {
            ClientEvent::Like { slug, photo, .. } | ClientEvent::Unlike { slug, photo } => {
                Some((slug.clone(), photo.clone()))
            }
            _ => None,
        }
    }
}

/// Every event name a client may send.
pub const EVENT_NAMES: [&str; 10] = [
    "event:join",
    "event:leave",
    "photo:like",
    "photo:unlike",
    "photo:comment",
    "photo:upload:progress",
    "photo:upload:complete",
    "event:update",
    "admin:join",
    "admin:notification",
];

const BAD: WireError = WireError::InvalidPayload;

fn object(v: &Value) -> Result<&Map<String, Value>, WireError> {
    v.as_object().ok_or(BAD)
}

fn slug_field(o: &Map<String, Value>) -> Result<Slug, WireError> {
    o.get("eventSlug").and_then(Value::as_str).and_then(Slug::parse).ok_or(BAD)
}

fn photo_field(o: &Map<String, Value>) -> Result<PhotoId, WireError> {
    o.get("photo_id").or_else(|| o.get("photoId")).and_then(PhotoId::from_json).ok_or(BAD)
}

/// A bare slug string, or `{eventSlug}` (older clients: `{eventId}` holding the slug).
fn room_arg(v: &Value) -> Result<Slug, WireError> {
    match v {
        Value::String(s) => Slug::parse(s).ok_or(BAD),
        Value::Object(o) => {
            o.get("eventSlug").or_else(|| o.get("eventId")).and_then(Value::as_str).and_then(Slug::parse).ok_or(BAD)
        }
        _ => Err(BAD),
    }
}

/// Is `c` a bidirectional embedding, override or isolate? They reorder the text around them
/// when rendered, so a comment could show other words than it holds (or disguise the name next
/// to it).
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Removes control characters other than newline and tab, and bidirectional controls.
fn strip_controls(s: &str) -> String {
    s.chars().filter(|&c| (!c.is_control() || c == '\n' || c == '\t') && !is_bidi_control(c)).collect()
}

fn comment_message(raw: &str) -> Result<String, WireError> {
    let cleaned = strip_controls(raw);
    let msg = cleaned.trim();
    let n = msg.chars().count();
    if n == 0 || n > COMMENT_MAX {
        return Err(BAD);
    }
    Ok(msg.to_string())
}

/// A comment is a string, or an object whose `message` is a string; other fields are kept if
/// they are short scalars.
fn comment(v: &Value) -> Result<Value, WireError> {
    match v {
        Value::String(s) => Ok(Value::String(comment_message(s)?)),
        Value::Object(o) => {
            let mut out = Map::new();
            for (k, val) in o {
                if k.chars().count() > COMMENT_FIELD_MAX {
                    return Err(BAD);
                }
                if k == "message" {
                    out.insert(k.clone(), Value::String(comment_message(val.as_str().ok_or(BAD)?)?));
                    continue;
                }
                let kept = match val {
                    Value::String(s) if s.chars().count() <= COMMENT_FIELD_MAX => Value::String(strip_controls(s)),
                    Value::Number(_) | Value::Bool(_) | Value::Null => val.clone(),
                    _ => return Err(BAD),
                };
                out.insert(k.clone(), kept);
            }
            if !out.contains_key("message") || out.len() > 32 {
                return Err(BAD);
            }
            Ok(Value::Object(out))
        }
        _ => Err(BAD),
    }
}

/// Parses one event. `data` is the first argument the client sent (`None` when it sent none).
pub fn parse(event: &str, data: Option<&Value>) -> Result<ClientEvent, WireError> {
    let null = Value::Null;
    let v = data.unwrap_or(&null);
    match event {
        "event:join" => room_arg(v).map(ClientEvent::Join),
        "event:leave" => room_arg(v).map(ClientEvent::Leave),
        "photo:like" => {
            let o = object(v)?;
            let like_count = match o.get("likeCount") {
                None | Some(Value::Null) => None,
                Some(n) => Some(n.as_u64().filter(|n| *n <= u32::MAX as u64).ok_or(BAD)?),
            };
            Ok(ClientEvent::Like { slug: slug_field(o)?, photo: photo_field(o)?, like_count })
        }
        "photo:unlike" => {
            let o = object(v)?;
            Ok(ClientEvent::Unlike { slug: slug_field(o)?, photo: photo_field(o)? })
        }
        "photo:comment" => {
            let o = object(v)?;
            Ok(ClientEvent::Comment {
                slug: slug_field(o)?,
                photo: photo_field(o)?,
                comment: comment(o.get("comment").ok_or(BAD)?)?,
            })
        }
        "photo:upload:progress" => {
            let o = object(v)?;
            let progress =
                o.get("progress").filter(|p| p.as_f64().is_some_and(|x| (0.0..=100.0).contains(&x))).ok_or(BAD)?;
            let filename = o
                .get("filename")
                .and_then(Value::as_str)
                .filter(|f| f.chars().count() <= FILENAME_MAX && !f.chars().any(char::is_control))
                .ok_or(BAD)?;
            Ok(ClientEvent::UploadProgress {
                slug: slug_field(o)?,
                photo: photo_field(o)?,
                progress: progress.clone(),
                filename: filename.to_string(),
            })
        }
        "photo:upload:complete" => {
            let o = object(v)?;
            let photo = o.get("photo").filter(|p| p.is_object()).ok_or(BAD)?;
            Ok(ClientEvent::UploadComplete { slug: slug_field(o)?, photo: photo.clone() })
        }
        "event:update" => {
            let o = object(v)?;
            let updates = o.get("updates").filter(|u| u.is_object()).ok_or(BAD)?;
            Ok(ClientEvent::EventUpdate { slug: slug_field(o)?, updates: updates.clone() })
        }
        "admin:join" => Ok(ClientEvent::AdminJoin),
        "admin:notification" => {
            let o = object(v)?;
            let kind = o
                .get("type")
                .and_then(Value::as_str)
                .filter(|t| !t.is_empty() && t.chars().count() <= NOTIFICATION_TYPE_MAX)
                .ok_or(BAD)?;
            Ok(ClientEvent::AdminNotification {
                kind: kind.to_string(),
                data: o.get("data").cloned().unwrap_or(Value::Null),
            })
        }
        _ => Err(BAD),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn join_forms() {
        assert_eq!(parse("event:join", Some(&json!("Wed-1"))), Ok(ClientEvent::Join(Slug::parse("wed-1").unwrap())));
        assert!(matches!(parse("event:join", Some(&json!({"eventSlug": "wed"}))), Ok(ClientEvent::Join(_))));
        for bad in [json!(null), json!(1), json!([]), json!({}), json!("bad slug"), json!({"eventSlug": 3})] {
            assert_eq!(parse("event:join", Some(&bad)), Err(WireError::InvalidPayload), "{bad}");
        }
        assert_eq!(parse("event:join", None), Err(WireError::InvalidPayload));
    }

    #[test]
    fn like_forms() {
        let ok = parse("photo:like", Some(&json!({"eventSlug": "w", "photoId": 7}))).unwrap();
        assert_eq!(
            ok,
            ClientEvent::Like {
                slug: Slug::parse("w").unwrap(),
                photo: PhotoId::parse("7").unwrap(),
                like_count: None
            }
        );
        let admin = parse("photo:like", Some(&json!({"eventSlug": "w", "photo_id": "a", "likeCount": 12}))).unwrap();
        assert!(matches!(admin, ClientEvent::Like { like_count: Some(12), .. }));
        for bad in [
            json!({"eventSlug": "w"}),
            json!({"photo_id": "a"}),
            json!({"eventSlug": "w", "photo_id": "a", "likeCount": -1}),
            json!({"eventSlug": "w", "photo_id": "a", "likeCount": "5"}),
            json!({"eventSlug": "w", "photo_id": {"x": 1}}),
            json!({"eventSlug": "w", "photo_id": "x".repeat(200)}),
            json!([{"eventSlug": "w", "photo_id": "a"}]),
        ] {
            assert_eq!(parse("photo:like", Some(&bad)), Err(WireError::InvalidPayload), "{bad}");
        }
    }

    #[test]
    fn comments() {
        let c =
            parse("photo:comment", Some(&json!({"eventSlug": "w", "photo_id": 1, "comment": "  hi\u{7}\n there  "})))
                .unwrap();
        assert!(matches!(c, ClientEvent::Comment { comment: Value::String(ref s), .. } if s == "hi\n there"));
        let c = parse(
            "photo:comment",
            Some(&json!({"eventSlug": "w", "photo_id": 1, "comment": {"message": "<b>x</b>", "guest_name": "Ann", "id": 5}})),
        )
        .unwrap();
        assert!(
            matches!(c, ClientEvent::Comment { comment: Value::Object(ref o), .. } if o["message"] == "<b>x</b>" && o["guest_name"] == "Ann")
        );
        for bad in [
            json!("   "),
            json!("x".repeat(2001)),
            json!({"guest_name": "no message"}),
            json!({"message": "ok", "guest_name": "n".repeat(257)}),
            json!({"message": "ok", "nested": {"a": 1}}),
            json!(5),
        ] {
            let v = json!({"eventSlug": "w", "photo_id": 1, "comment": bad});
            assert_eq!(parse("photo:comment", Some(&v)), Err(WireError::InvalidPayload), "{v}");
        }
        assert!(
            parse("photo:comment", Some(&json!({"eventSlug": "w", "photo_id": 1, "comment": "é".repeat(2000)})))
                .is_ok()
        );
    }

    #[test]
    fn comments_lose_bidi_controls() {
        let raw = "a\u{202A}b\u{202B}c\u{202C}d\u{202D}e\u{202E}f\u{2066}g\u{2067}h\u{2068}i\u{2069}j";
        let c = parse("photo:comment", Some(&json!({"eventSlug": "w", "photo_id": 1, "comment": raw}))).unwrap();
        assert!(matches!(c, ClientEvent::Comment { comment: Value::String(ref s), .. } if s == "abcdefghij"), "{c:?}");
        // Neighbours of the ranges are ordinary text (LRM/RLM marks and U+2065 stay).
        let kept = "x\u{200E}\u{2029}\u{202F}\u{2065}\u{206A}y";
        let c = parse(
            "photo:comment",
            Some(&json!({"eventSlug": "w", "photo_id": 1, "comment": {"message": kept, "guest_name": "\u{202E}nna"}})),
        )
        .unwrap();
        let ClientEvent::Comment { comment: Value::Object(o), .. } = c else { panic!("object comment expected") };
        assert_eq!(o["message"], kept);
        assert_eq!(o["guest_name"], "nna");
        // A message of nothing but overrides is empty.
        let v = json!({"eventSlug": "w", "photo_id": 1, "comment": "\u{202E}\u{2066} \u{2069}"});
        assert_eq!(parse("photo:comment", Some(&v)), Err(WireError::InvalidPayload));
    }

    #[test]
    fn uploads_updates_notifications() {
        assert!(
            parse(
                "photo:upload:progress",
                Some(&json!({"eventSlug": "w", "photo_id": 1, "progress": 50, "filename": "a.jpg"}))
            )
            .is_ok()
        );
        assert!(
            parse(
                "photo:upload:progress",
                Some(&json!({"eventSlug": "w", "photo_id": 1, "progress": 150, "filename": "a.jpg"}))
            )
            .is_err()
        );
        assert!(
            parse(
                "photo:upload:progress",
                Some(&json!({"eventSlug": "w", "photo_id": 1, "progress": "5", "filename": "a.jpg"}))
            )
            .is_err()
        );
        assert!(parse("photo:upload:complete", Some(&json!({"eventSlug": "w", "photo": {"id": 1}}))).is_ok());
        assert!(parse("photo:upload:complete", Some(&json!({"eventSlug": "w", "photo": null}))).is_err());
        assert!(parse("event:update", Some(&json!({"eventSlug": "w", "updates": {"name": "x"}}))).is_ok());
        assert!(parse("event:update", Some(&json!({"eventSlug": "w", "updates": []}))).is_err());
        assert!(parse("admin:notification", Some(&json!({"type": "t", "data": {"a": 1}}))).is_ok());
        assert!(parse("admin:notification", Some(&json!({"data": 1}))).is_err());
        assert_eq!(parse("admin:join", None), Ok(ClientEvent::AdminJoin));
        assert_eq!(parse("nope", Some(&json!({}))), Err(WireError::InvalidPayload));
    }

    #[test]
    fn likes_of_one_photo_keep_their_order_and_nothing_else_waits() {
        let key = |ev: &str, data: Value| parse(ev, Some(&data)).unwrap().ordering_key();
        let like = key("photo:like", json!({"eventSlug": "w", "photoId": "a"}));
        assert!(like.is_some());
        // A like and an unlike of one photo wait for each other: undone in the right order.
        assert_eq!(key("photo:unlike", json!({"eventSlug": "w", "photoId": "a"})), like);
        assert_eq!(key("photo:like", json!({"eventSlug": "W", "photoId": "a"})), like);
        // Another photo, or the same photo id in another event, does not.
        assert_ne!(key("photo:like", json!({"eventSlug": "w", "photoId": "b"})), like);
        assert_ne!(key("photo:like", json!({"eventSlug": "v", "photoId": "a"})), like);
        // Events applied in their turn have nothing to wait for.
        assert_eq!(key("photo:comment", json!({"eventSlug": "w", "photoId": "a", "comment": {"message": "x"}})), None);
        assert_eq!(key("event:join", json!("w")), None);
    }
}
