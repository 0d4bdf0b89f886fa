//! `config.toml`: parsing and validation.
//!
//! Input: TOML text (bytes that are not UTF-8 are replaced). Properties:
//! - parsing and validation never panic: a config, or a [`ConfigError`];
//! - an error's message is one line (it is what `evalgate` prints before exiting 64);
//! - a valid config's effective settings (`evalgate --check` prints them) parse back to
//!   the same config, which is valid too.

#![no_main]

use evalgate::Config;
use evalgate::config::ConfigError;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let config = match Config::from_toml_str(&text).and_then(Config::validate) {
        Ok(config) => config,
        Err(e) => return one_line(&e),
    };
    let _ = config.listen_addr();
    let effective = config.to_toml();
    let again = Config::from_toml_str(&effective)
        .unwrap_or_else(|e| panic!("--check output does not parse: {e}\n{effective}"));
    assert_eq!(
        again, config,
        "--check output reads back differently:\n{effective}"
    );
    if let Err(e) = again.validate() {
        panic!("--check output is invalid: {e}\n{effective}");
    }
});

fn one_line(e: &ConfigError) {
    let message = e.to_string();
    assert!(!message.contains(['\n', '\r']), "{message:?}");
}
