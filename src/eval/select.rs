//! Selectors: the paths (`["context","user","device_id"]`, `["result","flag-a","key"]`)
//! that conditions and buckets read their input from.
//!
//! A selector walks the evaluation *target*, which has two roots: `context` (the caller's
//! input) and `result` (the flags evaluated so far). As in JS, the walk descends through
//! objects *and arrays* (`["tags","0"]` is element 0), and an empty selector, an empty
//! step, a step into a non-container, or a final `null` all give "no value".

use serde::Deserialize;
use serde_json::Value;

use super::coerce;

/// A compiled selector. `None` steps means the selector can never select anything
/// (missing, empty, or with a falsy step such as `""`, `0` or `null`).
#[derive(Debug, Clone, Default)]
pub struct Selector {
    steps: Option<Box<[Box<str>]>>,
}

impl Selector {
    /// Compiles the JSON selector. Steps are used as JS property keys, so a number step
    /// `1` is the key `"1"`, and a falsy step makes the whole selector select nothing.
    pub fn new(raw: Option<&[Value]>) -> Selector {
        let steps = raw.filter(|s| !s.is_empty()).and_then(|raw| {
            raw.iter()
                .map(|step| match step {
                    Value::String(s) if !s.is_empty() => Some(s.as_str().into()),
                    Value::Number(n) if coerce::number_to_f64(n) != 0.0 => {
                        let mut key = String::new();
                        coerce::push_number(&mut key, n);
                        Some(key.into_boxed_str())
                    }
                    Value::Bool(true) => Some("true".into()),
                    _ => None,
                })
                .collect::<Option<Box<[_]>>>()
        });
        Selector { steps }
    }

    /// The value this selector points at in the target, or `None` for "no value" (JS
    /// `undefined` or `null`).
    pub fn select<'a>(&self, context: &'a Value, result: &'a Value) -> Option<&'a Value> {
        let steps = self.steps.as_deref()?;
        let (root, rest) = steps.split_first()?;
        let mut current = match &**root {
            "context" => context,
            "result" => result,
            _ => return None,
        };
        for step in rest {
            current = child(current, step)?;
        }
        (!current.is_null()).then_some(current)
    }
}

impl<'de> Deserialize<'de> for Selector {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = Option::<Vec<Value>>::deserialize(d)?;
        Ok(Selector::new(raw.as_deref()))
    }
}

/// One step of the walk: an object member, or an array element by canonical index.
pub fn child<'a>(value: &'a Value, key: &str) -> Option<&'a Value> {
    match value {
        Value::Object(map) => map.get(key),
        Value::Array(items) if coerce::is_array_index(key) => items.get(key.parse::<usize>().ok()?),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sel(selector: Value) -> Selector {
        serde_json::from_value(selector).unwrap()
    }

    #[test]
    fn walks_both_roots() {
        let context = json!({"user": {"device_id": "d1", "user_properties": {"plan": "pro"}}});
        let result = json!({"flag-a": {"key": "on"}});
        let pick = |s: Value| sel(s).select(&context, &result).cloned();
        assert_eq!(
            pick(json!(["context", "user", "device_id"])),
            Some(json!("d1"))
        );
        assert_eq!(
            pick(json!(["context", "user", "user_properties", "plan"])),
            Some(json!("pro"))
        );
        assert_eq!(pick(json!(["result", "flag-a", "key"])), Some(json!("on")));
        assert_eq!(pick(json!(["result"])), Some(result.clone()));
        assert_eq!(pick(json!(["context", "user", "missing"])), None);
        assert_eq!(pick(json!(["other", "user"])), None);
    }

    #[test]
    fn walks_arrays_by_canonical_index() {
        let context = json!({"user": {"tags": ["a", "b", null], "n": 5, "s": "str"}});
        let result = json!({});
        let pick = |s: Value| sel(s).select(&context, &result).cloned();
        assert_eq!(
            pick(json!(["context", "user", "tags", "0"])),
            Some(json!("a"))
        );
        assert_eq!(
            pick(json!(["context", "user", "tags", 1])),
            Some(json!("b"))
        );
        assert_eq!(
            pick(json!(["context", "user", "tags", "2"])),
            None,
            "null is no value"
        );
        assert_eq!(pick(json!(["context", "user", "tags", "3"])), None);
        assert_eq!(pick(json!(["context", "user", "tags", "01"])), None);
        assert_eq!(pick(json!(["context", "user", "tags", "-1"])), None);
        assert_eq!(
            pick(json!(["context", "user", "n", "0"])),
            None,
            "numbers have no members"
        );
        assert_eq!(
            pick(json!(["context", "user", "s", "0"])),
            None,
            "nor do strings"
        );
    }

    #[test]
    fn empty_and_falsy_selectors_select_nothing() {
        let context = json!({"": {"x": 1}, "user": {"0": "zero", "": 2}});
        let result = json!({});
        for s in [
            json!([]),
            json!(null),
            json!(["context", ""]),
            json!(["context", "user", 0]),
            json!(["context", null]),
        ] {
            assert_eq!(sel(s.clone()).select(&context, &result), None, "{s}");
        }
        assert_eq!(
            sel(json!(["context", "user", "0"])).select(&context, &result),
            Some(&json!("zero"))
        );
    }
}
