//! The binary's command line: `--check`, config errors (exit 64, one stderr line), and
//! the precedence flag > environment > file > defaults.

mod support;

use std::process::Output;

use evalgate::Config;
use support::cli::{EX_CONFIG, TempDir, run, stderr, stdout};

/// `--check` succeeded; returns the effective settings it printed.
fn checked(out: &Output) -> Config {
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(out));
    assert!(out.stderr.is_empty(), "stderr: {}", stderr(out));
    Config::from_toml_str(&stdout(out)).expect("--check prints valid TOML")
}

/// A config error: exit 64 and exactly one stderr line, which names `key`.
fn config_error(out: &Output, key: &str) -> String {
    assert_eq!(
        out.status.code(),
        Some(EX_CONFIG),
        "stderr: {}",
        stderr(out)
    );
    assert!(out.stdout.is_empty(), "stdout: {}", stdout(out));
    let err = stderr(out);
    assert_eq!(err.lines().count(), 1, "one stderr line: {err:?}");
    assert!(err.ends_with('\n'));
    assert!(err.contains(key), "{err:?} names {key}");
    err
}

#[test]
fn check_prints_the_effective_config_and_exits_zero() {
    let dir = TempDir::new();
    let path = dir.config(concat!(
        "[server]\nlisten = \"127.0.0.1:9999\"\n\n",
        "[cache]\nttl_s = 5\n\n",
        "[upstream]\nurl = \"http://127.0.0.1:1/prefix\"\n",
    ));
    let out = run(
        &dir.0,
        &["--config", path.to_str().unwrap(), "--check"],
        &[],
    );
    let config = checked(&out);
    assert_eq!(config.server.listen, "127.0.0.1:9999");
    assert_eq!(config.cache.ttl_s, 5);
    assert_eq!(config.upstream.url, "http://127.0.0.1:1/prefix");
    // Everything not in the file is the default, and the output lists every key.
    let defaults = Config::default();
    assert_eq!(
        config.server.max_connections,
        defaults.server.max_connections
    );
    assert_eq!(config.upstream.timeout_ms, defaults.upstream.timeout_ms);
    assert_eq!(config.cache.max_bytes, defaults.cache.max_bytes);
    let text = stdout(&out);
    for key in [
        "max_query_bytes",
        "connect_timeout_ms",
        "flag_keys_param",
        "max_bytes",
    ] {
        assert!(text.contains(key), "{key} in {text}");
    }
}

#[test]
fn check_without_a_config_file_uses_the_defaults() {
    let dir = TempDir::new();
    let config = checked(&run(&dir.0, &["--check"], &[]));
    assert_eq!(config, Config::default());
}

#[test]
fn check_reads_config_toml_from_the_working_directory() {
    let dir = TempDir::new();
    dir.config("[cache]\nttl_s = 7\n");
    let config = checked(&run(&dir.0, &["--check"], &[]));
    assert_eq!(config.cache.ttl_s, 7);
}

#[test]
fn unknown_key_exits_64_naming_it() {
    let dir = TempDir::new();
    let path = dir.config("[cache]\nttl = 5\n");
    let out = run(
        &dir.0,
        &["--config", path.to_str().unwrap(), "--check"],
        &[],
    );
    let err = config_error(&out, "cache.ttl");
    assert!(err.contains("unknown field"), "{err}");
    // Also without --check, and for the implicit ./config.toml: nothing is started.
    let out = run(&dir.0, &["--listen", "127.0.0.1:0"], &[]);
    config_error(&out, "cache.ttl");
}

#[test]
fn zero_ttl_exits_64_naming_it() {
    let dir = TempDir::new();
    let path = dir.config("[cache]\nttl_s = 0\n");
    let out = run(
        &dir.0,
        &["--config", path.to_str().unwrap(), "--check"],
        &[],
    );
    config_error(&out, "cache.ttl_s");
}

#[test]
fn bad_cors_origin_or_client_cache_control_exits_64_naming_it() {
    let dir = TempDir::new();
    for (text, key) in [
        (
            "[cors]\nallowed_origins = [\"https://app.example.com/\"]\n",
            "cors.allowed_origins",
        ),
        (
            "[cors]\nallowed_origins = [\"*\", \"https://app.example.com\"]\n",
            "cors.allowed_origins",
        ),
        ("[cors]\nmax_age_s = 100000\n", "cors.max_age_s"),
        (
            "[cache]\nclient_cache_control = \"no-store\\r\\nx: 1\"\n",
            "cache.client_cache_control",
        ),
    ] {
        let path = dir.config(text);
        let out = run(
            &dir.0,
            &["--config", path.to_str().unwrap(), "--check"],
            &[],
        );
        config_error(&out, key);
    }
}

#[test]
fn wrong_type_exits_64_naming_the_key() {
    let dir = TempDir::new();
    let path = dir.config("[upstream]\ntimeout_ms = \"soon\"\n");
    let out = run(
        &dir.0,
        &["--config", path.to_str().unwrap(), "--check"],
        &[],
    );
    config_error(&out, "upstream.timeout_ms");
}

#[test]
fn toml_syntax_error_exits_64_with_one_line() {
    let dir = TempDir::new();
    let path = dir.config("[server\nlisten = \n");
    let out = run(
        &dir.0,
        &["--config", path.to_str().unwrap(), "--check"],
        &[],
    );
    config_error(&out, "config.toml");
}

#[test]
fn unparsable_upstream_url_exits_64() {
    let dir = TempDir::new();
    for url in ["not a url", "ftp://example.com", "http://h/p?q=1"] {
        let path = dir.config(&format!("[upstream]\nurl = \"{url}\"\n"));
        let out = run(
            &dir.0,
            &["--config", path.to_str().unwrap(), "--check"],
            &[],
        );
        config_error(&out, "upstream.url");
        // The same through the flag and the environment.
        let out = run(&dir.0, &["--check", "--upstream", url], &[]);
        config_error(&out, "upstream.url");
        let out = run(&dir.0, &["--check"], &[("EVALGATE_UPSTREAM", url)]);
        config_error(&out, "upstream.url");
    }
}

#[test]
fn bad_listen_address_exits_64() {
    let dir = TempDir::new();
    let out = run(&dir.0, &["--check", "--listen", "localhost"], &[]);
    config_error(&out, "server.listen");
}

#[test]
fn missing_or_unreadable_config_exits_64() {
    let dir = TempDir::new();
    let missing = dir.0.join("does-not-exist.toml");
    let out = run(
        &dir.0,
        &["--config", missing.to_str().unwrap(), "--check"],
        &[],
    );
    config_error(&out, "does-not-exist.toml");
    // A directory cannot be read as a file (a mode-000 file would not stop root).
    let subdir = dir.0.join("a-directory");
    std::fs::create_dir(&subdir).unwrap();
    let out = run(
        &dir.0,
        &["--config", subdir.to_str().unwrap(), "--check"],
        &[],
    );
    config_error(&out, "a-directory");
    // Also without --check.
    let out = run(
        &dir.0,
        &[
            "--config",
            missing.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ],
        &[],
    );
    config_error(&out, "does-not-exist.toml");
}

#[test]
fn flags_and_environment_override_the_file() {
    let dir = TempDir::new();
    let path = dir.config(
        "[server]\nlisten = \"127.0.0.1:1111\"\n\n[upstream]\nurl = \"http://file.example\"\n",
    );
    let config_arg = path.to_str().unwrap();

    let file_only = checked(&run(&dir.0, &["--config", config_arg, "--check"], &[]));
    assert_eq!(file_only.server.listen, "127.0.0.1:1111");
    assert_eq!(file_only.upstream.url, "http://file.example");

    let flag = checked(&run(
        &dir.0,
        &[
            "--config",
            config_arg,
            "--check",
            "--upstream",
            "http://flag.example",
        ],
        &[],
    ));
    assert_eq!(flag.upstream.url, "http://flag.example");
    assert_eq!(flag.server.listen, "127.0.0.1:1111");

    let flag = checked(&run(
        &dir.0,
        &[
            "--config",
            config_arg,
            "--check",
            "--listen",
            "127.0.0.1:3333",
        ],
        &[],
    ));
    assert_eq!(flag.server.listen, "127.0.0.1:3333");
    assert_eq!(flag.upstream.url, "http://file.example");

    let env = checked(&run(
        &dir.0,
        &["--config", config_arg, "--check"],
        &[
            ("EVALGATE_UPSTREAM", "http://env.example"),
            ("EVALGATE_LISTEN", "127.0.0.1:2222"),
        ],
    ));
    assert_eq!(env.upstream.url, "http://env.example");
    assert_eq!(env.server.listen, "127.0.0.1:2222");
}

#[test]
fn flag_beats_environment() {
    let dir = TempDir::new();
    let path = dir.config("[upstream]\nurl = \"http://file.example\"\n");
    let out = run(
        &dir.0,
        &[
            "--config",
            path.to_str().unwrap(),
            "--check",
            "--upstream",
            "http://flag.example",
            "--listen",
            "127.0.0.1:4444",
        ],
        &[
            ("EVALGATE_UPSTREAM", "http://env.example"),
            ("EVALGATE_LISTEN", "127.0.0.1:2222"),
        ],
    );
    let config = checked(&out);
    assert_eq!(config.upstream.url, "http://flag.example");
    assert_eq!(config.server.listen, "127.0.0.1:4444");
}

#[test]
fn every_url_setting_is_fully_checked_before_starting() {
    let dir = TempDir::new();
    let bad = [
        "http://127.0.0.1:notaport/",
        "http://127.0.0.1:0/",
        "http://127.0.0.1:65536/",
    ];
    for url in bad {
        for (section, name) in [("upstream", "url"), ("invalidation", "flags_url")] {
            let key = format!("{section}.{name}");
            let path = dir.config(&format!("[{section}]\n{name} = \"{url}\"\n"));
            let out = run(
                &dir.0,
                &["--config", path.to_str().unwrap(), "--check"],
                &[],
            );
            let err = config_error(&out, &key);
            assert!(err.contains("port"), "{err}");
            // Without --check nothing starts either.
            let out = run(
                &dir.0,
                &[
                    "--config",
                    path.to_str().unwrap(),
                    "--listen",
                    "127.0.0.1:0",
                ],
                &[],
            );
            config_error(&out, &key);
        }
    }
    for url in [
        "https://h.example/prefix/v1",
        "http://[::1]:8080/",
        "http://localhost",
    ] {
        let path = dir.config(&format!(
            "[upstream]\nurl = \"{url}\"\n\n[invalidation]\nflags_url = \"{url}\"\n"
        ));
        let config = checked(&run(
            &dir.0,
            &["--config", path.to_str().unwrap(), "--check"],
            &[],
        ));
        assert_eq!(config.upstream.url, url);
        assert_eq!(config.invalidation.flags_url, url);
    }
}
