//! `[tls]`.

use super::*;

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
