//! Conditions: one operator applied to one selected property, exactly as the JS engine's
//! `matchCondition` does it.
//!
//! The decision tree, which every port must follow to agree:
//! 1. No value (missing or `null`): the `(none)` rule ([`Condition::match_null`]).
//! 2. The value is a list (an array, or a string holding a JSON array): set operators
//!    compare it as a set; every other operator is true if **any** element matches (the
//!    negations too: `is not a` on `["a","b"]` is true). A set operator on a non-list is false.
//! 3. Otherwise the value is coerced to a string and compared with the filter values.
//!
//! Everything derivable from the filter values alone (numbers, versions, lowercase forms,
//! regexes, a hash set for long `is` lists) is prepared once, when the flags are parsed.

use std::borrow::Cow;
use std::collections::HashSet;

use serde::Deserialize;
use serde_json::Value;

use super::EvalError;
use super::coerce;
use super::number::js_number;
use super::regex::JsRegex;
use super::select::{Interner, Selector, Slot, Target};
use super::semver::{Version, js_cmp};

/// The filter value that means "no value".
const NONE: &str = "(none)";

/// `is` lists at least this long get a hash set.
const SET_THRESHOLD: usize = 8;

/// The operators, by their exact wire strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Is,
    IsNot,
    Contains,
    DoesNotContain,
    Less,
    LessOrEqual,
    Greater,
    GreaterOrEqual,
    VersionLess,
    VersionLessOrEqual,
    VersionGreater,
    VersionGreaterOrEqual,
    SetIs,
    SetIsNot,
    SetContains,
    SetDoesNotContain,
    SetContainsAny,
    SetDoesNotContainAny,
    RegexMatch,
    RegexDoesNotMatch,
    /// An operator this engine does not know: never matches, as in JS.
    Unknown,
}

impl Op {
    pub fn parse(s: &str) -> Op {
        match s {
            "is" => Op::Is,
            "is not" => Op::IsNot,
            "contains" => Op::Contains,
            "does not contain" => Op::DoesNotContain,
            "less" => Op::Less,
            "less or equal" => Op::LessOrEqual,
            "greater" => Op::Greater,
            "greater or equal" => Op::GreaterOrEqual,
            "version less" => Op::VersionLess,
            "version less or equal" => Op::VersionLessOrEqual,
            "version greater" => Op::VersionGreater,
            "version greater or equal" => Op::VersionGreaterOrEqual,
            "set is" => Op::SetIs,
            "set is not" => Op::SetIsNot,
            "set contains" => Op::SetContains,
            "set does not contain" => Op::SetDoesNotContain,
            "set contains any" => Op::SetContainsAny,
            "set does not contain any" => Op::SetDoesNotContainAny,
            "regex match" => Op::RegexMatch,
            "regex does not match" => Op::RegexDoesNotMatch,
            _ => Op::Unknown,
        }
    }

    fn is_set(self) -> bool {
        use Op::*;
        matches!(
            self,
            SetIs
                | SetIsNot
                | SetContains
                | SetDoesNotContain
                | SetContainsAny
                | SetDoesNotContainAny
        )
    }

    /// `a <op> b` for the four orderings (numeric and version alike); false otherwise.
    fn holds<T: PartialOrd + ?Sized>(self, a: &T, b: &T) -> bool {
        use Op::*;
        match self {
            Less | VersionLess => a < b,
            LessOrEqual | VersionLessOrEqual => a <= b,
            Greater | VersionGreater => a > b,
            GreaterOrEqual | VersionGreaterOrEqual => a >= b,
            _ => false,
        }
    }
}

/// A condition, compiled.
#[derive(Debug)]
pub struct Condition {
    selector: Selector,
    op: Op,
    values: Vec<String>,
    /// Some filter value is `(none)`.
    contains_none: bool,
    /// Some filter value is `true`/`false` in any case, which makes `is` case-insensitive
    /// for boolean-looking properties.
    has_booleans: bool,
    prepared: Prepared,
}

/// Per-operator forms of the filter values.
#[derive(Debug)]
enum Prepared {
    Plain,
    /// `is`/`is not` with many values and no boolean-looking one.
    Set(HashSet<String>),
    /// `contains`: lowercased.
    Lower(Vec<String>),
    /// `less` …: JS `Number(v)`, NaN included (it compares false).
    Numbers(Vec<f64>),
    /// `version …`: those that parse; when none does, string comparison is used.
    Versions(Vec<Version>),
    /// `regex …`: compiled, or the compile error, which is raised only if reached (as JS
    /// would throw then).
    Regexes(Vec<Result<JsRegex, String>>),
}

/// The wire form: `{"selector": [...], "op": "...", "values": [...]}`.
#[derive(Deserialize)]
pub struct WireCondition {
    #[serde(default)]
    selector: Selector,
    op: String,
    values: Vec<String>,
}

impl From<WireCondition> for Condition {
    fn from(wire: WireCondition) -> Condition {
        Condition::new(wire.selector, Op::parse(&wire.op), wire.values)
    }
}

impl<'de> Deserialize<'de> for Condition {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        WireCondition::deserialize(d).map(Condition::from)
    }
}

impl Condition {
    pub fn new(selector: Selector, op: Op, values: Vec<String>) -> Condition {
        use Op::*;
        let has_booleans = values.iter().any(|v| is_boolean(v));
        let prepared = match op {
            Is | IsNot if values.len() >= SET_THRESHOLD && !has_booleans => {
                Prepared::Set(values.iter().cloned().collect())
            }
            Contains | DoesNotContain => {
                Prepared::Lower(values.iter().map(|v| v.to_lowercase()).collect())
            }
            Less | LessOrEqual | Greater | GreaterOrEqual => {
                Prepared::Numbers(values.iter().map(|v| js_number(v)).collect())
            }
            VersionLess | VersionLessOrEqual | VersionGreater | VersionGreaterOrEqual => {
                Prepared::Versions(values.iter().filter_map(|v| Version::parse(v)).collect())
            }
            RegexMatch | RegexDoesNotMatch => {
                Prepared::Regexes(values.iter().map(|v| JsRegex::new(v)).collect())
            }
            _ => Prepared::Plain,
        };
        Condition {
            selector,
            op,
            contains_none: values.iter().any(|v| v == NONE),
            has_booleans,
            values,
            prepared,
        }
    }

    /// Gives the condition's selector its cache slot.
    pub fn intern(&mut self, interner: &mut Interner) {
        self.selector.intern(interner);
    }

    /// Whether the condition holds for the target. Fails only on an invalid regex that had
    /// to be tried.
    pub fn matches(&self, target: &Target<'_, '_>) -> Result<bool, EvalError> {
        let Some(prop) = self.selector.select(target) else {
            return Ok(self.match_null());
        };
        let prop: &Value = &prop;
        let slot = self.selector.slot(target);
        let list = coerce::coerce_list(prop);
        if self.op.is_set() {
            return Ok(list.is_some_and(|props| self.match_set(&props)));
        }
        if let Some(props) = list {
            for prop in &props {
                if self.match_string(prop, None)? {
                    return Ok(true);
                }
            }
            return Ok(false);
        }
        if let (Value::Number(n), Prepared::Numbers(filters)) = (prop, &self.prepared) {
            // JS prints the number and parses it back: the same double, so skip the text.
            let n = coerce::number_to_f64(n);
            return Ok(filters.iter().any(|f| self.op.holds(&n, f)));
        }
        match coerce::coerce_string(prop) {
            Some(s) => self.match_string(&s, slot),
            None => Ok(false),
        }
    }

    /// JS `matchNull`: a missing property matches `(none)` for the positive operators and
    /// its absence for the negative ones; everything else (`set is not`, both regex
    /// operators, unknown operators) is false.
    fn match_null(&self) -> bool {
        use Op::*;
        match self.op {
            Is
            | Contains
            | Less
            | LessOrEqual
            | Greater
            | GreaterOrEqual
            | VersionLess
            | VersionLessOrEqual
            | VersionGreater
            | VersionGreaterOrEqual
            | SetIs
            | SetContains
            | SetContainsAny => self.contains_none,
            IsNot | DoesNotContain | SetDoesNotContain | SetDoesNotContainAny => {
                !self.contains_none
            }
            _ => false,
        }
    }

    fn match_set(&self, props: &[Cow<'_, str>]) -> bool {
        let values = &self.values;
        match self.op {
            Op::SetIs => set_equals(props, values),
            Op::SetIsNot => !set_equals(props, values),
            Op::SetContains => contains_all(props, values),
            Op::SetDoesNotContain => !contains_all(props, values),
            Op::SetContainsAny => contains_any(props, values),
            Op::SetDoesNotContainAny => !contains_any(props, values),
            _ => false,
        }
    }

    /// JS `matchString`: one string property against the filter values. `slot` caches
    /// what is derived from the property (when it is a selector's scalar value).
    fn match_string(&self, prop: &str, slot: Option<&Slot<'_>>) -> Result<bool, EvalError> {
        use Op::*;
        use std::cmp::Ordering::Equal;
        Ok(match (self.op, &self.prepared) {
            (Is, _) => self.is(prop),
            (IsNot, _) => !self.is(prop),
            (Contains | DoesNotContain, Prepared::Lower(filters)) => {
                let owned;
                let lower = match slot {
                    Some(slot) => slot.lower.get_or_init(|| prop.to_lowercase()),
                    None => {
                        owned = prop.to_lowercase();
                        &owned
                    }
                };
                filters.iter().any(|f| lower.contains(f.as_str())) == (self.op == Contains)
            }
            (op, Prepared::Numbers(filters)) => {
                let n = slot.map_or_else(
                    || js_number(prop),
                    |s| *s.number.get_or_init(|| js_number(prop)),
                );
                filters.iter().any(|f| op.holds(&n, f))
            }
            (op, Prepared::Versions(filters)) => {
                let owned;
                let version = match slot {
                    Some(slot) => slot.version.get_or_init(|| Version::parse(prop)).as_ref(),
                    None => {
                        owned = Version::parse(prop);
                        owned.as_ref()
                    }
                };
                match version {
                    Some(v) if !filters.is_empty() => {
                        filters.iter().any(|f| op.holds(&v.compare(f), &Equal))
                    }
                    // Either side did not parse: JS compares every filter value as a string.
                    _ => self
                        .values
                        .iter()
                        .any(|f| op.holds(&js_cmp(prop, f), &Equal)),
                }
            }
            (RegexMatch, Prepared::Regexes(regexes)) => any_regex(prop, regexes)?,
            (RegexDoesNotMatch, Prepared::Regexes(regexes)) => !any_regex(prop, regexes)?,
            _ => false,
        })
    }

    /// `is` of the property against this condition's values.
    fn is(&self, prop: &str) -> bool {
        match &self.prepared {
            Prepared::Set(set) => set.contains(prop),
            _ => matches_is(prop, &self.values, self.has_booleans),
        }
    }
}

/// JS `matchesIs(x, list)`: exact membership, except that a boolean-looking `x` matches
/// case-insensitively when the list holds a boolean-looking string.
fn matches_is<S: AsRef<str>>(x: &str, list: &[S], list_has_booleans: bool) -> bool {
    if list_has_booleans && is_boolean(x) {
        return list.iter().any(|v| v.as_ref().eq_ignore_ascii_case(x));
    }
    list.iter().any(|v| super::select::same(v.as_ref(), x))
}

/// `s.toLowerCase()` is `true` or `false`. No non-ASCII character lowercases to an ASCII
/// letter of these words, so an ASCII case-insensitive test is exact.
fn is_boolean(s: &str) -> bool {
    s.eq_ignore_ascii_case("true") || s.eq_ignore_ascii_case("false")
}

fn any_regex(prop: &str, regexes: &[Result<JsRegex, String>]) -> Result<bool, EvalError> {
    for regex in regexes {
        match regex {
            Ok(regex) if regex.is_match(prop) => return Ok(true),
            Ok(_) => {}
            Err(message) => return Err(EvalError::InvalidRegex(message.clone())),
        }
    }
    Ok(false)
}

/// JS `setEquals`: the same distinct strings, exactly (no boolean case folding).
fn set_equals(props: &[Cow<'_, str>], values: &[String]) -> bool {
    let xs: HashSet<&str> = props.iter().map(|p| &**p).collect();
    let ys: HashSet<&str> = values.iter().map(String::as_str).collect();
    xs.len() == ys.len() && ys.iter().all(|y| xs.contains(y))
}

/// JS `matchesSetContainsAll`. Lists are not de-duplicated: `["a"]` does not contain
/// `["a","a"]`, because a shorter list of props fails first.
fn contains_all(props: &[Cow<'_, str>], values: &[String]) -> bool {
    if props.len() < values.len() {
        return false;
    }
    let props_have_booleans = props.iter().any(|p| is_boolean(p));
    values
        .iter()
        .all(|v| matches_is(v, props, props_have_booleans))
}

fn contains_any(props: &[Cow<'_, str>], values: &[String]) -> bool {
    let props_have_booleans = props.iter().any(|p| is_boolean(p));
    values
        .iter()
        .any(|v| matches_is(v, props, props_have_booleans))
}

#[cfg(test)]
#[path = "condition_tests.rs"]
mod tests;
