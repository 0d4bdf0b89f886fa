//! `upstream.tracking` and the upstream budget keys.

use super::*;

#[test]
fn tracking_and_budget_keys_are_checked() {
    for (text, key) in [
        ("[upstream]\nbudget_rps = -1\n", "upstream.budget_rps"),
        ("[upstream]\nbudget_rps = 0.0001\n", "upstream.budget_rps"),
        ("[upstream]\nbudget_rps = 2000000\n", "upstream.budget_rps"),
        ("[upstream]\nbudget_rps = nan\n", "upstream.budget_rps"),
        ("[upstream]\nbudget_burst = 0\n", "upstream.budget_burst"),
        (
            "[upstream]\nbudget_max_deployments = 0\n",
            "upstream.budget_max_deployments",
        ),
    ] {
        let cfg = Config::from_toml_str(text).unwrap();
        let msg = cfg.validate().unwrap_err().to_string();
        assert!(msg.starts_with(&format!("`{key}`")), "{text}: {msg}");
    }
    // Names outside the fixed sets are refused when parsed, naming the key.
    for text in [
        "[upstream]\ntracking = \"off\"\n",
        "[upstream]\nbudget_mode = \"drop\"\n",
    ] {
        let msg = Config::from_toml_str(text).unwrap_err().to_string();
        assert!(msg.starts_with("upstream."), "{text}: {msg}");
    }
    let cfg = Config::from_toml_str(
        "[upstream]\ntracking = \"never\"\nbudget_rps = 2.5\nbudget_burst = 1\nbudget_mode = \"log\"\nbudget_max_deployments = 1\n",
    )
    .unwrap()
    .validate()
    .unwrap();
    assert_eq!(cfg.upstream.tracking, Tracking::Never);
    assert_eq!(cfg.upstream.budget_rps, 2.5);
    assert_eq!(cfg.upstream.budget_mode, BudgetMode::Log);
    // An integer rate is read as a number of requests per second.
    let whole = Config::from_toml_str("[upstream]\nbudget_rps = 3\n").unwrap();
    assert_eq!(whole.validate().unwrap().upstream.budget_rps, 3.0);
}

#[test]
fn defaults_are_passthrough_and_no_budget_and_check_prints_them() {
    let u = UpstreamConfig::default();
    assert_eq!(u.tracking, Tracking::Passthrough);
    assert_eq!(u.budget_rps, 0.0);
    assert_eq!(u.budget_burst, 20);
    assert_eq!(u.budget_mode, BudgetMode::Enforce);
    assert_eq!(u.budget_max_deployments, 10_000);
    let printed = Config::default().to_toml();
    for line in [
        "tracking = \"passthrough\"",
        "budget_rps = 0.0",
        "budget_burst = 20",
        "budget_mode = \"enforce\"",
        "budget_max_deployments = 10000",
    ] {
        assert!(printed.contains(line), "{line} in\n{printed}");
    }
}

#[test]
fn shipped_config_toml_has_the_guard_defaults() {
    let shipped = Config::from_toml_str(include_str!("../../../config.toml")).unwrap();
    let d = UpstreamConfig::default();
    let u = &shipped.upstream;
    assert_eq!(
        (
            u.tracking,
            u.budget_rps,
            u.budget_burst,
            u.budget_mode,
            u.budget_max_deployments
        ),
        (
            d.tracking,
            d.budget_rps,
            d.budget_burst,
            d.budget_mode,
            d.budget_max_deployments
        )
    );
}
