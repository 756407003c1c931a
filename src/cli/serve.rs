//! `serve` (the default command): binds the port, then runs the server until a signal stops it.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use super::{EXIT_CONFIG, resolve_secret, runtime};
use crate::config::Config;
use crate::logs::fatal;
use crate::server::{self, RunError};
use crate::shutdown::Shutdown;

pub(super) fn run(mut config: Config) -> ExitCode {
    if let Err(code) = resolve_secret(&mut config) {
        return code;
    }
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(e) => {
            fatal(&format!("cannot start the runtime: {e}"));
            return ExitCode::FAILURE;
        }
    };
    let code = rt.block_on(bind_and_run(config));
    // Do not wait for lingering connection tasks: state is flushed already.
    rt.shutdown_timeout(Duration::from_secs(1));
    code
}

async fn bind_and_run(config: Config) -> ExitCode {
    let listener = match server::listen(SocketAddr::new(config.host, config.port)) {
        Ok(l) => l,
        Err(e) => {
            fatal(&format!("cannot listen on {}:{}: {e}", config.host, config.port));
            return ExitCode::FAILURE;
        }
    };
    let shutdown = Shutdown::default();
    shutdown.on_signals();
    match server::run(config, listener, shutdown).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            fatal(&e.to_string());
            match e {
                RunError::Secret(_) => ExitCode::from(EXIT_CONFIG),
                _ => ExitCode::FAILURE,
            }
        }
    }
}
