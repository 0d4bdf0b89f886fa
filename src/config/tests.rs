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
