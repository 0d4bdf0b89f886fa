//! The evaluation loop: flags in dependency order, segments in order, first variant wins.
//!
//! For each flag, the first segment whose conditions hold *and* that yields a known
//! variant decides it; a segment whose bucket lands on no variant, or on a key missing from
//! `variants`, falls through to the next. A flag no segment decides is absent from the
//! results. Each result is recorded at once, so later flags can select
//! `["result", <flag>, "key"]`.
//!
//! Nothing is copied here: a result is a reference to a variant prepared at parse time.
//! Callers copy or serialize what they return.

use serde_json::{Map, Value};

use super::bucket::Bucketed;
use super::condition::Condition;
use super::model::{Flag, Variant};
use super::select::{Results, Slot, Target};
use super::{EvalError, Flags};

/// The flags decided so far, by flag index.
struct Decided<'f> {
    flags: &'f Flags,
    by_flag: Vec<Option<&'f Variant>>,
    order: Vec<usize>,
}

impl<'a, 'f: 'a> Results<'a> for Decided<'f> {
    fn get(&self, flag_key: &str) -> Option<&'a Value> {
        let i = *self.flags.index.get(flag_key)?;
        self.by_flag[i].map(|v| &v.value)
    }

    fn to_value(&self) -> Value {
        let mut map = Map::new();
        for (i, variant) in js_order(
            self.flags,
            self.order
                .iter()
                .map(|&i| (i, self.by_flag[i].expect("decided"))),
        ) {
            map.insert(self.flags.flags[i].key.clone(), variant.value.clone());
        }
        Value::Object(map)
    }
}

/// Evaluates the flags at `order` (indices, parents first) for `context`. Returns each
/// decided flag's index and variant in the order the JS results object lists them.
pub fn run<'f>(
    flags: &'f Flags,
    order: &[usize],
    context: &Value,
) -> Result<Vec<(usize, &'f Variant)>, EvalError> {
    // The bucketing key (`salt/value`) is built in a per-thread buffer: one allocation per
    // thread instead of one per evaluation.
    thread_local! {
        static SCRATCH: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
    }
    SCRATCH.with(|scratch| match scratch.try_borrow_mut() {
        Ok(mut scratch) => run_with(flags, order, context, &mut scratch),
        // Not reentrant in practice; a fresh buffer keeps it correct if it ever is.
        Err(_) => run_with(flags, order, context, &mut String::new()),
    })
}

fn run_with<'f>(
    flags: &'f Flags,
    order: &[usize],
    context: &Value,
    scratch: &mut String,
) -> Result<Vec<(usize, &'f Variant)>, EvalError> {
    let mut decided = Decided {
        flags,
        by_flag: vec![None; flags.flags.len()],
        order: Vec::with_capacity(order.len()),
    };
    let cache: Vec<Slot> = (0..flags.cache_slots).map(|_| Slot::default()).collect();
    for &i in order {
        let target = Target {
            context,
            results: &decided,
            cache: &cache,
        };
        if let Some(variant) = evaluate_flag(&flags.flags[i], &target, scratch)? {
            decided.by_flag[i] = Some(variant);
            decided.order.push(i);
        }
    }
    let Decided { by_flag, order, .. } = decided;
    Ok(js_order(
        flags,
        order.into_iter().map(|i| (i, by_flag[i].expect("decided"))),
    ))
}

/// JS objects list array-index keys first (a flag named "42"), then the rest in insertion
/// order.
fn js_order<'f>(
    flags: &Flags,
    results: impl Iterator<Item = (usize, &'f Variant)>,
) -> Vec<(usize, &'f Variant)> {
    let mut results: Vec<_> = results.collect();
    if results
        .iter()
        .any(|&(i, _)| flags.flags[i].order_rank != u64::MAX)
    {
        results.sort_by_key(|&(i, _)| flags.flags[i].order_rank);
    }
    results
}

/// The variant `flag` gives, or `None` when no segment yields one.
fn evaluate_flag<'f>(
    flag: &'f Flag,
    target: &Target<'_, '_>,
    scratch: &mut String,
) -> Result<Option<&'f Variant>, EvalError> {
    for segment in &flag.segments {
        if let Some(groups) = &segment.conditions {
            if !any_group_holds(groups, target)? {
                continue;
            }
        }
        let outcome = match &segment.bucket {
            None => &segment.variant,
            Some(bucket) => match bucket.bucket(target, scratch) {
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
fn any_group_holds(groups: &[Vec<Condition>], target: &Target<'_, '_>) -> Result<bool, EvalError> {
    for group in groups {
        let mut all = true;
        for condition in group {
            if !condition.matches(target)? {
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
