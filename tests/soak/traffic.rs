//! The soak's requests: what a request means ([`Meaning`]) and the many ways to spell it
//! ([`spell`]). Each [`Spec`] says what it must get: the model's answer (checked by
//! [`crate::check`]) or a status evalgate answers itself ([`crate::inputs`]).

use base64::Engine as _;
use serde_json::{Map, Value, json};

use crate::rng::Rng;

pub const KEY: &str = "server-soak-key-0001";
pub const KEY2: &str = "server-soak-key-0002";

/// The soak config's request limits (set in `soak.rs`'s config; fixed across reloads).
pub const MAX_QUERY_BYTES: usize = 4096;
pub const MAX_CONTEXT_BYTES: usize = 2048;
pub const MAX_HEADER_BYTES: usize = 8192;
pub const MAX_BODY_BYTES: usize = 16384;

/// One request to send, and what it must get.
#[derive(Debug, Clone)]
pub struct Spec {
    pub kind: &'static str,
    pub method: &'static str,
    pub path_and_query: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub expect: Expect,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Expect {
    /// What the model answers to this request (or an error the faults explain).
    Model,
    /// A JSON error evalgate answers itself, whatever the upstream does.
    Gateway(u16),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Route {
    V1,
    SdkGet,
    SdkPost,
    Flags,
}

/// What a cacheable request asks, independent of its spelling.
#[derive(Debug, Clone)]
pub struct Meaning {
    route: Route,
    key: String,
    user_id: Option<String>,
    device_id: Option<String>,
    /// Top-level user fields (v1: in `context`; SDK: in the user).
    fields: Vec<(String, Value)>,
    props: Vec<(String, Value)>,
    flags: Vec<String>,
    track: Option<&'static str>,
    v: Option<&'static str>,
}

const FLAGS: [&str; 6] = ["checkout", "new-ui", "beta", "dark mode", "a,b", "ü-flag"];
const PLANS: [&str; 3] = ["free", "pro", "team"];
const COUNTRIES: [&str; 3] = ["DE", "US", "JP"];

/// A meaning drawn from small pools (so meanings repeat), with `user` as its user id.
pub fn meaning(rng: &mut Rng, user: String) -> Meaning {
    let route = match rng.below(100) {
        0..60 => Route::V1,
        60..75 => Route::SdkGet,
        75..85 => Route::SdkPost,
        _ => Route::Flags,
    };
    let mut fields = Vec::new();
    if rng.chance(60) {
        fields.push(("country".to_string(), json!(rng.pick(&COUNTRIES))));
    }
    if rng.chance(30) {
        fields.push(("platform".to_string(), json!("web")));
    }
    let mut props = Vec::new();
    if rng.chance(70) {
        props.push(("plan".to_string(), json!(rng.pick(&PLANS))));
    }
    if rng.chance(40) {
        props.push(("seats".to_string(), json!(rng.below(4))));
    }
    if rng.chance(20) {
        props.push(("tags".to_string(), json!({"b": [1, 2.5, "x"], "a": true})));
    }
    // A flag name with a comma cannot travel in the query's comma lists.
    let flag_pool: &[&str] = if matches!(route, Route::SdkGet | Route::SdkPost) {
        &FLAGS
    } else {
        &FLAGS[..4]
    };
    let flags = (0..rng.below(3))
        .map(|_| rng.pick(flag_pool).to_string())
        .collect();
    Meaning {
        route,
        key: if rng.chance(80) { KEY } else { KEY2 }.to_string(),
        user_id: rng.chance(90).then_some(user),
        device_id: rng.chance(60).then(|| format!("dev-{}", rng.below(3))),
        fields,
        props,
        flags,
        track: rng.chance(20).then_some("no-track"),
        v: rng.chance(30).then_some("0"),
    }
}

/// Hot meaning `i`: meanings come in fours that differ in exactly one part (the device
/// id, the deployment key, tracking), so a gateway that leaves one out of the key serves
/// one of them the other's answer.
pub fn hot_meaning(i: u64) -> Meaning {
    let mut m = meaning(&mut Rng::new(0x5EED_0000 + i / 4), format!("hot-{}", i / 4));
    match i % 4 {
        1 => {
            m.device_id = Some(match m.device_id {
                Some(d) => format!("{d}-other"),
                None => "dev-only-here".into(),
            })
        }
        2 => m.key = if m.key == KEY { KEY2 } else { KEY }.to_string(),
        3 => {
            m.track = if m.track.is_some() {
                None
            } else {
                Some("no-track")
            }
        }
        _ => {}
    }
    m
}

/// One spelling of `m`: parameter order, percent-encoding, JSON member order and
/// whitespace, base64 flavour, flag-list form, the `Api-Key` scheme's case, unkeyed extras.
pub fn spell(m: &Meaning, rng: &mut Rng, kind: &'static str) -> Spec {
    let mut headers = vec![("authorization".to_string(), authorization(rng, &m.key))];
    if let Some(track) = m.track {
        headers.push(("x-amp-exp-track".into(), track.into()));
    }
    if rng.chance(20) {
        headers.push(("x-client-noise".into(), format!("{}", rng.below(1000))));
    }
    let mut params: Vec<(String, String)> = Vec::new();
    if rng.chance(15) {
        params.push(("utm_source".into(), format!("n{}", rng.below(1000))));
    }
    let (method, path, body) = match m.route {
        Route::V1 => {
            for (name, value) in [("user_id", &m.user_id), ("device_id", &m.device_id)] {
                match value {
                    Some(v) => params.push((name.into(), v.clone())),
                    None if rng.chance(20) => params.push((name.into(), String::new())),
                    None => {}
                }
            }
            let context = user_json(rng, &m.fields, &m.props, None);
            if context != "{}" || rng.chance(20) {
                params.push(("context".into(), context));
            }
            query_flag_lists(rng, &m.flags, &mut params, true);
            ("GET", "/v1/vardata", Vec::new())
        }
        Route::SdkGet | Route::SdkPost => {
            let user = user_json(rng, &m.fields, &m.props, Some(m));
            if !m.flags.is_empty() && rng.chance(50) {
                let mut list = m.flags.clone();
                rng.shuffle(&mut list);
                let list = serde_json::to_string(&list).unwrap();
                headers.push(("x-amp-exp-flag-keys".into(), base64_some_way(rng, &list)));
            } else {
                query_flag_lists(rng, &m.flags, &mut params, true);
            }
            if let Some(v) = m.v {
                params.push(("v".into(), v.into()));
            }
            if m.route == Route::SdkPost {
                ("POST", "/sdk/v2/vardata", user.into_bytes())
            } else {
                if user != "{}" || rng.chance(30) {
                    headers.push(("x-amp-exp-user".into(), base64_some_way(rng, &user)));
                }
                ("GET", "/sdk/v2/vardata", Vec::new())
            }
        }
        Route::Flags => {
            query_flag_lists(rng, &m.flags, &mut params, false);
            if let Some(v) = m.v {
                params.push(("v".into(), v.into()));
            }
            ("GET", "/sdk/v2/flags", Vec::new())
        }
    };
    rng.shuffle(&mut params);
    Spec {
        kind,
        method,
        path_and_query: with_query(path, &encode_query(rng, &params)),
        headers,
        body,
        expect: Expect::Model,
    }
}

fn authorization(rng: &mut Rng, key: &str) -> String {
    let scheme = *rng.pick(&["Api-Key", "api-key", "API-KEY"]);
    let pad = *rng.pick(&["", " ", "  "]);
    format!("{pad}{scheme} {key}{pad}")
}

/// The user (or `context`) as JSON: members in random order, compact or pretty.
fn user_json(
    rng: &mut Rng,
    fields: &[(String, Value)],
    props: &[(String, Value)],
    ids: Option<&Meaning>,
) -> String {
    let mut members: Vec<(String, Value)> = fields.to_vec();
    if let Some(m) = ids {
        for (name, value) in [("user_id", &m.user_id), ("device_id", &m.device_id)] {
            if let Some(v) = value {
                members.push((name.into(), json!(v)));
            }
        }
    }
    if !props.is_empty() {
        let mut props = props.to_vec();
        rng.shuffle(&mut props);
        members.push((
            "user_properties".into(),
            Value::Object(props.into_iter().collect()),
        ));
    }
    rng.shuffle(&mut members);
    let object = Value::Object(members.into_iter().collect::<Map<_, _>>());
    if rng.chance(30) {
        serde_json::to_string_pretty(&object).unwrap()
    } else {
        object.to_string()
    }
}

/// Flags as `flag_key`/`flag_keys` comma lists: split between the two names (when
/// `both`), with spaces and repeats.
fn query_flag_lists(
    rng: &mut Rng,
    flags: &[String],
    params: &mut Vec<(String, String)>,
    both: bool,
) {
    if flags.is_empty() {
        return;
    }
    let mut first = Vec::new();
    let mut second = Vec::new();
    for f in flags {
        let spaced = if rng.chance(30) {
            format!(" {f} ")
        } else {
            f.clone()
        };
        if both && rng.chance(50) {
            first.push(spaced);
        } else {
            second.push(spaced);
        }
        if rng.chance(10) {
            second.push(f.clone());
        }
    }
    if !first.is_empty() {
        params.push(("flag_key".into(), first.join(",")));
    }
    if !second.is_empty() {
        params.push(("flag_keys".into(), second.join(",")));
    }
}

fn base64_some_way(rng: &mut Rng, text: &str) -> String {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    rng.pick(&[STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD])
        .encode(text)
}

fn encode_query(rng: &mut Rng, params: &[(String, String)]) -> String {
    params
        .iter()
        .map(|(n, v)| {
            let strict = rng.chance(50);
            format!("{}={}", percent(n, strict), percent(v, strict))
        })
        .collect::<Vec<_>>()
        .join("&")
}

fn with_query(path: &str, query: &str) -> String {
    if query.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{query}")
    }
}

/// Percent-encodes for a query: `strict` escapes everything but unreserved characters (in
/// lower-case hex, spaces as `%20`); otherwise only what must be, spaces as `+`.
pub fn percent(text: &str, strict: bool) -> String {
    let mut out = String::new();
    for &b in text.as_bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(b as char)
            }
            b' ' if !strict => out.push('+'),
            b',' | b':' | b'/' | b'@' | b'!' | b'$' | b'\'' | b'(' | b')' | b'*' | b';'
                if !strict =>
            {
                out.push(b as char)
            }
            _ if strict => out.push_str(&format!("%{b:02x}")),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}
