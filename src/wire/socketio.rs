//! Socket.IO 5 packets, in the default text encoding:
//! `<type>[<attachments>-][<namespace>,][<ack id>][<JSON data>]`.
//!
//! Decoding is strict because the server closes a connection on any malformed packet: there is
//! no "best effort" reading of data a conforming client never sends.

use serde_json::value::RawValue;

use super::DecodeError;

mod payload;

use payload::check_payload;
pub use payload::placeholders_fit;

/// The largest integer a JavaScript number holds exactly; clients count ack ids in numbers.
pub const MAX_ACK_ID: u64 = (1 << 53) - 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SioKind {
    Connect,
    Disconnect,
    Event,
    Ack,
    ConnectError,
    BinaryEvent,
    BinaryAck,
}

impl SioKind {
    fn from_digit(c: char) -> Option<SioKind> {
        Some(match c {
            '0' => SioKind::Connect,
            '1' => SioKind::Disconnect,
            '2' => SioKind::Event,
            '3' => SioKind::Ack,
            '4' => SioKind::ConnectError,
            '5' => SioKind::BinaryEvent,
            '6' => SioKind::BinaryAck,
            _ => return None,
        })
    }

    #[cfg(test)]
    fn digit(self) -> char {
        match self {
            SioKind::Connect => '0',
            SioKind::Disconnect => '1',
            SioKind::Event => '2',
            SioKind::Ack => '3',
            SioKind::ConnectError => '4',
            SioKind::BinaryEvent => '5',
            SioKind::BinaryAck => '6',
        }
    }

    pub fn is_binary(self) -> bool {
        matches!(self, SioKind::BinaryEvent | SioKind::BinaryAck)
    }

    fn takes_ack_id(self) -> bool {
        matches!(self, SioKind::Event | SioKind::Ack | SioKind::BinaryEvent | SioKind::BinaryAck)
    }

    fn needs_ack_id(self) -> bool {
        matches!(self, SioKind::Ack | SioKind::BinaryAck)
    }
}

/// A decoded packet. `data` stays raw JSON: it has been validated, and the event handler
/// deserializes it once into the type it wants.
#[derive(Debug, Clone)]
pub struct SioPacket {
    pub kind: SioKind,
    /// `/` when the packet names none.
    pub namespace: String,
    pub ack_id: Option<u64>,
    pub data: Option<Box<RawValue>>,
    /// Binary attachments announced by a BINARY_EVENT / BINARY_ACK; 0 otherwise.
    pub attachments: usize,
}

impl PartialEq for SioPacket {
    fn eq(&self, other: &Self) -> bool {
        self.kind == other.kind
            && self.namespace == other.namespace
            && self.ack_id == other.ack_id
            && self.attachments == other.attachments
            && self.data.as_deref().map(RawValue::get) == other.data.as_deref().map(RawValue::get)
    }
}

/// Splits a leading run of ASCII digits off `s`.
fn take_digits(s: &str) -> (&str, &str) {
    let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    s.split_at_checked(end).unwrap_or((s, ""))
}

/// Decodes one Socket.IO packet (the data of an Engine.IO text message).
pub fn decode(text: &str) -> Result<SioPacket, DecodeError> {
    let mut chars = text.chars();
    let first = chars.next().ok_or(DecodeError::Empty)?;
    let kind = SioKind::from_digit(first).ok_or(DecodeError::UnknownSioType(first))?;
    let mut rest = chars.as_str();

    let mut attachments = 0;
    if kind.is_binary() {
        let (digits, after) = take_digits(rest);
        let after = after.strip_prefix('-').ok_or(DecodeError::Attachments)?;
        attachments = digits.parse::<usize>().map_err(|_| DecodeError::Attachments)?;
        rest = after;
    }

    let mut namespace = String::from("/");
    if rest.starts_with('/') {
        // The namespace runs to a comma, or to the end of a packet that carries nothing else.
        let (nsp, after) = rest.split_once(',').unwrap_or((rest, ""));
        // A namespace may be echoed back (CONNECT_ERROR); a control character such as the
        // polling separator would let it split the client's payload.
        if nsp.chars().any(char::is_control) {
            return Err(DecodeError::NamespaceControl);
        }
        namespace = nsp.to_owned();
        rest = after;
    }

    let (digits, after) = take_digits(rest);
    let ack_id = if digits.is_empty() {
        None
    } else {
        let id = digits.parse::<u64>().map_err(|_| DecodeError::AckIdRange)?;
        if id > MAX_ACK_ID {
            return Err(DecodeError::AckIdRange);
        }
        Some(id)
    };
    rest = after;
    if ack_id.is_some() && !kind.takes_ack_id() {
        return Err(DecodeError::UnexpectedAckId(kind));
    }
    if ack_id.is_none() && kind.needs_ack_id() {
        return Err(DecodeError::MissingAckId(kind));
    }

    let data = if rest.is_empty() {
        None
    } else {
        Some(serde_json::from_str::<Box<RawValue>>(rest).map_err(DecodeError::Json)?)
    };
    check_payload(kind, data.as_deref())?;

    Ok(SioPacket { kind, namespace, ack_id, data, attachments })
}

/// Encodes a packet. The namespace `/` is left out, as the protocol's encoder does; a namespace
/// must not contain a comma. The server writes its packets in `engine::frame`; this is the
/// reference the decoder's round-trip tests check against.
#[cfg(test)]
pub fn encode(packet: &SioPacket) -> String {
    let data = packet.data.as_deref().map(RawValue::get).unwrap_or("");
    let mut out = String::with_capacity(packet.namespace.len() + data.len() + 24);
    out.push(packet.kind.digit());
    if packet.kind.is_binary() {
        out.push_str(&packet.attachments.to_string());
        out.push('-');
    }
    if packet.namespace != "/" && !packet.namespace.is_empty() {
        out.push_str(&packet.namespace);
        out.push(',');
    }
    if let Some(id) = packet.ack_id {
        out.push_str(&id.to_string());
    }
    out.push_str(data);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::Value;

    fn raw(v: &Value) -> Option<Box<RawValue>> {
        serde_json::value::to_raw_value(v).ok()
    }

    #[test]
    fn documented_encodings_decode_and_encode_back_unchanged() {
        let cases: [(&str, SioKind, &str, Option<u64>, usize); 20] = [
            ("0", SioKind::Connect, "/", None, 0),
            (r#"0{"sid":"wZX3oN0bSVIhsaknAAAI"}"#, SioKind::Connect, "/", None, 0),
            ("0/admin,", SioKind::Connect, "/admin", None, 0),
            (r#"0/admin,{"sid":"oSO0OpakMV_3jnilAAAA"}"#, SioKind::Connect, "/admin", None, 0),
            (r#"4{"message":"Not authorized"}"#, SioKind::ConnectError, "/", None, 0),
            (r#"2["foo"]"#, SioKind::Event, "/", None, 0),
            (r#"2/admin,["bar"]"#, SioKind::Event, "/admin", None, 0),
            (r#"2["hello",1]"#, SioKind::Event, "/", None, 0),
            (r#"51-["baz",{"_placeholder":true,"num":0}]"#, SioKind::BinaryEvent, "/", None, 1),
            (
                r#"52-/admin,["baz",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#,
                SioKind::BinaryEvent,
                "/admin",
                None,
                2,
            ),
            (r#"212["foo"]"#, SioKind::Event, "/", Some(12), 0),
            ("312[]", SioKind::Ack, "/", Some(12), 0),
            (r#"2/admin,13["foo"]"#, SioKind::Event, "/admin", Some(13), 0),
            (r#"3/admin,13["bar"]"#, SioKind::Ack, "/admin", Some(13), 0),
            (r#"51-14["foo",{"_placeholder":true,"num":0}]"#, SioKind::BinaryEvent, "/", Some(14), 1),
            (r#"314["bar"]"#, SioKind::Ack, "/", Some(14), 0),
            (r#"215["foo"]"#, SioKind::Event, "/", Some(15), 0),
            (r#"61-15["bar",{"_placeholder":true,"num":0}]"#, SioKind::BinaryAck, "/", Some(15), 1),
            ("1", SioKind::Disconnect, "/", None, 0),
            ("1/admin,", SioKind::Disconnect, "/admin", None, 0),
        ];
        for (wire, kind, namespace, ack_id, attachments) in cases {
            let packet = decode(wire);
            assert!(packet.is_ok(), "{wire}: {packet:?}");
            let Ok(packet) = packet else { continue };
            assert_eq!(packet.kind, kind, "{wire}");
            assert_eq!(packet.namespace, namespace, "{wire}");
            assert_eq!(packet.ack_id, ack_id, "{wire}");
            assert_eq!(packet.attachments, attachments, "{wire}");
            assert_eq!(encode(&packet), wire);
        }
    }

    #[test]
    fn event_data_and_name_are_kept() {
        // As it arrives over the wire, inside an Engine.IO message.
        let eio = crate::wire::engineio::decode_ws_text(r#"451-["hello",{"_placeholder":true,"num":0}]"#);
        let Ok(crate::wire::EioPacket::Message(crate::wire::MessageData::Text(sio))) = eio else { panic!("{eio:?}") };
        let packet = decode(&sio);
        let Ok(packet) = packet else { panic!("{packet:?}") };
        assert_eq!(packet.kind, SioKind::BinaryEvent);
        let data = packet.data.as_deref().map(RawValue::get);
        assert_eq!(data, Some(r#"["hello",{"_placeholder":true,"num":0}]"#));
        assert_eq!(packet.data.as_deref().and_then(payload::event_name).as_deref(), Some("hello"));
    }

    #[test]
    fn malformed_packets_are_errors() {
        let cases: &[(&str, &str)] = &[
            ("", "empty"),
            ("7", "unknown type"),
            ("x[\"a\"]", "unknown type"),
            ("2abc[\"a\"]", "non-numeric ack id"),
            ("29007199254740992[\"a\"]", "ack id over 2^53 - 1"),
            ("299999999999999999999999[\"a\"]", "ack id over u64"),
            ("2/admin[\"a\"]", "namespace without comma"),
            ("2[\"a\"", "not JSON"),
            ("2[\"a\"]x", "trailing garbage"),
            ("2", "event without data"),
            ("2[]", "empty event"),
            ("2[1,\"a\"]", "event name not a string"),
            ("2{\"a\":1}", "event data not an array"),
            ("1{}", "disconnect with data"),
            ("3[]", "ack without id"),
            ("3{}", "ack data not an array"),
            ("012{}", "connect with ack id"),
            ("5[\"a\"]", "binary event without attachment count"),
            ("5x-[\"a\"]", "binary event with bad attachment count"),
            ("599999999999999999999999-[\"a\"]", "attachment count overflow"),
            ("4", "connect error without data"),
            ("0/a\u{1e}42[\"x\"],", "control character in the namespace"),
            ("0/a\n,", "control character in the namespace"),
        ];
        for (wire, why) in cases {
            assert!(decode(wire).is_err(), "{why}: {wire}");
        }
        assert!(matches!(decode("9"), Err(DecodeError::UnknownSioType('9'))));
        // Without a comma the namespace runs to the end: this event has no data.
        assert!(matches!(decode("2/admin[\"a\"]"), Err(DecodeError::Payload { .. })));
        assert_eq!(decode("0/admin").map(|p| p.namespace).ok().as_deref(), Some("/admin"));
        assert!(matches!(decode("29007199254740992[\"a\"]"), Err(DecodeError::AckIdRange)));
        assert!(decode("29007199254740991[\"a\"]").is_ok());
        assert!(matches!(decode("0/a\n,"), Err(DecodeError::NamespaceControl)));
    }

    #[test]
    fn deep_nesting_does_not_overflow_the_stack() {
        // Validation skips nested values without recursing; building a `Value` from the data
        // later stops at serde_json's depth limit instead of overflowing.
        let deep = format!("2[\"a\",{}{}]", "[".repeat(100_000), "]".repeat(100_000));
        let packet = decode(&deep);
        assert!(packet.is_ok(), "{packet:?}");
        let data = packet.ok().and_then(|p| p.data).map(|d| d.get().to_owned()).unwrap_or_default();
        assert!(serde_json::from_str::<Value>(&data).is_err());
        let unbalanced = format!("2[\"a\",{}]", "[".repeat(100_000));
        assert!(matches!(decode(&unbalanced), Err(DecodeError::Json(_))));
    }

    fn json_strategy() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            "\\PC{0,12}".prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map("[a-z_]{0,6}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    fn object_strategy() -> impl Strategy<Value = Value> {
        prop::collection::btree_map("[a-z_]{0,6}", json_strategy(), 0..4)
            .prop_map(|m| Value::Object(m.into_iter().collect()))
    }

    fn event_strategy() -> impl Strategy<Value = Value> {
        ("[a-z:]{0,12}", prop::collection::vec(json_strategy(), 0..4)).prop_map(|(name, args)| {
            let mut items = vec![Value::String(name)];
            items.extend(args);
            Value::Array(items)
        })
    }

    fn packet_strategy() -> impl Strategy<Value = SioPacket> {
        let ack = 0..=MAX_ACK_ID;
        let kind_data = prop_oneof![
            prop::option::of(object_strategy()).prop_map(|d| (SioKind::Connect, d, None, 0)),
            Just((SioKind::Disconnect, None, None, 0)),
            (event_strategy(), prop::option::of(ack.clone())).prop_map(|(d, id)| (SioKind::Event, Some(d), id, 0)),
            (prop::collection::vec(json_strategy(), 0..4), ack.clone()).prop_map(|(d, id)| (
                SioKind::Ack,
                Some(Value::Array(d)),
                Some(id),
                0
            )),
            prop_oneof![object_strategy(), "\\PC{0,12}".prop_map(Value::String)].prop_map(|d| (
                SioKind::ConnectError,
                Some(d),
                None,
                0
            )),
            (event_strategy(), prop::option::of(ack.clone()), 0..10usize).prop_map(|(d, id, n)| (
                SioKind::BinaryEvent,
                Some(d),
                id,
                n
            )),
            (prop::collection::vec(json_strategy(), 0..4), ack, 0..10usize).prop_map(|(d, id, n)| (
                SioKind::BinaryAck,
                Some(Value::Array(d)),
                Some(id),
                n
            )),
        ];
        ("/[a-z]{0,8}", kind_data).prop_map(|(namespace, (kind, data, ack_id, attachments))| SioPacket {
            kind,
            namespace,
            ack_id,
            data: data.as_ref().and_then(raw),
            attachments,
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn decode_never_panics(s in "\\PC{0,80}", prefix in "[0-6]{0,2}[0-9-]{0,3}(/[a-z,]{0,4})?[0-9]{0,3}") {
            let _ = decode(&s);
            let _ = decode(&format!("{prefix}{s}"));
        }

        #[test]
        fn every_encoded_packet_decodes_to_itself(packet in packet_strategy()) {
            let wire = encode(&packet);
            let decoded = decode(&wire);
            prop_assert!(decoded.is_ok(), "{}: {:?}", wire, decoded);
            prop_assert_eq!(decoded.ok(), Some(packet));
        }
    }
}
