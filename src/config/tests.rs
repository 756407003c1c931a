//! The loading rules: precedence, defaults, the file's keys and the refusals.

use super::*;
use std::collections::HashMap;
use std::net::IpAddr;

fn load(env: &[(&str, &str)], file: Option<&str>, over: Overrides) -> Result<Config, ConfigError> {
    let map: HashMap<String, String> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let dir = tempfile::tempdir().unwrap();
    let mut over = over;
    if let Some(text) = file {
        let p = dir.path().join("c.toml");
        std::fs::write(&p, text).unwrap();
        over.config_file = Some(p);
    }
    Config::load(&over, &|k| map.get(k).cloned())
}

#[test]
fn defaults() {
    let c = load(&[], None, Overrides::default()).unwrap();
    assert_eq!(c.port, 3001);
    assert_eq!(c.mode, Mode::Development);
    assert_eq!(c.limits.events.like, Bucket::new(10, 1000, 20));
    assert_eq!(c.limits.max_connections_per_ip, 256);
}

#[test]
fn precedence_flag_env_file() {
    let file = "[server]\nport = 4000\nhost = \"127.0.0.1\"\n";
    let c = load(&[], Some(file), Overrides::default()).unwrap();
    assert_eq!(c.port, 4000);
    let c = load(&[("SOCKET_PORT", "5000")], Some(file), Overrides::default()).unwrap();
    assert_eq!(c.port, 5000);
    let c = load(&[("SOCKET_PORT", "5000")], Some(file), Overrides { port: Some(6000), ..Default::default() }).unwrap();
    assert_eq!(c.port, 6000);
    assert_eq!(c.host, IpAddr::from([127, 0, 0, 1]));
}

#[test]
fn the_old_packet_count_queue_key_names_its_successor() {
    let err = load(&[], Some("[limits]\noutgoing_queue = 1024\n"), Overrides::default()).unwrap_err().to_string();
    assert!(err.contains("limits.outgoing_queue") && err.contains("outgoing_queue_bytes"), "{err}");
    let c = load(&[], Some("[limits]\noutgoing_queue_bytes = 2097152\n"), Overrides::default()).unwrap();
    assert_eq!((c.limits.outgoing_queue_bytes, c.limits.outgoing_total_bytes), (2 << 20, 256 << 20));
    assert!(load(&[], Some("[limits]\noutgoing_total_bytes = 1000\n"), Overrides::default()).is_err());
}

#[test]
fn unknown_key_is_named() {
    let err = load(&[], Some("[limits]\nmax_conections = 3\n"), Overrides::default()).unwrap_err();
    assert!(err.to_string().contains("max_conections"), "{err}");
}

#[test]
fn buckets_and_durations() {
    let file = "[limits.events]\nlike = { rate = 2, per = \"500ms\", burst = 3 }\n[rooms]\nidle_evict = \"5m\"\nguest_comments = \"admins-only\"\n";
    let c = load(&[], Some(file), Overrides::default()).unwrap();
    assert_eq!(c.limits.events.like, Bucket::new(2, 500, 3));
    assert_eq!(c.idle_evict, Duration::from_secs(300));
    assert_eq!(c.guest_comments, GuestComments::AdminsOnly);
    assert!(load(&[], Some("[rooms]\nidle_evict = \"5 parsecs\"\n"), Overrides::default()).is_err());
    assert_eq!(parse_duration("30d"), Ok(Duration::from_secs(30 * 86400)));
    assert!(parse_duration("10").is_err());
    assert!(load(&[], Some("[limits]\nping_interval = \"0s\"\n"), Overrides::default()).is_err());
    assert!(load(&[], Some("[limits]\nheader_read_timeout = \"0s\"\n"), Overrides::default()).is_err());
    assert_eq!(load(&[], Some("[storage]\ncache_mb = 32\n"), Overrides::default()).unwrap().cache_mb, 32);
    let err = load(&[], Some("[storage]\ncache_mb = 0\n"), Overrides::default()).unwrap_err();
    assert!(err.to_string().contains("storage.cache_mb"), "{err}");
}

#[test]
fn guest_comments_is_read_where_spec_puts_it_and_where_earlier_releases_did() {
    let at = |file: &str| load(&[], Some(file), Overrides::default());
    assert_eq!(at("").unwrap().guest_comments, GuestComments::Broadcast);
    assert_eq!(at("[storage]\nguest_comments = \"off\"\n").unwrap().guest_comments, GuestComments::Off);
    assert_eq!(at("[rooms]\nguest_comments = \"admins-only\"\n").unwrap().guest_comments, GuestComments::AdminsOnly);
    let same = "[storage]\nguest_comments = \"off\"\n[rooms]\nguest_comments = \"off\"\n";
    assert_eq!(at(same).unwrap().guest_comments, GuestComments::Off);
    let err = at("[storage]\nguest_comments = \"off\"\n[rooms]\nguest_comments = \"broadcast\"\n").unwrap_err();
    assert!(err.to_string().contains("storage.guest_comments"), "{err}");
    assert!(at("[storage]\nguest_comments = \"everyone\"\n").is_err());
}

#[test]
fn env_names_compatible_with_node() {
    let c = load(
        &[
            ("NODE_ENV", "production"),
            ("HAFI_ENV", "development"),
            ("ALLOWED_ORIGINS", " https://a.example , https://b.example "),
        ],
        None,
        Overrides::default(),
    )
    .unwrap();
    assert_eq!(c.mode, Mode::Development);
    assert_eq!(c.allowed_origins, vec!["https://a.example", "https://b.example"]);
}

#[test]
fn hostile_network_keys() {
    let c = load(&[], None, Overrides::default()).unwrap();
    assert_eq!(c.limits.header_read_timeout, Duration::from_secs(10));
    assert_eq!(c.limits.ipv6_prefix, 64);
    assert_eq!(c.limits.gallery_access_per_ip, Bucket::new(300, 3_600_000, 100));
    assert_eq!(c.limits.login_concurrency, 2);
    assert_eq!((c.max_likes_per_identity, c.max_photos_per_event), (2000, 100_000));
    let file = "[limits]\nheader_read_timeout = \"3s\"\nipv6_prefix = 48\nlogin_concurrency = 4\naccess_code_failures_per_ip = { rate = 2, per = \"1m\", burst = 2 }\n[rooms]\nmax_likes_per_identity = 7\n[auth]\npublic_origin = \"https://Live.Example.com/\"\n";
    let c = load(&[], Some(file), Overrides::default()).unwrap();
    assert_eq!(c.limits.header_read_timeout, Duration::from_secs(3));
    assert_eq!(c.limits.ipv6_prefix, 48);
    assert_eq!(c.limits.login_concurrency, 4);
    assert_eq!(c.limits.access_code_failures_per_ip, Bucket::new(2, 60_000, 2));
    assert_eq!(c.max_likes_per_identity, 7);
    assert_eq!(c.public_origin.as_deref(), Some("https://live.example.com"));
    for bad in [
        "[limits]\nipv6_prefix = 0\n",
        "[limits]\nlogin_concurrency = 0\n",
        "[auth]\npublic_origin = \"live.example.com\"\n",
        "[rooms]\nmax_photos_per_event = 0\n",
    ] {
        assert!(load(&[], Some(bad), Overrides::default()).is_err(), "{bad}");
    }
}

#[test]
fn production_rules() {
    let strong = "k3J9xQ2mV8pL5nR7tY1wZ4aB6cD0eF2gH";
    let prod = |extra: &[(&str, &str)]| {
        let mut env = vec![("NODE_ENV", "production")];
        env.extend_from_slice(extra);
        load(&env, None, Overrides::default()).unwrap().check_production()
    };
    assert!(prod(&[]).is_err());
    assert!(prod(&[("NEXTAUTH_SECRET", "short")]).is_err());
    assert!(prod(&[("NEXTAUTH_SECRET", "changeme-changeme-changeme-changeme-123")]).is_err());
    assert!(prod(&[("NEXTAUTH_SECRET", strong)]).is_ok());
    assert!(prod(&[("NEXTAUTH_SECRET", strong), ("ALLOWED_ORIGINS", "*")]).is_err());
    assert!(prod(&[("NEXTAUTH_SECRET", strong), ("SOCKET_GUEST_SESSION_VALIDATION_DISABLED", "true")]).is_err());
}

#[test]
fn unknown_keys_and_tables_are_named() {
    for (file, key) in [
        ("[storage]\ncommit_queue_wiat = \"1s\"\n", "commit_queue_wiat"),
        ("[limits.events]\nlikes = { rate = 1, per = \"1s\", burst = 1 }\n", "likes"),
        ("[limits.events]\nlike = { rate = 1, per = \"1s\", burst = 1, pre = \"1s\" }\n", "pre"),
        ("[sever]\nport = 1\n", "sever"),
    ] {
        let err = load(&[], Some(file), Overrides::default()).unwrap_err().to_string();
        assert!(err.contains(key) && err.contains("unknown field"), "{file}: {err}");
    }
}

#[test]
fn durations_in_humantime_notation() {
    let file = "[auth]\ntoken_ttl = \"1h 30m\"\n[limits.events]\njoin = { rate = 1, per = \"2min\", burst = 1 }\n";
    let c = load(&[], Some(file), Overrides::default()).unwrap();
    assert_eq!(c.token_ttl, Duration::from_secs(5400));
    assert_eq!(c.limits.events.join, Bucket::new(1, 120_000, 1));
    assert_eq!(parse_duration(" 250ms "), Ok(Duration::from_millis(250)));
    let err = load(&[], Some("[auth]\ntoken_ttl = \"forever\"\n"), Overrides::default()).unwrap_err().to_string();
    assert!(err.contains("token_ttl") && err.contains("invalid duration \"forever\""), "{err}");
}

#[test]
fn refusals_name_their_key() {
    for (file, key) in [
        ("[storage]\ncommit_queue_wait = \"0s\"\n", "storage.commit_queue_wait"),
        ("[limits.events]\nlike = { rate = 0, per = \"1s\", burst = 1 }\n", "limits.events.like"),
        ("[limits]\nlogin_per_ip = { rate = 1, per = \"0ms\", burst = 1 }\n", "limits.login_per_ip"),
        ("[server]\nhost = \"example.com\"\n", "server.host"),
        ("[server]\ntrusted_proxies = [\"10.0.0.0/33\"]\n", "server.trusted_proxies"),
    ] {
        let err = load(&[], Some(file), Overrides::default()).unwrap_err().to_string();
        assert!(err.contains(key), "{file}: {err}");
    }
    let err = load(&[("SOCKET_PORT", "http")], None, Overrides::default()).unwrap_err().to_string();
    assert!(err.contains("SOCKET_PORT"), "{err}");
    let err = load(&[], None, Overrides { host: Some("nowhere".into()), ..Default::default() }).unwrap_err();
    assert!(err.to_string().contains("--host"), "{err}");
}

/// The README lists every key with its default: that file must load to the embedded defaults.
#[test]
fn the_readme_lists_the_embedded_defaults() {
    let readme = include_str!("../../README.md");
    let from = readme.find("Every key with its default").expect("the README's full list");
    let block = &readme[from..];
    let start = block.find("```toml\n").expect("its TOML block") + "```toml\n".len();
    let end = start + block[start..].find("```").expect("the block's end");
    let mut listed = load(&[], Some(&block[start..end]), Overrides::default()).unwrap();
    // The two examples of keys that are unset by default.
    assert_eq!(listed.public_origin.as_deref(), Some("https://live.example-studio.com"));
    (listed.secret, listed.public_origin) = (None, None);
    assert_eq!(format!("{listed:?}"), format!("{:?}", Config::default()));
}

#[test]
fn the_benchmark_configs_load() {
    for text in [
        include_str!("../../benches/bench-config.toml"),
        include_str!("../../benches/fill-config.toml"),
        include_str!("../../benches/likes-config.toml"),
    ] {
        let c = load(&[], Some(text), Overrides::default()).unwrap();
        assert_eq!(c.limits.max_connections_per_ip, 50_000);
    }
}
