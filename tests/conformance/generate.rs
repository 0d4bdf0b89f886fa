//! Seeded random cases: flag configurations (v2 `/sdk/v2/flags` shape) and contexts.
//!
//! A case is built context first, so conditions can aim at properties that exist and pick an
//! operator and filter values that fit the value they will see (a version for `version …`, a
//! list for `set …`), with a share of mismatched and missing ones for the null and coercion
//! paths. The pools below hold the values §7.10 of the research notes calls out.

use serde_json::{Map, Value, json};

use super::harness::Case;
use super::pools::{
    ELEMENTS, FLAG_PREFIXES, GROUP_TYPES, INDEX_STEPS, META_KEYS, NUMBER_FILTERS, NUMBER_OPS,
    OBJECT_KEYS, OPERATORS, PROBES, PROP_NAMES, REGEXES, SET_OPS, STRING_OPS, STRINGS, Subjects,
    UNKNOWN_FLAG, UNKNOWN_VARIANT, USER_FIELDS, VARIANT_NAMES, VERSION_OPS, VERSIONS,
};

/// SplitMix64: small, fast, and the same sequence on every platform.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n`; `n` must not be 0.
    fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// A number in `lo..=hi`.
    fn between(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi - lo + 1)
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next_u64() % 100 < percent
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }
}

/// One flag's key and the variant keys a `["result", key, "key"]` condition can see.
struct FlagSketch {
    key: String,
    variant_keys: Vec<String>,
}

/// Generates whole cases from one seed.
pub struct CaseGenerator {
    rng: Rng,
}

impl CaseGenerator {
    pub fn new(seed: u64) -> Self {
        CaseGenerator {
            rng: Rng::new(seed),
        }
    }

    pub fn case(&mut self, index: usize) -> Case {
        let mut context = self.context();
        let (flags, keys) = self.flags(&mut context);
        let flag_keys = self.requested_keys(&keys);
        Case {
            name: format!("random #{index}"),
            flags: serde_json::to_string(&flags).expect("flags serialize"),
            context: serde_json::to_string(&context).expect("context serializes"),
            flag_keys,
        }
    }

    // --- values ---------------------------------------------------------------------------

    fn number(&mut self) -> Value {
        match self.rng.below(24) {
            0 => json!(0),
            1 => json!(1),
            2 => json!(-1),
            3 => json!(1.0),
            4 => json!(-0.0),
            5 => json!(0.1),
            6 => json!(1e21),
            7 => json!(1e20),
            8 => json!(1e-7),
            9 => json!(123.456),
            10 => json!(12),
            11 => json!(26),
            12 => json!(1000),
            13 => json!(9_007_199_254_740_993_u64),
            14 => json!(u64::MAX),
            15 => json!(-9_007_199_254_740_993_i64),
            16 => json!(5e-324),
            17 => json!(f64::MAX),
            18 => json!(2.5),
            19 => json!(0.000001),
            20 => json!(123_456_789_012_345_680_000.0),
            21 => json!(12.0),
            22 => json!(-3.75),
            _ => json!(self.rng.below(2000) as i64 - 1000),
        }
    }

    fn string(&mut self) -> Value {
        match self.rng.below(10) {
            0..=6 => json!(self.rng.pick(STRINGS)),
            7 | 8 => json!(self.rng.pick(VERSIONS)),
            _ => json!(self.rng.pick(ELEMENTS)),
        }
    }

    /// Any JSON value; containers only down to `depth` 2.
    fn value(&mut self, depth: usize) -> Value {
        let roll = self.rng.below(100);
        match roll {
            0..=34 => self.string(),
            35..=49 => self.number(),
            50..=57 => json!(self.rng.chance(50)),
            58..=61 => Value::Null,
            62..=84 if depth < 2 => self.array(depth + 1),
            85..=99 if depth < 2 => self.object(depth + 1),
            _ => self.string(),
        }
    }

    fn array(&mut self, depth: usize) -> Value {
        let len = self.rng.between(0, 4);
        let items = (0..len)
            .map(|_| match self.rng.below(10) {
                0..=5 => json!(self.rng.pick(ELEMENTS)),
                6 => self.number(),
                7 => json!(self.rng.chance(50)),
                8 => Value::Null,
                _ => self.value(depth),
            })
            .collect();
        Value::Array(items)
    }

    fn object(&mut self, depth: usize) -> Value {
        let mut map = Map::new();
        for _ in 0..self.rng.between(1, 3) {
            let key = self.rng.pick(OBJECT_KEYS);
            let value = self.value(depth);
            map.insert(key.to_owned(), value);
        }
        Value::Object(map)
    }

    fn metadata(&mut self) -> Value {
        let mut map = Map::new();
        for _ in 0..self.rng.between(1, 3) {
            let value = match self.rng.below(9) {
                0 => Value::Null,
                1 => json!(true),
                2 => json!(false),
                3 => json!("x"),
                4 => json!(1),
                5 => json!(2.5),
                6 => json!("exp-1"),
                7 => json!({"a": 1}),
                _ => json!([]),
            };
            map.insert(self.rng.pick(META_KEYS).to_owned(), value);
        }
        Value::Object(map)
    }

    // --- context --------------------------------------------------------------------------

    fn id(&mut self, prefix: &str) -> Value {
        match self.rng.below(40) {
            0 => json!(self.rng.pick(&["", " ", "\t"])),
            1 => json!("🚀"),
            2 => json!("ÉCOLE"),
            3 => json!("吉 星 高 照"),
            4 => self.number(),
            _ => json!(format!(
                "{prefix}{:x}",
                self.rng.next_u64() >> self.rng.below(60)
            )),
        }
    }

    fn properties(&mut self) -> Value {
        let mut map = Map::new();
        for _ in 0..self.rng.between(1, 6) {
            let value = self.value(0);
            map.insert(self.rng.pick(PROP_NAMES).to_owned(), value);
        }
        Value::Object(map)
    }

    fn context(&mut self) -> Value {
        let mut user = Map::new();
        if self.rng.chance(85) {
            user.insert("user_id".into(), self.id("user-"));
        }
        if self.rng.chance(85) {
            user.insert("device_id".into(), self.id("dev-"));
        }
        for field in USER_FIELDS {
            if self.rng.chance(30) {
                let value = if *field == "version" && self.rng.chance(70) {
                    json!(self.rng.pick(VERSIONS))
                } else {
                    self.value(1)
                };
                user.insert((*field).into(), value);
            }
        }
        if self.rng.chance(90) {
            user.insert("user_properties".into(), self.properties());
        }
        if self.rng.chance(30) {
            let ids: Vec<Value> = (0..self.rng.between(0, 3))
                .map(|_| json!(self.rng.pick(&["c1", "c2", "c3"])))
                .collect();
            user.insert("cohort_ids".into(), Value::Array(ids));
        }
        let mut context = Map::new();
        context.insert("user".into(), Value::Object(user));
        if self.rng.chance(50) {
            let mut groups = Map::new();
            for group_type in GROUP_TYPES {
                if self.rng.chance(60) {
                    let mut group = Map::new();
                    group.insert("group_name".into(), self.value(1));
                    if self.rng.chance(70) {
                        group.insert("group_properties".into(), self.properties());
                    }
                    groups.insert((*group_type).into(), Value::Object(group));
                }
            }
            context.insert("groups".into(), Value::Object(groups));
        }
        Value::Object(context)
    }

    // --- selectors, operators, filter values ----------------------------------------------

    /// A selector into the context: mostly properties that exist, some missing paths, some
    /// steps into arrays and objects, and a few odd shapes (empty, empty step, whole objects).
    fn context_selector(&mut self, context: &Value) -> Vec<String> {
        let mut path: Vec<String> = match self.rng.below(100) {
            0..=54 => {
                let name = match context
                    .pointer("/user/user_properties")
                    .and_then(Value::as_object)
                {
                    Some(props) if !props.is_empty() && self.rng.chance(90) => props
                        .keys()
                        .nth(self.rng.below(props.len()))
                        .cloned()
                        .unwrap_or_default(),
                    _ => self.rng.pick(PROP_NAMES).to_owned(),
                };
                vec![
                    "context".into(),
                    "user".into(),
                    "user_properties".into(),
                    name,
                ]
            }
            55..=69 => {
                let field = self.rng.pick(&[
                    "user_id",
                    "device_id",
                    "platform",
                    "country",
                    "version",
                    "language",
                    "city",
                    "cohort_ids",
                    "nope",
                ]);
                vec!["context".into(), "user".into(), field.into()]
            }
            70..=86 => {
                let group_type = self.rng.pick(&["org", "team", "nope"]);
                let mut path = vec!["context".into(), "groups".into(), group_type.into()];
                if self.rng.chance(40) {
                    path.push("group_name".into());
                } else {
                    path.push("group_properties".into());
                    path.push(self.rng.pick(PROP_NAMES).into());
                }
                path
            }
            _ => {
                let odd: &[&str] = match self.rng.below(7) {
                    0 => &[],
                    1 => &["context", "user", ""],
                    2 => &["context", "user"],
                    3 => &["user", "user_id"],
                    4 => &["context", "user", "user_properties"],
                    5 => &["context", "usr", "user_id"],
                    _ => &["context", "user", "user_id", "x"],
                };
                return odd.iter().map(|s| (*s).to_owned()).collect();
            }
        };
        let here = lookup(context, &path[1..]);
        let step = match here {
            Some(Value::Array(_)) if self.rng.chance(30) => Some(self.rng.pick(INDEX_STEPS)),
            Some(Value::Object(_)) if self.rng.chance(30) => Some(self.rng.pick(OBJECT_KEYS)),
            _ => None,
        };
        if let Some(step) = step {
            path.push(step.into());
        }
        path
    }

    fn operator_for(&mut self, value: Option<&Value>) -> &'static str {
        if self.rng.chance(35) {
            return self.rng.pick(&OPERATORS);
        }
        match value {
            None => self.rng.pick(&OPERATORS),
            Some(Value::Array(_)) => self.rng.pick(SET_OPS),
            Some(Value::Number(_)) => self.rng.pick(NUMBER_OPS),
            Some(Value::Bool(_)) => self.rng.pick(&["is", "is not"]),
            Some(Value::String(s)) if s.starts_with('[') => self.rng.pick(SET_OPS),
            Some(Value::String(s)) if VERSIONS.contains(&s.as_str()) => self.rng.pick(VERSION_OPS),
            Some(Value::String(s)) if NUMBER_FILTERS.contains(&s.as_str()) => {
                self.rng.pick(NUMBER_OPS)
            }
            _ => self.rng.pick(STRING_OPS),
        }
    }

    /// A filter value close to `value`: itself, a case change, a piece of it, an element.
    fn derived(&mut self, value: &Value) -> Option<String> {
        match value {
            Value::String(s) => {
                let chars: Vec<char> = s.chars().collect();
                Some(match self.rng.below(5) {
                    0 => s.to_uppercase(),
                    1 => s.to_lowercase(),
                    2 if chars.len() > 1 => {
                        let start = self.rng.below(chars.len());
                        let end = self.rng.between(start, chars.len());
                        chars[start..end].iter().collect()
                    }
                    _ => s.clone(),
                })
            }
            Value::Number(n) => {
                let f = n.as_f64()?;
                Some(match self.rng.below(4) {
                    0 => format!("{}", f + 1.0),
                    1 => format!("{}", f - 1.0),
                    _ if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", f as i64),
                    _ => n.to_string(),
                })
            }
            Value::Bool(b) => Some(match self.rng.below(3) {
                0 => b.to_string(),
                1 => b.to_string().to_uppercase(),
                _ => "True".to_owned(),
            }),
            Value::Array(items) if !items.is_empty() => {
                let item = items[self.rng.below(items.len())].clone();
                self.derived(&item)
            }
            Value::Object(_) => Some(value.to_string()),
            _ => None,
        }
    }

    fn filter_values(&mut self, op: &str, value: Option<&Value>) -> Vec<String> {
        let count = match self.rng.below(30) {
            0 => 0,
            1..=16 => 1,
            17..=25 => 2,
            _ => 3,
        };
        let mut values: Vec<String> = (0..count)
            .map(|_| {
                let pool = match op {
                    "less" | "less or equal" | "greater" | "greater or equal" => NUMBER_FILTERS,
                    op if op.starts_with("version") => VERSIONS,
                    op if op.starts_with("set") => ELEMENTS,
                    op if op.starts_with("regex") => REGEXES,
                    _ if self.rng.chance(50) => ELEMENTS,
                    _ => STRINGS,
                };
                self.rng.pick(pool).to_owned()
            })
            .collect();
        let derivable = !op.starts_with("regex") || self.rng.chance(20);
        if let Some(v) = value.filter(|_| derivable && self.rng.chance(45))
            && let Some(d) = self.derived(v)
        {
            let at = self.rng.between(0, values.len());
            values.insert(at, d);
        }
        if self.rng.chance(12) {
            values.push("(none)".into());
        }
        if !values.is_empty() && self.rng.chance(4) {
            values.push(values[0].clone());
        }
        values
    }

    fn context_condition(&mut self, context: &mut Value) -> Value {
        if self.rng.chance(20) {
            return self.probe_condition(context);
        }
        let selector = self.context_selector(context);
        let value = lookup_selector(context, &selector);
        let op = self.operator_for(value);
        let values = self.filter_values(op, value);
        json!({"selector": selector, "op": op, "values": values})
    }

    /// A probe: a property value and filter values from small pools that meet often (the
    /// spots where engines differ), planted in `user_properties` under a fresh name.
    fn probe_condition(&mut self, context: &mut Value) -> Value {
        let probe = &PROBES[self.rng.below(PROBES.len())];
        let op = self.rng.pick(probe.ops);
        let subject = match probe.subjects {
            Subjects::Strings(pool) => json!(self.rng.pick(pool)),
            Subjects::Json(pool) => {
                serde_json::from_str(self.rng.pick(pool)).expect("probe subject is JSON")
            }
        };
        let mut values: Vec<String> = (0..self.rng.between(1, 3))
            .map(|_| self.rng.pick(probe.filters).to_owned())
            .collect();
        if self.rng.chance(8) {
            values.push("(none)".into());
        }
        let user = context["user"]
            .as_object_mut()
            .expect("context.user is an object");
        let props = user.entry("user_properties").or_insert_with(|| json!({}));
        let name = match props.as_object_mut() {
            Some(props) => {
                let name = format!("probe{}", props.len());
                props.insert(name.clone(), subject);
                name
            }
            None => "probe".to_owned(),
        };
        json!({"selector": ["context", "user", "user_properties", name], "op": op, "values": values})
    }

    /// A condition on an earlier result: usually its variant key, sometimes its value or
    /// metadata, sometimes a flag that is not there.
    fn result_condition(&mut self, parents: &[&FlagSketch]) -> Value {
        let parent = if parents.is_empty() || self.rng.chance(10) {
            None
        } else {
            Some(parents[self.rng.below(parents.len())])
        };
        let key = parent.map_or(UNKNOWN_FLAG.to_owned(), |p| p.key.clone());
        let field: &[&str] = match self.rng.below(10) {
            0 => &["value"],
            1 => &["metadata", "default"],
            _ => &["key"],
        };
        let mut selector = vec!["result".to_owned(), key];
        selector.extend(field.iter().map(|s| (*s).to_owned()));
        let op = self.rng.pick(&[
            "is",
            "is not",
            "is",
            "is not",
            "set contains any",
            "contains",
        ]);
        let mut values: Vec<String> = Vec::new();
        for _ in 0..self.rng.between(1, 2) {
            let value = match parent {
                Some(p) if !p.variant_keys.is_empty() && self.rng.chance(80) => {
                    p.variant_keys[self.rng.below(p.variant_keys.len())].clone()
                }
                _ => self.rng.pick(VARIANT_NAMES).to_owned(),
            };
            values.push(value);
        }
        if self.rng.chance(15) {
            values.push("(none)".into());
        }
        json!({"selector": selector, "op": op, "values": values})
    }

    // --- flags ----------------------------------------------------------------------------

    fn variants(&mut self) -> Map<String, Value> {
        let mut variants = Map::new();
        for _ in 0..self.rng.between(1, 4) {
            let name = self.rng.pick(VARIANT_NAMES);
            let own_key = if self.rng.chance(92) {
                name
            } else {
                self.rng.pick(VARIANT_NAMES)
            };
            let mut variant = Map::new();
            variant.insert("key".into(), json!(own_key));
            match self.rng.below(20) {
                0..=13 => {
                    variant.insert("value".into(), json!(own_key));
                }
                14 => {
                    variant.insert("value".into(), self.number());
                }
                15 => {
                    variant.insert("value".into(), json!(self.rng.chance(50)));
                }
                16 => {
                    variant.insert("value".into(), self.value(1));
                }
                17 => {
                    variant.insert("value".into(), Value::Null);
                }
                _ => {}
            }
            if self.rng.chance(20) {
                variant.insert("payload".into(), self.value(0));
            }
            if self.rng.chance(30) {
                variant.insert("metadata".into(), self.metadata());
            }
            variants.insert(name.into(), Value::Object(variant));
        }
        variants
    }

    fn bucket(&mut self, variant_names: &[String], context: &mut Value) -> Value {
        let selector: Vec<String> = match self.rng.below(20) {
            0..=8 => vec!["context".into(), "user".into(), "device_id".into()],
            9..=15 => vec!["context".into(), "user".into(), "user_id".into()],
            16 | 17 => self.context_selector(context),
            _ => vec![
                "context".into(),
                "groups".into(),
                "org".into(),
                "group_name".into(),
            ],
        };
        let salt: String = (0..self.rng.between(0, 8))
            .map(|_| self.rng.pick(&['a', 'Z', '3', 'x', 'K', '9', '-', 'é']))
            .collect();
        // Half the time, when the bucketing value is a string, put an allocation edge and a
        // distribution edge exactly at (or one past) where this user hashes.
        let pin = match lookup_selector(context, &selector) {
            Some(Value::String(v)) if !v.is_empty() && self.rng.chance(50) => {
                let hash = murmur3_x86_32(format!("{salt}/{v}").as_bytes()) as usize;
                Some((hash % 100, hash / 100))
            }
            _ => None,
        };
        let allocations: Vec<Value> = (0..self.rng.pick(&[0, 1, 1, 1, 2, 2, 3]))
            .map(|_| {
                let pinned = pin.filter(|_| self.rng.chance(70));
                let range = if let Some((at, _)) = pinned {
                    match self.rng.below(4) {
                        0 => json!([at, 100]),
                        1 => json!([0, at]),
                        2 => json!([0, at + 1]),
                        _ => json!([at, at + 1]),
                    }
                } else if self.rng.chance(55) {
                    json!([0, 100])
                } else {
                    let start = self.rng.between(0, 99);
                    let end = if self.rng.chance(90) {
                        self.rng.between(start, 100)
                    } else {
                        self.rng.below(start + 1)
                    };
                    json!([start, end])
                };
                let edge = pinned.map(|(_, at)| at + self.rng.below(2));
                json!({"range": range, "distributions": self.distributions(variant_names, edge)})
            })
            .collect();
        json!({"selector": selector, "salt": salt, "allocations": allocations})
    }

    /// Distribution ranges over [0, 42949673): contiguous splits, some overlapping by one,
    /// some with gaps, some naming a variant the flag does not have.
    fn distributions(&mut self, variant_names: &[String], edge: Option<usize>) -> Vec<Value> {
        const END: usize = 42_949_673;
        let mut cuts: Vec<usize> = (1..self.rng.between(1, 3))
            .map(|_| self.rng.below(END))
            .collect();
        if let Some(edge) = edge {
            if cuts.is_empty() {
                cuts.push(edge);
            } else {
                let i = self.rng.below(cuts.len());
                cuts[i] = edge;
            }
        }
        let count = cuts.len() + 1;
        cuts.sort_unstable();
        cuts.insert(0, 0);
        cuts.push(END);
        (0..count)
            .map(|i| {
                let start = if self.rng.chance(10) {
                    cuts[i] + self.rng.below(1000)
                } else {
                    cuts[i]
                };
                let end = if self.rng.chance(15) {
                    cuts[i + 1] + 1
                } else {
                    cuts[i + 1]
                };
                let variant = if variant_names.is_empty() || self.rng.chance(8) {
                    UNKNOWN_VARIANT.to_owned()
                } else {
                    variant_names[self.rng.below(variant_names.len())].clone()
                };
                json!({"variant": variant, "range": [start, end]})
            })
            .collect()
    }

    fn segment(
        &mut self,
        variant_names: &[String],
        context: &mut Value,
        parents: &[&FlagSketch],
    ) -> Value {
        let mut segment = Map::new();
        match self.rng.below(20) {
            0..=4 => {}
            5 => {
                segment.insert("conditions".into(), Value::Null);
            }
            6 => {
                segment.insert("conditions".into(), json!([]));
            }
            7 => {
                segment.insert("conditions".into(), json!([[]]));
            }
            _ => {
                let groups: Vec<Value> = (0..self.rng.pick(&[1, 1, 1, 2, 2, 3]))
                    .map(|_| {
                        let conditions: Vec<Value> = (0..self.rng.pick(&[1, 1, 1, 2, 2, 3]))
                            .map(|_| {
                                if (!parents.is_empty() && self.rng.chance(30))
                                    || self.rng.chance(3)
                                {
                                    self.result_condition(parents)
                                } else {
                                    self.context_condition(context)
                                }
                            })
                            .collect();
                        Value::Array(conditions)
                    })
                    .collect();
                segment.insert("conditions".into(), Value::Array(groups));
            }
        }
        if self.rng.chance(35) {
            segment.insert("bucket".into(), self.bucket(variant_names, context));
        }
        match self.rng.below(10) {
            0..=6 if !variant_names.is_empty() => {
                let name = variant_names[self.rng.below(variant_names.len())].clone();
                segment.insert("variant".into(), json!(name));
            }
            7 => {
                segment.insert("variant".into(), json!(UNKNOWN_VARIANT));
            }
            _ => {}
        }
        if self.rng.chance(35) {
            segment.insert("metadata".into(), self.metadata());
        }
        Value::Object(segment)
    }

    /// 1–5 flags with dependencies (declared, undeclared, missing, occasionally cyclic), and the
    /// flag keys in file order.
    fn flags(&mut self, context: &mut Value) -> (Vec<Value>, Vec<String>) {
        let count = self.rng.between(1, 5);
        let prefix = self.rng.pick(FLAG_PREFIXES);
        let variants: Vec<Map<String, Value>> = (0..count).map(|_| self.variants()).collect();
        let sketches: Vec<FlagSketch> = variants
            .iter()
            .enumerate()
            .map(|(i, v)| FlagSketch {
                key: format!("{prefix}{i}"),
                variant_keys: v
                    .values()
                    .filter_map(|x| x["key"].as_str().map(str::to_owned))
                    .collect(),
            })
            .collect();
        let cyclic = count > 1 && self.rng.chance(3);
        let mut flags = Vec::with_capacity(count);
        for (i, variants) in variants.into_iter().enumerate() {
            let others: Vec<&FlagSketch> = sketches
                .iter()
                .filter(|s| s.key != sketches[i].key)
                .collect();
            // Parents are mostly later in the file (so the sort must reorder), rarely earlier
            // (which may close a cycle).
            let later = &sketches[i + 1..];
            let mut dependencies: Vec<String> = Vec::new();
            if !later.is_empty() && self.rng.chance(40) {
                for _ in 0..self.rng.between(1, 2) {
                    dependencies.push(later[self.rng.below(later.len())].key.clone());
                }
            }
            if i > 0 && self.rng.chance(4) {
                dependencies.push(sketches[self.rng.below(i)].key.clone());
            }
            if self.rng.chance(5) {
                dependencies.push(UNKNOWN_FLAG.into());
            }
            if self.rng.chance(1) {
                dependencies.push(sketches[i].key.clone());
            }
            if cyclic && i < 2 {
                dependencies.push(sketches[1 - i].key.clone());
            }
            // Result conditions mostly read declared parents; the rest read any other flag,
            // which works only if that flag happens to be evaluated first.
            let declared: Vec<&FlagSketch> = others
                .iter()
                .copied()
                .filter(|s| dependencies.contains(&s.key))
                .collect();
            let parents = if !declared.is_empty() && self.rng.chance(75) {
                declared
            } else {
                others
            };
            let variant_names: Vec<String> = variants.keys().cloned().collect();
            let segments: Vec<Value> = (0..self.rng.between(1, 4))
                .map(|_| self.segment(&variant_names, context, &parents))
                .collect();
            let mut flag = Map::new();
            flag.insert("key".into(), json!(sketches[i].key));
            flag.insert("variants".into(), Value::Object(variants));
            flag.insert("segments".into(), Value::Array(segments));
            if !dependencies.is_empty() {
                flag.insert("dependencies".into(), json!(dependencies));
            } else if self.rng.chance(10) {
                flag.insert("dependencies".into(), json!([]));
            }
            if self.rng.chance(60) {
                flag.insert("metadata".into(), self.metadata());
            }
            flags.push(Value::Object(flag));
        }
        (flags, sketches.into_iter().map(|s| s.key).collect())
    }

    /// Empty (all flags) half the time; otherwise a shuffled subset, sometimes with an unknown
    /// key or a repeat.
    fn requested_keys(&mut self, keys: &[String]) -> Vec<String> {
        if self.rng.chance(50) {
            return Vec::new();
        }
        let mut chosen: Vec<String> = keys
            .iter()
            .filter(|_| self.rng.chance(50))
            .cloned()
            .collect();
        for i in (1..chosen.len()).rev() {
            let j = self.rng.below(i + 1);
            chosen.swap(i, j);
        }
        if self.rng.chance(20) {
            let at = self.rng.between(0, chosen.len());
            chosen.insert(at, UNKNOWN_FLAG.into());
        }
        if !chosen.is_empty() && self.rng.chance(10) {
            chosen.push(chosen[0].clone());
        }
        chosen
    }
}

/// Walks a selector the way the JS engine does (objects by key, arrays by canonical index),
/// starting at the context; `result` selectors are not followed.
fn lookup_selector<'a>(context: &'a Value, selector: &[String]) -> Option<&'a Value> {
    match selector.split_first() {
        Some((root, rest)) if root == "context" => lookup(context, rest),
        _ => None,
    }
}

fn lookup<'a>(mut value: &'a Value, steps: &[String]) -> Option<&'a Value> {
    for step in steps {
        value = match value {
            Value::Object(map) => map.get(step)?,
            Value::Array(items) => {
                let canonical = step
                    .parse::<usize>()
                    .ok()
                    .filter(|i| i.to_string() == *step)?;
                items.get(canonical)?
            }
            _ => return None,
        };
    }
    Some(value).filter(|v| !v.is_null())
}

/// MurmurHash3 x86_32 with seed 0, as the engines hash `salt/value`; used only to place bucket
/// edges where a user lands.
pub fn murmur3_x86_32(data: &[u8]) -> u32 {
    const C1: u32 = 0xcc9e_2d51;
    const C2: u32 = 0x1b87_3593;
    let mut hash: u32 = 0;
    let blocks = data.chunks_exact(4);
    let tail = blocks.remainder();
    for block in blocks {
        let k = u32::from_le_bytes([block[0], block[1], block[2], block[3]]);
        hash ^= k.wrapping_mul(C1).rotate_left(15).wrapping_mul(C2);
        hash = hash
            .rotate_left(13)
            .wrapping_mul(5)
            .wrapping_add(0xe654_6b64);
    }
    if !tail.is_empty() {
        let k = tail
            .iter()
            .rev()
            .fold(0u32, |k, b| (k << 8) | u32::from(*b));
        hash ^= k.wrapping_mul(C1).rotate_left(15).wrapping_mul(C2);
    }
    hash ^= data.len() as u32;
    hash ^= hash >> 16;
    hash = hash.wrapping_mul(0x85eb_ca6b);
    hash ^= hash >> 13;
    hash = hash.wrapping_mul(0xc2b2_ae35);
    hash ^ (hash >> 16)
}
