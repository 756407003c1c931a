//! Packet codecs for Engine.IO 4 and Socket.IO 5, used by the server's own layer in `engine`.
//!
//! They are pure functions over bytes and strings so that every malformed input can be tested
//! without a network, and so that the transport code can decide what an error means (close the
//! connection, answer 413, ...).
//!
//! Decoding never panics, never recurses without bound (serde_json's depth limit applies), and
//! allocates at most a small multiple of its input.

pub mod engineio;
pub mod socketio;

pub use engineio::{EioPacket, MessageData, OpenData};
pub use socketio::{SioKind, SioPacket};

/// Everything a peer can get wrong in a packet. Each of these is a protocol violation: the
/// transport closes the connection, except [`DecodeError::PayloadTooLarge`] on polling, which the
/// HTTP layer answers with 413.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("payload of {len} bytes exceeds maxPayload ({max} bytes)")]
    PayloadTooLarge { len: usize, max: usize },
    #[error("polling payload is not valid UTF-8")]
    NotUtf8,
    #[error("empty packet")]
    Empty,
    #[error("unknown Engine.IO packet type {0:?}")]
    UnknownEioType(char),
    #[error("Engine.IO packet type {0} carries no data, but data was sent")]
    UnexpectedEioData(u8),
    #[error("invalid base64 in a binary polling packet")]
    Base64,
    #[error("invalid open packet: {0}")]
    Open(serde_json::Error),
    #[error("unknown Socket.IO packet type {0:?}")]
    UnknownSioType(char),
    #[error("missing or invalid binary attachment count")]
    Attachments,
    #[error("namespace contains a control character")]
    NamespaceControl,
    #[error("acknowledgement id is larger than 2^53 - 1")]
    AckIdRange,
    #[error("{0:?} packet must carry an acknowledgement id")]
    MissingAckId(SioKind),
    #[error("{0:?} packet cannot carry an acknowledgement id")]
    UnexpectedAckId(SioKind),
    #[error("packet data is not valid JSON: {0}")]
    Json(serde_json::Error),
    #[error("invalid {kind:?} payload: {reason}")]
    Payload { kind: SioKind, reason: &'static str },
}
