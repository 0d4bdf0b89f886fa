//! The shapes around the engine: an SDK user into an evaluation context, and v2 results
//! into the v1 response body.

use serde_json::{Map, Value};

use super::coerce;
use super::select;

/// The user fields that become `groups` instead of staying under `user`.
const GROUP_FIELDS: [&str; 3] = ["groups", "group_properties", "group_cohort_ids"];

/// As experiment-node-server's `convertUserToEvaluationContext`.
pub fn user_to_context(user: &Map<String, Value>) -> Value {
    let mut context = Map::new();
    let mut rest = user.clone();
    for field in GROUP_FIELDS {
        // `shift_remove` keeps the remaining fields in order (JS `delete` does).
        rest.shift_remove(field);
    }
    if !rest.is_empty() {
        context.insert("user".to_string(), Value::Object(rest));
    }
    // Only an object of group types yields groups; JS would also walk the indices of a
    // string or array here, which no SDK sends.
    let Some(Value::Object(group_types)) = user.get("groups") else {
        return Value::Object(context);
    };
    let mut groups = Map::new();
    for (group_type, names) in group_types {
        let Some(name) = first_group_name(names) else {
            continue;
        };
        let mut group = Map::new();
        group.insert("group_name".to_string(), name.clone());
        // `x[type][name]` with the name used as a property key, i.e. `String(name)`.
        let name_key = coerce::js_to_string(&name);
        let lookup = |field: &str| {
            let by_type = select::child(user.get(field)?, group_type)?;
            select::child(by_type, &name_key).filter(|v| has_own_keys(v))
        };
        if let Some(properties) = lookup("group_properties") {
            group.insert("group_properties".to_string(), properties.clone());
        }
        if let Some(cohort_ids) = lookup("group_cohort_ids") {
            group.insert("cohort_ids".to_string(), cohort_ids.clone());
        }
        groups.insert(group_type.clone(), Value::Object(group));
    }
    if !groups.is_empty() {
        context.insert("groups".to_string(), Value::Object(groups));
    }
    Value::Object(context)
}

/// `names.length > 0 && names[0]`: the first name, when it is truthy.
fn first_group_name(names: &Value) -> Option<Value> {
    let first = match names {
        Value::Array(items) => items.first()?.clone(),
        // A string's first character (the JS code only asks for `[0]`).
        Value::String(s) => Value::String(s.chars().next()?.to_string()),
        _ => return None,
    };
    is_truthy(&first).then_some(first)
}

fn is_truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => {
            let f = coerce::number_to_f64(n);
            f != 0.0 && !f.is_nan()
        }
        Value::String(s) => !s.is_empty(),
        Value::Array(_) | Value::Object(_) => true,
    }
}

/// `x && Object.keys(x).length > 0`.
fn has_own_keys(v: &Value) -> bool {
    match v {
        Value::Object(map) => !map.is_empty(),
        Value::Array(items) => !items.is_empty(),
        Value::String(s) => !s.is_empty(),
        _ => false,
    }
}

/// The v1 body: `{flag: {"key": value, "payload"?: .., "expKey"?: ..}}`, leaving out
/// default variants (`metadata.default == true`) and undeployed flags
/// (`metadata.deployed == false`).
pub fn to_v1(results: &Map<String, Value>) -> Map<String, Value> {
    results
        .iter()
        .filter_map(|(flag_key, variant)| Some((flag_key.clone(), v1_variant(variant)?)))
        .collect()
}

/// One variant in v1 form, or `None` when v1 leaves it out.
pub fn v1_variant(variant: &Value) -> Option<Value> {
    let metadata = variant.get("metadata");
    let flag = |name: &str| metadata.and_then(|m| m.get(name));
    if flag("default") == Some(&Value::Bool(true)) || flag("deployed") == Some(&Value::Bool(false))
    {
        return None;
    }
    let mut v1 = Map::new();
    // v1 `key` is the variant's value; a value-less variant is named by its key.
    // Non-string values are sent as their JSON text, as the SDKs convert them.
    let key = match variant.get("value").filter(|v| !v.is_null()) {
        Some(Value::String(s)) => Value::String(s.clone()),
        Some(other) => Value::String(
            coerce::coerce_string(other)
                .unwrap_or_default()
                .into_owned(),
        ),
        None => variant.get("key").cloned().unwrap_or(Value::Null),
    };
    v1.insert("key".to_string(), key);
    if let Some(payload) = variant.get("payload").filter(|p| !p.is_null()) {
        v1.insert("payload".to_string(), payload.clone());
    }
    if let Some(exp_key) = flag("experimentKey").filter(|k| !k.is_null()) {
        v1.insert("expKey".to_string(), exp_key.clone());
    }
    Some(Value::Object(v1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn context(user: Value) -> Value {
        user_to_context(user.as_object().unwrap())
    }

    #[test]
    fn user_fields_stay_under_user_in_order() {
        let got = context(
            json!({"user_id": "u", "groups": {}, "device_id": "d", "user_properties": {"a": 1}}),
        );
        assert_eq!(
            serde_json::to_string(&got).unwrap(),
            r#"{"user":{"user_id":"u","device_id":"d","user_properties":{"a":1}}}"#
        );
        assert_eq!(context(json!({})), json!({}));
        assert_eq!(
            context(json!({"groups": {"org": ["acme"]}})),
            json!({"groups": {"org": {"group_name": "acme"}}})
        );
    }

    #[test]
    fn first_group_name_with_its_properties_and_cohorts() {
        let got = context(json!({
            "user_id": "u",
            "groups": {"org": ["acme", "other"], "team": [], "empty": [""], "n": [7]},
            "group_properties": {"org": {"acme": {"tier": "gold"}, "other": {"tier": "x"}}, "n": {"7": {"k": "v"}}},
            "group_cohort_ids": {"org": {"acme": ["c1"]}, "team": {}}
        }));
        assert_eq!(
            got,
            json!({
                "user": {"user_id": "u"},
                "groups": {
                    "org": {"group_name": "acme", "group_properties": {"tier": "gold"}, "cohort_ids": ["c1"]},
                    "n": {"group_name": 7, "group_properties": {"k": "v"}}
                }
            })
        );
    }

    #[test]
    fn empty_group_properties_are_left_out() {
        let got = context(
            json!({"groups": {"org": ["a"]}, "group_properties": {"org": {"a": {}}}, "group_cohort_ids": {"org": {"a": []}}}),
        );
        assert_eq!(got, json!({"groups": {"org": {"group_name": "a"}}}));
    }

    /// Odd shapes, answers from experiment-node-server's `convertUserToEvaluationContext`.
    #[test]
    fn odd_group_shapes_as_node_server() {
        let got =
            context(json!({"groups": {"org": "abc"}, "group_properties": {"org": {"a": "str"}}}));
        assert_eq!(
            got,
            json!({"groups": {"org": {"group_name": "a", "group_properties": "str"}}})
        );
        let got = context(
            json!({"groups": {"org": [true]}, "group_properties": {"org": {"true": {"x": 1}}}}),
        );
        assert_eq!(
            got,
            json!({"groups": {"org": {"group_name": true, "group_properties": {"x": 1}}}})
        );
        let got = context(json!({"groups": {"org": [null], "t": 5}, "user_id": "u"}));
        assert_eq!(got, json!({"user": {"user_id": "u"}}));
    }

    #[test]
    fn v1_drops_defaults_and_undeployed() {
        let results = json!({
            "exp": {"key": "treatment", "value": "on", "payload": {"p": 1}, "metadata": {"experimentKey": "exp-1", "deployed": true}},
            "off": {"key": "off", "metadata": {"default": true}},
            "undeployed": {"key": "on", "value": "on", "metadata": {"deployed": false}},
            "nokey": {"key": "control", "metadata": {}},
            "num": {"key": "n", "value": 1.5, "payload": null, "metadata": {"experimentKey": null}},
            "obj": {"key": "o", "value": {"a": [1]}}
        });
        let got = to_v1(results.as_object().unwrap());
        assert_eq!(
            Value::Object(got),
            json!({
                "exp": {"key": "on", "payload": {"p": 1}, "expKey": "exp-1"},
                "nokey": {"key": "control"},
                "num": {"key": "1.5"},
                "obj": {"key": "{\"a\":[1]}"}
            })
        );
    }
}
