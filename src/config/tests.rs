//! Unit tests of parsing and validation.

use super::*;

#[test]
fn defaults_are_valid() {
    Config::default().validate().unwrap();
}

#[test]
fn unknown_key_names_its_path() {
    let err = Config::from_toml_str("[cache]\nttl = 5\n").unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("cache.ttl"), "{msg}");
    assert!(msg.contains("unknown field"), "{msg}");
}

#[test]
fn zero_ttl_is_rejected() {
    let cfg = Config::from_toml_str("[cache]\nttl_s = 0\n").unwrap();
    let msg = cfg.validate().unwrap_err().to_string();
    assert!(msg.starts_with("`cache.ttl_s`"), "{msg}");
}

#[test]
fn absurd_ttl_is_rejected() {
    let cfg = Config::from_toml_str("[cache]\nttl_s = 99999999999\n").unwrap();
    assert!(cfg.validate().is_err());
}

#[test]
fn bad_upstream_url_is_rejected() {
    for url in ["ftp://x", "not a url", "http://h/p?q=1", "/just/a/path"] {
        let mut cfg = Config::default();
        cfg.upstream.url = url.into();
        let msg = cfg.validate().unwrap_err().to_string();
        assert!(msg.contains("upstream.url"), "{url}: {msg}");
    }
}

#[test]
fn wrong_type_names_its_path() {
    let msg = Config::from_toml_str("[upstream]\ntimeout_ms = \"x\"\n")
        .unwrap_err()
        .to_string();
    assert!(msg.contains("upstream.timeout_ms"), "{msg}");
}

#[test]
fn syntax_error_names_its_line() {
    let msg = Config::from_toml_str("[server]\nlisten = \"x\"\n[cache\n")
        .unwrap_err()
        .to_string();
    assert!(msg.starts_with("line 3:"), "{msg}");
}

#[test]
fn admin_and_log_keys_are_checked() {
    for (text, key) in [
        (
            "[admin]\nready_upstream_window_s = 0\n",
            "admin.ready_upstream_window_s",
        ),
        ("[admin]\ntoken = \"has space\"\n", "admin.token"),
        ("[admin]\nlisten = \"127.0.0.2:8080\"\n", "admin.listen"),
        ("[log]\nlevel = \"evalgate=notalevel\"\n", "log.level"),
    ] {
        let cfg = Config::from_toml_str(text).unwrap();
        let msg = cfg.validate().unwrap_err().to_string();
        assert!(msg.starts_with(&format!("`{key}`")), "{text}: {msg}");
    }
}

#[test]
fn spelling_memo_bounds_are_checked() {
    for (text, key) in [
        (
            "[cache]\nspelling_memo_max_bytes = 100\n",
            "cache.spelling_memo_max_bytes",
        ),
        (
            "[cache]\nspelling_memo_max_bytes = 100000\n",
            "cache.spelling_memo_max_bytes",
        ),
        (
            "[cache]\nspelling_memo_entries = 2000000\n",
            "cache.spelling_memo_entries",
        ),
        (
            "[cache]\nspelling_memo_entries = 1048576\nspelling_memo_max_bytes = 2048\n",
            "cache.spelling_memo_entries",
        ),
    ] {
        let cfg = Config::from_toml_str(text).unwrap();
        let msg = cfg.validate().unwrap_err().to_string();
        assert!(msg.starts_with(&format!("`{key}`")), "{text}: {msg}");
    }
    let off = Config::from_toml_str("[cache]\nspelling_memo_entries = 0\n").unwrap();
    off.validate().unwrap();
}

#[test]
fn effective_settings_round_trip() {
    let cfg = Config::default();
    let again = Config::from_toml_str(&cfg.to_toml()).unwrap();
    assert_eq!(cfg, again);
}

#[test]
fn max_abandoned_fills_is_checked() {
    let cfg = Config::from_toml_str("[upstream]\nmax_abandoned_fills = 2000000\n").unwrap();
    let msg = cfg.validate().unwrap_err().to_string();
    assert!(msg.starts_with("`upstream.max_abandoned_fills`"), "{msg}");
    // 0: every abandoned fill is cancelled at once.
    let off = Config::from_toml_str("[upstream]\nmax_abandoned_fills = 0\n").unwrap();
    off.validate().unwrap();
}

#[test]
fn body_read_timeout_is_checked() {
    for text in [
        "[server]\nbody_read_timeout_ms = 0\n",
        "[server]\nbody_read_timeout_ms = 3600001\n",
    ] {
        let cfg = Config::from_toml_str(text).unwrap();
        let msg = cfg.validate().unwrap_err().to_string();
        assert!(
            msg.starts_with("`server.body_read_timeout_ms`"),
            "{text}: {msg}"
        );
    }
    let ok = Config::from_toml_str("[server]\nbody_read_timeout_ms = 1\n").unwrap();
    assert_eq!(ok.validate().unwrap().server.body_read_timeout_ms, 1);
}

/// `url` under each URL setting fails validation naming that key.
#[track_caller]
fn url_is_rejected(url: &str, why: &str) {
    for key in ["upstream.url", "invalidation.flags_url"] {
        let mut cfg = Config::default();
        if key == "upstream.url" {
            cfg.upstream.url = url.into();
        } else {
            cfg.invalidation.flags_url = url.into();
        }
        let msg = cfg.validate().unwrap_err().to_string();
        assert!(msg.starts_with(&format!("`{key}`")), "{url}: {msg}");
        assert!(msg.contains(why), "{url}: {msg} says {why}");
        assert_eq!(msg.lines().count(), 1, "{msg}");
    }
}

#[track_caller]
fn url_is_accepted(url: &str) {
    let mut cfg = Config::default();
    cfg.upstream.url = url.into();
    cfg.invalidation.flags_url = url.into();
    cfg.validate()
        .unwrap_or_else(|e| panic!("{url} is valid: {e}"));
}

#[test]
fn url_scheme_must_be_http_or_https() {
    for url in [
        "ftp://x",
        "not a url",
        "/just/a/path",
        "x",
        "http:/x",
        "http:x",
    ] {
        url_is_rejected(url, "must start with http:// or https://");
    }
    url_is_accepted("http://x");
    url_is_accepted("https://x");
    // Schemes are case-insensitive (RFC 3986 §3.1).
    url_is_accepted("HTTP://x");
    url_is_accepted("Https://x:8443/p");
}

#[test]
fn url_port_must_be_a_number_from_1_to_65535() {
    for url in [
        "http://127.0.0.1:notaport/",
        "http://127.0.0.1:0",
        "http://127.0.0.1:65536",
        "http://127.0.0.1:99999999999/",
        "http://127.0.0.1:/",
        "http://127.0.0.1:+80",
        "http://127.0.0.1:8o",
        "http://[::1]:x",
        "http://[::1]:0/",
    ] {
        url_is_rejected(url, "port");
    }
    for url in [
        "http://127.0.0.1:1",
        "http://127.0.0.1:65535/",
        "http://127.0.0.1",
        "https://h.example:8443/prefix",
    ] {
        url_is_accepted(url);
    }
}

#[test]
fn url_host_must_be_an_address_or_a_dns_name() {
    for url in [
        "http://",
        "http:///path",
        "http://:80",
        "http://256.1.1.1",
        "http://1.2.3",
        "http://[::1",
        "http://[not:v6]",
        "http://[fe80::1%25eth0]",
        "http://[::1]x",
        "http://-h.example",
        "http://h-.example",
        "http://h..example",
        "http://h.example..",
        "http://.",
        "http://h%41.example",
        "http://h\u{e9}.example",
        "http://h!.example",
    ] {
        url_is_rejected(url, "");
    }
    let long_label = format!("http://{}.example", "a".repeat(64));
    url_is_rejected(&long_label, "not a host name");
    let long_name = format!("http://{}a", "a.".repeat(127));
    url_is_rejected(&long_name, "not a host name");
    for url in [
        "http://localhost",
        "http://my_service:8080",
        "http://10.0.0.1:8080",
        "http://[::1]",
        "http://[2001:db8::1]:8443/p",
        "https://api.lab.eu.amplitude.com",
        "http://a-b.c9.example",
        // Fully qualified, as Kubernetes users write to skip search domains.
        "http://up.ns.svc.cluster.local.:8080",
        "http://UP.Example.COM",
        &format!("http://{}.example", "a".repeat(63)),
    ] {
        url_is_accepted(url);
    }
}

#[test]
fn url_must_not_carry_credentials_query_or_fragment() {
    url_is_rejected("http://user:pass@h.example", "credentials");
    url_is_rejected("http://user@h.example/p", "credentials");
    url_is_rejected("http://h/p?q=1", "query");
    url_is_rejected("http://h/p?", "query");
    url_is_rejected("http://h?q", "query");
    url_is_rejected("http://h/p#frag", "fragment");
    url_is_rejected("http://h#", "fragment");
}

#[test]
fn url_path_prefix_is_kept_without_its_trailing_slash() {
    assert_eq!(
        base_url("upstream.url", "https://h.example/prefix/").unwrap(),
        "https://h.example/prefix"
    );
    assert_eq!(
        base_url("upstream.url", "http://[::1]:8080/").unwrap(),
        "http://[::1]:8080"
    );
    // Characters no URI may hold are still refused, in the path too.
    url_is_rejected("http://h/a b", "not a URL");
}

#[test]
fn embedded_is_an_upstream_url_only() {
    let mut cfg = Config::default();
    cfg.upstream.url = "embedded".into();
    cfg.embedded.deployment_keys = vec!["k".into()];
    cfg.validate().unwrap();
    let mut cfg = Config::default();
    cfg.invalidation.flags_url = "embedded".into();
    let msg = cfg.validate().unwrap_err().to_string();
    assert!(msg.starts_with("`invalidation.flags_url`"), "{msg}");
}

/// Keys and values a message quotes may hold line breaks (`"a\nb" = 1`): they are written
/// escaped, whole, so the error that `evalgate` prints before exiting is one line. Found
/// by the `config_toml` fuzz target.
#[test]
fn error_messages_are_one_line() {
    let parse = |text: &str| Config::from_toml_str(text).unwrap_err().to_string();
    let validate = |text: &str| {
        let config = Config::from_toml_str(text).unwrap();
        config.validate().unwrap_err().to_string()
    };
    for (msg, quoted) in [
        (parse("[server]\n\"a\\nb\" = 1\n"), "unknown field `a\\nb`"),
        (parse("[\"a\\nb\"]\nx = 1\n"), "unknown field `a\\nb`"),
        (
            validate("[upstream]\nurl = \"http://a\\nb\"\n"),
            "`http://a\\nb`",
        ),
        (
            validate("[server]\nlisten = \"a\\r\\nb\"\n"),
            "`server.listen`",
        ),
    ] {
        assert!(!msg.contains(['\n', '\r']), "{msg:?}");
        assert!(msg.contains(quoted), "{msg:?} does not quote {quoted:?}");
    }
}

#[test]
fn compression_keys_are_checked() {
    for (text, key) in [
        ("[compression]\ngzip_level = 0\n", "compression.gzip_level"),
        ("[compression]\ngzip_level = 10\n", "compression.gzip_level"),
        (
            "[compression]\nbrotli_quality = 12\n",
            "compression.brotli_quality",
        ),
        (
            "[compression]\nmin_bytes = 99999999999\n",
            "compression.min_bytes",
        ),
        (
            "[compression]\nmax_concurrent = 0\n",
            "compression.max_concurrent",
        ),
    ] {
        let cfg = Config::from_toml_str(text).unwrap();
        let msg = cfg.validate().unwrap_err().to_string();
        assert!(msg.starts_with(&format!("`{key}`")), "{text}: {msg}");
    }
    let cfg = Config::from_toml_str(
        "[compression]\nenabled = false\nmin_bytes = 0\ngzip_level = 1\nbrotli_quality = 0\nupstream_gzip = false\n",
    )
    .unwrap()
    .validate()
    .unwrap();
    assert!(!cfg.compression.enabled && !cfg.compression.upstream_gzip);
}

#[test]
fn shipped_config_toml_has_the_compression_defaults() {
    let shipped = Config::from_toml_str(include_str!("../../config.toml")).unwrap();
    assert_eq!(shipped.compression, CompressionConfig::default());
}

/// `[tls]`: off by default; on, it needs both files; at least one listener must be on.
#[test]
fn tls_section_and_listeners() {
    let validate = |text: &str| {
        Config::from_toml_str(text)
            .unwrap()
            .validate()
            .map_err(|e| e.to_string())
    };
    let config = validate("").unwrap();
    assert!(!config.tls.enabled());
    assert_eq!(config.tls.reload_interval_ms, 5_000);

    let msg = validate("[server]\nlisten = \"\"\n").unwrap_err();
    assert!(msg.starts_with("`server.listen`"), "{msg}");
    let msg = validate("[tls]\nlisten = \"127.0.0.1:8443\"\nkey_file = \"k\"\n").unwrap_err();
    assert!(msg.starts_with("`tls.cert_file`"), "{msg}");
    let msg = validate("[tls]\nlisten = \"127.0.0.1:8443\"\ncert_file = \"c\"\n").unwrap_err();
    assert!(msg.starts_with("`tls.key_file`"), "{msg}");
    let msg =
        validate("[tls]\nlisten = \"nowhere\"\ncert_file = \"c\"\nkey_file = \"k\"\n").unwrap_err();
    assert!(msg.starts_with("`tls.listen`"), "{msg}");
    let msg = validate("[tls]\nlisten = \"127.0.0.1:8080\"\ncert_file = \"c\"\nkey_file = \"k\"\n")
        .unwrap_err();
    assert!(msg.contains("port of server.listen"), "{msg}");
    let msg = validate(
        "[tls]\nlisten = \"127.0.0.1:8443\"\ncert_file = \"c\"\nkey_file = \"k\"\n\
         reload_interval_ms = 0\n",
    )
    .unwrap_err();
    assert!(msg.starts_with("`tls.reload_interval_ms`"), "{msg}");
    // Files for a listener that is off are refused, not silently ignored.
    for files in ["cert_file = \"c\"\n", "key_file = \"k\"\n"] {
        let msg = validate(&format!("[tls]\n{files}")).unwrap_err();
        assert!(
            msg.starts_with("`tls.listen`") && msg.contains("is empty"),
            "{msg}"
        );
    }

    let config = validate(
        "[server]\nlisten = \"\"\n[tls]\nlisten = \"127.0.0.1:8443\"\n\
         cert_file = \"c\"\nkey_file = \"k\"\n",
    )
    .unwrap();
    assert!(config.tls.enabled());
    assert!(config.server.listen.is_empty());
}

#[test]
fn tls_files_resolve_against_the_config_dir() {
    let mut config = Config::default();
    config.tls.cert_file = "certs/server.crt".into();
    config.tls.key_file = "/etc/evalgate/server.key".into();
    config.resolve_paths(std::path::Path::new("/srv/evalgate"));
    assert_eq!(config.tls.cert_file, "/srv/evalgate/certs/server.crt");
    assert_eq!(config.tls.key_file, "/etc/evalgate/server.key");
}

#[test]
fn cors_origins_are_checked() {
    let parse = |origins: &str| {
        Config::from_toml_str(&format!("[cors]\nallowed_origins = {origins}\n"))
            .unwrap()
            .validate()
    };
    for ok in [
        r#"["*"]"#,
        "[]",
        r#"["https://app.example.com", "http://localhost:3000", "http://[::1]:8080"]"#,
    ] {
        parse(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
    }
    for bad in [
        r#"["*", "https://app.example.com"]"#,
        r#"["https://app.example.com/"]"#,
        r#"["app.example.com"]"#,
        r#"["https://*.example.com"]"#,
        r#"["null"]"#,
        r#"["https://app.example.com:0"]"#,
    ] {
        let msg = parse(bad).unwrap_err().to_string();
        assert!(msg.starts_with("`cors.allowed_origins`"), "{bad}: {msg}");
    }
    // An IP address as browsers never send it: refused, naming the form they send.
    for (bad, sent) in [
        ("http://127.1", "http://127.0.0.1"),
        ("http://[0:0:0:0:0:0:0:1]:8080", "http://[::1]:8080"),
    ] {
        let msg = parse(&format!("[\"{bad}\"]")).unwrap_err().to_string();
        assert!(msg.starts_with("`cors.allowed_origins`"), "{bad}: {msg}");
        assert!(msg.contains(&format!("`{sent}`")), "{bad}: {msg}");
    }
    let extra = |names: &str| {
        Config::from_toml_str(&format!("[cors]\nallowed_headers_extra = {names}\n"))
            .unwrap()
            .validate()
    };
    extra(r#"["traceparent", "sentry-trace", "baggage"]"#).unwrap();
    let msg = extra(r#"["trace parent"]"#).unwrap_err().to_string();
    assert!(msg.starts_with("`cors.allowed_headers_extra`"), "{msg}");
    let msg = Config::from_toml_str("[cors]\nmax_age_s = 86401\n")
        .unwrap()
        .validate()
        .unwrap_err()
        .to_string();
    assert!(msg.starts_with("`cors.max_age_s`"), "{msg}");
}

#[test]
fn client_cache_control_is_one_header_value() {
    for ok in ["", "no-store", "private, no-cache", "public, max-age=60"] {
        let mut cfg = Config::default();
        cfg.cache.client_cache_control = ok.into();
        cfg.validate().unwrap_or_else(|e| panic!("{ok:?}: {e}"));
    }
    for bad in [
        "no-store\r\nx: 1",
        " no-store",
        "no-störe",
        &"x".repeat(1025),
    ] {
        let mut cfg = Config::default();
        cfg.cache.client_cache_control = bad.into();
        let msg = cfg.validate().unwrap_err().to_string();
        assert!(
            msg.starts_with("`cache.client_cache_control`"),
            "{bad:?}: {msg}"
        );
    }
}
