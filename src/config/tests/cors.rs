//! `[cors]`.

use super::*;

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
