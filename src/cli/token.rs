//! `token`: an HS256 token for a server-side client (the web app's broadcaster).

use std::process::ExitCode;
use std::time::Duration;

use super::{EXIT_CONFIG, resolve_secret};
use crate::auth::Tokens;
use crate::config::Config;

pub(super) fn run(mut config: Config, user: &str, role: &str, ttl: Duration) -> ExitCode {
    if user.is_empty() || role.is_empty() {
        eprintln!("hafi-realtime: --user and --role must not be empty");
        return ExitCode::from(EXIT_CONFIG);
    }
    if let Err(code) = resolve_secret(&mut config) {
        return code;
    }
    let minted = Tokens::new(config.secret.as_deref().unwrap_or_default()).and_then(|t| t.mint(user, role, ttl));
    match minted {
        Ok((token, _)) => {
            println!("{token}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("hafi-realtime: cannot sign the token: {e}");
            ExitCode::FAILURE
        }
    }
}
