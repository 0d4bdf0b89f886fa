//! Targeting that cannot be reproduced offline: the properties Amplitude's remote
//! evaluation adds to the user on its side, which a request to evalgate never carries.
//!
//! [`SERVER_SIDE`] is the one list; `docs/load-testing.md` ("Real flags: evalgate
//! snapshot") documents it. A flag is reported when any condition or bucket of any of
//! its segments reads one of these properties.

use serde_json::Value;

/// A property Amplitude fills in server-side, and why evalgate cannot.
pub struct ServerSide {
    /// Where the selector reads it, after `context`: `user.<field>`, or `groups.*.<field>`
    /// for a field of any group type.
    pub path: &'static str,
    /// Why it cannot be reproduced, for the warning.
    pub why: &'static str,
}

/// Every property remote evaluation adds to the user (Amplitude's remote-evaluation docs:
/// identity resolution, IP geolocation, device canonicalization, cohort membership).
pub const SERVER_SIDE: &[ServerSide] = &[
    ServerSide {
        path: "user.cohort_ids",
        why: "cohort membership is computed by Amplitude; offline no user is in any cohort",
    },
    ServerSide {
        path: "groups.*.cohort_ids",
        why: "group cohort membership is computed by Amplitude; offline no group is in any cohort",
    },
    ServerSide {
        path: "user.country",
        why: "country is derived by Amplitude from the caller's IP address",
    },
    ServerSide {
        path: "user.region",
        why: "region is derived by Amplitude from the caller's IP address",
    },
    ServerSide {
        path: "user.city",
        why: "city is derived by Amplitude from the caller's IP address",
    },
    ServerSide {
        path: "user.dma",
        why: "DMA is derived by Amplitude from the caller's IP address",
    },
    ServerSide {
        path: "user.amplitude_id",
        why: "the Amplitude ID is resolved by Amplitude from user_id and device_id",
    },
    ServerSide {
        path: "user.device_family",
        why: "device family is derived by Amplitude from the device",
    },
    ServerSide {
        path: "user.device_type",
        why: "device type is derived by Amplitude from the device",
    },
];

/// One flag whose targeting reads server-side properties.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfflineWarning {
    pub flag: String,
    /// The reasons, one per distinct property, in [`SERVER_SIDE`] order.
    pub reasons: Vec<&'static str>,
}

impl std::fmt::Display for OfflineWarning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "flag `{}` cannot be reproduced offline: {}",
            self.flag,
            self.reasons.join("; ")
        )
    }
}

/// The flags (a parsed flag array) whose targeting reads a [`SERVER_SIDE`] property, in
/// file order.
pub fn offline_warnings(flags: &[Value]) -> Vec<OfflineWarning> {
    let mut out = Vec::new();
    for flag in flags {
        let mut hits = vec![false; SERVER_SIDE.len()];
        for selector in selectors(flag) {
            if let Some(i) = server_side(&selector) {
                hits[i] = true;
            }
        }
        let reasons: Vec<&'static str> = SERVER_SIDE
            .iter()
            .zip(&hits)
            .filter(|(_, hit)| **hit)
            .map(|(s, _)| s.why)
            .collect();
        if !reasons.is_empty() {
            let key = flag.get("key").and_then(Value::as_str).unwrap_or("?");
            out.push(OfflineWarning {
                flag: key.escape_debug().to_string(),
                reasons,
            });
        }
    }
    out
}

/// Every selector a flag reads: its segments' conditions and buckets.
fn selectors(flag: &Value) -> Vec<Vec<&str>> {
    let mut out = Vec::new();
    let segments = flag.get("segments").and_then(Value::as_array);
    for segment in segments.into_iter().flatten() {
        let conditions = segment.get("conditions").and_then(Value::as_array);
        for and in conditions.into_iter().flatten() {
            for condition in and.as_array().into_iter().flatten() {
                out.extend(selector(condition));
            }
        }
        if let Some(bucket) = segment.get("bucket") {
            out.extend(selector(bucket));
        }
    }
    out
}

fn selector(holder: &Value) -> Option<Vec<&str>> {
    let parts = holder.get("selector")?.as_array()?;
    parts.iter().map(Value::as_str).collect()
}

/// The [`SERVER_SIDE`] entry `selector` reads, if any.
fn server_side(selector: &[&str]) -> Option<usize> {
    let path = match selector {
        ["context", "user", field, ..] => format!("user.{field}"),
        ["context", "groups", _, field, ..] => format!("groups.*.{field}"),
        _ => return None,
    };
    SERVER_SIDE.iter().position(|s| s.path == path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn flag(key: &str, selectors: &[&[&str]]) -> Value {
        let conditions: Vec<Value> = selectors
            .iter()
            .map(|s| json!([{"selector": s, "op": "is", "values": ["x"]}]))
            .collect();
        json!({"key": key, "segments": [{"conditions": conditions, "variant": "on"}], "variants": {}})
    }

    #[test]
    fn cohorts_geo_and_ids_are_reported_once_per_flag() {
        let flags = vec![
            flag(
                "plain",
                &[&["context", "user", "user_properties", "country"]],
            ),
            flag(
                "both",
                &[
                    &["context", "user", "cohort_ids"],
                    &["context", "user", "city"],
                    &["context", "user", "cohort_ids"],
                ],
            ),
            flag("group", &[&["context", "groups", "org", "cohort_ids"]]),
            json!({"key": "bucketed", "segments": [{"bucket": {"selector": ["context", "user", "amplitude_id"], "salt": "s", "allocations": []}}]}),
        ];
        let got = offline_warnings(&flags);
        let keys: Vec<&str> = got.iter().map(|w| w.flag.as_str()).collect();
        assert_eq!(keys, ["both", "group", "bucketed"]);
        assert_eq!(got[0].reasons.len(), 2, "{got:?}");
        assert!(got[0].to_string().contains("cohort membership"));
        assert!(got[0].to_string().contains("IP address"));
        assert!(got[2].to_string().contains("Amplitude ID"));
    }

    #[test]
    fn the_shipped_flags_need_only_the_country_from_amplitude() {
        let text = include_str!("../../flags.json");
        let flags: Vec<Value> = serde_json::from_str(text).unwrap();
        let got = offline_warnings(&flags);
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0].flag, "eu-cookie-banner");
        assert_eq!(got[0].reasons, [SERVER_SIDE[2].why]);
    }
}
