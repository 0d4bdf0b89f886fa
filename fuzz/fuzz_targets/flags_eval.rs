//! Flag configurations: parsing and evaluation (`evalgate::eval`, the embedded engine).
//!
//! Input: a flags JSON array, optionally followed by a NUL byte and an SDK user (a JSON
//! object); without one, a few typical users are evaluated. Properties:
//! - parsing and evaluating never panic;
//! - the fast path ([`evaluate_json`], v1 and v2 shapes) writes exactly the bytes of the
//!   slow one ([`evaluate`] serialized, and [`to_v1`] of it), or both fail;
//! - the flags as served (`to_json`) parse back to as many flags.
//!
//! libFuzzer's `-timeout` bounds each input: a pathological regex or version that makes
//! one evaluation slow is reported as a timeout (see "Known slow inputs" in the README).

#![no_main]

use evalgate::eval::{Flags, Shape, evaluate, evaluate_json, to_v1, user_to_context};
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value, json};

fuzz_target!(
    init: {
        // evalgate compiles each regex under `catch_unwind`: a panic in regress's parser
        // costs one condition, by design. libFuzzer's hook aborts on any panic, so one
        // raised inside regress is passed over here; one that escapes evalgate still
        // fails the run (the harness aborts when a panic reaches it).
        let abort = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let in_regress = info.location().is_some_and(|l| l.file().contains("/regress-"));
            if !in_regress {
                abort(info);
            }
        }));
    },
    |data: &[u8]| check(data)
);

fn check(data: &[u8]) {
    let (flags_json, user_json) = match data.iter().rposition(|&b| b == 0) {
        Some(at) => (&data[..at], Some(&data[at + 1..])),
        None => (data, None),
    };
    let Ok(flags) = Flags::from_json(flags_json) else {
        return;
    };
    let served = flags.to_json(None);
    let again = Flags::from_json(&served).expect("served flags parse");
    assert_eq!(again.len(), flags.len());

    let users: Vec<Map<String, Value>> = match user_json {
        Some(json) => match serde_json::from_slice(json) {
            Ok(user) => vec![user],
            Err(_) => return,
        },
        None => default_users(),
    };
    // Every flag, one flag (with its dependencies), and a key no flag has.
    let first: Option<String> = serde_json::from_slice::<Vec<Value>>(&served)
        .ok()
        .and_then(|all| all.first()?.get("key")?.as_str().map(String::from));
    let mut key_sets = vec![Vec::new(), vec!["no-such-flag".to_string()]];
    key_sets.extend(first.map(|k| vec![k]));

    for user in &users {
        let context = user_to_context(user);
        for keys in &key_sets {
            let slow = evaluate(&flags, &context, keys);
            let v2 = evaluate_json(&flags, &context, keys, Shape::V2);
            let v1 = evaluate_json(&flags, &context, keys, Shape::V1);
            match slow {
                Ok(map) => {
                    let v2 = v2.expect("the fast path fails where the slow one does not");
                    let v1 = v1.expect("the fast path fails where the slow one does not");
                    assert_eq!(
                        String::from_utf8_lossy(&v2),
                        serde_json::to_string(&map).unwrap(),
                        "v2"
                    );
                    assert_eq!(
                        String::from_utf8_lossy(&v1),
                        serde_json::to_string(&to_v1(&map)).unwrap(),
                        "v1"
                    );
                }
                Err(e) => {
                    assert!(v2.is_err() && v1.is_err(), "only the slow path fails: {e}");
                }
            }
        }
    }
}

fn default_users() -> Vec<Map<String, Value>> {
    let users = [
        json!({}),
        json!({"user_id": "user-1", "device_id": "device-1"}),
        json!({
            "user_id": "u@example.com",
            "device_id": "d",
            "country": "United States",
            "platform": "iOS",
            "version": "1.2.3",
            "user_properties": {"plan": "pro", "age": 42, "beta": true, "tags": ["a", "b"]},
            "groups": {"org": ["acme"]},
            "group_properties": {"org": {"acme": {"tier": "gold"}}},
        }),
    ];
    users
        .into_iter()
        .map(|u| match u {
            Value::Object(map) => map,
            _ => unreachable!("objects"),
        })
        .collect()
}
