//! The data of a Socket.IO packet: what each packet type must (or must not) carry, the name an
//! EVENT starts with, and whether a binary packet's placeholders fit its attachments.

use std::fmt;

use serde::de::{Deserializer, IgnoredAny, SeqAccess, Visitor};
use serde_json::value::RawValue;

use super::SioKind;
use crate::wire::DecodeError;

/// The payload rules of the protocol: what each packet type must (or must not) carry.
pub(super) fn check_payload(kind: SioKind, data: Option<&RawValue>) -> Result<(), DecodeError> {
    let bad = |reason| Err(DecodeError::Payload { kind, reason });
    let first = data.and_then(|raw| raw.get().bytes().next());
    match kind {
        // Any JSON: an `auth` that is not an object is the handshake's to refuse, with the
        // contract's "Authentication failed" rather than a dropped connection.
        SioKind::Connect => Ok(()),
        SioKind::Disconnect => match first {
            None => Ok(()),
            Some(_) => bad("must be empty"),
        },
        SioKind::ConnectError => match first {
            Some(b'{' | b'"') => Ok(()),
            _ => bad("must be an object or a string"),
        },
        SioKind::Ack | SioKind::BinaryAck => match first {
            Some(b'[') => Ok(()),
            _ => bad("must be an array"),
        },
        SioKind::Event | SioKind::BinaryEvent => match data {
            Some(raw) if event_name(raw).is_some() => Ok(()),
            _ => bad("must be a non-empty array starting with the event name"),
        },
    }
}

/// The first element of an EVENT's data array, if it is a string; the other elements are
/// skipped without being built.
pub fn event_name(data: &RawValue) -> Option<String> {
    struct Head;
    impl<'de> Visitor<'de> for Head {
        type Value = Option<String>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an array starting with a string")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let name = seq.next_element::<String>()?;
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            Ok(name)
        }
    }
    let mut de = serde_json::Deserializer::from_str(data.get());
    de.deserialize_seq(Head).ok().flatten()
}

/// Whether every placeholder (`{"_placeholder":true,"num":n}`) in a binary packet's data names
/// one of its `attachments`; the protocol's parser refuses the packet otherwise.
pub fn placeholders_fit(data: &RawValue, attachments: usize) -> bool {
    fn walk(v: &serde_json::Value, attachments: usize) -> bool {
        match v {
            serde_json::Value::Array(items) => items.iter().all(|i| walk(i, attachments)),
            serde_json::Value::Object(map) if map.get("_placeholder") == Some(&serde_json::Value::Bool(true)) => {
                map.get("num").and_then(serde_json::Value::as_u64).is_some_and(|n| (n as usize) < attachments)
            }
            serde_json::Value::Object(map) => map.values().all(|i| walk(i, attachments)),
            _ => true,
        }
    }
    serde_json::from_str::<serde_json::Value>(data.get()).is_ok_and(|v| walk(&v, attachments))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(s: &str) -> Box<RawValue> {
        RawValue::from_string(s.to_owned()).unwrap()
    }

    #[test]
    fn event_name_is_the_leading_string() {
        assert_eq!(event_name(&raw(r#"["like",{"a":[1,2]},3]"#)).as_deref(), Some("like"));
        for data in ["[]", "[1,\"like\"]", r#"{"like":1}"#, r#""like""#] {
            assert_eq!(event_name(&raw(data)), None, "{data}");
        }
    }

    #[test]
    fn placeholders_must_name_an_attachment() {
        let data = raw(r#"["up",{"file":{"_placeholder":true,"num":1}},[{"_placeholder":true,"num":0}]]"#);
        assert!(placeholders_fit(&data, 2));
        assert!(!placeholders_fit(&data, 1));
        assert!(placeholders_fit(&raw(r#"["up",{"_placeholder":false,"num":9}]"#), 0));
        assert!(!placeholders_fit(&raw(r#"["up",{"_placeholder":true}]"#), 3));
        assert!(!placeholders_fit(&raw(r#"["up",{"_placeholder":true,"num":-1}]"#), 3));
    }
}
