//! Outgoing frames, encoded once: the Engine.IO text packet a websocket message or a polling
//! payload part carries.

use serde::Serialize;
use tokio_tungstenite::tungstenite::Utf8Bytes;

/// `42["<event>",<data>]`: a Socket.IO EVENT on `/` inside an Engine.IO message.
///
/// `None` only when `data` cannot be serialized (a map with non-string keys, say), which the
/// server's own payload types never are; the caller logs and sends nothing.
pub fn event<T: Serialize + ?Sized>(event: &str, data: &T) -> Option<Utf8Bytes> {
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(b"42[");
    serde_json::to_writer(&mut out, event).ok()?;
    out.push(b',');
    serde_json::to_writer(&mut out, data).ok()?;
    out.push(b']');
    Utf8Bytes::try_from(out).ok()
}

/// `43<id>[<data>]`: the acknowledgement of a client's event.
pub fn ack<T: Serialize + ?Sized>(id: u64, data: &T) -> Option<Utf8Bytes> {
    let mut out = Vec::with_capacity(48);
    out.extend_from_slice(format!("43{id}[").as_bytes());
    serde_json::to_writer(&mut out, data).ok()?;
    out.push(b']');
    Utf8Bytes::try_from(out).ok()
}

/// `40{"sid":"..."}`: a CONNECT accepted.
pub fn connected(sid: &str) -> Utf8Bytes {
    Utf8Bytes::from(format!("40{}", serde_json::json!({ "sid": sid })))
}

/// `44[<nsp>,]{"message":...}`: a CONNECT refused.
pub fn connect_error(namespace: &str, message: &str) -> Utf8Bytes {
    let body = serde_json::json!({ "message": message });
    if namespace == "/" {
        Utf8Bytes::from(format!("44{body}"))
    } else {
        Utf8Bytes::from(format!("44{namespace},{body}"))
    }
}

/// `41`: the server disconnects the socket.
pub fn disconnect() -> Utf8Bytes {
    Utf8Bytes::from_static("41")
}

pub fn ping() -> Utf8Bytes {
    Utf8Bytes::from_static("2")
}

pub fn noop() -> Utf8Bytes {
    Utf8Bytes::from_static("6")
}

pub fn close() -> Utf8Bytes {
    Utf8Bytes::from_static("1")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{EioPacket, MessageData, SioKind, engineio, socketio};

    fn sio(frame: &Utf8Bytes) -> socketio::SioPacket {
        let Ok(EioPacket::Message(MessageData::Text(text))) = engineio::decode_ws_text(frame) else {
            panic!("not a message: {frame}")
        };
        socketio::decode(&text).unwrap()
    }

    #[test]
    fn frames_decode_as_the_packets_they_are() {
        let e = sio(&event("photo:like", &serde_json::json!({"photo_id": "a\u{1e}b", "likeCount": 3})).unwrap());
        assert_eq!((e.kind, e.ack_id), (SioKind::Event, None));
        assert_eq!(e.data.unwrap().get(), r#"["photo:like",{"likeCount":3,"photo_id":"a\u001eb"}]"#);
        let a = sio(&ack(7, &serde_json::json!({"ok": true})).unwrap());
        assert_eq!((a.kind, a.ack_id), (SioKind::Ack, Some(7)));
        assert_eq!(sio(&connected("abc")).kind, SioKind::Connect);
        let refused = sio(&connect_error("/other", "Invalid namespace"));
        assert_eq!((refused.kind, refused.namespace.as_str()), (SioKind::ConnectError, "/other"));
        assert_eq!(sio(&disconnect()).kind, SioKind::Disconnect);
    }
}
