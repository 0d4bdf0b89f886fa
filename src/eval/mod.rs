//! In-process evaluation of Amplitude Experiment flag configurations (`/sdk/v2/flags`),
//! with the semantics of Amplitude's JavaScript engine (`@amplitude/experiment-core`
//! 0.13.6) wherever Amplitude's ports disagree.
//!
//! Pure: no I/O, no clocks, no shared state. Parse once with [`Flags::from_json`], which
//! prepares everything that does not depend on the user: each variant's finished result
//! (metadata merged, already serialized), filter numbers, versions and regexes, one cache
//! slot per distinct context selector, and the all-flags evaluation order. Then, per
//! request, [`evaluate`] returns the results as JSON values, or [`evaluate_json`] writes
//! the same response body directly (several times faster: it copies no values).
//!
//! - [`model`]: the flag format, parsed into what the engine runs on.
//! - [`topo`]: evaluation order (dependencies first).
//! - [`engine`]: segments, conditions, buckets, results.
//! - [`condition`]: the 20 operators and the `(none)` rule; [`number`], [`semver`] and
//!   [`regex`] give JS's `Number()`, version order and `RegExp`.
//! - [`bucket`] and [`murmur`]: hashing users into variants.
//! - [`select`] and [`coerce`]: reading properties and turning them into JS strings.
//! - [`convert`]: SDK user → context, v2 results → v1 body.
//!
//! The unit tests compare against answers recorded from the JS engine: `testdata/` holds
//! a table of every operator × filter values × property and a set of flag-evaluation cases,
//! and `testdata/gen.js` regenerates the answers.

mod bucket;
mod coerce;
mod condition;
mod convert;
mod engine;
mod model;
mod murmur;
mod number;
mod regex;
mod select;
mod semver;
mod topo;

use std::borrow::Cow;
use std::collections::HashMap;

use serde_json::value::RawValue;
use serde_json::{Map, Value};

pub use convert::{to_v1, user_to_context};

use model::Flag;

/// Why flags cannot be parsed or evaluated.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// The flags JSON is not an array of well-formed flags.
    #[error("invalid flags: {0}")]
    InvalidFlags(String),
    /// Flags depend on each other in a circle (the JS engine's message).
    #[error("{0}")]
    Cycle(String),
    /// A `regex match` filter value that is not a valid JS regex, reached while
    /// evaluating (JS would throw there too; unreached ones are harmless).
    #[error("{0}")]
    InvalidRegex(String),
}

/// A parsed flag configuration: flags in file order, one per key, plus an index by key.
#[derive(Debug)]
pub struct Flags {
    /// One per key, at the position of the key's first appearance, holding its last
    /// definition (as the SDKs' `map[flag.key] = flag` does).
    flags: Vec<Flag>,
    index: HashMap<String, usize>,
    /// Each flag's parents as indices; `None` for a parent that does not exist.
    parents: Vec<Vec<Option<usize>>>,
    /// The order in which evaluating every flag visits them, or the cycle it hits.
    all: Result<Vec<usize>, String>,
    /// The number of distinct `context` selectors (see [`select::Interner`]).
    cache_slots: usize,
    /// Whether a flag key is an array index ("42"), which JS lists first in results.
    any_index_keys: bool,
}

impl Flags {
    /// Parses a JSON array of flags as served by /sdk/v2/flags.
    pub fn from_json(json: &[u8]) -> Result<Flags, EvalError> {
        let invalid = |e: &dyn std::fmt::Display| EvalError::InvalidFlags(e.to_string());
        let raw: Vec<&RawValue> = serde_json::from_slice(json).map_err(|e| invalid(&e))?;
        let mut flags: Vec<Flag> = Vec::with_capacity(raw.len());
        let mut index = HashMap::with_capacity(raw.len());
        for (i, raw) in raw.into_iter().enumerate() {
            let flag = Flag::parse(raw).map_err(|e| invalid(&format!("flag #{i}: {e}")))?;
            match index.get(&flag.key) {
                Some(&at) => flags[at] = flag,
                None => {
                    index.insert(flag.key.clone(), flags.len());
                    flags.push(flag);
                }
            }
        }
        let parents: Vec<Vec<Option<usize>>> = flags
            .iter()
            .map(|f| {
                f.dependencies
                    .iter()
                    .map(|p| index.get(p).copied())
                    .collect()
            })
            .collect();
        // JS walks `Object.keys(flags)`: array-index keys first (ascending), then file order.
        let mut start: Vec<usize> = (0..flags.len()).collect();
        start.sort_by_key(|&i| flags[i].order_rank);
        let any_index_keys = flags.iter().any(|f| f.order_rank != u64::MAX);
        let mut interner = select::Interner::default();
        for flag in &mut flags {
            flag.intern(&mut interner);
        }
        let all = topo::order(&parents, |i| flags[i].key.as_str(), start);
        Ok(Flags {
            flags,
            index,
            parents,
            all,
            cache_slots: interner.len(),
            any_index_keys,
        })
    }

    /// The number of distinct flags.
    pub fn len(&self) -> usize {
        self.flags.len()
    }

    pub fn is_empty(&self) -> bool {
        self.flags.is_empty()
    }

    /// The flag keys, in file order (each once).
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.flags.iter().map(|f| f.key.as_str())
    }

    /// Flags as a JSON array (for serving /sdk/v2/flags), optionally only the given keys
    /// (in the order of the file). Each flag is as received, minus insignificant whitespace.
    pub fn to_json(&self, keys: Option<&[String]>) -> Vec<u8> {
        let picked: Vec<usize> = match keys {
            None => (0..self.flags.len()).collect(),
            Some(keys) => {
                let mut picked: Vec<usize> = keys
                    .iter()
                    .filter_map(|k| self.index.get(k).copied())
                    .collect();
                picked.sort_unstable();
                picked.dedup();
                picked
            }
        };
        let mut out = Vec::with_capacity(
            2 + picked
                .iter()
                .map(|&i| self.flags[i].json.len() + 1)
                .sum::<usize>(),
        );
        out.push(b'[');
        for (n, &i) in picked.iter().enumerate() {
            if n > 0 {
                out.push(b',');
            }
            out.extend_from_slice(self.flags[i].json.as_bytes());
        }
        out.push(b']');
        out
    }

    /// The evaluation order for a request: `flag_keys` (unknown ones skipped) with their
    /// dependencies, or every flag when `flag_keys` is empty.
    fn order(&self, flag_keys: &[String]) -> Result<Cow<'_, [usize]>, EvalError> {
        if flag_keys.is_empty() {
            return match &self.all {
                Ok(order) => Ok(Cow::Borrowed(order)),
                Err(cycle) => Err(EvalError::Cycle(cycle.clone())),
            };
        }
        let start = flag_keys.iter().filter_map(|k| self.index.get(k).copied());
        topo::order(&self.parents, |i| self.flags[i].key.as_str(), start)
            .map(Cow::Owned)
            .map_err(EvalError::Cycle)
    }
}

/// Evaluates `flags` for `context` ({"user": {...}, "groups": {...}} shape). `flag_keys`
/// empty = all flags.
///
/// Returns flag key -> variant object exactly as the JS engine does:
/// `{"key":..,"value":..,"payload":..,"metadata":{merged}}` with absent fields absent.
/// Flags pulled in as dependencies are included; flags no segment decides are absent.
///
/// The returned values are copies of prepared variants; when the answer is only going to
/// be serialized, [`evaluate_json`] writes the same bytes without building them.
pub fn evaluate(
    flags: &Flags,
    context: &Value,
    flag_keys: &[String],
) -> Result<Map<String, Value>, EvalError> {
    let order = flags.order(flag_keys)?;
    engine::run(flags, &order, context, |decided| {
        let mut map = Map::new();
        decided.for_each(|i, variant| {
            map.insert(flags.flags[i].key.clone(), variant.value.clone());
        });
        map
    })
}

/// The response body shapes [`evaluate_json`] writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// `serde_json::to_vec` of [`evaluate`]'s map.
    V2,
    /// `serde_json::to_vec` of [`to_v1`] of it.
    V1,
}

/// [`evaluate`], serialized: byte for byte what `serde_json::to_vec` of the v2 map (or of
/// its [`to_v1`] form) gives, written from text prepared at parse time, without building
/// or copying any JSON value. This is the fast path for serving evaluations.
pub fn evaluate_json(
    flags: &Flags,
    context: &Value,
    flag_keys: &[String],
    shape: Shape,
) -> Result<Vec<u8>, EvalError> {
    let order = flags.order(flag_keys)?;
    engine::run(flags, &order, context, |decided| {
        fn member(variant: &model::Variant, shape: Shape) -> Option<&str> {
            match shape {
                Shape::V2 => Some(&variant.v2_member),
                Shape::V1 => variant.v1_member.as_deref(),
            }
        }
        // Sized exactly up front (braces, members, a comma before each but the first):
        // the answer is built without reallocating.
        let mut size = 1;
        decided.for_each(|_, variant| size += member(variant, shape).map_or(0, |m| m.len() + 1));
        let mut out = Vec::with_capacity(size.max(2));
        out.push(b'{');
        decided.for_each(|_, variant| {
            if let Some(member) = member(variant, shape) {
                if out.len() > 1 {
                    out.push(b',');
                }
                out.extend_from_slice(member.as_bytes());
            }
        });
        out.push(b'}');
        out
    })
}

#[cfg(test)]
mod tests;
