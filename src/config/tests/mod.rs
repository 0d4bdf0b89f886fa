//! Unit tests of parsing and validation: the whole file and the general sections here,
//! one file per section that has its own ([`url`] for every URL setting).

use super::*;

mod compression;
mod cors;
mod embedded;
mod guard;
mod simulation;
mod tls;
mod url;

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
fn cache_segment_and_sweep_bounds_are_checked() {
    for (text, key) in [
        ("[cache]\nflags_percent = 0\n", "`cache.flags_percent`"),
        ("[cache]\nflags_percent = 51\n", "`cache.flags_percent`"),
        (
            "[cache]\nsweep_interval_s = 0\n",
            "`cache.sweep_interval_s`",
        ),
        (
            "[cache]\nsweep_interval_s = 86401\n",
            "`cache.sweep_interval_s`",
        ),
    ] {
        let cfg = Config::from_toml_str(text).unwrap();
        let msg = cfg.validate().unwrap_err().to_string();
        assert!(msg.starts_with(key), "{text}: {msg}");
    }
    let cfg = Config::from_toml_str("[cache]\nmax_bytes = 1000000\nflags_percent = 25\n").unwrap();
    assert_eq!(cfg.cache.flags_bytes(), 250_000);
    cfg.validate().unwrap();
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
