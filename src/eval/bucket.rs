//! Bucketing: which variant a matched segment gives a user, by hashing a selected value.
//!
//! The hash of `salt/value` (MurmurHash3 x86_32, seed 0, over UTF-8) splits into an
//! allocation value (`hash % 100`, the percent of users in the rollout) and a distribution
//! value (`hash / 100`, 0..42949672, which variant among those in). Ranges are `[start,
//! end)`; the first allocation with a matching distribution wins.

use super::coerce;
use super::model::Outcome;
use super::murmur;
use super::select::{Selector, Target};

/// A segment's bucket, ready to use.
#[derive(Debug)]
pub struct Bucket {
    pub selector: Selector,
    /// JS `${salt}`, computed once.
    pub salt: String,
    pub allocations: Vec<Allocation>,
}

/// A slice of the percent space `[start, end)` and how it is split between variants.
#[derive(Debug)]
pub struct Allocation {
    pub start: f64,
    pub end: f64,
    pub distributions: Vec<Distribution>,
}

/// A slice `[start, end)` of the distribution space and the variant it gives.
#[derive(Debug)]
pub struct Distribution {
    pub start: f64,
    pub end: f64,
    pub outcome: Outcome,
}

/// What bucketing decided.
pub enum Bucketed<'a> {
    /// No distribution matched (or the value was missing/empty): use the segment's variant.
    Default,
    /// A distribution matched; its variant may be unknown (`None`).
    Variant(&'a Outcome),
}

impl Bucket {
    /// Hashes the selected value and finds its distribution. `scratch` is reused across
    /// calls to keep the hot path free of allocations.
    pub fn bucket(&self, target: &Target<'_, '_>, scratch: &mut String) -> Bucketed<'_> {
        let Some(selected) = self.selector.select(target) else {
            return Bucketed::Default;
        };
        let Some(value) = coerce::coerce_string(&selected) else {
            return Bucketed::Default;
        };
        if value.is_empty() {
            return Bucketed::Default;
        }
        scratch.clear();
        scratch.push_str(&self.salt);
        scratch.push('/');
        scratch.push_str(&value);
        let hash = murmur::hash32(scratch.as_bytes(), 0);
        self.pick(hash)
    }

    /// The distribution for a hash.
    pub fn pick(&self, hash: u32) -> Bucketed<'_> {
        let allocation_value = f64::from(hash % 100);
        let distribution_value = f64::from(hash / 100);
        for allocation in &self.allocations {
            if allocation.start <= allocation_value && allocation_value < allocation.end {
                for distribution in &allocation.distributions {
                    if distribution.start <= distribution_value
                        && distribution_value < distribution.end
                    {
                        return Bucketed::Variant(&distribution.outcome);
                    }
                }
            }
        }
        Bucketed::Default
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::model::Variant;
    use crate::eval::select::tests::MapResults;
    use serde_json::json;

    fn outcome(key: &str) -> Outcome {
        Some(Box::new(Variant::new("\"f\"", json!({ "key": key }))))
    }

    fn picked(b: &Bucket, hash: u32) -> Option<String> {
        match b.pick(hash) {
            Bucketed::Default => Some("default".into()),
            Bucketed::Variant(o) => o
                .as_ref()
                .map(|v| v.value["key"].as_str().unwrap().to_string()),
        }
    }

    #[test]
    fn ranges_are_half_open_and_first_match_wins() {
        let b = Bucket {
            selector: Selector::default(),
            salt: "s".into(),
            allocations: vec![
                Allocation {
                    start: 0.0,
                    end: 50.0,
                    distributions: vec![
                        Distribution {
                            start: 0.0,
                            end: 10.0,
                            outcome: outcome("a"),
                        },
                        Distribution {
                            start: 9.0,
                            end: 20.0,
                            outcome: outcome("b"),
                        },
                        Distribution {
                            start: 20.0,
                            end: 30.0,
                            outcome: None,
                        },
                    ],
                },
                Allocation {
                    start: 0.0,
                    end: 100.0,
                    distributions: vec![Distribution {
                        start: 0.0,
                        end: 42_949_673.0,
                        outcome: outcome("c"),
                    }],
                },
            ],
        };
        // hash = distribution * 100 + allocation
        assert_eq!(
            picked(&b, 9 * 100 + 49).as_deref(),
            Some("a"),
            "overlap: first wins"
        );
        assert_eq!(
            picked(&b, 10 * 100).as_deref(),
            Some("b"),
            "end is exclusive"
        );
        assert_eq!(picked(&b, 25 * 100).as_deref(), None, "unknown variant");
        assert_eq!(
            picked(&b, 35 * 100).as_deref(),
            Some("c"),
            "next allocation"
        );
        assert_eq!(picked(&b, 9 * 100 + 50).as_deref(), Some("c"));
        assert_eq!(picked(&b, u32::MAX).as_deref(), Some("c"));
    }

    #[test]
    fn missing_or_empty_values_use_the_default() {
        let b = Bucket {
            selector: serde_json::from_value(json!(["context", "user", "device_id"])).unwrap(),
            salt: "s".into(),
            allocations: vec![Allocation {
                start: 0.0,
                end: 100.0,
                distributions: vec![Distribution {
                    start: 0.0,
                    end: 42_949_673.0,
                    outcome: outcome("on"),
                }],
            }],
        };
        let mut scratch = String::new();
        let result = json!({});
        let results = MapResults(&result);
        for context in [
            json!({}),
            json!({"user": {"device_id": ""}}),
            json!({"user": {"device_id": null}}),
        ] {
            let target = Target {
                context: &context,
                results: &results,
                cache: &[],
            };
            assert!(
                matches!(b.bucket(&target, &mut scratch), Bucketed::Default),
                "{context}"
            );
        }
        let context = json!({"user": {"device_id": "x"}});
        let target = Target {
            context: &context,
            results: &results,
            cache: &[],
        };
        assert!(matches!(
            b.bucket(&target, &mut scratch),
            Bucketed::Variant(Some(_))
        ));
    }
}
