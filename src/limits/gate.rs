//! Connection caps: in total and per client IP, for as long as the TCP connection lives.
//!
//! The slot that counts a connection is owned by the connection's IO object (see
//! [`super::stream`]), and hyper keeps that object inside an upgraded websocket; so the count
//! lasts exactly as long as the TCP connection, whatever protocol it carries. Behind a trusted
//! proxy the client is known only from the first request's `X-Forwarded-For`, so the per-IP part
//! of the slot can be filled in then.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::per_ip::IpKey;
use super::stream::{ConnectionCloser, KillSwitch};
use super::{Refusal, refuse};

/// The connection caps and the count of connections under them.
pub struct Gate {
    max_total: usize,
    max_per_ip: usize,
    total: AtomicUsize,
    per_ip: Mutex<HashMap<IpKey, usize>>,
}

/// Why a connection was not let in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Full {
    Total,
    PerIp,
}

impl Gate {
    pub fn new(max_total: usize, max_per_ip: usize) -> Arc<Gate> {
        Arc::new(Gate { max_total, max_per_ip, total: AtomicUsize::new(0), per_ip: Mutex::new(HashMap::new()) })
    }

    fn ips(&self) -> std::sync::MutexGuard<'_, HashMap<IpKey, usize>> {
        self.per_ip.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes a place in the total; the IP part is added with [`Slot::claim_ip`].
    pub fn enter(self: &Arc<Gate>) -> Result<Slot, Full> {
        let prev = self.total.fetch_add(1, Ordering::AcqRel);
        if prev >= self.max_total {
            self.total.fetch_sub(1, Ordering::AcqRel);
            return Err(Full::Total);
        }
        Ok(Slot { gate: self.clone(), ip: Mutex::new(None), kill_switch: Arc::default() })
    }

    fn take_ip(&self, ip: IpKey) -> bool {
        let mut t = self.ips();
        let n = t.entry(ip).or_insert(0);
        if *n >= self.max_per_ip {
            if *n == 0 {
                t.remove(&ip);
            }
            return false;
        }
        *n += 1;
        true
    }

    fn release_ip(&self, ip: IpKey) {
        let mut t = self.ips();
        if let Some(n) = t.get_mut(&ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                t.remove(&ip);
            }
        }
    }

    /// Connections now, and distinct IPs in the per-IP table.
    pub fn sizes(&self) -> (usize, usize) {
        (self.total.load(Ordering::Acquire), self.ips().len())
    }
}

/// One connection's place; released on drop.
pub struct Slot {
    gate: Arc<Gate>,
    ip: Mutex<Option<IpKey>>,
    pub(super) kill_switch: Arc<KillSwitch>,
}

impl Slot {
    /// Counts this connection against the client `ip` (once; later calls with any IP are no-ops).
    pub fn claim_ip(&self, ip: IpKey) -> Result<(), Full> {
        let mut mine = self.ip.lock().unwrap_or_else(|p| p.into_inner());
        if mine.is_some() {
            return Ok(());
        }
        if !self.gate.take_ip(ip) {
            return Err(Full::PerIp);
        }
        *mine = Some(ip);
        Ok(())
    }

    /// Puts this connection's [`ConnectionCloser`] into the request's extensions: the wire layer
    /// keeps the one its session's frames go down, to close it when the session is shed.
    pub fn tag<B>(&self, req: &mut http::Request<B>) {
        req.extensions_mut().insert(ConnectionCloser::of(&self.kill_switch));
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(ip) = self.ip.get_mut().ok().and_then(|ip| ip.take()) {
            self.gate.release_ip(ip);
        }
        self.gate.total.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Lets a new connection in under the caps (the per-IP one when `ip` is known already), or
/// answers it 429 and closes it. Its slot is held by the stream it is served on.
pub fn admit(gate: &Arc<Gate>, stream: TcpStream, ip: Option<IpKey>) -> Option<(TcpStream, Arc<Slot>)> {
    let slot = match gate.enter() {
        Ok(slot) => Arc::new(slot),
        Err(_) => {
            refuse(Refusal::Connection, "max_connections");
            refuse_raw(stream);
            return None;
        }
    };
    if let Some(ip) = ip
        && slot.claim_ip(ip).is_err()
    {
        refuse(Refusal::Connection, "max_connections_per_ip");
        refuse_raw(stream);
        return None;
    }
    Some((stream, slot))
}

/// Answers a connection that is over a cap before its first request is read, then closes it.
fn refuse_raw(mut stream: TcpStream) {
    tokio::spawn(async move {
        let body = r#"{"error":"Too many connections"}"#;
        let msg = format!(
            "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            let _ = stream.write_all(msg.as_bytes()).await;
            let _ = stream.shutdown().await;
        })
        .await;
    });
}

/// File descriptors kept back from the connection cap for storage, listeners and logs.
const FD_RESERVE: u64 = 128;

/// The total connection cap: the configured one, or less if the open-file limit (raised to its
/// hard limit first) cannot carry it.
pub fn effective_max_connections(configured: usize) -> usize {
    let soft = raise_fd_limit();
    let fits = soft.saturating_sub(FD_RESERVE).max(1) as usize;
    if fits < configured {
        tracing::info!(
            configured,
            open_file_limit = soft,
            using = fits,
            "connection cap lowered to what the open-file limit allows"
        );
        fits
    } else {
        configured
    }
}

/// The open-file limit raised to its hard limit; returns the soft limit now in force.
pub fn raise_fd_limit() -> u64 {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => n,
        Err(_) => rlimit::getrlimit(rlimit::Resource::NOFILE).map(|(soft, _)| soft).unwrap_or(1024),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_and_release() {
        let g = Gate::new(3, 2);
        let ip = IpKey::of([127, 0, 0, 2].into(), 64);
        let a = g.enter().unwrap();
        a.claim_ip(ip).unwrap();
        let b = g.enter().unwrap();
        b.claim_ip(ip).unwrap();
        let c = g.enter().unwrap();
        assert_eq!(c.claim_ip(ip), Err(Full::PerIp));
        assert!(matches!(g.enter(), Err(Full::Total)));
        drop(a);
        c.claim_ip(ip).unwrap();
        drop(b);
        drop(c);
        assert_eq!(g.sizes(), (0, 0));
    }
}
