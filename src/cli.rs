//! Command line: `serve` (the default), `check`, `token`, `admin`, `export`, `import`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::auth::{self, Tokens};
use crate::config::{Config, ConfigError, Mode, Overrides};
use crate::shutdown::Shutdown;
use crate::state::App;
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

/// Whether logs are JSON lines. Set from `LOG_FORMAT` before the configuration is read (so a
/// refusal to load it follows the format too), then from the configuration.
static JSON_LOGS: AtomicBool = AtomicBool::new(false);

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    JSON_LOGS
        .store(std::env::var("LOG_FORMAT").is_ok_and(|v| v.trim().eq_ignore_ascii_case("json")), Ordering::Relaxed);
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
    init_logging(config.log_json);
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => run_serve(config),
        Command::Check => run_check(config),
        Command::Token { user, role, ttl } => {
            let ttl = ttl.unwrap_or(config.token_ttl);
            run_token(config, &user, &role, ttl)
        }
        Command::Admin { action } => with_store(&config, |store| async move { run_admin(&store, action).await }),
        Command::Export => with_store(&config, |store| async move { run_export(&store) }),
        Command::Import { force } => with_store(&config, |store| async move { run_import(&store, force).await }),
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

fn read_password(from_stdin: bool) -> Result<String, String> {
    if from_stdin {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line).map_err(|e| format!("cannot read the password: {e}"))?;
        return Ok(line.trim_end_matches(['\n', '\r']).to_string());
    }
    let first = rpassword::prompt_password("Password: ").map_err(|e| format!("cannot read the password: {e}"))?;
    let again =
        rpassword::prompt_password("Repeat password: ").map_err(|e| format!("cannot read the password: {e}"))?;
    if first != again {
        return Err("the passwords do not match".into());
    }
    Ok(first)
}

async fn run_admin(store: &Store, action: AdminAction) -> Result<(), String> {
    use crate::passwords::set_user;
    match action {
        AdminAction::Add { username, password_stdin } => {
            if store.admin(&username).map_err(|e| e.to_string())?.is_some() {
                return Err(format!("admin user {username} already exists (use `admin passwd`)"));
            }
            let pw = read_password(password_stdin)?;
            set_user(store, &username, &pw, "ADMIN").await.map_err(|e| e.to_string())?;
            eprintln!("admin user {username} added");
        }
        AdminAction::Passwd { username, password_stdin } => {
            let Some(user) = store.admin(&username).map_err(|e| e.to_string())? else {
                return Err(format!("no admin user {username}"));
            };
            let pw = read_password(password_stdin)?;
            set_user(store, &username, &pw, &user.role).await.map_err(|e| e.to_string())?;
            eprintln!("password of {username} changed");
        }
        AdminAction::List => {
            for u in store.admins().map_err(|e| e.to_string())? {
                println!("{}\t{}\t{}", u.username, u.role, crate::clock::iso_ms(u.created_ms));
            }
        }
        AdminAction::Remove { username } => {
            if !store.remove_admin(&username).await.map_err(|e| e.to_string())? {
                return Err(format!("no admin user {username}"));
            }
            eprintln!("admin user {username} removed");
        }
    }
    Ok(())
}

fn run_export(store: &Store) -> Result<(), String> {
    use std::io::Write;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    store
        .export(&mut |rec| {
            serde_json::to_writer(&mut out, &rec)?;
            out.write_all(b"\n")
        })
        .map_err(|e| e.to_string())?;
    out.flush().map_err(|e| e.to_string())
}

async fn run_import(store: &Store, force: bool) -> Result<(), String> {
    use std::io::BufRead;
    if !force && !store.is_empty() {
        return Err("the data directory already holds state; import into an empty one, or pass --force".into());
    }
    let mut n = 0u64;
    for (i, line) in std::io::stdin().lock().lines().enumerate() {
        let line = line.map_err(|e| format!("cannot read stdin: {e}"))?;
        if line.trim().is_empty() {
            continue;
        }
        let rec: crate::store::backup::Record =
            serde_json::from_str(&line).map_err(|e| format!("line {}: {e}", i + 1))?;
        store.import(&rec).map_err(|e| format!("line {}: {e}", i + 1))?;
        n += 1;
    }
    store.durable().await.map_err(|e| e.to_string())?;
    eprintln!("imported {n} records");
    Ok(())
}

fn refuse(e: &ConfigError) -> ExitCode {
    fatal(&e.to_string());
    ExitCode::from(EXIT_CONFIG)
}

/// A line in the shape of the JSON log format's, for what is written without going through the
/// log filter: the reason the process stops, and the listening line that scripts wait for.
fn json_line(level: &str, message: &str) -> String {
    serde_json::json!({
        "timestamp": crate::clock::iso_now(),
        "level": level,
        "fields": { "message": message },
        "target": "hafi_realtime",
    })
    .to_string()
}

/// Why the process stops, as one line on stderr (one JSON object with `LOG_FORMAT=json`).
fn fatal(message: &str) {
    if JSON_LOGS.load(Ordering::Relaxed) {
        eprintln!("{}", json_line("ERROR", message));
    } else {
        eprintln!("hafi-realtime: {message}");
    }
}

fn init_logging(json: bool) {
    use tracing_subscriber::EnvFilter;
    JSON_LOGS.store(json, Ordering::Relaxed);
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let _ = if json { builder.json().try_init() } else { builder.try_init() };
    if json {
        // A panic's default report is several plain lines; machine-read logs get one object.
        std::panic::set_hook(Box::new(|info| eprintln!("{}", json_line("ERROR", &format!("panic: {info}")))));
    }
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

fn run_serve(mut config: Config) -> ExitCode {
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
    let code = rt.block_on(serve_async(config));
    // Do not wait for lingering connection tasks: state is flushed already.
    rt.shutdown_timeout(Duration::from_secs(1));
    code
}

async fn serve_async(config: Config) -> ExitCode {
    let opts = crate::store::StoreOptions {
        group_commit: config.group_commit,
        cache_bytes: u64::from(config.cache_mb) << 20,
        commit_queue: config.commit_queue,
        commit_queue_wait: config.commit_queue_wait,
        ..Default::default()
    };
    if !config.group_commit {
        tracing::warn!("group commit is off: every durable write pays for its own flush");
    }
    let store = match Store::open_with(&config.data_dir, opts) {
        Ok(s) => s,
        Err(e) => {
            fatal(&e.to_string());
            return ExitCode::FAILURE;
        }
    };
    let listener = match crate::server::listen(std::net::SocketAddr::new(config.host, config.port)) {
        Ok(l) => l,
        Err(e) => {
            fatal(&format!("cannot listen on {}:{}: {e}", config.host, config.port));
            return ExitCode::FAILURE;
        }
    };
    let addr = match listener.local_addr() {
        Ok(a) => a,
        Err(e) => {
            fatal(&e.to_string());
            return ExitCode::FAILURE;
        }
    };
    let tokens = match Tokens::new(config.secret.as_deref().unwrap_or_default()) {
        Ok(t) => t,
        Err(e) => {
            fatal(&format!("unusable secret: {e}"));
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    // Login tokens are valid only for the admin users, with the passwords, stored now.
    let tokens = match store.admins() {
        Ok(users) => tokens.with_admin_users(users.iter().map(|u| (u.username.as_str(), u.phc.as_str()))),
        Err(e) => {
            eprintln!("hafi-realtime: cannot read the admin users: {e}");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        addr = %addr,
        data_dir = %config.data_dir.display(),
        mode = config.mode.as_str(),
        "hafi-realtime starting"
    );
    let shutdown = Shutdown::default();
    shutdown.on_signals();
    let app = App::new(config, store.clone(), tokens, shutdown.clone());
    // The port accepts connections from here on (the kernel queues them until the loop runs).
    crate::notify::ready();
    // The line tests and scripts wait for: the prefix "listening on " is kept in both formats.
    let listening = format!("listening on http://{addr}");
    if JSON_LOGS.load(Ordering::Relaxed) {
        println!("{}", json_line("INFO", &listening));
    } else {
        println!("{listening}");
    }
    {
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            shutdown.wait().await;
            crate::notify::stopping();
        });
    }
    {
        // A database that cannot be reopened after a fault leaves nothing to serve from: tell
        // the clients (shutdown disconnects them) and exit non-zero, for systemd to restart us.
        let (store, shutdown) = (store.clone(), shutdown.clone());
        tokio::spawn(async move {
            tokio::select! {
                _ = store.wait_lost() => {
                    tracing::error!("storage is lost: shutting down to be restarted");
                    shutdown.trigger();
                }
                _ = shutdown.wait() => {}
            }
        });
    }
    let served = crate::server::serve(app, listener).await;
    if store.is_lost() {
        tracing::error!("exiting after a storage failure");
        return ExitCode::FAILURE;
    }
    let flushed =
        tokio::time::timeout(Duration::from_secs(5), tokio::task::spawn_blocking(move || store.flush_now())).await;
    match (served, flushed) {
        (Ok(()), Ok(Ok(Ok(())))) => {
            tracing::info!("stopped cleanly");
            ExitCode::SUCCESS
        }
        (served, flushed) => {
            tracing::error!(?served, ?flushed, "shutdown was not clean");
            ExitCode::FAILURE
        }
    }
}

fn mask(secret: Option<&str>) -> String {
    match secret {
        None => "(none)".into(),
        Some(s) => format!("set ({} bytes)", s.len()),
    }
}

fn run_check(mut config: Config) -> ExitCode {
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

fn run_token(mut config: Config, user: &str, role: &str, ttl: Duration) -> ExitCode {
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
