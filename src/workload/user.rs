//! The user model: realistic SDK user objects, the same for the same (seed, user index).
//!
//! A user is what an app hands the SDK plus what the SDK adds (`library`, and on the
//! browser `platform`, `os`, `device_model`, `language`): ids (a third anonymous with a
//! device id only, most with both, some with a user id only), a platform profile (web,
//! iOS, Android or a server), 0 to 20 `user_properties` (most users few, a few with a
//! long `segments` string: a tail of a few kB), and for `--groups-share` of users a
//! company group with its `group_properties` (the same group always has the same ones).
//!
//! Ids carry the index so a run can be traced back: `user_id` is `user-<index>` and the
//! UUID-shaped `device_id` ends in the index as 12 hex digits. The largest user stays
//! under [`MAX_USER_BYTES`], so a good request fits evalgate's default limits
//! (`server.max_context_bytes` 8192, `server.max_query_bytes` 16384 once percent-encoded,
//! `server.max_header_bytes` 32768 as base64).

use rand::RngExt;
use rand_chacha::ChaCha8Rng;
use serde_json::{Map, Value, json};

use super::seeds::{Domain, rng};

/// The longest user JSON the model writes.
pub const MAX_USER_BYTES: usize = 5_000;
/// Distinct companies a grouped user may belong to.
const COMPANIES: u64 = 1_000;

/// One user, ready to be written in each endpoint's form.
#[derive(Debug, Clone, PartialEq)]
pub struct User {
    pub user_id: Option<String>,
    pub device_id: Option<String>,
    /// Everything else, in the order the SDKs write it.
    pub rest: Map<String, Value>,
}

impl User {
    /// The user of `index` for `seed`; `grouped` is the share of users in a group.
    pub fn generate(seed: u64, index: u64, grouped: f64) -> User {
        let mut r = rng(seed, Domain::User, index);
        let kind = r.random::<f64>();
        let has_user_id = kind >= 0.35;
        let has_device_id = kind < 0.9;
        let device_id = has_device_id.then(|| {
            format!(
                "{:08x}-{:04x}-4{:03x}-{:x}{:03x}-{:012x}",
                r.random::<u32>(),
                r.random::<u16>(),
                r.random_range(0..0x1000u32),
                r.random_range(8..12u32),
                r.random_range(0..0x1000u32),
                index & 0xffff_ffff_ffff,
            )
        });
        let mut rest = Map::new();
        platform(&mut r, &mut rest);
        let props = properties(&mut r);
        if !props.is_empty() {
            rest.insert("user_properties".into(), Value::Object(props));
        }
        if r.random_bool(grouped) {
            let company = format!("company-{}", r.random_range(0..COMPANIES));
            let props = company_properties(seed, &company);
            rest.insert("groups".into(), json!({ "company": [company] }));
            rest.insert(
                "group_properties".into(),
                json!({ "company": { company: props } }),
            );
        }
        User {
            user_id: has_user_id.then(|| format!("user-{index}")),
            device_id,
            rest,
        }
    }

    /// The whole user as the SDKs send it (`X-Amp-Exp-User`, a POST body): the ids, then
    /// the rest as in [`User::context_json`].
    pub fn to_json(&self) -> String {
        let context = self.context_json();
        let mut out = String::with_capacity(context.len() + 96);
        out.push('{');
        for (name, id) in [("user_id", &self.user_id), ("device_id", &self.device_id)] {
            if let Some(id) = id {
                if out.len() > 1 {
                    out.push(',');
                }
                out.push_str(&Value::from(name).to_string());
                out.push(':');
                out.push_str(&Value::from(id.as_str()).to_string());
            }
        }
        match context.strip_prefix('{') {
            Some("}") | None => out.push('}'),
            Some(members) => {
                if out.len() > 1 {
                    out.push(',');
                }
                out.push_str(members);
            }
        }
        out
    }

    /// `/v1/vardata`'s `context`: the user without its ids (they go in the query).
    pub fn context_json(&self) -> String {
        Value::Object(self.rest.clone()).to_string()
    }
}

fn pick<'a>(r: &mut ChaCha8Rng, items: &[&'a str]) -> &'a str {
    items[r.random_range(0..items.len())]
}

const LANGUAGES: [&str; 8] = [
    "en-US", "en-US", "en-GB", "de-DE", "fr-FR", "es-ES", "ja-JP", "pt-BR",
];

/// The platform fields: what the browser SDK's default provider or a mobile SDK adds.
fn platform(r: &mut ChaCha8Rng, out: &mut Map<String, Value>) {
    let mut put = |k: &str, v: &str| {
        out.insert(k.into(), Value::String(v.into()));
    };
    let which = r.random::<f64>();
    if which < 0.5 {
        put("platform", "Web");
        put(
            "os",
            pick(r, &["Chrome 131", "Safari 18.1", "Firefox 133", "Edge 131"]),
        );
        put(
            "device_model",
            pick(r, &["Macintosh", "Windows", "iPhone", "Linux", "Android"]),
        );
        put("language", pick(r, &LANGUAGES));
        put("library", "experiment-js-client/1.15.4");
    } else if which < 0.75 {
        put("platform", "iOS");
        put("os", pick(r, &["ios 18.1", "ios 17.6.1", "ios 16.7.10"]));
        put("device_brand", "Apple");
        put(
            "device_model",
            pick(r, &["iPhone16,2", "iPhone15,3", "iPhone14,5", "iPad14,1"]),
        );
        put("version", pick(r, &["4.12.0", "4.11.2", "4.10.0"]));
        put("language", pick(r, &LANGUAGES));
        put("library", "experiment-ios-client/1.13.6");
    } else if which < 0.95 {
        put("platform", "Android");
        put("os", pick(r, &["android 15", "android 14", "android 13"]));
        let (brand, model) = [
            ("samsung", "SM-S918B"),
            ("google", "Pixel 8"),
            ("Xiaomi", "2201117TG"),
            ("OnePlus", "CPH2449"),
        ][r.random_range(0..4)];
        put("device_brand", brand);
        put("device_model", model);
        put("version", pick(r, &["4.12.0", "4.11.2", "4.10.0"]));
        put("language", pick(r, &LANGUAGES));
        put("library", "experiment-android-client/1.12.1");
    } else {
        put("library", "experiment-node-server/1.10.1");
    }
}

/// 0 to 20 user properties, skewed to few; about 3 % of users carry a long `segments`
/// string (1 to 3.5 kB) as one of them, the tail that makes some users a few kB.
fn properties(r: &mut ChaCha8Rng) -> Map<String, Value> {
    let big = r.random_bool(0.03);
    let n = ((21.0 * r.random::<f64>().powi(2)) as usize).min(20 - usize::from(big));
    let mut props = Map::new();
    for name in PROPERTIES.iter().take(n) {
        let v = match *name {
            "plan" => json!(pick(r, &["free", "free", "starter", "pro", "enterprise"])),
            "signup_date" => json!(format!(
                "20{:02}-{:02}-{:02}",
                r.random_range(18..27),
                r.random_range(1..13),
                r.random_range(1..29)
            )),
            "sessions" | "account_age_days" | "team_size" | "last_purchase_days" => {
                json!(r.random_range(0..2000u32))
            }
            "ltv" => json!((r.random_range(0..100_000u32) as f64) / 100.0),
            "beta" | "email_verified" | "notifications" => json!(r.random_bool(0.5)),
            "favorite_categories" | "tags" => {
                let all = [
                    "books", "games", "music", "sports", "travel", "food", "tech",
                ];
                let k = r.random_range(0..4);
                json!((0..k).map(|_| pick(r, &all)).collect::<Vec<_>>())
            }
            "country" => json!(pick(r, &["US", "GB", "DE", "FR", "BR", "JP", "IN"])),
            "city" => json!(pick(
                r,
                &["Berlin", "Austin", "Paris", "São Paulo", "Tokyo"]
            )),
            "campaign" => json!(format!("spring-{}", r.random_range(0..50))),
            "cohort" => json!(format!("c{}", r.random_range(0..200))),
            "theme" => json!(pick(r, &["light", "dark", "system"])),
            "referrer" => json!(pick(r, &["google", "newsletter", "direct", "partner"])),
            _ => json!(r.random_range(0..100u32)),
        };
        props.insert((*name).into(), v);
    }
    if big {
        let len = r.random_range(1_000..3_500);
        let mut segments = String::with_capacity(len + 8);
        while segments.len() < len {
            if !segments.is_empty() {
                segments.push('.');
            }
            segments.push_str(&format!("seg-{}", r.random_range(0..100_000u32)));
        }
        props.insert("segments".into(), Value::String(segments));
    }
    props
}

/// The property names, in the order users get them (a user with `n` has the first `n`).
const PROPERTIES: [&str; 20] = [
    "plan",
    "signup_date",
    "sessions",
    "country",
    "beta",
    "ltv",
    "cohort",
    "favorite_categories",
    "email_verified",
    "theme",
    "account_age_days",
    "referrer",
    "city",
    "notifications",
    "team_size",
    "campaign",
    "last_purchase_days",
    "tags",
    "score",
    "level",
];

/// A company's properties: the same company always has the same ones.
fn company_properties(seed: u64, company: &str) -> Value {
    let n: u64 = company
        .trim_start_matches("company-")
        .parse()
        .unwrap_or_default();
    let mut r = rng(seed, Domain::Group, n);
    json!({
        "plan": pick(&mut r, &["team", "business", "enterprise"]),
        "seats": r.random_range(2..5000u32),
        "industry": pick(&mut r, &["retail", "media", "finance", "health", "software"]),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_whole_user_is_the_ids_then_the_context() {
        for i in 0..200 {
            let u = User::generate(2, i, 0.5);
            let whole: Value = serde_json::from_str(&u.to_json()).unwrap();
            let mut want = Map::new();
            if let Some(id) = &u.user_id {
                want.insert("user_id".into(), json!(id));
            }
            if let Some(id) = &u.device_id {
                want.insert("device_id".into(), json!(id));
            }
            want.extend(u.rest.clone());
            assert_eq!(whole, Value::Object(want));
            assert!(!u.to_json().contains(",}") && !u.to_json().contains("{,"));
        }
    }

    #[test]
    fn same_seed_and_index_same_user() {
        assert_eq!(User::generate(7, 42, 0.5), User::generate(7, 42, 0.5));
        assert_ne!(
            User::generate(7, 42, 0.5).to_json(),
            User::generate(8, 42, 0.5).to_json()
        );
        assert_ne!(
            User::generate(7, 42, 0.5).to_json(),
            User::generate(7, 43, 0.5).to_json()
        );
    }

    #[test]
    fn users_are_varied_and_bounded() {
        let (mut device_only, mut user_only, mut grouped, mut big, mut max) = (0, 0, 0, 0, 0);
        let mut prop_counts = std::collections::BTreeSet::new();
        for i in 0..5_000 {
            let u = User::generate(1, i, 0.1);
            assert!(u.user_id.is_some() || u.device_id.is_some());
            if let Some(id) = &u.user_id {
                assert_eq!(id, &format!("user-{i}"));
            }
            if let Some(d) = &u.device_id {
                assert_eq!(d.len(), 36, "{d}");
                assert_eq!(u64::from_str_radix(&d[24..], 16).unwrap(), i);
            }
            device_only += usize::from(u.user_id.is_none());
            user_only += usize::from(u.device_id.is_none());
            grouped += usize::from(u.rest.contains_key("groups"));
            let n = u
                .rest
                .get("user_properties")
                .map_or(0, |p| p.as_object().unwrap().len());
            prop_counts.insert(n);
            let len = u.to_json().len();
            big += usize::from(len > 1_000);
            max = max.max(len);
        }
        assert!((1_500..2_000).contains(&device_only), "{device_only}");
        assert!((350..650).contains(&user_only), "{user_only}");
        assert!((350..650).contains(&grouped), "{grouped}");
        assert!(big > 50, "a tail of large users: {big}");
        assert!(max <= MAX_USER_BYTES, "largest user {max} bytes");
        assert!(prop_counts.contains(&0) && prop_counts.contains(&20));
    }
}
