//! systemd readiness (`Type=notify`): `READY=1` once the port is bound, `STOPPING=1` when
//! shutdown starts. Without `NOTIFY_SOCKET` (not under systemd) these do nothing.

use std::os::unix::net::UnixDatagram;

fn send(state: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else { return };
    let Ok(sock) = UnixDatagram::unbound() else { return };
    let bytes = path.as_encoded_bytes();
    let sent = if let Some(name) = bytes.strip_prefix(b"@") {
        // An abstract socket address (Linux).
        #[cfg(target_os = "linux")]
        {
            use std::os::linux::net::SocketAddrExt;
            std::os::unix::net::SocketAddr::from_abstract_name(name)
                .and_then(|addr| sock.send_to_addr(state.as_bytes(), &addr))
        }
        #[cfg(not(target_os = "linux"))]
        {
            let _ = name;
            return;
        }
    } else {
        sock.send_to(state.as_bytes(), &path)
    };
    if let Err(e) = sent {
        tracing::warn!(error = %e, "cannot notify systemd");
    }
}

pub fn ready() {
    send("READY=1\nSTATUS=serving");
}

pub fn stopping() {
    send("STOPPING=1");
}
