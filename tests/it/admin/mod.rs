//! What admins and the web app use: the HTTP API, the login of admin users, access that ends
//! (revocation), and `/metrics`.

use std::io::Write;
use std::process::Stdio;

use crate::support::Server;
use crate::support::cli::bin;

mod api;
mod login;
mod metrics;
mod revocation;

/// A server whose data directory holds the admin user `dana` (added by the CLI while stopped).
fn server_with_admin(config: Option<&str>) -> Server {
    let mut server = Server::start_with(config, &[]);
    server.stop();
    let mut child = bin()
        .args(["admin", "add", "dana", "--password-stdin", "--data-dir"])
        .arg(server.data_dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"dana's password\n").unwrap();
    assert!(child.wait().unwrap().success(), "admin add failed");
    server.restart_after_stop();
    server
}

const DANA: &str = "dana's password";
