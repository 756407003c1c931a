//! Command line: `serve` (the default), `check`, `token`, `admin`, `export`, `import`. This file
//! holds the flags and the dispatch, and what several commands share; each command has its file.

mod admin;
mod check;
mod export;
mod import;
mod serve;
mod token;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::auth;
use crate::config::{Config, ConfigError, Overrides};
use crate::logs::fatal;
use crate::store::Store;

#[derive(Parser, Debug)]
#[command(
    name = "hafi-realtime",
    version,
    about = "Real-time server for event photo galleries (Socket.IO + HTTP on one port)"
)]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Args, Debug, Clone, Default)]
struct GlobalArgs {
    /// TOML configuration file (also HAFI_CONFIG)
    #[arg(long, global = true, value_name = "PATH")]
    config: Option<PathBuf>,
    /// Bind address (overrides SOCKET_HOST)
    #[arg(long, global = true)]
    host: Option<String>,
    /// TCP port; 0 picks a free one (overrides SOCKET_PORT)
    #[arg(long, global = true)]
    port: Option<u16>,
    /// Data directory (overrides DATA_DIR)
    #[arg(long, global = true, value_name = "DIR")]
    data_dir: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Serve HTTP and Socket.IO (the default)
    Serve,
    /// Validate the configuration and the data directory, print what would be used
    Check,
    /// Print an HS256 token for a server-side client (the web app's broadcaster)
    Token {
        /// User id claim
        #[arg(long)]
        user: String,
        /// Role claim; ADMIN for full access
        #[arg(long)]
        role: String,
        /// Lifetime, e.g. 1h, 24h, 30d [default: `[auth] token_ttl`, 24h unless configured]
        #[arg(long, value_parser = parse_ttl)]
        ttl: Option<Duration>,
    },
    /// Manage admin users (the server must be stopped: it holds the data directory)
    Admin {
        #[command(subcommand)]
        action: AdminAction,
    },
    /// Write all state as JSON lines to stdout (a backup)
    Export,
    /// Read JSON lines from stdin into an empty data directory
    Import {
        /// Import even though the data directory already holds state
        #[arg(long)]
        force: bool,
    },
}

#[derive(Subcommand, Debug)]
enum AdminAction {
    /// Add an admin user (password from a prompt, or one line of stdin)
    Add {
        username: String,
        /// Read the password from the first line of stdin instead of prompting
        #[arg(long)]
        password_stdin: bool,
    },
    /// List admin users
    List,
    /// Remove an admin user
    Remove { username: String },
    /// Change an admin user's password
    Passwd {
        username: String,
        /// Read the password from the first line of stdin instead of prompting
        #[arg(long)]
        password_stdin: bool,
    },
}

fn parse_ttl(raw: &str) -> Result<Duration, String> {
    match crate::config::parse_duration(raw)? {
        d if d.is_zero() => Err("the lifetime must be above zero".into()),
        d => Ok(d),
    }
}

/// Exit code for configuration refusals (the production rules).
const EXIT_CONFIG: u8 = 2;

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    crate::logs::follow_env();
    let over = Overrides {
        config_file: cli.global.config,
        host: cli.global.host,
        port: cli.global.port,
        data_dir: cli.global.data_dir,
    };
    let config = match Config::load(&over, &|k| std::env::var(k).ok()) {
        Ok(c) => c,
        Err(e) => return refuse(&e),
    };
    crate::logs::init(config.log_json);
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve::run(config),
        Command::Check => check::run(config),
        Command::Token { user, role, ttl } => {
            let ttl = ttl.unwrap_or(config.token_ttl);
            token::run(config, &user, &role, ttl)
        }
        Command::Admin { action } => with_store(&config, |store| async move { admin::run(&store, action).await }),
        Command::Export => with_store(&config, |store| async move { export::run(&store) }),
        Command::Import { force } => with_store(&config, |store| async move { import::run(&store, force).await }),
    }
}

/// Opens the store for a one-shot command, runs `f`, flushes.
fn with_store<F, Fut>(config: &Config, f: F) -> ExitCode
where
    F: FnOnce(Store) -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("hafi-realtime: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(async {
        let store = match Store::open(&config.data_dir) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("hafi-realtime: {e}");
                return ExitCode::FAILURE;
            }
        };
        let result = f(store.clone()).await;
        let flushed = store.flush_now();
        match (result, flushed) {
            (Ok(()), Ok(())) => ExitCode::SUCCESS,
            (Err(e), _) => {
                eprintln!("hafi-realtime: {e}");
                ExitCode::FAILURE
            }
            (_, Err(e)) => {
                eprintln!("hafi-realtime: {e}");
                ExitCode::FAILURE
            }
        }
    })
}

fn refuse(e: &ConfigError) -> ExitCode {
    fatal(&e.to_string());
    ExitCode::from(EXIT_CONFIG)
}

/// Fills in the secret: configured, or (development only) the one kept in the data directory.
fn resolve_secret(config: &mut Config) -> Result<(), ExitCode> {
    config.check_production().map_err(|e| refuse(&e))?;
    if config.secret.is_some() {
        return Ok(());
    }
    match auth::dev_secret(&config.data_dir) {
        Ok((secret, generated)) => {
            let path = config.data_dir.join(auth::DEV_SECRET_FILE);
            if generated {
                tracing::warn!(path = %path.display(), "development mode: generated a secret and kept it in the data directory");
            } else {
                tracing::warn!(path = %path.display(), "development mode: using the secret kept in the data directory");
            }
            config.secret = Some(secret);
            Ok(())
        }
        Err(e) => {
            fatal(&format!("cannot create the development secret in {}: {e}", config.data_dir.display()));
            Err(ExitCode::from(EXIT_CONFIG))
        }
    }
}

fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build()
}
