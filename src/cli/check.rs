//! `check`: the effective configuration (secrets masked), and whether the server would start.

use std::process::ExitCode;

use super::{EXIT_CONFIG, runtime};
use crate::auth;
use crate::config::{Config, Mode};
use crate::store::Store;

fn mask(secret: Option<&str>) -> String {
    match secret {
        None => "(none)".into(),
        Some(s) => format!("set ({} bytes)", s.len()),
    }
}

pub(super) fn run(mut config: Config) -> ExitCode {
    let prod = config.check_production();
    println!("mode:                 {}", config.mode.as_str());
    println!("listen:               {}:{}", config.host, config.port);
    println!("data dir:             {}", config.data_dir.display());
    println!("allowed origins:      {}", config.allowed_origins.join(", "));
    println!(
        "trusted proxies:      {}",
        config.trusted_proxies.iter().map(|n| n.to_string()).collect::<Vec<_>>().join(", ")
    );
    println!("secret:               {}", mask(config.secret.as_deref()));
    println!("guest validation:     {}", config.guest_session_validation);
    println!(
        "max connections:      {} total, {} per IP",
        config.limits.max_connections, config.limits.max_connections_per_ip
    );
    println!("guest comments:       {:?}", config.guest_comments);
    println!("storage cache:        {} MiB", config.cache_mb);
    println!(
        "public origin:        {}",
        config.public_origin.as_deref().unwrap_or("(unset: judged by the request's Host)")
    );
    println!("login checks at once: {}", config.limits.login_concurrency);
    println!("header read timeout:  {:?}", config.limits.header_read_timeout);
    if config.mode == Mode::Production && config.public_origin.is_none() {
        println!(
            "warning:              [auth] public_origin is not set: the admin page's own origin is judged by the request's Host header, which a DNS-rebinding page controls"
        );
    }
    if let Err(e) = prod {
        println!("would start:          no: {e}");
        return ExitCode::from(EXIT_CONFIG);
    }
    if config.secret.is_none() && config.mode == Mode::Development {
        let kept = config.data_dir.join(auth::DEV_SECRET_FILE);
        println!("secret source:        development secret in {}", kept.display());
        config.secret = Some(String::new());
    }
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(e) => {
            println!("would start:          no: {e}");
            return ExitCode::FAILURE;
        }
    };
    let opened = rt.block_on(async {
        Store::open(&config.data_dir).and_then(|s| Ok((s.format_version()?, s.events()?.len(), s.session_count())))
    });
    match opened {
        Ok((v, events, sessions)) => {
            println!("data:                 format {v}, {events} events, {sessions} guest sessions");
            println!("would start:          yes");
            ExitCode::SUCCESS
        }
        Err(e) => {
            println!("would start:          no: {e}");
            ExitCode::FAILURE
        }
    }
}
