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

/// The flags decided so far: by flag index, and in the order they were decided.
struct Decided<'f, 'b> {
    flags: &'f Flags,
    by_flag: &'b mut [Option<&'f Variant>],
    results: Vec<(usize, &'f Variant)>,
}

impl<'a, 'f: 'a> Results<'a> for Decided<'f, '_> {
    fn get(&self, flag_key: &str) -> Option<&'a Value> {
        // A small deployment is scanned (no hashing); a large one uses the index.
        let i = if self.flags.flags.len() <= STACK_FLAGS {
            let (len, first) = (flag_key.len(), flag_key.as_bytes().first());
            self.flags.flags.iter().position(|f| {
                f.key.len() == len && f.key.as_bytes().first() == first && f.key == flag_key
            })?
        } else {
            *self.flags.index.get(flag_key)?
        };
        self.by_flag[i].map(|v| &v.value)
    }

    fn to_value(&self) -> Value {
        let mut map = Map::new();
        for (i, variant) in js_order(self.flags, self.results.clone()) {
            map.insert(self.flags.flags[i].key.clone(), variant.value.clone());
        }
        Value::Object(map)
    }
}

/// Deployments up to this many flags, and up to this many distinct selectors, evaluate
/// with their per-evaluation tables on the stack instead of the heap.
const STACK_FLAGS: usize = 32;
const STACK_SLOTS: usize = 8;

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
    let n = flags.flags.len();
    let mut on_stack = [None; STACK_FLAGS];
    let mut on_heap = Vec::new();
    let by_flag: &mut [Option<&Variant>] = if n <= STACK_FLAGS {
        &mut on_stack[..n]
    } else {
        on_heap.resize(n, None);
        &mut on_heap
    };
    let stack_slots: [Slot; STACK_SLOTS];
    let heap_slots: Vec<Slot>;
    let cache: &[Slot] = if flags.cache_slots <= STACK_SLOTS {
        stack_slots = std::array::from_fn(|_| Slot::default());
        &stack_slots[..flags.cache_slots]
    } else {
        heap_slots = (0..flags.cache_slots).map(|_| Slot::default()).collect();
        &heap_slots
    };
    let mut decided = Decided {
        flags,
        by_flag,
        results: Vec::with_capacity(order.len()),
    };
    for &i in order {
        let target = Target {
            context,
            results: &decided,
            cache,
        };
        if let Some(variant) = evaluate_flag(&flags.flags[i], &target, scratch)? {
            decided.by_flag[i] = Some(variant);
            decided.results.push((i, variant));
        }
    }
    Ok(js_order(flags, decided.results))
}

/// JS objects list array-index keys first (a flag named "42"), then the rest in insertion
/// order.
fn js_order<'f>(
    flags: &Flags,
    mut results: Vec<(usize, &'f Variant)>,
) -> Vec<(usize, &'f Variant)> {
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
