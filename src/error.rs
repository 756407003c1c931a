//! The errors a client can be told about, and their exact wire messages. One place maps every
//! refusal to the words of the product contract, for sockets and HTTP alike.

use serde::Serialize;

use crate::store::StoreError;

/// A refused socket event or `/api/emit` call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("Invalid payload")]
    InvalidPayload,
    #[error("Access denied to this event")]
    AccessDenied,
    #[error("Admin access required")]
    AdminRequired,
    #[error("Too many join requests")]
    TooManyJoins,
    #[error("Rate limit exceeded")]
    RateLimited { retry_after_ms: u64 },
    #[error("Comments are disabled")]
    CommentsOff,
    #[error("Service temporarily unavailable")]
    Unavailable,
    /// A like past a cap of SPEC §6; retrying does not help until the identity unlikes.
    #[error("Like limit reached")]
    LikeLimit,
    /// Overload, not a fault (SPEC §7): the commit queue is full; retry after a while.
    #[error("Server busy")]
    Busy { retry_after_ms: u64 },
}

impl From<StoreError> for WireError {
    fn from(e: StoreError) -> WireError {
        match e {
            StoreError::LikeLimit(limit) => {
                tracing::debug!(%limit, "like refused: cap reached");
                return WireError::LikeLimit;
            }
            // The breaker already logged when it opened; do not log every refused write.
            StoreError::Unavailable => tracing::debug!("write refused: storage breaker open"),
            StoreError::Busy { retry_after_ms } => return WireError::Busy { retry_after_ms },
            e => tracing::error!(error = %e, "storage operation failed"),
        }
        WireError::Unavailable
    }
}

impl WireError {
    /// Label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            WireError::InvalidPayload => "invalid_payload",
            WireError::AccessDenied => "access_denied",
            WireError::AdminRequired => "admin_required",
            WireError::TooManyJoins => "too_many_joins",
            WireError::RateLimited { .. } => "rate_limited",
            WireError::CommentsOff => "comments_off",
            WireError::Unavailable => "unavailable",
            WireError::LikeLimit => "like_limit",
            WireError::Busy { .. } => "server_busy",
        }
    }

    /// HTTP status for the same refusal on `/api/emit`.
    pub fn status(&self) -> u16 {
        match self {
            WireError::InvalidPayload => 400,
            // A cap, not a rate: 429 would invite retrying after `Retry-After`, which cannot help.
            WireError::AccessDenied | WireError::AdminRequired | WireError::CommentsOff | WireError::LikeLimit => 403,
            WireError::TooManyJoins | WireError::RateLimited { .. } => 429,
            WireError::Unavailable | WireError::Busy { .. } => 503,
        }
    }

    /// How long the client should wait before it tries again, when that is known.
    pub fn retry_after_ms(&self) -> Option<u64> {
        match self {
            WireError::RateLimited { retry_after_ms } | WireError::Busy { retry_after_ms } => Some(*retry_after_ms),
            _ => None,
        }
    }

    /// The `error` event payload.
    pub fn payload(&self, event: &str) -> ErrorPayload {
        ErrorPayload {
            message: self.to_string(),
            event: event.to_string(),
            retry_after_ms: self.retry_after_ms(),
            timestamp: crate::clock::iso_now(),
        }
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorPayload {
    pub message: String,
    pub event: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
    pub timestamp: String,
}

/// Why a connection was refused at the handshake (the connect error's `message`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ConnectRefusal {
    #[error("Authentication required")]
    AuthenticationRequired,
    #[error("Invalid event")]
    InvalidEvent,
    #[error("Invalid guest session")]
    InvalidGuestSession,
    #[error("Authentication failed")]
    AuthenticationFailed,
    #[error("Too many connections")]
    TooManyConnections,
}

impl ConnectRefusal {
    /// Label for logs and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            ConnectRefusal::AuthenticationRequired => "auth_required",
            ConnectRefusal::InvalidEvent => "invalid_event",
            ConnectRefusal::InvalidGuestSession => "invalid_guest_session",
            ConnectRefusal::AuthenticationFailed => "auth_failed",
            ConnectRefusal::TooManyConnections => "too_many_connections",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_messages_are_the_contract() {
        assert_eq!(WireError::InvalidPayload.to_string(), "Invalid payload");
        assert_eq!(WireError::AccessDenied.to_string(), "Access denied to this event");
        assert_eq!(WireError::AdminRequired.to_string(), "Admin access required");
        assert_eq!(WireError::TooManyJoins.to_string(), "Too many join requests");
        assert_eq!(WireError::Unavailable.to_string(), "Service temporarily unavailable");
        let p = serde_json::to_value(
            WireError::from(StoreError::LikeLimit(crate::store::LikeLimit::PerEvent)).payload("photo:like"),
        )
        .unwrap();
        assert_eq!((p["message"].as_str(), p["event"].as_str()), (Some("Like limit reached"), Some("photo:like")));
        assert_eq!(WireError::LikeLimit.status(), 403);
        let p = serde_json::to_value(WireError::RateLimited { retry_after_ms: 120 }.payload("photo:like")).unwrap();
        assert_eq!(p["message"], "Rate limit exceeded");
        assert_eq!(p["event"], "photo:like");
        assert_eq!(p["retryAfterMs"], 120);
        assert_eq!(ConnectRefusal::InvalidGuestSession.to_string(), "Invalid guest session");
        let busy = WireError::from(StoreError::Busy { retry_after_ms: 500 });
        let p = serde_json::to_value(busy.payload("photo:like")).unwrap();
        assert_eq!(
            (p["message"].as_str(), p["event"].as_str(), p["retryAfterMs"].as_u64()),
            (Some("Server busy"), Some("photo:like"), Some(500))
        );
        assert_eq!(busy.status(), 503);
    }
}
