//! The flag-configuration format (`/sdk/v2/flags`), parsed once into the form the engine
//! runs on.
//!
//! ```text
//! Flag         {key, variants: {key: Variant}, segments: [Segment], dependencies?, metadata?}
//! Variant      {key, value?, payload?, metadata?, ...}        (returned as received)
//! Segment      {bucket?, conditions?: [[Condition]], variant?, metadata?}
//! Bucket       {selector, salt, allocations: [{range: [a, b], distributions: [{variant, range}]}]}
//! ```
//!
//! Parsing resolves every variant reference to its finished result object, so evaluating
//! a flag never merges metadata or looks variants up: the JS engine's result for a variant
//! picked by a segment is always `{...variant, metadata: {...flag, ...segment, ...variant}}`.

use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::bucket::{Allocation, Bucket, Distribution};
use super::coerce;
use super::condition::Condition;
use super::convert;
use super::select::{Interner, Selector};

/// A variant a segment can hand out, or `None` when the key names no variant, which makes
/// the segment fall through to the next one.
pub type Outcome = Option<Box<Variant>>;

/// A finished result: the variant object as the JS engine returns it (flag, segment and
/// variant metadata already merged), with its serialized forms ready for
/// [`super::evaluate_json`].
#[derive(Debug)]
pub struct Variant {
    pub value: Value,
    /// The result member for this variant, `"<flag key>":<value>`, as serde_json writes
    /// it: an answer is these members joined, one copy per flag.
    pub v2_member: Box<str>,
    /// The same for the v1 form; `None` when v1 leaves the variant out.
    pub v1_member: Option<Box<str>>,
    /// Where the value starts in the members.
    #[cfg(test)]
    value_at: usize,
}

impl Variant {
    /// `flag_key_json` is the flag's key as a JSON string literal.
    pub fn new(flag_key_json: &str, value: Value) -> Variant {
        let member = |v: &Value| {
            let mut out = String::with_capacity(flag_key_json.len() + 64);
            out.push_str(flag_key_json);
            out.push(':');
            out.push_str(&serde_json::to_string(v).expect("a Value serializes"));
            out.into_boxed_str()
        };
        Variant {
            v1_member: convert::v1_variant(&value).map(|v1| member(&v1)),
            v2_member: member(&value),
            #[cfg(test)]
            value_at: flag_key_json.len() + 1,
            value,
        }
    }

    /// `value` as serde_json writes it.
    #[cfg(test)]
    pub fn v2_json(&self) -> &str {
        &self.v2_member[self.value_at..]
    }

    /// The v1 form as serde_json writes it.
    #[cfg(test)]
    pub fn v1_json(&self) -> Option<&str> {
        self.v1_member.as_deref().map(|m| &m[self.value_at..])
    }
}

/// A flag, ready to evaluate.
#[derive(Debug)]
pub struct Flag {
    pub key: String,
    /// The key's position among JS property keys: array-index keys (`"42"`) come first.
    pub order_rank: u64,
    pub segments: Vec<Segment>,
    /// Parent flag keys, as listed.
    pub dependencies: Vec<String>,
    /// The flag as received, minus insignificant whitespace, for serving it again.
    pub json: String,
}

/// A segment: who it targets (`conditions`) and what they get (`bucket`, `variant`).
#[derive(Debug)]
pub struct Segment {
    /// `None` matches everyone; otherwise an OR of ANDs (`[]` matches no one, `[[]]` everyone).
    pub conditions: Option<Vec<Vec<Condition>>>,
    pub bucket: Option<Bucket>,
    /// The segment's own variant: used without a bucket, or when bucketing finds no
    /// distribution.
    pub variant: Outcome,
}

#[derive(Deserialize)]
struct WireFlag {
    key: String,
    /// Absent variants are treated as none (JS would throw once a segment picked one).
    #[serde(default)]
    variants: Map<String, Value>,
    segments: Vec<WireSegment>,
    #[serde(default)]
    dependencies: Option<Vec<String>>,
    #[serde(default)]
    metadata: Option<Value>,
}

#[derive(Deserialize)]
struct WireSegment {
    #[serde(default)]
    bucket: Option<WireBucket>,
    #[serde(default)]
    conditions: Option<Vec<Vec<Condition>>>,
    #[serde(default, deserialize_with = "present")]
    variant: Option<Value>,
    #[serde(default)]
    metadata: Option<Value>,
}

#[derive(Deserialize)]
struct WireBucket {
    #[serde(default)]
    selector: Selector,
    #[serde(default, deserialize_with = "present")]
    salt: Option<Value>,
    allocations: Vec<WireAllocation>,
}

#[derive(Deserialize)]
struct WireAllocation {
    range: Vec<f64>,
    distributions: Vec<WireDistribution>,
}

#[derive(Deserialize)]
struct WireDistribution {
    #[serde(default, deserialize_with = "present")]
    variant: Option<Value>,
    range: Vec<f64>,
}

/// Keeps an explicit `null` as `Some(Value::Null)`; only a missing field is `None`. JS
/// tells them apart: a `null` variant key looks up the variant named `"null"`.
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

impl Flag {
    /// Parses one flag of the array.
    pub fn parse(raw: &RawValue) -> Result<Flag, String> {
        let wire: WireFlag = serde_json::from_str(raw.get()).map_err(|e| e.to_string())?;
        let key = wire.key;
        for (name, variant) in &wire.variants {
            if !matches!(variant, Value::Object(_) | Value::Null) {
                return Err(format!("flag {key:?}: variant {name:?} is not an object"));
            }
        }
        let key_json = serde_json::to_string(&key).expect("a string serializes");
        let flag_metadata = wire.metadata.as_ref();
        let segments = wire
            .segments
            .into_iter()
            .map(|s| {
                let resolve = |variant: Option<&Value>| {
                    outcome(
                        &key_json,
                        &wire.variants,
                        flag_metadata,
                        s.metadata.as_ref(),
                        variant,
                    )
                };
                let bucket = s.bucket.map(|b| Bucket {
                    selector: b.selector,
                    salt: b
                        .salt
                        .as_ref()
                        .map_or_else(|| "undefined".to_string(), coerce::js_to_string),
                    allocations: b
                        .allocations
                        .into_iter()
                        .map(|a| Allocation {
                            start: bound(&a.range, 0),
                            end: bound(&a.range, 1),
                            distributions: a
                                .distributions
                                .into_iter()
                                .map(|d| Distribution {
                                    start: bound(&d.range, 0),
                                    end: bound(&d.range, 1),
                                    outcome: resolve(d.variant.as_ref()),
                                })
                                .collect(),
                        })
                        .collect(),
                });
                Segment {
                    conditions: s.conditions,
                    bucket,
                    variant: resolve(s.variant.as_ref()),
                }
            })
            .collect();
        Ok(Flag {
            order_rank: coerce::js_key_rank(&key),
            key,
            segments,
            dependencies: wire.dependencies.unwrap_or_default(),
            json: minify(raw.get()),
        })
    }
}

impl Flag {
    /// Gives every selector of the flag its cache slot.
    pub fn intern(&mut self, interner: &mut Interner) {
        for segment in &mut self.segments {
            for condition in segment.conditions.iter_mut().flatten().flatten() {
                condition.intern(interner);
            }
            if let Some(bucket) = &mut segment.bucket {
                bucket.selector.intern(interner);
            }
        }
    }
}

/// `range[i]`, or NaN (never in range) when absent, as JS `undefined` compares.
fn bound(range: &[f64], i: usize) -> f64 {
    range.get(i).copied().unwrap_or(f64::NAN)
}

/// The finished result for a variant reference: the variant object with the merged
/// metadata, in JS property order. `None` when the reference is absent or names no variant
/// (the segment then falls through).
fn outcome(
    key_json: &str,
    variants: &Map<String, Value>,
    flag_metadata: Option<&Value>,
    segment_metadata: Option<&Value>,
    reference: Option<&Value>,
) -> Outcome {
    // A key is any JS value used as a property name, i.e. `String(value)`.
    let key = coerce::js_to_string(reference?);
    let Some(Value::Object(variant)) = variants.get(&key) else {
        return None;
    };
    let mut metadata = Map::new();
    // `Object.assign`: later sources override, an existing key keeps its place; null and
    // non-object sources add nothing.
    for source in [flag_metadata, segment_metadata, variant.get("metadata")] {
        if let Some(Value::Object(source)) = source {
            for (k, v) in source {
                metadata.insert(k.clone(), v.clone());
            }
        }
    }
    let mut result = variant.clone();
    result.insert("metadata".to_string(), Value::Object(metadata));
    let mut result = Value::Object(result);
    coerce::to_js_value(&mut result);
    Some(Box::new(Variant::new(key_json, result)))
}

/// Drops the whitespace between JSON tokens, keeping every token byte for byte.
pub fn minify(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    let mut in_string = false;
    let mut escaped = false;
    for c in json.chars() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if !matches!(c, ' ' | '\t' | '\n' | '\r') {
            in_string = c == '"';
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Flag {
        let raw = serde_json::value::to_raw_value(&v).unwrap();
        Flag::parse(&raw).unwrap()
    }

    #[test]
    fn metadata_merges_flag_segment_variant_with_nulls_kept() {
        let flag = parse(json!({
            "key": "f",
            "metadata": {"a": "flag", "b": "flag", "c": "flag", "0": "index"},
            "segments": [{"metadata": {"b": "segment", "d": null}, "variant": "on"}],
            "variants": {"on": {"metadata": {"c": "variant", "e": 1}, "key": "on", "value": "v", "extra": true}}
        }));
        let got = flag.segments[0].variant.as_deref().unwrap();
        assert_eq!(
            got.v2_json(),
            r#"{"metadata":{"0":"index","a":"flag","b":"segment","c":"variant","d":null,"e":1},"key":"on","value":"v","extra":true}"#
        );
    }

    #[test]
    fn variant_without_metadata_gets_it_last() {
        let flag = parse(
            json!({"key": "f", "segments": [{"variant": "on"}], "variants": {"on": {"key": "on"}}}),
        );
        let got = flag.segments[0].variant.as_deref().unwrap();
        assert_eq!(got.v2_json(), r#"{"key":"on","metadata":{}}"#);
        assert_eq!(got.v1_json(), Some(r#"{"key":"on"}"#));
    }

    #[test]
    fn unknown_null_and_missing_variant_references() {
        let flag = parse(json!({
            "key": "f",
            "segments": [{"variant": "nope"}, {}, {"variant": null}, {"variant": 1}],
            "variants": {"null": {"key": "null"}, "1": {"key": "one"}, "off": null}
        }));
        assert!(flag.segments[0].variant.is_none());
        assert!(flag.segments[1].variant.is_none());
        assert_eq!(
            flag.segments[2].variant.as_ref().unwrap().value["key"],
            "null"
        );
        assert_eq!(
            flag.segments[3].variant.as_ref().unwrap().value["key"],
            "one"
        );
    }

    #[test]
    fn salts_are_js_strings() {
        let salts: Vec<String> = [json!("abc"), json!(12.0), json!(null)]
            .into_iter()
            .map(|salt| {
                let flag = parse(json!({"key": "f", "variants": {}, "segments": [{"bucket": {"selector": [], "salt": salt, "allocations": []}}]}));
                flag.segments[0].bucket.as_ref().unwrap().salt.clone()
            })
            .collect();
        assert_eq!(salts, ["abc", "12", "null"]);
        let flag = parse(
            json!({"key": "f", "variants": {}, "segments": [{"bucket": {"selector": [], "allocations": []}}]}),
        );
        assert_eq!(flag.segments[0].bucket.as_ref().unwrap().salt, "undefined");
    }

    #[test]
    fn rejects_malformed_flags() {
        for bad in [
            json!({"segments": []}),
            json!({"key": "f"}),
            json!({"key": "f", "segments": [{"conditions": [{"op": "is"}]}]}),
            json!({"key": "f", "segments": [{"conditions": [[{"op": "is", "selector": [], "values": [1]}]]}]}),
            json!({"key": "f", "segments": [], "variants": {"on": "x"}}),
        ] {
            let raw = serde_json::value::to_raw_value(&bad).unwrap();
            assert!(Flag::parse(&raw).is_err(), "{bad}");
        }
    }

    #[test]
    fn minify_keeps_tokens() {
        assert_eq!(
            minify("{ \"a b\" : [ 1.0 , \"x\\\" y\" ],\n\t\"c\":1e2 }"),
            "{\"a b\":[1.0,\"x\\\" y\"],\"c\":1e2}"
        );
    }
}
