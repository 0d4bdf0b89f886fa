//! End-to-end tests of the public API, with expected answers recorded from Amplitude's JS
//! engine (`testdata/gen.js`, or the Node one-liners noted beside each number).

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};

use super::*;

fn flags(json: Value) -> Flags {
    Flags::from_json(&serde_json::to_vec(&json).unwrap()).unwrap()
}

fn keys(keys: &[&str]) -> Vec<String> {
    keys.iter().map(|k| k.to_string()).collect()
}

/// Every case of `testdata/engine.json`, compared as `JSON.stringify` text, so key order
/// and number spelling must match too.
#[test]
fn engine_cases_match_the_js_engine() {
    #[derive(Deserialize)]
    struct Fixture<'a> {
        #[serde(borrow)]
        flags: &'a RawValue,
        cases: Vec<Case>,
    }
    #[derive(Deserialize)]
    struct Case {
        context: Value,
        #[serde(default, rename = "flagKeys")]
        flag_keys: Vec<String>,
    }
    let fixture: Fixture = serde_json::from_str(include_str!("testdata/engine.json")).unwrap();
    let expected: Vec<String> =
        serde_json::from_str(include_str!("testdata/engine.expected.json")).unwrap();
    assert_eq!(fixture.cases.len(), expected.len());
    let flags = Flags::from_json(fixture.flags.get().as_bytes()).unwrap();
    for (i, (case, want)) in fixture.cases.iter().zip(&expected).enumerate() {
        match evaluate(&flags, &case.context, &case.flag_keys) {
            Ok(results) => {
                let mut got = String::new();
                coerce::push_json(&mut got, &Value::Object(results.clone()));
                assert_eq!(&got, want, "case {i}");
                // The serialized fast path writes what serializing the maps would.
                let v2 = evaluate_json(&flags, &case.context, &case.flag_keys, Shape::V2).unwrap();
                assert_eq!(v2, serde_json::to_vec(&results).unwrap(), "case {i} v2");
                let v1 = evaluate_json(&flags, &case.context, &case.flag_keys, Shape::V1).unwrap();
                assert_eq!(
                    v1,
                    serde_json::to_vec(&to_v1(&results)).unwrap(),
                    "case {i} v1"
                );
            }
            Err(e) => {
                assert!(
                    want.starts_with(r#"{"error":"#),
                    "case {i}: {e}, want {want}"
                );
                assert!(evaluate_json(&flags, &case.context, &case.flag_keys, Shape::V2).is_err());
            }
        }
    }
}

/// A 50% rollout and a four-way split over device ids "1".."10000". Counts from the JS
/// engine (run over the same two flags): half on 5032, off 4968; a 2449, b 2454, c 2572,
/// d 2525.
#[test]
fn bucketing_splits_users_exactly_as_js() {
    let flags = flags(json!([
        {"key": "half", "segments": [{"bucket": {"selector": ["context", "user", "device_id"], "salt": "x7Ky3dQ1",
            "allocations": [{"range": [0, 50], "distributions": [{"variant": "on", "range": [0, 42949673]}]}]}, "variant": "off"}],
         "variants": {"on": {"key": "on", "value": "on"}, "off": {"key": "off", "metadata": {"default": true}}}},
        {"key": "four", "segments": [{"bucket": {"selector": ["context", "user", "device_id"], "salt": "Ab12",
            "allocations": [{"range": [0, 100], "distributions": [
                {"variant": "a", "range": [0, 10737418]}, {"variant": "b", "range": [10737418, 21474836]},
                {"variant": "c", "range": [21474836, 32212254]}, {"variant": "d", "range": [32212254, 42949673]}]}]}}],
         "variants": {"a": {"key": "a"}, "b": {"key": "b"}, "c": {"key": "c"}, "d": {"key": "d"}}}
    ]));
    let mut counts = std::collections::BTreeMap::new();
    for i in 1..=10_000 {
        let results =
            evaluate(&flags, &json!({"user": {"device_id": i.to_string()}}), &[]).unwrap();
        for (flag, variant) in results {
            *counts
                .entry(format!("{flag}:{}", variant["key"].as_str().unwrap()))
                .or_insert(0) += 1;
        }
    }
    let want: std::collections::BTreeMap<String, i32> = [
        ("half:on", 5032),
        ("half:off", 4968),
        ("four:a", 2449),
        ("four:b", 2454),
        ("four:c", 2572),
        ("four:d", 2525),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    assert_eq!(counts, want);
}

#[test]
fn cycles_fail_only_when_walked() {
    let flags = flags(json!([
        {"key": "a", "dependencies": ["b"], "segments": [], "variants": {}},
        {"key": "b", "dependencies": ["a"], "segments": [], "variants": {}},
        {"key": "c", "segments": [{"variant": "on"}], "variants": {"on": {"key": "on"}}}
    ]));
    let cycle = |keys: &[String]| match evaluate(&flags, &json!({}), keys) {
        Err(EvalError::Cycle(message)) => message,
        other => panic!("{other:?}"),
    };
    // Messages as the JS topologicalSort throws them.
    assert_eq!(cycle(&[]), "Detected a cycle between flags a, b");
    assert_eq!(cycle(&keys(&["b"])), "Detected a cycle between flags b, a");
    let results = evaluate(&flags, &json!({}), &keys(&["c"])).unwrap();
    assert_eq!(
        Value::Object(results),
        json!({"c": {"key": "on", "metadata": {}}})
    );
}

#[test]
fn results_are_written_at_once_for_dependents() {
    let flags = flags(json!([
        {"key": "child", "dependencies": ["parent"],
         "segments": [{"conditions": [[{"op": "is", "selector": ["result", "parent", "value"], "values": ["p-on"]}]], "variant": "on"}],
         "variants": {"on": {"key": "on"}}},
        {"key": "parent", "segments": [{"variant": "on"}], "variants": {"on": {"key": "on", "value": "p-on"}}}
    ]));
    let results = evaluate(&flags, &json!({}), &keys(&["child"])).unwrap();
    assert_eq!(
        results.keys().collect::<Vec<_>>(),
        ["parent", "child"],
        "parents first, and included"
    );
    assert_eq!(results["child"]["key"], "on");
}

#[test]
fn flags_round_trip_as_received() {
    let text = br#"[ {"key":"b", "segments":[], "variants":{}, "x": 1.0},
                     {"key":"a","segments":[],"variants":{}},
                     {"key":"b","segments":[],"variants":{},"v":2} ]"#;
    let flags = Flags::from_json(text).unwrap();
    assert_eq!(flags.len(), 2, "one flag per key");
    assert!(!flags.is_empty());
    let all = r#"[{"key":"b","segments":[],"variants":{},"v":2},{"key":"a","segments":[],"variants":{}}]"#;
    assert_eq!(
        String::from_utf8(flags.to_json(None)).unwrap(),
        all,
        "last definition, first position"
    );
    let some = flags.to_json(Some(&keys(&["a", "zzz", "b", "a"])));
    assert_eq!(
        String::from_utf8(some).unwrap(),
        all,
        "file order, no duplicates"
    );
    assert_eq!(flags.to_json(Some(&keys(&["nope"]))), b"[]");
    assert_eq!(Flags::from_json(b"[]").unwrap().to_json(None), b"[]");
}

#[test]
fn invalid_flags_are_rejected() {
    for bad in [
        &b"{}"[..],
        b"[1]",
        b"not json",
        br#"[{"key": 1, "segments": []}]"#,
    ] {
        assert!(
            matches!(Flags::from_json(bad), Err(EvalError::InvalidFlags(_))),
            "{}",
            String::from_utf8_lossy(bad)
        );
    }
}

#[test]
fn unknown_requested_keys_are_ignored() {
    let flags = flags(
        json!([{"key": "a", "segments": [{"variant": "on"}], "variants": {"on": {"key": "on"}}}]),
    );
    let results = evaluate(&flags, &json!({}), &keys(&["zzz"])).unwrap();
    assert!(results.is_empty());
}

#[test]
fn sdk_user_to_v1_end_to_end() {
    let flags = flags(json!([
        {"key": "exp", "metadata": {"experimentKey": "exp-1", "deployed": true},
         "segments": [{"conditions": [[{"op": "is", "selector": ["context", "groups", "org", "group_name"], "values": ["acme"]}]], "variant": "t"},
                      {"variant": "off"}],
         "variants": {"t": {"key": "t", "value": "treatment", "payload": [1]}, "off": {"key": "off", "metadata": {"default": true}}}}
    ]));
    let user = json!({"user_id": "u", "groups": {"org": ["acme"]}});
    let context = user_to_context(user.as_object().unwrap());
    let v1 = to_v1(&evaluate(&flags, &context, &[]).unwrap());
    assert_eq!(
        Value::Object(v1),
        json!({"exp": {"key": "treatment", "payload": [1], "expKey": "exp-1"}})
    );
    let other = json!({"user_id": "u", "groups": {"org": ["globex"]}});
    let v1 = to_v1(&evaluate(&flags, &user_to_context(other.as_object().unwrap()), &[]).unwrap());
    assert!(v1.is_empty(), "the default variant is left out of v1");
}

#[test]
fn the_whole_result_object_can_be_selected() {
    // `["result"]` selects every result so far, stringified as JSON for `contains`.
    let flags = flags(json!([
        {"key": "a", "segments": [{"variant": "on"}], "variants": {"on": {"key": "on", "value": 1.0}}},
        {"key": "b", "dependencies": ["a"],
         "segments": [{"conditions": [[{"op": "contains", "selector": ["result"], "values": [r#"{"a":{"key":"on","value":1,"metadata":{}}}"#]}]], "variant": "on"}],
         "variants": {"on": {"key": "on"}}}
    ]));
    let results = evaluate(&flags, &json!({}), &[]).unwrap();
    assert_eq!(results["b"]["key"], "on");
}

#[test]
fn flags_can_be_shared_across_threads() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Flags>();
}
