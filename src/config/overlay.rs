//! The environment and the command-line flags, the one place where either is read. Flags win
//! over the environment, which wins over the file. Variables set to blanks count as unset.

use std::path::PathBuf;

use super::values::{parse_bool, parse_host, parse_proxies, split_list};
use super::{Config, ConfigError, Mode, invalid};

/// Values given on the command line; `None` means "not given".
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    pub config_file: Option<PathBuf>,
    pub host: Option<String>,
    pub port: Option<u16>,
    pub data_dir: Option<PathBuf>,
}

/// The config file to read: `--config`, else `HAFI_CONFIG`, else none.
pub(super) fn config_file(flags: &Overrides, env: &dyn Fn(&str) -> Option<String>) -> Option<PathBuf> {
    flags.config_file.clone().or_else(|| env("HAFI_CONFIG").map(PathBuf::from))
}

fn number<T: std::str::FromStr>(name: &str, raw: &str, what: &str) -> Result<T, ConfigError> {
    raw.trim().parse().map_err(|_| invalid(name, format!("{raw:?} is not {what}")))
}

pub(super) fn apply(
    c: &mut Config,
    env: &dyn Fn(&str) -> Option<String>,
    flags: &Overrides,
) -> Result<(), ConfigError> {
    let get = |k: &str| env(k).filter(|v| !v.trim().is_empty());
    if let Some(v) = get("SOCKET_HOST") {
        c.host = parse_host("SOCKET_HOST", &v)?;
    }
    if let Some(v) = get("SOCKET_PORT") {
        c.port = number("SOCKET_PORT", &v, "a port")?;
    }
    // HAFI_ENV is an alias of NODE_ENV that wins when both are set.
    if let Some(v) = get("HAFI_ENV").or_else(|| get("NODE_ENV")) {
        c.mode = Mode::parse(&v);
    }
    if let Some(v) = get("NEXTAUTH_SECRET") {
        c.secret = Some(v);
    }
    if let Some(v) = get("ALLOWED_ORIGINS") {
        c.allowed_origins = split_list(&v);
    }
    if let Some(v) = get("DATA_DIR") {
        c.data_dir = PathBuf::from(v);
    }
    if let Some(v) = get("TRUSTED_PROXIES") {
        c.trusted_proxies = parse_proxies("TRUSTED_PROXIES", &split_list(&v))?;
    }
    if let Some(v) = get("SOCKET_GUEST_SESSION_VALIDATION_DISABLED") {
        c.guest_session_validation = !parse_bool("SOCKET_GUEST_SESSION_VALIDATION_DISABLED", &v)?;
    }
    if let Some(v) = get("MAX_CONNECTIONS") {
        c.limits.max_connections = number("MAX_CONNECTIONS", &v, "a number")?;
    }
    if let Some(v) = get("MAX_CONNECTIONS_PER_IP") {
        c.limits.max_connections_per_ip = number("MAX_CONNECTIONS_PER_IP", &v, "a number")?;
    }
    if let Some(v) = get("METRICS_TOKEN") {
        c.metrics_token = Some(v);
    }
    if let Some(v) = get("LOG_FORMAT") {
        c.log_json = v.trim().eq_ignore_ascii_case("json");
    }
    if let Some(h) = &flags.host {
        c.host = parse_host("--host", h)?;
    }
    if let Some(p) = flags.port {
        c.port = p;
    }
    if let Some(d) = &flags.data_dir {
        c.data_dir = d.clone();
    }
    Ok(())
}
