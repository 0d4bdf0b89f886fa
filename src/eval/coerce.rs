//! Turning JSON values into the strings and string lists that conditions compare, exactly
//! as JavaScript does it (`String(v)`, `JSON.stringify(v)`, `JSON.parse`).
//!
//! The JS engine compares and hashes *text*, so every byte here is observable: a number is
//! printed the way `Number#toString` prints it (`1.0` → `1`, `1e21` → `1e+21`), objects are
//! printed with the keys in JavaScript's property order, and a string that looks like a
//! JSON array is treated as a list.

use std::borrow::Cow;
use std::fmt::Write as _;

use serde_json::{Map, Number, Value};

/// Integers up to 2^53 print the same in JS and Rust, so they skip the float formatter.
const MAX_SAFE: u64 = 1 << 53;

/// JS `coerceString`: `None` for null, `JSON.stringify` for objects and arrays, `String(v)`
/// for the rest.
pub fn coerce_string(value: &Value) -> Option<Cow<'_, str>> {
    match value {
        Value::Null => None,
        Value::String(s) => Some(Cow::Borrowed(s)),
        Value::Bool(true) => Some(Cow::Borrowed("true")),
        Value::Bool(false) => Some(Cow::Borrowed("false")),
        Value::Number(n) => {
            let mut out = String::new();
            push_number(&mut out, n);
            Some(Cow::Owned(out))
        }
        Value::Array(_) | Value::Object(_) => {
            let mut out = String::new();
            push_json(&mut out, value);
            Some(Cow::Owned(out))
        }
    }
}

/// JS `String(value)` (not `coerceString`: objects print as `[object Object]` and arrays
/// join their elements with commas). Used where JS turns a value into a property name or
/// a template-literal piece: variant keys and bucket salts.
pub fn js_to_string(value: &Value) -> String {
    match value {
        Value::Null => "null".to_string(),
        Value::Array(items) => {
            let parts: Vec<String> = items
                .iter()
                .map(|v| {
                    if v.is_null() {
                        String::new()
                    } else {
                        js_to_string(v)
                    }
                })
                .collect();
            parts.join(",")
        }
        Value::Object(_) => "[object Object]".to_string(),
        other => coerce_string(other)
            .map(Cow::into_owned)
            .unwrap_or_default(),
    }
}

/// JS `coerceStringArray`: an array, or a string that starts with `[` and parses as a JSON
/// array, becomes its elements coerced to strings with empty strings and nulls dropped
/// (`filter(Boolean)`); anything else is not a list.
pub fn coerce_list(value: &Value) -> Option<Vec<Cow<'_, str>>> {
    match value {
        Value::Array(items) => Some(items.iter().filter_map(non_empty).collect()),
        // `String(object)` is "[object Object]": it starts with `[` but never parses.
        Value::String(s) if s.starts_with('[') => match serde_json::from_str::<Vec<Value>>(s) {
            Ok(items) => {
                let owned = items
                    .iter()
                    .filter_map(non_empty)
                    .map(|s| Cow::Owned(s.into_owned()));
                Some(owned.collect())
            }
            Err(_) => out_of_range_list(s),
        },
        _ => None,
    }
}

/// `JSON.parse` reads a number beyond the double range as ±Infinity, where serde_json
/// refuses the whole document: re-read the array element by element, turning such numbers
/// into the strings JS would coerce them to.
fn out_of_range_list(s: &str) -> Option<Vec<Cow<'static, str>>> {
    let raw = serde_json::from_str::<Vec<&serde_json::value::RawValue>>(s).ok()?;
    let mut items = Vec::with_capacity(raw.len());
    for element in raw {
        let text = element.get();
        match serde_json::from_str::<Value>(text) {
            Ok(value) => items.extend(non_empty(&value).map(|s| Cow::Owned(s.into_owned()))),
            Err(_) => {
                let number = text.parse::<f64>().ok().filter(|f| f.is_infinite())?;
                let js = if number > 0.0 {
                    "Infinity"
                } else {
                    "-Infinity"
                };
                items.push(Cow::Borrowed(js));
            }
        }
    }
    Some(items)
}

fn non_empty(value: &Value) -> Option<Cow<'_, str>> {
    coerce_string(value).filter(|s| !s.is_empty())
}

/// A JSON number as the double JavaScript would hold: every JSON number is a double there,
/// so integers beyond 2^53 round.
pub fn number_to_f64(n: &Number) -> f64 {
    // `as_f64` never fails without serde_json's arbitrary_precision feature.
    n.as_f64().unwrap_or(f64::NAN)
}

/// Appends JS `String(n)` for a JSON number.
pub fn push_number(out: &mut String, n: &Number) {
    if let Some(u) = n.as_u64().filter(|&u| u <= MAX_SAFE) {
        let _ = write!(out, "{u}");
    } else if let Some(i) = n.as_i64().filter(|i| i.unsigned_abs() <= MAX_SAFE) {
        let _ = write!(out, "{i}");
    } else {
        push_f64(out, number_to_f64(n));
    }
}

/// Appends JS `Number#toString()` of a double (`-0` → `0`, `1e-7` → `1e-7`).
pub fn push_f64(out: &mut String, f: f64) {
    out.push_str(ryu_js::Buffer::new().format(f));
}

/// Appends JS `JSON.stringify(value)`: compact, keys in JS property order, JS escapes.
pub fn push_json(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => push_number(out, n),
        Value::String(s) => push_json_string(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                push_json(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push('{');
            for (i, (key, item)) in js_entries(map).into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                push_json_string(out, key);
                out.push(':');
                push_json(out, item);
            }
            out.push('}');
        }
    }
}

/// Appends `s` as a JSON string literal the way `JSON.stringify` writes it: only `"`, `\`
/// and C0 controls are escaped (`\u001f` in lowercase hex); U+2028 and DEL stay raw.
pub fn push_json_string(out: &mut String, s: &str) {
    out.push('"');
    let mut start = 0;
    for (i, b) in s.bytes().enumerate() {
        let escape = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0..=0x1f => "",
            _ => continue,
        };
        out.push_str(&s[start..i]);
        if escape.is_empty() {
            let _ = write!(out, "\\u{b:04x}");
        } else {
            out.push_str(escape);
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
    out.push('"');
}

/// Whether `key` is an array index (a canonical integer below 2^32 - 1). JavaScript objects
/// list such keys first, in ascending order, whatever order they were inserted in.
pub fn is_array_index(key: &str) -> bool {
    array_index(key).is_some()
}

fn array_index(key: &str) -> Option<u32> {
    let bytes = key.as_bytes();
    let canonical = match bytes {
        [b'0'] => true,
        [b'1'..=b'9', rest @ ..] => rest.len() < 10 && rest.iter().all(u8::is_ascii_digit),
        _ => false,
    };
    if !canonical {
        return None;
    }
    key.parse::<u64>()
        .ok()
        .filter(|&n| n < u64::from(u32::MAX))
        .map(|n| n as u32)
}

/// Sort rank of a key in JavaScript property order: array indices by value, then all
/// other keys (equal rank, so a stable sort keeps their insertion order).
pub fn js_key_rank(key: &str) -> u64 {
    array_index(key).map_or(u64::MAX, u64::from)
}

/// The entries of `map` in JavaScript property order: array indices ascending, then the
/// other keys in insertion order.
pub fn js_entries(map: &Map<String, Value>) -> Vec<(&String, &Value)> {
    let mut entries: Vec<_> = map.iter().collect();
    if entries.iter().any(|(k, _)| is_array_index(k)) {
        // A stable sort keeps the insertion order of the non-index keys.
        entries.sort_by_key(|(k, _)| js_key_rank(k));
    }
    entries
}

/// Rewrites `value` in place into what JS would hold after `JSON.parse`, as far as a
/// serializer can tell: every object lists its keys in JavaScript property order, and an
/// integral float (`1.0`, `-0.0`) becomes an integer, so that it serializes as JS prints
/// it (`1`, `0`) rather than as `1.0`.
pub fn to_js_value(value: &mut Value) {
    match value {
        Value::Array(items) => items.iter_mut().for_each(to_js_value),
        Value::Object(map) => {
            map.values_mut().for_each(to_js_value);
            sort_js_keys(map);
        }
        Value::Number(n) if n.is_f64() => {
            let f = number_to_f64(n);
            // Both casts are exact here: `f` is integral and inside the target's range.
            if f.fract() == 0.0 && (0.0..18_446_744_073_709_551_616.0).contains(&f.abs()) {
                *n = if f >= 0.0 {
                    Number::from(f as u64)
                } else {
                    Number::from(f as i64)
                };
            }
        }
        _ => {}
    }
}

/// Reorders the keys of `map` (not of nested objects) into JavaScript property order.
pub fn sort_js_keys(map: &mut Map<String, Value>) {
    if map.keys().any(|k| is_array_index(k)) {
        let mut entries: Vec<_> = std::mem::take(map).into_iter().collect();
        entries.sort_by_key(|(k, _)| js_key_rank(k));
        map.extend(entries);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn js_string(json: &str) -> String {
        let v: Value = serde_json::from_str(json).unwrap();
        coerce_string(&v).unwrap().into_owned()
    }

    #[test]
    fn numbers_print_as_javascript_does() {
        assert_eq!(js_string("1.0"), "1");
        assert_eq!(js_string("-0"), "0");
        assert_eq!(js_string("-0.0"), "0");
        assert_eq!(js_string("1e21"), "1e+21");
        assert_eq!(js_string("1e20"), "100000000000000000000");
        assert_eq!(js_string("1e-7"), "1e-7");
        assert_eq!(js_string("0.000001"), "0.000001");
        assert_eq!(
            js_string("123456789012345678901234567890"),
            "1.2345678901234568e+29"
        );
        assert_eq!(js_string("9007199254740993"), "9007199254740992");
        assert_eq!(js_string("-9007199254740993"), "-9007199254740992");
        assert_eq!(js_string("9007199254740992"), "9007199254740992");
        assert_eq!(js_string("0.1"), "0.1");
        assert_eq!(js_string("-1.5e-10"), "-1.5e-10");
        assert_eq!(js_string("42"), "42");
        assert_eq!(js_string("-42"), "-42");
    }

    #[test]
    fn scalars_and_null() {
        assert_eq!(coerce_string(&Value::Null), None);
        assert_eq!(js_string("true"), "true");
        assert_eq!(js_string("\"x\""), "x");
    }

    #[test]
    fn objects_stringify_in_js_property_order() {
        assert_eq!(
            js_string(r#"{"b":1,"a":[1.0,null,"x"]}"#),
            r#"{"b":1,"a":[1,null,"x"]}"#
        );
        assert_eq!(
            js_string(r#"{"b":1,"2":2,"a":3,"1":4,"01":5}"#),
            r#"{"1":4,"2":2,"b":1,"a":3,"01":5}"#
        );
        assert_eq!(
            js_string(r#"{"4294967295":1,"4294967294":2}"#),
            r#"{"4294967294":2,"4294967295":1}"#
        );
        assert_eq!(
            js_string(r#"{ "a" : { } , "b":[ ] }"#),
            r#"{"a":{},"b":[]}"#
        );
    }

    #[test]
    fn strings_escape_as_json_stringify() {
        let v = json!(["q\"b\\s\u{1}\u{1f}\u{7f}\u{2028}\n\t\r\u{8}\u{c}é🚀"]);
        assert_eq!(
            coerce_string(&v).unwrap(),
            "[\"q\\\"b\\\\s\\u0001\\u001f\u{7f}\u{2028}\\n\\t\\r\\b\\fé🚀\"]"
        );
    }

    fn list(json: &str) -> Option<Vec<String>> {
        let v: Value = serde_json::from_str(json).unwrap();
        coerce_list(&v).map(|l| l.into_iter().map(Cow::into_owned).collect())
    }

    #[test]
    fn lists_from_arrays_and_json_array_strings() {
        assert_eq!(
            list(r#"["a", "", null, 1.0, true, [2], {"k":1}]"#).unwrap(),
            ["a", "1", "true", "[2]", r#"{"k":1}"#]
        );
        assert_eq!(
            list(r#""[\"a\", \"b\", \"\", 3]""#).unwrap(),
            ["a", "b", "3"]
        );
        assert_eq!(list(r#""[]""#).unwrap(), Vec::<String>::new());
        assert_eq!(list(r#""[1, 2] ""#).unwrap(), ["1", "2"]);
        assert_eq!(list(r#""[1, 2""#), None);
    }

    #[test]
    fn out_of_range_numbers_in_json_array_strings_are_infinity() {
        assert_eq!(
            list(r#""[1e400, -1e400, 2]""#),
            Some(vec!["Infinity".into(), "-Infinity".into(), "2".into()])
        );
    }

    #[test]
    fn non_lists() {
        assert_eq!(list(r#""[not json""#), None);
        assert_eq!(list(r#"" [1]""#), None);
        assert_eq!(list(r#""{\"a\":1}""#), None);
        assert_eq!(list(r#""[object Object]""#), None);
        assert_eq!(list(r#"{"a":1}"#), None);
        assert_eq!(list("5"), None);
        assert_eq!(list("true"), None);
        assert_eq!(list(r#""abc""#), None);
    }

    #[test]
    fn js_to_string_is_string_of_value() {
        let s = |v: Value| js_to_string(&v);
        assert_eq!(s(json!(null)), "null");
        assert_eq!(s(json!(1.5)), "1.5");
        assert_eq!(s(json!([1, null, [2, "x"], {}])), "1,,2,x,[object Object]");
        assert_eq!(s(json!({"a": 1})), "[object Object]");
    }

    #[test]
    fn array_indices() {
        for k in ["0", "1", "42", "4294967294"] {
            assert!(is_array_index(k), "{k}");
        }
        for k in [
            "",
            "01",
            "-1",
            "1.0",
            "4294967295",
            "99999999999",
            "a",
            "1a",
            " 1",
        ] {
            assert!(!is_array_index(k), "{k}");
        }
    }

    #[test]
    fn js_value_reorders_nested_objects_and_integral_floats() {
        let mut v: Value = serde_json::from_str(
            r#"{"z":{"b":1.0,"0":-0.0},"3":[{"x":1.5,"1":-2.0}],"big":1e300}"#,
        )
        .unwrap();
        to_js_value(&mut v);
        assert_eq!(
            serde_json::to_string(&v).unwrap(),
            r#"{"3":[{"1":-2,"x":1.5}],"z":{"0":0,"b":1},"big":1e+300}"#
        );
    }
}
