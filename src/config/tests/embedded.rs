//! `[embedded]`: the one-file form, `[[embedded.deployments]]`, and both together.

use super::*;

const EMBEDDED: &str = "[upstream]\nurl = \"embedded\"\n";

fn validate(text: &str) -> Result<Config, String> {
    Config::from_toml_str(&format!("{EMBEDDED}{text}"))
        .map_err(|e| e.to_string())?
        .validate()
        .map_err(|e| e.to_string())
}

#[test]
fn the_one_file_form_keeps_its_defaults() {
    let config = validate("").unwrap();
    assert_eq!(
        config.embedded.deployment_keys,
        ["server-evalgate-demo-key"]
    );
    assert_eq!(
        config.embedded.files(),
        [(
            "flags.json".to_string(),
            vec!["server-evalgate-demo-key".to_string()]
        )]
    );
}

#[test]
fn deployments_alone_turn_the_one_file_form_off() {
    let text = "[[embedded.deployments]]\nkey = \"server-a\"\nflags_file = \"a.json\"\n\
                [[embedded.deployments]]\nkey = \"server-b\"\nflags_file = \"b.json\"\n\
                [[embedded.deployments]]\nkey = \"server-c\"\nflags_file = \"a.json\"\n";
    let config = validate(text).unwrap();
    assert!(config.embedded.deployment_keys.is_empty());
    let files = config.embedded.files();
    assert_eq!(
        files,
        [
            (
                "a.json".to_string(),
                vec!["server-a".to_string(), "server-c".to_string()]
            ),
            ("b.json".to_string(), vec!["server-b".to_string()]),
        ]
    );
    // `--check` prints them, and what it prints reads back the same.
    let printed = config.to_toml();
    assert!(printed.contains("[[embedded.deployments]]"), "{printed}");
    assert_eq!(Config::from_toml_str(&printed).unwrap(), config);
}

#[test]
fn both_forms_combine_when_deployment_keys_is_written() {
    let text = "[embedded]\ndeployment_keys = [\"server-one\"]\n\
                [[embedded.deployments]]\nkey = \"server-a\"\nflags_file = \"a.json\"\n";
    let files = validate(text).unwrap().embedded.files();
    assert_eq!(files.len(), 2);
    assert_eq!(
        files[0],
        ("flags.json".to_string(), vec!["server-one".to_string()])
    );
}

#[test]
fn bad_deployments_name_the_key() {
    let twice = "[[embedded.deployments]]\nkey = \"server-a\"\nflags_file = \"a.json\"\n\
                 [[embedded.deployments]]\nkey = \"server-a\"\nflags_file = \"b.json\"\n";
    let msg = validate(twice).unwrap_err();
    assert!(msg.starts_with("`embedded.deployments`"), "{msg}");
    assert!(
        msg.contains("listed twice") && !msg.contains("server-a"),
        "{msg}"
    );

    let across = "[embedded]\ndeployment_keys = [\"server-a\"]\n\
                  [[embedded.deployments]]\nkey = \"server-a\"\nflags_file = \"b.json\"\n";
    let msg = validate(across).unwrap_err();
    assert!(msg.contains("also in embedded.deployment_keys"), "{msg}");

    let spaced = "[[embedded.deployments]]\nkey = \"a b\"\nflags_file = \"a.json\"\n";
    assert!(
        validate(spaced)
            .unwrap_err()
            .starts_with("`embedded.deployments`")
    );
    let no_file = "[[embedded.deployments]]\nkey = \"server-a\"\nflags_file = \"\"\n";
    assert!(
        validate(no_file)
            .unwrap_err()
            .contains("must name a flags_file")
    );
    let missing = "[[embedded.deployments]]\nkey = \"server-a\"\n";
    let msg = validate(missing).unwrap_err();
    assert!(
        msg.contains("embedded.deployments") && msg.contains("flags_file"),
        "{msg}"
    );
    let unknown = "[[embedded.deployments]]\nkey = \"k\"\nflags_file = \"a\"\nfile = \"b\"\n";
    assert!(validate(unknown).unwrap_err().contains("unknown field"));
    let none = "[embedded]\ndeployment_keys = []\n";
    assert!(
        validate(none)
            .unwrap_err()
            .starts_with("`embedded.deployment_keys`")
    );
}

#[test]
fn relative_flags_files_resolve_against_the_config_directory() {
    let text = "[embedded]\nflags_file = \"one.json\"\n\
                [[embedded.deployments]]\nkey = \"server-a\"\nflags_file = \"a.json\"\n\
                [[embedded.deployments]]\nkey = \"server-b\"\nflags_file = \"/abs/b.json\"\n";
    let mut config = validate(text).unwrap();
    config.resolve_paths(Path::new("/etc/evalgate"));
    assert_eq!(config.embedded.flags_file, "/etc/evalgate/one.json");
    assert_eq!(
        config.embedded.deployments[0].flags_file,
        "/etc/evalgate/a.json"
    );
    assert_eq!(config.embedded.deployments[1].flags_file, "/abs/b.json");
}

#[test]
fn a_bad_file_is_blamed_on_the_setting_that_names_it() {
    let text = "[embedded]\ndeployment_keys = [\"server-one\"]\nflags_file = \"one.json\"\n\
                [[embedded.deployments]]\nkey = \"server-a\"\nflags_file = \"a.json\"\n";
    let config = validate(text).unwrap();
    assert_eq!(
        config.embedded.setting_of("one.json"),
        "embedded.flags_file"
    );
    assert_eq!(config.embedded.setting_of("a.json"), "embedded.deployments");
}
