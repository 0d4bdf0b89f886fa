//! Hand-written cases for the JS behaviours in §7.10 of `shared/docs/amplitude.md`.
//!
//! Each carries what `@amplitude/experiment-core` 0.13.6 returns (checked against it), so the
//! table doubles as documentation; cases whose answer depends on a hash only compare engines.

use super::generate::murmur3_x86_32;
use super::harness::Case;

/// A hand-written case and, when it is not hash-dependent, the JS engine's answer.
pub struct Fixed {
    pub case: Case,
    pub expect: Option<String>,
}

/// The selector every condition row below tests: `context.user.user_properties.p`.
const P: &str = r#"["context","user","user_properties","p"]"#;

/// `(what, user_properties, condition with $P for the selector, JS says it matches)`.
const CONDITIONS: &[(&str, &str, &str, bool)] = &[
    // A missing property: `(none)` rules, and the three ops that fall to `default: false`.
    (
        "missing: set is not",
        "{}",
        r#"{"selector":$P,"op":"set is not","values":["a"]}"#,
        false,
    ),
    (
        "missing: regex does not match",
        "{}",
        r#"{"selector":$P,"op":"regex does not match","values":["a"]}"#,
        false,
    ),
    (
        "missing: regex match (none)",
        "{}",
        r#"{"selector":$P,"op":"regex match","values":["(none)"]}"#,
        false,
    ),
    (
        "missing: is not",
        "{}",
        r#"{"selector":$P,"op":"is not","values":["a"]}"#,
        true,
    ),
    (
        "missing: is not (none)",
        "{}",
        r#"{"selector":$P,"op":"is not","values":["(none)"]}"#,
        false,
    ),
    (
        "missing: is (none)",
        "{}",
        r#"{"selector":$P,"op":"is","values":["x","(none)"]}"#,
        true,
    ),
    (
        "missing: version less (none)",
        "{}",
        r#"{"selector":$P,"op":"version less","values":["(none)"]}"#,
        true,
    ),
    (
        "missing: set does not contain any",
        "{}",
        r#"{"selector":$P,"op":"set does not contain any","values":["a"]}"#,
        true,
    ),
    (
        "null: is (none)",
        r#"{"p":null}"#,
        r#"{"selector":$P,"op":"is","values":["(none)"]}"#,
        true,
    ),
    (
        "unknown operator, missing",
        "{}",
        r#"{"selector":$P,"op":"starts with","values":["(none)"]}"#,
        false,
    ),
    (
        "unknown operator, present",
        r#"{"p":"a"}"#,
        r#"{"selector":$P,"op":"starts with","values":["a"]}"#,
        false,
    ),
    // Numbers are JS `Number(x)`: no string fallback, NaN is false.
    (
        "number: empty string is 0",
        r#"{"p":""}"#,
        r#"{"selector":$P,"op":"less","values":["1"]}"#,
        true,
    ),
    (
        "number: blank is 0",
        r#"{"p":" "}"#,
        r#"{"selector":$P,"op":"less","values":["1"]}"#,
        true,
    ),
    (
        "number: hex",
        r#"{"p":"0x1A"}"#,
        r#"{"selector":$P,"op":"greater","values":["25"]}"#,
        true,
    ),
    (
        "number: binary",
        r#"{"p":"0b11"}"#,
        r#"{"selector":$P,"op":"less or equal","values":["3"]}"#,
        true,
    ),
    (
        "number: underscores are NaN",
        r#"{"p":"1_000"}"#,
        r#"{"selector":$P,"op":"greater","values":["1"]}"#,
        false,
    ),
    (
        "number: Infinity",
        r#"{"p":"Infinity"}"#,
        r#"{"selector":$P,"op":"greater","values":["1e308"]}"#,
        true,
    ),
    (
        "number: no string fallback",
        r#"{"p":"abc"}"#,
        r#"{"selector":$P,"op":"less","values":["b"]}"#,
        false,
    ),
    (
        "number: NBSP is trimmed",
        r#"{"p":"\u00a012"}"#,
        r#"{"selector":$P,"op":"greater or equal","values":["12"]}"#,
        true,
    ),
    (
        "number: signed hex is NaN",
        r#"{"p":"-0x1A"}"#,
        r#"{"selector":$P,"op":"less","values":["0"]}"#,
        false,
    ),
    (
        "number: empty filter is 0",
        r#"{"p":"-1"}"#,
        r#"{"selector":$P,"op":"less","values":[""]}"#,
        true,
    ),
    (
        "number: fullwidth digits are NaN",
        r#"{"p":"１２"}"#,
        r#"{"selector":$P,"op":"greater","values":["1"]}"#,
        false,
    ),
    // Versions.
    (
        "version: 1.2 is 1.2.0",
        r#"{"p":"1.2"}"#,
        r#"{"selector":$P,"op":"version greater or equal","values":["1.2.0"]}"#,
        true,
    ),
    (
        "version: trailing hyphen is a prerelease",
        r#"{"p":"1.2.3-"}"#,
        r#"{"selector":$P,"op":"version less","values":["1.2.3"]}"#,
        true,
    ),
    (
        "version: prereleases compare as strings",
        r#"{"p":"1.2.3-alpha.10"}"#,
        r#"{"selector":$P,"op":"version less","values":["1.2.3-alpha.2"]}"#,
        true,
    ),
    (
        "version: +build falls back to strings",
        r#"{"p":"1.2.3+build"}"#,
        r#"{"selector":$P,"op":"version less or equal","values":["1.2.3"]}"#,
        false,
    ),
    (
        "version: leading zeros",
        r#"{"p":"01.02.03"}"#,
        r#"{"selector":$P,"op":"version greater","values":["1.2.2"]}"#,
        true,
    ),
    (
        "version: UTF-16 string order",
        r#"{"p":"🚀"}"#,
        r#"{"selector":$P,"op":"version less","values":["～"]}"#,
        true,
    ),
    (
        "version: v1 compares as a string",
        r#"{"p":"v1"}"#,
        r#"{"selector":$P,"op":"version less","values":["2.0.0"]}"#,
        false,
    ),
    (
        "version: $ does not match before \\n",
        r#"{"p":"1.2.3\n"}"#,
        r#"{"selector":$P,"op":"version less or equal","values":["1.2.3"]}"#,
        false,
    ),
    (
        "version: parts are doubles",
        r#"{"p":"18446744073709551616.0.0"}"#,
        r#"{"selector":$P,"op":"version greater","values":["18446744073709551615.0.0"]}"#,
        false,
    ),
    (
        "version: ASCII digits only",
        r#"{"p":"١.٢.٣"}"#,
        r#"{"selector":$P,"op":"version less","values":["2.0.0"]}"#,
        false,
    ),
    (
        "version: unparsable filters are dropped",
        r#"{"p":"1.2.3-beta"}"#,
        r#"{"selector":$P,"op":"version greater","values":["x","1.2.3-alpha"]}"#,
        true,
    ),
    // `is` and `contains`.
    (
        "is: boolean vs TRUE",
        r#"{"p":true}"#,
        r#"{"selector":$P,"op":"is","values":["TRUE"]}"#,
        true,
    ),
    (
        "is: True vs TRUE",
        r#"{"p":"True"}"#,
        r#"{"selector":$P,"op":"is","values":["false","TRUE"]}"#,
        true,
    ),
    (
        "is: exact otherwise",
        r#"{"p":"yes"}"#,
        r#"{"selector":$P,"op":"is","values":["true","YES"]}"#,
        false,
    ),
    (
        "is: case-sensitive",
        r#"{"p":"a"}"#,
        r#"{"selector":$P,"op":"is","values":["A"]}"#,
        false,
    ),
    (
        "contains: Unicode lowercase",
        r#"{"p":"ÉCOLE"}"#,
        r#"{"selector":$P,"op":"contains","values":["éco"]}"#,
        true,
    ),
    (
        "contains: final sigma",
        r#"{"p":"ΟΔΟΣ"}"#,
        r#"{"selector":$P,"op":"contains","values":["ος"]}"#,
        true,
    ),
    (
        "contains: no case folding",
        r#"{"p":"STRASSE"}"#,
        r#"{"selector":$P,"op":"contains","values":["ß"]}"#,
        false,
    ),
    (
        "contains: dotted capital I",
        r#"{"p":"İstanbul"}"#,
        r#"{"selector":$P,"op":"contains","values":["i\u0307st"]}"#,
        true,
    ),
    (
        "contains: 1.0 is 1",
        r#"{"p":1.0}"#,
        r#"{"selector":$P,"op":"contains","values":["1.0"]}"#,
        false,
    ),
    // Regexes are JS `RegExp#exec`: search, UTF-16, ASCII classes, Annex B.
    (
        "regex: . is one UTF-16 unit",
        r#"{"p":"🚀"}"#,
        r#"{"selector":$P,"op":"regex match","values":["^.$"]}"#,
        false,
    ),
    (
        "regex: \\d is ASCII",
        r#"{"p":"١٢٣"}"#,
        r#"{"selector":$P,"op":"regex match","values":["^\\d+$"]}"#,
        false,
    ),
    (
        "regex: \\w is ASCII",
        r#"{"p":"é"}"#,
        r#"{"selector":$P,"op":"regex match","values":["^\\w$"]}"#,
        false,
    ),
    (
        "regex: literal {",
        r#"{"p":"a{"}"#,
        r#"{"selector":$P,"op":"regex match","values":["a{"]}"#,
        true,
    ),
    (
        "regex: lookahead",
        r#"{"p":"foobar"}"#,
        r#"{"selector":$P,"op":"regex match","values":["(?=.*bar)foo"]}"#,
        true,
    ),
    (
        "regex: search, not full match",
        r#"{"p":"xabcx"}"#,
        r#"{"selector":$P,"op":"regex match","values":["abc"]}"#,
        true,
    ),
    (
        "regex: class of surrogates",
        r#"{"p":"😀"}"#,
        r#"{"selector":$P,"op":"regex match","values":["[🚀]"]}"#,
        true,
    ),
    (
        "regex: \\p is a literal p",
        r#"{"p":"é"}"#,
        r#"{"selector":$P,"op":"regex match","values":["\\p{L}"]}"#,
        false,
    ),
    (
        "regex: case-sensitive",
        r#"{"p":"ABC"}"#,
        r#"{"selector":$P,"op":"regex does not match","values":["abc"]}"#,
        true,
    ),
    (
        "regex: ^ is not multiline",
        r#"{"p":"a\nb"}"#,
        r#"{"selector":$P,"op":"regex match","values":["^b","a.b"]}"#,
        false,
    ),
    // Lists.
    (
        "list: empty strings dropped",
        r#"{"p":["a",""]}"#,
        r#"{"selector":$P,"op":"set is","values":["a"]}"#,
        true,
    ),
    (
        "list: no de-duplication",
        r#"{"p":["a"]}"#,
        r#"{"selector":$P,"op":"set contains","values":["a","a"]}"#,
        false,
    ),
    (
        "list: JSON-array string",
        r#"{"p":"[\"a\",\"b\"]"}"#,
        r#"{"selector":$P,"op":"set contains","values":["a"]}"#,
        true,
    ),
    (
        "list: empty list, is not",
        r#"{"p":[]}"#,
        r#"{"selector":$P,"op":"is not","values":["a"]}"#,
        false,
    ),
    (
        "list: any element, is not",
        r#"{"p":["a","b"]}"#,
        r#"{"selector":$P,"op":"is not","values":["a"]}"#,
        true,
    ),
    (
        "list: set op on a scalar",
        r#"{"p":"a"}"#,
        r#"{"selector":$P,"op":"set contains","values":["a"]}"#,
        false,
    ),
    (
        "list: boolean case in sets",
        r#"{"p":["TRUE","x"]}"#,
        r#"{"selector":$P,"op":"set contains","values":["true"]}"#,
        true,
    ),
    (
        "list: broken JSON is a scalar",
        r#"{"p":"[\"a\""}"#,
        r#"{"selector":$P,"op":"is","values":["[\"a\""]}"#,
        true,
    ),
    (
        "list: coerced elements",
        r#"{"p":[null,1.0,false]}"#,
        r#"{"selector":$P,"op":"set is","values":["1","false"]}"#,
        true,
    ),
    (
        "list: contains nothing",
        r#"{"p":["a","b"]}"#,
        r#"{"selector":$P,"op":"set contains","values":[]}"#,
        true,
    ),
    (
        "list: set is ignores repeats",
        r#"{"p":["a","a"]}"#,
        r#"{"selector":$P,"op":"set is","values":["a"]}"#,
        true,
    ),
    (
        "list: leading space is a scalar",
        r#"{"p":" [1]"}"#,
        r#"{"selector":$P,"op":"set contains","values":["1"]}"#,
        false,
    ),
    (
        "list: nested elements stringify",
        r#"{"p":["x",["a"],{"k":1}]}"#,
        r#"{"selector":$P,"op":"is","values":["[\"a\"]"]}"#,
        true,
    ),
    (
        "list: 1e400 is Infinity",
        r#"{"p":"[1e400]"}"#,
        r#"{"selector":$P,"op":"set contains","values":["Infinity"]}"#,
        true,
    ),
    (
        "list: big ints round",
        r#"{"p":"[9007199254740993]"}"#,
        r#"{"selector":$P,"op":"set contains","values":["9007199254740992"]}"#,
        true,
    ),
    // Numbers as strings are JS `Number#toString`.
    (
        "string: 1.0",
        r#"{"p":1.0}"#,
        r#"{"selector":$P,"op":"is","values":["1"]}"#,
        true,
    ),
    (
        "string: -0",
        r#"{"p":-0.0}"#,
        r#"{"selector":$P,"op":"is","values":["0"]}"#,
        true,
    ),
    (
        "string: 1e21",
        r#"{"p":1e21}"#,
        r#"{"selector":$P,"op":"is","values":["1e+21"]}"#,
        true,
    ),
    (
        "string: 2^53 + 1",
        r#"{"p":9007199254740993}"#,
        r#"{"selector":$P,"op":"is","values":["9007199254740992"]}"#,
        true,
    ),
    (
        "string: 1e-7",
        r#"{"p":1e-7}"#,
        r#"{"selector":$P,"op":"is","values":["1e-7"]}"#,
        true,
    ),
    (
        "string: 1.2345678901234568e20",
        r#"{"p":1.2345678901234568e20}"#,
        r#"{"selector":$P,"op":"is","values":["123456789012345680000"]}"#,
        true,
    ),
    (
        "string: 1.5e300",
        r#"{"p":1.5e300}"#,
        r#"{"selector":$P,"op":"is","values":["1.5e+300"]}"#,
        true,
    ),
    (
        "string: 5e-324",
        r#"{"p":5e-324}"#,
        r#"{"selector":$P,"op":"is","values":["5e-324"]}"#,
        true,
    ),
    (
        "string: object keys in received order",
        r#"{"p":{"b":1,"a":[1.0,"x"]}}"#,
        r#"{"selector":$P,"op":"is","values":["{\"b\":1,\"a\":[1,\"x\"]}"]}"#,
        true,
    ),
    (
        "string: integer keys first",
        r#"{"p":{"b":1,"10":2,"9":3}}"#,
        r#"{"selector":$P,"op":"is","values":["{\"9\":3,\"10\":2,\"b\":1}"]}"#,
        true,
    ),
    (
        "string: JS escaping",
        r#"{"p":{"s":"\u0001\u2028é\"/"}}"#,
        r#"{"selector":$P,"op":"is","values":["{\"s\":\"\\u0001\u2028é\\\"/\"}"]}"#,
        true,
    ),
    // Selectors.
    (
        "selector: array index",
        r#"{"p":["x","y"]}"#,
        r#"{"selector":["context","user","user_properties","p","1"],"op":"is","values":["y"]}"#,
        true,
    ),
    (
        "selector: non-canonical index",
        r#"{"p":["x","y"]}"#,
        r#"{"selector":["context","user","user_properties","p","01"],"op":"is","values":["(none)"]}"#,
        true,
    ),
    (
        "selector: empty step",
        r#"{"p":"x"}"#,
        r#"{"selector":["context","user",""],"op":"is","values":["(none)"]}"#,
        true,
    ),
    (
        "selector: empty",
        r#"{"p":"x"}"#,
        r#"{"selector":[],"op":"is","values":["(none)"]}"#,
        true,
    ),
    (
        "selector: no steps into strings",
        r#"{"p":"abc"}"#,
        r#"{"selector":["context","user","user_properties","p","0"],"op":"is","values":["(none)"]}"#,
        true,
    ),
];

/// `(what, flags, context, flag_keys, JS result or None when hash-dependent)`.
type WholeCase = (
    &'static str,
    &'static str,
    &'static str,
    &'static [&'static str],
    Option<&'static str>,
);

/// Whole cases: segments, metadata, dependencies, evaluation order, groups, bucketing.
const CASES: &[WholeCase] = &[
    (
        "segments: [] never matches, [[]] always does",
        r#"[{"key":"f","variants":{"a":{"key":"a"},"b":{"key":"b"}},"segments":[{"conditions":[],"variant":"a"},{"conditions":[[]],"variant":"b"}]}]"#,
        r#"{"user":{}}"#,
        &[],
        Some(r#"{"f":{"key":"b","metadata":{}}}"#),
    ),
    (
        "segments: unknown variant falls through to null conditions",
        r#"[{"key":"f","variants":{"on":{"key":"on","value":"on"}},"segments":[{"variant":"ghost"},{"conditions":null,"variant":"on"}]}]"#,
        r#"{"user":{}}"#,
        &[],
        Some(r#"{"f":{"key":"on","value":"on","metadata":{}}}"#),
    ),
    (
        "segments: nothing yields, flag absent",
        r#"[{"key":"f","variants":{"on":{"key":"on"}},"segments":[{"conditions":[[{"selector":["context","user","x"],"op":"is","values":["y"]}]],"variant":"on"},{"metadata":{"segmentName":"no variant"}}]}]"#,
        r#"{"user":{}}"#,
        &[],
        Some("{}"),
    ),
    (
        "metadata: flag, then segment, then variant; nulls kept; the variant's own key",
        r#"[{"key":"f","metadata":{"a":1,"b":1,"n":null},"variants":{"on":{"key":"ON","value":"v","payload":{"x":[1.0]},"metadata":{"c":3,"n2":null}}},"segments":[{"metadata":{"b":2,"c":2},"variant":"on"}]}]"#,
        r#"{"user":{}}"#,
        &[],
        Some(
            r#"{"f":{"key":"ON","value":"v","payload":{"x":[1]},"metadata":{"a":1,"b":2,"c":3,"n":null,"n2":null}}}"#,
        ),
    ),
    (
        "metadata: null objects merge as empty; null value kept",
        r#"[{"key":"f","metadata":null,"variants":{"on":{"key":"on","value":null,"metadata":null}},"segments":[{"metadata":null,"variant":"on"}]}]"#,
        r#"{"user":{}}"#,
        &[],
        Some(r#"{"f":{"key":"on","value":null,"metadata":{}}}"#),
    ),
    (
        "dependencies: requested child pulls its parent into the results",
        r#"[{"key":"child","dependencies":["parent"],"variants":{"yes":{"key":"yes"},"no":{"key":"no"}},"segments":[{"conditions":[[{"selector":["result","parent","key"],"op":"is","values":["on"]},{"selector":["result","parent","metadata","default"],"op":"is","values":["true"]}]],"variant":"yes"},{"variant":"no"}]},{"key":"parent","variants":{"on":{"key":"on","metadata":{"default":true}}},"segments":[{"variant":"on"}]},{"key":"other","variants":{"on":{"key":"on"}},"segments":[{"variant":"on"}]}]"#,
        r#"{"user":{}}"#,
        &["child"],
        Some(
            r#"{"parent":{"key":"on","metadata":{"default":true}},"child":{"key":"yes","metadata":{}}}"#,
        ),
    ),
    (
        "dependencies: unknown requested keys and missing parents are ignored",
        r#"[{"key":"child","dependencies":["missing"],"variants":{"on":{"key":"on"}},"segments":[{"conditions":[[{"selector":["result","missing","key"],"op":"is not","values":["on"]}]],"variant":"on"}]}]"#,
        r#"{"user":{}}"#,
        &["nope", "child", "child"],
        Some(r#"{"child":{"key":"on","metadata":{}}}"#),
    ),
    (
        "dependencies: a cycle is an error",
        r#"[{"key":"a","dependencies":["b"],"variants":{},"segments":[]},{"key":"b","dependencies":["a"],"variants":{},"segments":[]}]"#,
        r#"{"user":{}}"#,
        &[],
        Some(r#"{"error":"cycle"}"#),
    ),
    (
        "dependencies: a self-cycle is an error",
        r#"[{"key":"a","dependencies":["a"],"variants":{},"segments":[]}]"#,
        r#"{"user":{}}"#,
        &["a"],
        Some(r#"{"error":"cycle"}"#),
    ),
    (
        "dependencies: a cycle not reached is fine",
        r#"[{"key":"a","dependencies":["b"],"variants":{},"segments":[]},{"key":"b","dependencies":["a"],"variants":{},"segments":[]},{"key":"c","variants":{"on":{"key":"on"}},"segments":[{"variant":"on"}]}]"#,
        r#"{"user":{}}"#,
        &["c"],
        Some(r#"{"c":{"key":"on","metadata":{}}}"#),
    ),
    (
        "order: undeclared dependency follows file order",
        r#"[{"key":"child","variants":{"saw":{"key":"saw"},"blind":{"key":"blind"}},"segments":[{"conditions":[[{"selector":["result","parent","key"],"op":"is","values":["on"]}]],"variant":"saw"},{"variant":"blind"}]},{"key":"parent","variants":{"on":{"key":"on"}},"segments":[{"variant":"on"}]},{"key":"late","variants":{"saw":{"key":"saw"}},"segments":[{"conditions":[[{"selector":["result","parent","key"],"op":"is","values":["on"]}]],"variant":"saw"}]}]"#,
        r#"{"user":{}}"#,
        &[],
        Some(
            r#"{"child":{"key":"blind","metadata":{}},"parent":{"key":"on","metadata":{}},"late":{"key":"saw","metadata":{}}}"#,
        ),
    ),
    (
        "order: requested keys order evaluation",
        r#"[{"key":"parent","variants":{"on":{"key":"on"}},"segments":[{"variant":"on"}]},{"key":"child","variants":{"saw":{"key":"saw"},"blind":{"key":"blind"}},"segments":[{"conditions":[[{"selector":["result","parent","key"],"op":"is","values":["on"]}]],"variant":"saw"},{"variant":"blind"}]}]"#,
        r#"{"user":{}}"#,
        &["child", "parent"],
        Some(r#"{"child":{"key":"blind","metadata":{}},"parent":{"key":"on","metadata":{}}}"#),
    ),
    (
        "order: integer-like flag keys come first (JS object key order)",
        r#"[{"key":"10","variants":{"saw":{"key":"saw"},"blind":{"key":"blind"}},"segments":[{"conditions":[[{"selector":["result","2","key"],"op":"is","values":["on"]}]],"variant":"saw"},{"variant":"blind"}]},{"key":"2","variants":{"on":{"key":"on"}},"segments":[{"variant":"on"}]}]"#,
        r#"{"user":{}}"#,
        &[],
        Some(r#"{"2":{"key":"on","metadata":{}},"10":{"key":"saw","metadata":{}}}"#),
    ),
    (
        "groups: group name and group properties",
        r#"[{"key":"f","variants":{"on":{"key":"on"}},"segments":[{"conditions":[[{"selector":["context","groups","org","group_name"],"op":"is","values":["acme"]},{"selector":["context","groups","org","group_properties","tier"],"op":"set contains any","values":["gold"]}]],"variant":"on"}]}]"#,
        r#"{"user":{},"groups":{"org":{"group_name":"acme","group_properties":{"tier":["gold","x"]}}}}"#,
        &[],
        Some(r#"{"f":{"key":"on","metadata":{}}}"#),
    ),
    (
        "bucketing: empty or missing value takes segment.variant; none falls through",
        r#"[{"key":"empty","variants":{"on":{"key":"on"},"off":{"key":"off"}},"segments":[{"bucket":{"selector":["context","user","device_id"],"salt":"s","allocations":[{"range":[0,100],"distributions":[{"variant":"on","range":[0,42949673]}]}]},"variant":"off"}]},{"key":"missing","variants":{"on":{"key":"on"},"off":{"key":"off"}},"segments":[{"bucket":{"selector":["context","user","user_id"],"salt":"s","allocations":[{"range":[0,100],"distributions":[{"variant":"on","range":[0,42949673]}]}]}},{"variant":"off"}]}]"#,
        r#"{"user":{"device_id":""}}"#,
        &[],
        Some(r#"{"empty":{"key":"off","metadata":{}},"missing":{"key":"off","metadata":{}}}"#),
    ),
    (
        "bucketing: a distribution naming an unknown variant falls through",
        r#"[{"key":"f","variants":{"on":{"key":"on"},"off":{"key":"off"}},"segments":[{"bucket":{"selector":["context","user","device_id"],"salt":"s","allocations":[{"range":[0,100],"distributions":[{"variant":"ghost","range":[0,42949673]}]}]},"variant":"on"},{"variant":"off"}]}]"#,
        r#"{"user":{"device_id":"d1"}}"#,
        &[],
        Some(r#"{"f":{"key":"off","metadata":{}}}"#),
    ),
    (
        "bucketing: an allocation that misses takes segment.variant",
        r#"[{"key":"f","variants":{"on":{"key":"on"},"off":{"key":"off"}},"segments":[{"bucket":{"selector":["context","user","device_id"],"salt":"s","allocations":[{"range":[0,0],"distributions":[{"variant":"on","range":[0,42949673]}]}]},"variant":"off"}]}]"#,
        r#"{"user":{"device_id":"d1"}}"#,
        &[],
        Some(r#"{"f":{"key":"off","metadata":{}}}"#),
    ),
];

/// Bucketing inputs whose hash input depends on JS coercion; each runs through 24 salts with
/// a 50/50 split, so a wrong string flips about half of them.
const BUCKETED: &[(&str, &str)] = &[
    ("bucketing on 1.0 hashes \"1\"", r#"{"n":1.0}"#),
    ("bucketing on 1e21 hashes \"1e+21\"", r#"{"n":1e21}"#),
    (
        "bucketing on an object hashes its JSON in received order",
        r#"{"n":{"b":1,"a":[true,null]}}"#,
    ),
    (
        "bucketing on a list hashes its JSON",
        r#"{"n":["x",2.50,{"k":"🚀"}]}"#,
    ),
    (
        "bucketing on non-ASCII hashes UTF-8",
        r#"{"n":"吉 星 高 照 🚀"}"#,
    ),
    ("bucketing on a boolean hashes \"false\"", r#"{"n":false}"#),
];

/// Bucket edges at exactly where a user hashes: ranges are `[start, end)`, so the user lands
/// in the range that starts at its value and not in the one that ends there.
fn bucket_edges(device_id: &str) -> Fixed {
    let hash = murmur3_x86_32(format!("edge/{device_id}").as_bytes());
    let (at, dv) = (hash % 100, hash / 100);
    let flag = |key: &str, allocations: String| {
        format!(
            r#"{{"key":"{key}","variants":{{"a":{{"key":"a"}},"b":{{"key":"b"}}}},"segments":[{{"bucket":{{"selector":["context","user","device_id"],"salt":"edge","allocations":{allocations}}}}}]}}"#
        )
    };
    let split = |cut: u32| {
        format!(
            r#"[{{"range":[0,100],"distributions":[{{"variant":"a","range":[0,{cut}]}},{{"variant":"b","range":[{cut},42949673]}}]}}]"#
        )
    };
    let halves = |cut: u32| {
        format!(
            r#"[{{"range":[0,{cut}],"distributions":[{{"variant":"a","range":[0,42949673]}}]}},{{"range":[{cut},100],"distributions":[{{"variant":"b","range":[0,42949673]}}]}}]"#
        )
    };
    let flags = [
        flag("dist-at", split(dv)),
        flag("dist-after", split(dv + 1)),
        flag("alloc-at", halves(at)),
        flag("alloc-after", halves(at + 1)),
    ];
    Fixed {
        case: Case {
            name: format!("bucketing: range edges at the hash of {device_id:?}"),
            flags: format!("[{}]", flags.join(",")),
            context: format!(r#"{{"user":{{"device_id":"{device_id}"}}}}"#),
            flag_keys: Vec::new(),
        },
        expect: Some(
            r#"{"dist-at":{"key":"b","metadata":{}},"dist-after":{"key":"a","metadata":{}},"alloc-at":{"key":"b","metadata":{}},"alloc-after":{"key":"a","metadata":{}}}"#
                .to_owned(),
        ),
    }
}

pub fn cases() -> Vec<Fixed> {
    let mut out = Vec::new();
    for device_id in ["d1", "user-42", "🚀", "吉 星 高 照"] {
        out.push(bucket_edges(device_id));
    }
    for (what, props, condition, matches) in CONDITIONS {
        let condition = condition.replace("$P", P);
        let flags = format!(
            r#"[{{"key":"f","variants":{{"on":{{"key":"on"}}}},"segments":[{{"conditions":[[{condition}]],"variant":"on"}}]}}]"#
        );
        let expect = if *matches {
            r#"{"f":{"key":"on","metadata":{}}}"#
        } else {
            "{}"
        };
        out.push(Fixed {
            case: Case {
                name: format!("condition: {what}"),
                flags,
                context: format!(r#"{{"user":{{"user_properties":{props}}}}}"#),
                flag_keys: Vec::new(),
            },
            expect: Some(expect.to_owned()),
        });
    }
    for (what, flags, context, keys, expect) in CASES {
        out.push(Fixed {
            case: Case {
                name: (*what).to_owned(),
                flags: (*flags).to_owned(),
                context: (*context).to_owned(),
                flag_keys: keys.iter().map(|k| (*k).to_owned()).collect(),
            },
            expect: expect.map(str::to_owned),
        });
    }
    for (what, props) in BUCKETED {
        let flags: Vec<String> = (0..24)
            .map(|i| {
                format!(
                    r#"{{"key":"f{i}","variants":{{"a":{{"key":"a"}},"b":{{"key":"b"}}}},"segments":[{{"bucket":{{"selector":["context","user","user_properties","n"],"salt":"salt{i}","allocations":[{{"range":[0,100],"distributions":[{{"variant":"a","range":[0,21474836]}},{{"variant":"b","range":[21474836,42949673]}}]}}]}}}}]}}"#
                )
            })
            .collect();
        out.push(Fixed {
            case: Case {
                name: (*what).to_owned(),
                flags: format!("[{}]", flags.join(",")),
                context: format!(r#"{{"user":{{"user_properties":{props}}}}}"#),
                flag_keys: Vec::new(),
            },
            expect: None,
        });
    }
    out
}
