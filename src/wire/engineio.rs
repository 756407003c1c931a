//! Engine.IO 4 packets: websocket frames and HTTP long-polling payloads.
//!
//! A text packet is `<type digit>[<data>]`. Over websocket a binary frame is always a message
//! whose bytes are the data (no type byte, unlike protocol 3). A polling body is text packets
//! joined by the record separator `\x1e`; binary messages travel in it as `b<base64>`.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::DecodeError;

/// Joins packets in a polling payload. Socket.IO text is JSON, where this control character is
/// always escaped, so it never occurs inside a packet.
pub const SEPARATOR: u8 = 0x1e;

/// The handshake the server sends first, as JSON in the `open` packet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OpenData {
    pub sid: String,
    pub upgrades: Vec<String>,
    pub ping_interval: u64,
    pub ping_timeout: u64,
    pub max_payload: u64,
}

/// The data of a `message` packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageData {
    Text(String),
    /// `Bytes` so a broadcast can share one buffer between every recipient.
    Binary(Bytes),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EioPacket {
    Open(OpenData),
    Close,
    /// `None` is a plain heartbeat; `Some("probe")` tests a websocket before an upgrade.
    /// `Some("")` is sent as `None` would be, and decodes as `None`.
    Ping(Option<String>),
    Pong(Option<String>),
    Message(MessageData),
    Upgrade,
    Noop,
}

/// One websocket frame's content, before the websocket library frames it. The server writes its
/// frames in `engine::frame` without building packets; this and [`EioPacket::encode_ws`] are the
/// reference encoders the decoders' round-trip tests check against.
#[cfg(test)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WsFrame {
    Text(String),
    Binary(Bytes),
}

impl EioPacket {
    fn type_digit(&self) -> char {
        match self {
            EioPacket::Open(_) => '0',
            EioPacket::Close => '1',
            EioPacket::Ping(_) => '2',
            EioPacket::Pong(_) => '3',
            EioPacket::Message(_) => '4',
            EioPacket::Upgrade => '5',
            EioPacket::Noop => '6',
        }
    }

    /// Text form `<type>[<data>]`, or `None` for binary messages, whose form depends on the
    /// transport.
    fn encode_text(&self) -> Option<String> {
        let mut out = String::new();
        out.push(self.type_digit());
        match self {
            EioPacket::Open(open) => {
                // Serializing a struct of strings and integers cannot fail; fall back to an
                // empty object rather than panic if that ever changes.
                let json = serde_json::to_string(open).unwrap_or_else(|_| String::from("{}"));
                out.push_str(&json);
            }
            EioPacket::Ping(Some(data)) | EioPacket::Pong(Some(data)) => out.push_str(data),
            EioPacket::Message(MessageData::Text(text)) => out.push_str(text),
            EioPacket::Message(MessageData::Binary(_)) => return None,
            EioPacket::Close | EioPacket::Ping(None) | EioPacket::Pong(None) | EioPacket::Upgrade | EioPacket::Noop => {
            }
        }
        Some(out)
    }

    /// The websocket frame for this packet: binary messages go as raw binary frames.
    #[cfg(test)]
    pub fn encode_ws(&self) -> WsFrame {
        match (self, self.encode_text()) {
            (_, Some(text)) => WsFrame::Text(text),
            (EioPacket::Message(MessageData::Binary(bytes)), None) => WsFrame::Binary(bytes.clone()),
            (_, None) => WsFrame::Text(String::new()),
        }
    }

    /// The packet as it appears inside a polling payload (binary as `b<base64>`).
    pub fn encode_polling(&self) -> String {
        match (self, self.encode_text()) {
            (_, Some(text)) => text,
            (EioPacket::Message(MessageData::Binary(bytes)), None) => {
                let mut out = String::with_capacity(1 + bytes.len().div_ceil(3) * 4);
                out.push('b');
                STANDARD.encode_string(bytes, &mut out);
                out
            }
            (_, None) => String::new(),
        }
    }
}

fn optional(data: &str) -> Option<String> {
    (!data.is_empty()).then(|| data.to_owned())
}

fn no_data(packet: EioPacket, digit: u8, data: &str) -> Result<EioPacket, DecodeError> {
    if data.is_empty() { Ok(packet) } else { Err(DecodeError::UnexpectedEioData(digit)) }
}

/// Decodes a websocket text frame (also one part of a polling payload that is not binary).
pub fn decode_ws_text(text: &str) -> Result<EioPacket, DecodeError> {
    let mut chars = text.chars();
    let kind = chars.next().ok_or(DecodeError::Empty)?;
    let data = chars.as_str();
    match kind {
        '0' => serde_json::from_str(data).map(EioPacket::Open).map_err(DecodeError::Open),
        '1' => no_data(EioPacket::Close, 1, data),
        '2' => Ok(EioPacket::Ping(optional(data))),
        '3' => Ok(EioPacket::Pong(optional(data))),
        '4' => Ok(EioPacket::Message(MessageData::Text(data.to_owned()))),
        '5' => no_data(EioPacket::Upgrade, 5, data),
        '6' => no_data(EioPacket::Noop, 6, data),
        other => Err(DecodeError::UnknownEioType(other)),
    }
}

/// Decodes a websocket binary frame: in protocol 4 it is always a message of raw bytes.
pub fn decode_ws_binary(frame: Bytes) -> EioPacket {
    EioPacket::Message(MessageData::Binary(frame))
}

fn decode_polling_part(part: &str) -> Result<EioPacket, DecodeError> {
    match part.strip_prefix('b') {
        Some(b64) => STANDARD
            .decode(b64)
            .map(|bytes| EioPacket::Message(MessageData::Binary(Bytes::from(bytes))))
            .map_err(|_| DecodeError::Base64),
        None => decode_ws_text(part),
    }
}

/// Checks the size of a polling body, then yields its packets one at a time, so a caller can
/// act on each (and stop at the first error) without holding every decoded packet at once.
///
/// The size is checked before anything else: an oversized body is refused without being looked
/// at, and the HTTP layer answers it with 413.
pub fn polling_packets(
    body: &[u8],
    max_payload: usize,
) -> Result<impl Iterator<Item = Result<EioPacket, DecodeError>> + '_, DecodeError> {
    if body.len() > max_payload {
        return Err(DecodeError::PayloadTooLarge { len: body.len(), max: max_payload });
    }
    let text = std::str::from_utf8(body).map_err(|_| DecodeError::NotUtf8)?;
    Ok(text.split(char::from(SEPARATOR)).map(decode_polling_part))
}

/// Decodes a whole polling body (see [`polling_packets`]); the first bad packet fails it all.
pub fn decode_polling_payload(body: &[u8], max_payload: usize) -> Result<Vec<EioPacket>, DecodeError> {
    polling_packets(body, max_payload)?.collect()
}

/// Joins packets into a polling body (the reference for the round-trip tests; the server builds
/// its polling bodies in `engine::session` from queued frames).
#[cfg(test)]
pub fn encode_polling_payload(packets: &[EioPacket]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, packet) in packets.iter().enumerate() {
        if i > 0 {
            out.push(SEPARATOR);
        }
        out.extend_from_slice(packet.encode_polling().as_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn text(s: &str) -> EioPacket {
        EioPacket::Message(MessageData::Text(s.to_owned()))
    }

    fn binary(b: &[u8]) -> EioPacket {
        EioPacket::Message(MessageData::Binary(Bytes::copy_from_slice(b)))
    }

    #[test]
    fn decodes_the_documented_text_packets() {
        let cases = [
            ("2probe", EioPacket::Ping(Some("probe".into()))),
            ("3probe", EioPacket::Pong(Some("probe".into()))),
            ("2", EioPacket::Ping(None)),
            ("3", EioPacket::Pong(None)),
            ("4HelloWorld", text("HelloWorld")),
            ("1", EioPacket::Close),
            ("5", EioPacket::Upgrade),
            ("6", EioPacket::Noop),
        ];
        for (wire, packet) in cases {
            assert_eq!(decode_ws_text(wire).ok(), Some(packet.clone()), "{wire}");
            assert_eq!(packet.encode_ws(), WsFrame::Text(wire.to_owned()));
        }
    }

    #[test]
    fn open_packet_of_the_sample_session_round_trips() {
        let wire = r#"0{"sid":"lv_VI97HAXpY6yYWAAAC","upgrades":["websocket"],"pingInterval":25000,"pingTimeout":5000,"maxPayload":1000000}"#;
        let expected = EioPacket::Open(OpenData {
            sid: "lv_VI97HAXpY6yYWAAAC".into(),
            upgrades: vec!["websocket".into()],
            ping_interval: 25000,
            ping_timeout: 5000,
            max_payload: 1_000_000,
        });
        assert_eq!(decode_ws_text(wire).ok(), Some(expected.clone()));
        assert_eq!(expected.encode_polling(), wire);
    }

    #[test]
    fn websocket_binary_frame_is_the_raw_data() {
        // Protocol 4: <Buffer 01 02 03> is sent as <Buffer 01 02 03>, no type byte.
        let packet = decode_ws_binary(Bytes::from_static(&[1, 2, 3]));
        assert_eq!(packet, binary(&[1, 2, 3]));
        assert_eq!(packet.encode_ws(), WsFrame::Binary(Bytes::from_static(&[1, 2, 3])));
    }

    #[test]
    fn polling_payloads_from_the_protocol() {
        let body = "4hello\x1e4€€€".as_bytes();
        let packets = [text("hello"), text("€€€")];
        assert_eq!(decode_polling_payload(body, 1000).ok().as_deref(), Some(&packets[..]));
        assert_eq!(encode_polling_payload(&packets), body);

        let body = b"4hello\x1ebAQID";
        let packets = [text("hello"), binary(&[1, 2, 3])];
        assert_eq!(decode_polling_payload(body, 1000).ok().as_deref(), Some(&packets[..]));
        assert_eq!(encode_polling_payload(&packets), body);

        let packets = decode_polling_payload(b"bAQIDBA==", 1000).ok();
        assert_eq!(packets, Some(vec![binary(&[1, 2, 3, 4])]));

        let body = "42[\"hello\"]\x1e42[\"world\"]".as_bytes();
        let packets = decode_polling_payload(body, 1000).ok();
        assert_eq!(packets, Some(vec![text("2[\"hello\"]"), text("2[\"world\"]")]));
    }

    #[test]
    fn oversized_polling_body_is_refused_before_decoding() {
        // Not even UTF-8: the size decides first.
        let body = [0xff_u8; 11];
        let err = decode_polling_payload(&body, 10).err();
        assert!(matches!(err, Some(DecodeError::PayloadTooLarge { len: 11, max: 10 })), "{err:?}");
        let message = err.map(|e| e.to_string()).unwrap_or_default();
        assert!(message.contains("maxPayload"), "{message}");
        assert!(decode_polling_payload(b"4abcdefgh", 9).is_ok());
    }

    #[test]
    fn malformed_packets_are_errors() {
        let bad: [&[u8]; 10] =
            [b"", b"7", b"x", b"4a\x1e\x1e4b", b"b!!!", b"1extra", b"5probe", b"6x", b"0{bad", b"4\xff"];
        for body in bad {
            assert!(decode_polling_payload(body, 1000).is_err(), "{body:?}");
        }
        assert!(matches!(decode_ws_text("9"), Err(DecodeError::UnknownEioType('9'))));
        assert!(matches!(decode_polling_payload(b"4\xff", 10), Err(DecodeError::NotUtf8)));
    }

    fn packet_strategy() -> impl Strategy<Value = EioPacket> {
        // Text never holds the separator: Socket.IO text is JSON, which escapes it.
        let data = "[^\x1e]{1,20}";
        prop_oneof![
            (
                "[a-zA-Z0-9_-]{0,20}",
                prop::collection::vec("[a-z]{1,9}", 0..3),
                any::<u64>(),
                any::<u64>(),
                any::<u64>()
            )
                .prop_map(|(sid, upgrades, ping_interval, ping_timeout, max_payload)| {
                    EioPacket::Open(OpenData { sid, upgrades, ping_interval, ping_timeout, max_payload })
                }),
            Just(EioPacket::Close),
            prop::option::of(data).prop_map(EioPacket::Ping),
            prop::option::of(data).prop_map(EioPacket::Pong),
            "[^\x1e]{0,40}".prop_map(|s| EioPacket::Message(MessageData::Text(s))),
            prop::collection::vec(any::<u8>(), 0..40)
                .prop_map(|b| EioPacket::Message(MessageData::Binary(Bytes::from(b)))),
            Just(EioPacket::Upgrade),
            Just(EioPacket::Noop),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn decoders_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200), s in "\\PC{0,60}") {
            let _ = decode_polling_payload(&bytes, 100);
            let _ = decode_ws_text(&s);
            let _ = decode_polling_payload(s.as_bytes(), 1000);
        }

        #[test]
        fn websocket_encoding_round_trips(packet in packet_strategy()) {
            let decoded = match packet.encode_ws() {
                WsFrame::Text(t) => decode_ws_text(&t).ok(),
                WsFrame::Binary(b) => Some(decode_ws_binary(b)),
            };
            prop_assert_eq!(decoded, Some(packet));
        }

        #[test]
        fn polling_encoding_round_trips(packets in prop::collection::vec(packet_strategy(), 1..6)) {
            let body = encode_polling_payload(&packets);
            prop_assert_eq!(decode_polling_payload(&body, body.len()).ok(), Some(packets));
        }

        #[test]
        fn polling_body_over_max_payload_is_refused(packets in prop::collection::vec(packet_strategy(), 1..6)) {
            let body = encode_polling_payload(&packets);
            let max = body.len() - 1;
            let refused = matches!(decode_polling_payload(&body, max), Err(DecodeError::PayloadTooLarge { .. }));
            prop_assert!(refused);
        }
    }
}
