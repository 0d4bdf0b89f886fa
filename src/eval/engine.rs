//! The evaluation loop: flags in dependency order, segments in order, first variant wins.
//!
//! For each flag, the first segment whose conditions hold *and* that yields a known
//! variant decides it; a segment whose bucket lands on no variant, or on a key missing from
//! `variants`, falls through to the next. A flag no segment decides is absent from the
//! results. Each result is recorded at once, so later flags can select
//! `["result", <flag>, "key"]`.

use serde_json::{Map, Value};

use super::EvalError;
use super::bucket::Bucketed;
use super::coerce;
use super::condition::Condition;
use super::model::Flag;

/// Evaluates `flags` (already in dependency order) for `context`.
pub fn run<'f>(
    flags: impl Iterator<Item = &'f Flag>,
    context: &Value,
) -> Result<Map<String, Value>, EvalError> {
    // A `Value` so selectors can walk it like the context (`["result"]` alone is legal).
    let mut results = Value::Object(Map::new());
    let mut scratch = String::new();
    for flag in flags {
        if let Some(variant) = evaluate_flag(flag, context, &results, &mut scratch)? {
            if let Value::Object(map) = &mut results {
                map.insert(flag.key.clone(), variant.clone());
            }
        }
    }
    let Value::Object(mut results) = results else {
        unreachable!("results is built as an object")
    };
    // The JS results object lists array-index keys (a flag named "42") first.
    coerce::sort_js_keys(&mut results);
    Ok(results)
}

/// The variant `flag` gives, or `None` when no segment yields one.
fn evaluate_flag<'f>(
    flag: &'f Flag,
    context: &Value,
    results: &Value,
    scratch: &mut String,
) -> Result<Option<&'f Value>, EvalError> {
    for segment in &flag.segments {
        if let Some(groups) = &segment.conditions {
            if !any_group_holds(groups, context, results)? {
                continue;
            }
        }
        let outcome = match &segment.bucket {
            None => &segment.variant,
            Some(bucket) => match bucket.bucket(context, results, scratch) {
                Bucketed::Default => &segment.variant,
                Bucketed::Variant(outcome) => outcome,
            },
        };
        if let Some(variant) = outcome {
            return Ok(Some(variant));
        }
    }
    Ok(None)
}

/// OR over groups, AND within a group, both short-circuiting in order as JS does (which
/// decides whether an invalid regex further on is ever reached).
fn any_group_holds(
    groups: &[Vec<Condition>],
    context: &Value,
    results: &Value,
) -> Result<bool, EvalError> {
    for group in groups {
        let mut all = true;
        for condition in group {
            if !condition.matches(context, results)? {
                all = false;
                break;
            }
        }
        if all {
            return Ok(true);
        }
    }
    Ok(false)
}
