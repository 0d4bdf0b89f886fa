//! Selectors: the paths (`["context","user","device_id"]`, `["result","flag-a","key"]`)
//! that conditions and buckets read their input from.
//!
//! A selector walks the evaluation *target*, which has two roots: `context` (the caller's
//! input) and `result` (the flags evaluated so far). As in JS, the walk descends through
//! objects *and arrays* (`["tags","0"]` is element 0), and an empty selector, an empty
//! step, a step into a non-container, or a final `null` all give "no value".
//!
//! Flags share selectors heavily (every bucket reads `device_id`, many conditions the same
//! property), so each distinct `context` selector gets a slot when the flags are parsed
//! ([`Interner`]) and is walked at most once per evaluation ([`Target::cache`]).

use std::cell::OnceCell;
use std::collections::HashMap;
use std::ops::Deref;

use serde::Deserialize;
use serde_json::Value;

use super::coerce;
use super::semver::Version;

/// What selectors walk: the caller's context and the results so far.
/// `'a` is the lifetime of the data selected; `'t` that of this view of it.
pub struct Target<'t, 'a> {
    pub context: &'a Value,
    pub results: &'t dyn Results<'a>,
    /// One slot per interned selector.
    pub cache: &'t [Slot<'a>],
}

/// One interned selector's answer in one evaluation, and forms derived from it as a
/// scalar string, each computed at most once (many flags compare the same property).
#[derive(Default)]
pub struct Slot<'a> {
    value: OnceCell<Option<&'a Value>>,
    /// JS `Number(s)`.
    pub number: OnceCell<f64>,
    /// The parsed version, if it parses.
    pub version: OnceCell<Option<Version>>,
    /// JS `toLowerCase()`.
    pub lower: OnceCell<String>,
}

/// Gives each distinct `context` selector a cache slot.
#[derive(Default)]
pub struct Interner {
    slots: HashMap<Box<[Box<str>]>, usize>,
}

impl Interner {
    /// The number of slots handed out: the length of [`Target::cache`].
    pub fn len(&self) -> usize {
        self.slots.len()
    }
}

/// The flags evaluated so far, as the `result` root sees them.
pub trait Results<'a> {
    /// The variant a flag got, if it has been evaluated and got one.
    fn get(&self, flag_key: &str) -> Option<&'a Value>;
    /// All of them as one object (only `["result"]` alone selects this).
    fn to_value(&self) -> Value;
}

/// A selected value: borrowed from the target, or (only for `["result"]`) built.
/// Small on purpose: it is returned on every condition's hot path.
pub enum Selected<'a> {
    Borrowed(&'a Value),
    Owned(Box<Value>),
}

impl Deref for Selected<'_> {
    type Target = Value;

    fn deref(&self) -> &Value {
        match self {
            Selected::Borrowed(v) => v,
            Selected::Owned(v) => v,
        }
    }
}

/// A compiled selector. `None` steps means the selector can never select anything
/// (missing, empty, or with a falsy step such as `""`, `0` or `null`).
#[derive(Debug, Clone, Default)]
pub struct Selector {
    steps: Option<Box<[Box<str>]>>,
    /// The cache slot, for an interned `context` selector.
    slot: Option<usize>,
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
        Selector { steps, slot: None }
    }

    /// Assigns this selector its cache slot, if it reads the context (what `result`
    /// selectors see changes during an evaluation, so they are not cached).
    pub fn intern(&mut self, interner: &mut Interner) {
        if let Some(steps) = &self.steps
            && &*steps[0] == "context"
        {
            let next = interner.slots.len();
            self.slot = Some(*interner.slots.entry(steps.clone()).or_insert(next));
        }
    }

    /// The value this selector points at in the target, or `None` for "no value" (JS
    /// `undefined` or `null`). Borrowed, except for the rare `["result"]`.
    pub fn select<'a>(&self, target: &Target<'_, 'a>) -> Option<Selected<'a>> {
        if let Some(slot) = self.slot(target) {
            return slot
                .value
                .get_or_init(|| self.walk_context(target.context))
                .map(Selected::Borrowed);
        }
        let steps = self.steps.as_deref()?;
        let (root, rest) = steps.split_first()?;
        let mut current = match (&**root, rest) {
            ("context", _) => target.context,
            ("result", [flag, rest @ ..]) => {
                let mut current = target.results.get(flag)?;
                for step in rest {
                    current = child(current, step)?;
                }
                return (!current.is_null()).then_some(Selected::Borrowed(current));
            }
            ("result", []) => return Some(Selected::Owned(Box::new(target.results.to_value()))),
            _ => return None,
        };
        for step in rest {
            current = child(current, step)?;
        }
        (!current.is_null()).then_some(Selected::Borrowed(current))
    }

    /// This selector's slot in the target's cache, if it has one.
    pub fn slot<'t, 'a>(&self, target: &Target<'t, 'a>) -> Option<&'t Slot<'a>> {
        target.cache.get(self.slot?)
    }

    /// The walk of a `context` selector.
    fn walk_context<'a>(&self, context: &'a Value) -> Option<&'a Value> {
        let steps = self.steps.as_deref()?;
        let mut current = context;
        for step in &steps[1..] {
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

/// Below this many members a linear scan beats hashing the key.
const SCAN_LIMIT: usize = 8;

/// String equality that compares short strings in registers: member names and flag keys
/// are short, and a call out to `memcmp` costs more than the comparison itself.
#[inline]
pub fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let n = a.len();
    if n != b.len() {
        return false;
    }
    // Two overlapping words cover every length from one word to two.
    let u64_at = |s: &[u8], i: usize| u64::from_ne_bytes(s[i..i + 8].try_into().expect("8 bytes"));
    let u32_at = |s: &[u8], i: usize| u32::from_ne_bytes(s[i..i + 4].try_into().expect("4 bytes"));
    match n {
        0..4 => a.iter().zip(b).all(|(x, y)| x == y),
        4..8 => u32_at(a, 0) == u32_at(b, 0) && u32_at(a, n - 4) == u32_at(b, n - 4),
        8..=16 => u64_at(a, 0) == u64_at(b, 0) && u64_at(a, n - 8) == u64_at(b, n - 8),
        _ => a == b,
    }
}

/// One step of the walk: an object member, or an array element by canonical index.
pub fn child<'a>(value: &'a Value, key: &str) -> Option<&'a Value> {
    match value {
        Value::Object(map) if map.len() <= SCAN_LIMIT => {
            map.iter().find(|(k, _)| same(k, key)).map(|(_, v)| v)
        }
        Value::Object(map) => map.get(key),
        Value::Array(items) if coerce::is_array_index(key) => items.get(key.parse::<usize>().ok()?),
        _ => None,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    /// Results backed by a JSON object, for tests.
    pub struct MapResults<'a>(pub &'a Value);

    impl<'a> Results<'a> for MapResults<'a> {
        fn get(&self, flag_key: &str) -> Option<&'a Value> {
            self.0.get(flag_key)
        }
        fn to_value(&self) -> Value {
            self.0.clone()
        }
    }

    fn sel(selector: Value) -> Selector {
        serde_json::from_value(selector).unwrap()
    }

    fn pick(selector: Value, context: &Value, result: &Value) -> Option<Value> {
        let results = MapResults(result);
        let uncached = Target {
            context,
            results: &results,
            cache: &[],
        };
        let want = sel(selector.clone()).select(&uncached).map(|s| s.clone());
        // The same through the cache, twice.
        let mut interner = Interner::default();
        let mut interned = sel(selector);
        interned.intern(&mut interner);
        let cache: Vec<Slot> = (0..interner.len()).map(|_| Slot::default()).collect();
        let cached = Target {
            context,
            results: &results,
            cache: &cache,
        };
        for _ in 0..2 {
            assert_eq!(interned.select(&cached).map(|s| s.clone()), want);
        }
        want
    }

    #[test]
    fn walks_both_roots() {
        let context = json!({"user": {"device_id": "d1", "user_properties": {"plan": "pro"}}});
        let result = json!({"flag-a": {"key": "on"}});
        let pick = |s: Value| pick(s, &context, &result);
        assert_eq!(
            pick(json!(["context", "user", "device_id"])),
            Some(json!("d1"))
        );
        assert_eq!(
            pick(json!(["context", "user", "user_properties", "plan"])),
            Some(json!("pro"))
        );
        assert_eq!(pick(json!(["result", "flag-a", "key"])), Some(json!("on")));
        assert_eq!(
            pick(json!(["result", "flag-a"])),
            Some(json!({"key": "on"}))
        );
        assert_eq!(pick(json!(["result"])), Some(result.clone()));
        assert_eq!(pick(json!(["result", "flag-b", "key"])), None);
        assert_eq!(pick(json!(["context", "user", "missing"])), None);
        assert_eq!(pick(json!(["other", "user"])), None);
    }

    #[test]
    fn walks_arrays_by_canonical_index() {
        let context = json!({"user": {"tags": ["a", "b", null], "n": 5, "s": "str"}});
        let result = json!({});
        let pick = |s: Value| pick(s, &context, &result);
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
            assert_eq!(pick(s.clone(), &context, &result), None, "{s}");
        }
        assert_eq!(
            pick(json!(["context", "user", "0"]), &context, &result),
            Some(json!("zero"))
        );
    }

    #[test]
    fn same_agrees_with_string_equality_at_every_length() {
        for n in 0..40 {
            let a: String = (0..n).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
            assert!(same(&a, &a.clone()), "{a:?}");
            for at in 0..n {
                // One byte differs, at each position (including the overlap of the words).
                let mut b = a.clone().into_bytes();
                b[at] = b'#';
                let b = String::from_utf8(b).unwrap();
                assert!(!same(&a, &b), "{a:?} vs {b:?}");
            }
            assert!(!same(&a, &format!("{a}x")));
        }
        assert!(same("é", "é") && !same("é", "è"));
    }
}
