//! `[simulation]`.

use super::*;

#[test]
fn simulation_is_off_by_default() {
    let config = Config::default().validate().unwrap();
    assert!(!config.simulation.enabled());
    assert_eq!(config.simulation.applies_to, AppliesTo::Misses);
    let shipped = Config::from_toml_str(include_str!("../../../config.toml")).unwrap();
    assert_eq!(shipped.simulation, SimulationConfig::default());
}

#[test]
fn simulation_keys_are_checked() {
    for (text, key) in [
        (
            "latency_p50_ms = 100\nlatency_p99_ms = 50\n",
            "simulation.latency_p99_ms",
        ),
        ("latency_p99_ms = 50\n", "simulation.latency_p50_ms"),
        ("latency_p50_ms = 50\n", "simulation.latency_p99_ms"),
        (
            "latency_p50_ms = 10\nlatency_p99_ms = 500\nlatency_max_ms = 400\n",
            "simulation.latency_max_ms",
        ),
        ("latency_max_ms = 0\n", "simulation.latency_max_ms"),
        (
            "latency_p50_ms = 10\nlatency_p99_ms = 99999999\n",
            "simulation.latency_p99_ms",
        ),
        ("rate_429 = 1.5\n", "simulation.rate_429"),
        ("rate_5xx = -0.1\n", "simulation.rate_5xx"),
        ("rate_timeout = nan\n", "simulation.rate_timeout"),
        ("rate_reset = 2.0\n", "simulation.rate_reset"),
        (
            "rate_429 = 0.5\nrate_5xx = 0.3\nrate_reset = 0.3\n",
            "simulation.rate_429",
        ),
        ("retry_after_s = 3601\n", "simulation.retry_after_s"),
        ("timeout_hold_ms = 0\n", "simulation.timeout_hold_ms"),
    ] {
        let text = format!("[simulation]\n{text}");
        let cfg = Config::from_toml_str(&text).unwrap();
        let msg = cfg.validate().unwrap_err().to_string();
        assert!(msg.starts_with(&format!("`{key}`")), "{text}: {msg}");
    }
    let msg = Config::from_toml_str("[simulation]\napplies_to = \"hits\"\n")
        .unwrap_err()
        .to_string();
    assert!(msg.contains("simulation.applies_to"), "{msg}");
}

#[test]
fn a_full_profile_is_accepted_and_printed() {
    let text = "[simulation]\nlatency_p50_ms = 60\nlatency_p99_ms = 300\nlatency_max_ms = 2000\n\
                rate_429 = 0.1\nrate_5xx = 0.2\nrate_timeout = 0.3\nrate_reset = 0.4\n\
                retry_after_s = 0\ntimeout_hold_ms = 5000\napplies_to = \"all\"\nseed = 42\n";
    let cfg = Config::from_toml_str(text).unwrap().validate().unwrap();
    let s = &cfg.simulation;
    assert!(s.enabled());
    assert_eq!(s.applies_to, AppliesTo::All);
    assert_eq!(
        (s.seed, s.latency_max_ms, s.timeout_hold_ms),
        (42, 2000, 5000)
    );
    // `--check` prints every key of the section.
    let printed = cfg.to_toml();
    for key in [
        "[simulation]",
        "latency_p50_ms = 60",
        "latency_p99_ms = 300",
        "latency_max_ms = 2000",
        "rate_429 = 0.1",
        "rate_5xx = 0.2",
        "rate_timeout = 0.3",
        "rate_reset = 0.4",
        "retry_after_s = 0",
        "timeout_hold_ms = 5000",
        "applies_to = \"all\"",
        "seed = 42",
    ] {
        assert!(printed.contains(key), "{key} missing from:\n{printed}");
    }
    // Latency alone, and a fixed delay (p50 = p99), are profiles too.
    for text in [
        "[simulation]\nlatency_p50_ms = 20\nlatency_p99_ms = 20\n",
        "[simulation]\nrate_reset = 1.0\n",
    ] {
        let cfg = Config::from_toml_str(text).unwrap().validate().unwrap();
        assert!(cfg.simulation.enabled(), "{text}");
    }
}
