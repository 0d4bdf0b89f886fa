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
use super::select::{Results, Slot, Target, same};
use super::{EvalError, Flags};

/// The flags decided so far, by flag index. Flags are evaluated in `order`, so walking
/// `order` and skipping the undecided lists them in the order they were decided.
struct Decided<'f, 'b> {
    flags: &'f Flags,
    order: &'b [usize],
    by_flag: &'b mut [Option<&'f Variant>],
}

impl<'f> Decided<'f, '_> {
    fn iter(&self) -> impl Iterator<Item = (usize, &'f Variant)> + '_ {
        self.order
            .iter()
            .filter_map(|&i| self.by_flag[i].map(|variant| (i, variant)))
    }
}

/// The outcome of one evaluation, borrowed from the evaluation's own tables (no list is
/// allocated for it, unless a flag key is an array index and the order must be sorted).
pub struct Decisions<'f, 'b> {
    decided: &'b Decided<'f, 'b>,
}

impl<'f> Decisions<'f, '_> {
    /// Each decided flag's index and variant, in the order the JS results object lists
    /// them: array-index keys ("42") first, then the order of decision.
    pub fn for_each(&self, mut f: impl FnMut(usize, &'f Variant)) {
        let flags = self.decided.flags;
        if flags.any_index_keys {
            let mut sorted: Vec<(usize, &'f Variant)> = self.decided.iter().collect();
            sorted.sort_by_key(|&(i, _)| flags.flags[i].order_rank);
            sorted.into_iter().for_each(|(i, v)| f(i, v));
        } else {
            self.decided.iter().for_each(|(i, v)| f(i, v));
        }
    }
}

impl<'a, 'f: 'a> Results<'a> for Decided<'f, '_> {
    fn get(&self, flag_key: &str) -> Option<&'a Value> {
        // A small deployment is scanned (no hashing); a large one uses the index.
        let i = if self.flags.flags.len() <= STACK_FLAGS {
            self.flags
                .flags
                .iter()
                .position(|f| same(&f.key, flag_key))?
        } else {
            *self.flags.index.get(flag_key)?
        };
        self.by_flag[i].map(|v| &v.value)
    }

    fn to_value(&self) -> Value {
        let mut map = Map::new();
        Decisions { decided: self }.for_each(|i, variant| {
            map.insert(self.flags.flags[i].key.clone(), variant.value.clone());
        });
        Value::Object(map)
    }
}

/// Deployments up to this many flags, and up to this many distinct selectors, evaluate
/// with their per-evaluation tables on the stack instead of the heap.
const STACK_FLAGS: usize = 32;
const STACK_SLOTS: usize = 8;

/// Evaluates the flags at `order` (indices, parents first) for `context`, and hands the
/// outcome to `emit`.
pub fn run<'f, R>(
    flags: &'f Flags,
    order: &[usize],
    context: &Value,
    emit: impl FnOnce(&Decisions<'f, '_>) -> R,
) -> Result<R, EvalError> {
    // The bucketing key (`salt/value`) is built in a per-thread buffer: one allocation per
    // thread instead of one per evaluation.
    thread_local! {
        static SCRATCH: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
    }
    SCRATCH.with(|scratch| match scratch.try_borrow_mut() {
        Ok(mut scratch) => run_with(flags, order, context, &mut scratch, emit),
        // Not reentrant in practice; a fresh buffer keeps it correct if it ever is.
        Err(_) => run_with(flags, order, context, &mut String::new(), emit),
    })
}

fn run_with<'f, R>(
    flags: &'f Flags,
    order: &[usize],
    context: &Value,
    scratch: &mut String,
    emit: impl FnOnce(&Decisions<'f, '_>) -> R,
) -> Result<R, EvalError> {
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
    let decided = Decided {
        flags,
        order,
        by_flag,
    };
    for &i in order {
        let target = Target {
            context,
            results: &decided,
            cache,
        };
        if let Some(variant) = evaluate_flag(&flags.flags[i], &target, scratch)? {
            decided.by_flag[i] = Some(variant);
        }
    }
    Ok(emit(&Decisions { decided: &decided }))
}

/// The variant `flag` gives, or `None` when no segment yields one.
fn evaluate_flag<'f>(
    flag: &'f Flag,
    target: &Target<'_, '_>,
    scratch: &mut String,
) -> Result<Option<&'f Variant>, EvalError> {
    for segment in &flag.segments {
        if let Some(groups) = &segment.conditions
            && !any_group_holds(groups, target)?
        {
            continue;
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
