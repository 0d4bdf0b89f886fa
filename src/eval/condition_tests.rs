//! Condition tests: hand-written cases for each rule, then a conformance table of every
//! operator × filter-value set × property, whose answers come from the JS engine
//! (`testdata/gen.js`).

use serde_json::{Value, json};

use super::*;
use crate::eval::select::tests::MapResults;
use crate::eval::select::{Interner, Slot};

/// Runs `c` against `context` with no results.
fn run(c: &Condition, context: &Value) -> Result<bool, EvalError> {
    let result = json!({});
    let results = MapResults(&result);
    c.matches(&Target {
        context,
        results: &results,
        cache: &[],
    })
}

fn condition(op: &str, values: &[&str]) -> Condition {
    let selector = Selector::new(Some(&[json!("context"), json!("p")]));
    Condition::new(
        selector,
        Op::parse(op),
        values.iter().map(|v| v.to_string()).collect(),
    )
}

/// Whether `op values` holds for the property `prop` (`null` = missing).
fn check(op: &str, values: &[&str], prop: Value) -> bool {
    run(&condition(op, values), &json!({ "p": prop })).unwrap()
}

#[test]
fn none_rule_for_missing_properties() {
    let positive = [
        "is",
        "contains",
        "less",
        "less or equal",
        "greater",
        "greater or equal",
        "version less",
        "version less or equal",
        "version greater",
        "version greater or equal",
        "set is",
        "set contains",
        "set contains any",
    ];
    for op in positive {
        assert!(check(op, &["(none)"], Value::Null), "{op} (none)");
        assert!(!check(op, &["a"], Value::Null), "{op} a");
    }
    for op in [
        "is not",
        "does not contain",
        "set does not contain",
        "set does not contain any",
    ] {
        assert!(!check(op, &["(none)"], Value::Null), "{op} (none)");
        assert!(check(op, &["a"], Value::Null), "{op} a");
    }
    for op in ["set is not", "regex match", "regex does not match", "bogus"] {
        assert!(!check(op, &["(none)"], Value::Null), "{op} (none)");
        assert!(!check(op, &["a"], Value::Null), "{op} a");
    }
}

#[test]
fn is_and_boolean_case_folding() {
    assert!(check("is", &["a", "b"], json!("b")));
    assert!(!check("is", &["A"], json!("a")));
    assert!(check("is", &["TRUE"], json!(true)));
    assert!(check("is", &["true"], json!("True")));
    assert!(!check("is", &["True", "x"], json!("false")));
    assert!(check("is", &["1"], json!(1.0)));
    assert!(
        check("is not", &["a"], json!(["a", "b"])),
        "any element, negations too"
    );
    assert!(
        !check("is", &["a"], json!([])),
        "an empty list matches nothing"
    );
    let many: Vec<String> = (0..20).map(|i| format!("v{i}")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    assert!(check("is", &many, json!("v13")));
    assert!(check("is not", &many, json!("v20")));
}

#[test]
fn contains_lowercases_fully() {
    assert!(check("contains", &["BC"], json!("abcd")));
    assert!(check("contains", &["σας"], json!("ΣΑΣ")), "final sigma");
    assert!(check("contains", &["i̇"], json!("İ")));
    assert!(
        !check("contains", &["ss"], json!("ß")),
        "lowercase, not case folding"
    );
    assert!(check("does not contain", &["x"], json!("abc")));
}

#[test]
fn numbers_compare_with_js_number_parsing() {
    assert!(check("less", &["10"], json!("9")));
    assert!(check("greater", &["9"], json!(10)));
    assert!(check("less or equal", &["0"], json!("")), "\"\" is 0");
    assert!(check("greater", &["15"], json!("0x10")));
    assert!(check("less", &["Infinity"], json!(1e300)));
    assert!(!check("less", &["b"], json!("abc")), "no string fallback");
    assert!(!check("greater", &["1"], json!("1_000")));
    assert!(
        check("greater or equal", &["abc", "1"], json!("2")),
        "NaN filters are just false"
    );
}

#[test]
fn versions_and_their_string_fallback() {
    assert!(check("version less", &["1.10"], json!("1.9.9")));
    assert!(check("version less", &["1.2.3"], json!("1.2.3-")));
    assert!(check(
        "version less",
        &["1.2.3-alpha.2"],
        json!("1.2.3-alpha.10")
    ));
    assert!(check("version greater or equal", &["1.2"], json!("1.2.0")));
    assert!(
        check("version less", &["b"], json!("a")),
        "both unparsable: strings"
    );
    assert!(
        check("version greater", &["1.2.3"], json!("1.2.3+build")),
        "no +build: string order"
    );
    assert!(
        check("version greater", &["nope", "1.0.0"], json!("2.0.0")),
        "unparsable filters dropped"
    );
    assert!(check("version less", &["～"], json!("🚀")), "UTF-16 order");
}

#[test]
fn set_operators() {
    assert!(check("set is", &["b", "a"], json!(["a", "b", "a"])));
    assert!(!check("set is", &["a"], json!(["a", "b"])));
    assert!(check("set is not", &["a"], json!(["a", "b"])));
    assert!(
        check("set contains", &["a"], json!("[\"a\",\"b\"]")),
        "JSON array strings are lists"
    );
    assert!(
        !check("set contains", &["a", "a"], json!(["a"])),
        "no de-duplication"
    );
    assert!(
        check("set contains", &["TRUE"], json!(["true", "x"])),
        "boolean folding via matchesIs"
    );
    assert!(check("set contains any", &["x", "b"], json!(["a", "b"])));
    assert!(check("set does not contain any", &["x"], json!(["a", ""])));
    assert!(
        !check("set contains", &["a"], json!("a")),
        "a non-list never matches a set operator"
    );
    assert!(!check("set does not contain", &["a"], json!("b")));
    assert!(
        check("set is", &[], json!(["", null])),
        "empty strings and nulls are dropped"
    );
}

#[test]
fn regex_is_a_search_and_errors_only_when_reached() {
    assert!(check("regex match", &["b+"], json!("abbbc")));
    assert!(!check("regex match", &["^b"], json!("abc")));
    assert!(check("regex does not match", &["^b"], json!("abc")));
    assert!(check("regex match", &["(?<=a)b"], json!(["x", "ab"])));
    assert!(
        check("regex match", &["a", "("], json!("a")),
        "the invalid one is never reached"
    );
    let bad = condition("regex match", &["(", "a"]);
    assert!(matches!(
        run(&bad, &json!({"p": "a"})),
        Err(EvalError::InvalidRegex(_))
    ));
    assert!(
        !run(&bad, &json!({})).unwrap(),
        "missing: no regex is compiled"
    );
}

/// Every operator × value set × property, against answers recorded from the JS engine.
#[test]
fn conformance_table_matches_the_js_engine() {
    #[derive(serde::Deserialize)]
    struct Table {
        ops: Vec<String>,
        props: Vec<Value>,
        values: Vec<Vec<String>>,
    }
    let table: Table = serde_json::from_str(include_str!("testdata/conditions.json")).unwrap();
    let expected = include_str!("testdata/conditions.expected")
        .trim_end()
        .as_bytes();
    assert_eq!(
        expected.len(),
        table.ops.len() * table.values.len() * table.props.len()
    );
    let props = table.props.len();
    let mut conditions = Vec::new();
    let mut interner = Interner::default();
    for op in &table.ops {
        for values in &table.values {
            let selector = || Selector::new(Some(&[json!("context"), json!("p")]));
            let plain = Condition::new(selector(), Op::parse(op), values.clone());
            let mut cached = Condition::new(selector(), Op::parse(op), values.clone());
            cached.intern(&mut interner);
            conditions.push((op, values, plain, cached));
        }
    }
    let code = |r: Result<bool, EvalError>| match r {
        Ok(true) => b'1',
        Ok(false) => b'0',
        Err(_) => b'E',
    };
    let mut failures = Vec::new();
    let result = json!({});
    let results = MapResults(&result);
    for (p, prop) in table.props.iter().enumerate() {
        let context = json!({ "p": prop });
        // One cache for all conditions on this property, as in one evaluation: derived
        // forms computed for one operator are reused by the others.
        let cache: Vec<Slot> = (0..interner.len()).map(|_| Slot::default()).collect();
        let cached_target = Target {
            context: &context,
            results: &results,
            cache: &cache,
        };
        for (n, (op, values, plain, cached)) in conditions.iter().enumerate() {
            let want = expected[n * props + p];
            for (how, got) in [
                ("", code(run(plain, &context))),
                (" (cached)", code(cached.matches(&cached_target))),
            ] {
                if got != want {
                    failures.push(format!(
                        "{op:?} {values:?} on {prop}{how}: got {} want {}",
                        got as char, want as char
                    ));
                }
            }
        }
    }
    let i = expected.len();
    assert!(
        failures.is_empty(),
        "{} of {i} differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
