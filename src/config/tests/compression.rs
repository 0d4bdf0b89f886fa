//! `[compression]`.

use super::*;

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
    let shipped = Config::from_toml_str(include_str!("../../../config.toml")).unwrap();
    assert_eq!(shipped.compression, CompressionConfig::default());
}
