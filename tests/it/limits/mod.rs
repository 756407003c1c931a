//! Limits per client: connection caps and buckets per IP, per-socket limits, and a hostile
//! network (silent connections, forged or split `X-Forwarded-For`, guest-session and access-code
//! abuse).

mod access;
mod conn;
mod hostile;
mod sockets;
