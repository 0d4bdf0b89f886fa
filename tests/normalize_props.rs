//! Property tests for `/v1/vardata` normalization.
//!
//! Requests are generated as a *model* (user id, device id, flag keys, a user object,
//! headers) and then *rendered* into a query string and headers with a seeded random
//! spelling: parameter order, `+`/`%20`, hex case, needless percent-encoding, member order
//! and null members at the user's lookup levels, JSON string escapes (`\u` in either hex
//! case, surrogate pairs, `\/`, short escapes) in every member name and string value at
//! every depth, JSON whitespace, and the split of the flag list between `flag_key` and
//! `flag_keys`. Every spelling of one model must give one key, and that key must be the
//! canonical request the model describes.

use std::collections::{BTreeMap, BTreeSet};

use evalgate::config::FlagKeysParam;
use evalgate::normalize::{Decision, Limits, v1_vardata};
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use proptest::prelude::*;

// --- A small deterministic RNG for rendering choices ---------------------------------

/// SplitMix64: rendering choices come from a seed proptest generates, so a failing case
/// reproduces exactly.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// True with probability 1/n.
    fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }

    fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i + 1);
            items.swap(i, j);
        }
    }
}

// --- The model ------------------------------------------------------------------------

/// A JSON value below the lookup levels: its text is significant, so it renders one way
/// up to whitespace and string escapes. Objects keep their member order and may repeat
/// names.
#[derive(Debug, Clone)]
enum J {
    Null,
    Bool(bool),
    Num(String),
    Str(String),
    Arr(Vec<J>),
    Obj(Vec<(String, J)>),
}

/// A map at a lookup level; `None` values are null members (rendered as `null` or omitted).
type Level<T> = BTreeMap<String, Option<T>>;

/// A user object, built from its lookup levels.
#[derive(Debug, Clone)]
struct User {
    /// Plain members of the user object (never one of the three nested-level names).
    top: BTreeMap<String, J>,
    user_properties: Option<Level<J>>,
    groups: Option<Level<J>>,
    /// type → name → properties.
    group_properties: Option<Level<Level<Level<J>>>>,
}

impl User {
    /// Whether the user is empty once null members are dropped (the same as no context).
    fn is_empty(&self) -> bool {
        self.top.values().all(|j| matches!(j, J::Null))
            && self.user_properties.is_none()
            && self.groups.is_none()
            && self.group_properties.is_none()
    }
}

#[derive(Debug, Clone)]
struct Req {
    deployment: String,
    track: Option<String>,
    user_id: String,
    device_id: String,
    flags: Vec<String>,
    user: User,
    /// Parameters evalgate does not know: `(name, value)`, decoded.
    unknown: Vec<(String, String)>,
}

// --- Strategies -----------------------------------------------------------------------

/// Strings with characters that need care: percent-encoding, JSON escapes, unicode.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9]{0,6}",
        "[ -~]{0,8}",
        "\\PC{0,6}",
        "[ &=+%#,;/?\"\\\\\u{0}-\u{1f}\u{7f}\u{a0}é€\u{2028}😀]{0,6}",
    ]
}

fn nonempty_text() -> impl Strategy<Value = String> {
    text().prop_filter("non-empty", |s| !s.is_empty())
}

/// A member name. Names may need escaping in JSON.
fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[a-z_]{1,8}",
        1 => text(),
        1 => prop::sample::select(vec!["user_id", "device_id", "country", "plan", "a", "A", "é"])
            .prop_map(String::from),
    ]
}

fn number() -> impl Strategy<Value = String> {
    "-?(0|[1-9][0-9]{0,4})(\\.[0-9]{1,3})?([eE][+-]?[0-9]{1,2})?"
}

fn json() -> impl Strategy<Value = J> {
    let leaf = prop_oneof![
        Just(J::Null),
        any::<bool>().prop_map(J::Bool),
        number().prop_map(J::Num),
        text().prop_map(J::Str),
    ];
    leaf.prop_recursive(3, 12, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(J::Arr),
            prop::collection::vec((name(), inner), 0..3).prop_map(J::Obj),
        ]
    })
}

fn level<T: std::fmt::Debug>(
    value: impl Strategy<Value = T>,
    max: usize,
) -> impl Strategy<Value = Level<T>> {
    prop::collection::btree_map(name(), prop::option::weighted(0.8, value), 0..max)
}

fn user() -> impl Strategy<Value = User> {
    (
        prop::collection::btree_map(name(), json(), 0..4).prop_map(|mut top| {
            for special in ["user_properties", "groups", "group_properties"] {
                top.remove(special);
            }
            top
        }),
        prop::option::of(level(json(), 4)),
        prop::option::of(level(json(), 3)),
        prop::option::of(level(level(level(json(), 3), 3), 3)),
    )
        .prop_map(|(top, user_properties, groups, group_properties)| User {
            top,
            user_properties,
            groups,
            group_properties,
        })
}

/// A flag key: non-empty, no comma, no surrounding whitespace (those are list syntax).
fn flag() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z][a-z0-9-]{0,8}",
        "[a-zA-Z0-9 _.&=+%#;/?é😀]{1,8}",
        "\\PC{1,5}",
    ]
    .prop_map(|s| s.replace(',', "").trim().to_owned())
    .prop_filter("non-empty", |s| !s.is_empty())
}

fn req() -> impl Strategy<Value = Req> {
    (
        "[!-~]{1,24}",
        prop::option::of("[!-~]([ -~]{0,8}[!-~])?"),
        prop_oneof![1 => Just(String::new()), 3 => nonempty_text()],
        prop_oneof![1 => Just(String::new()), 3 => nonempty_text()],
        prop::collection::vec(flag(), 0..6),
        user(),
        prop::collection::vec(("[a-z]{0,3}x[a-z_]{0,4}", text()), 0..3),
    )
        .prop_map(
            |(deployment, track, user_id, device_id, flags, user, unknown)| Req {
                deployment,
                track,
                user_id,
                device_id,
                flags,
                user,
                unknown,
            },
        )
}

fn mode() -> impl Strategy<Value = FlagKeysParam> {
    prop_oneof![
        Just(FlagKeysParam::Both),
        Just(FlagKeysParam::FlagKey),
        Just(FlagKeysParam::FlagKeys),
    ]
}

fn limits(flag_keys_param: FlagKeysParam) -> Limits {
    Limits {
        // Generous: these properties are about spelling, not size.
        max_context_bytes: 1 << 20,
        flag_keys_param,
        tracking: evalgate::config::Tracking::Passthrough,
    }
}

// --- Rendering: one model, many spellings ---------------------------------------------

const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";
const HEX_LOWER: &[u8; 16] = b"0123456789abcdef";

fn push_pct(out: &mut String, b: u8, rng: &mut Rng) {
    out.push('%');
    for nibble in [b >> 4, b & 15] {
        let hex = if rng.one_in(2) { HEX_UPPER } else { HEX_LOWER };
        out.push(hex[nibble as usize] as char);
    }
}

/// Form-urlencodes a name or value, randomly: spaces as `+` or `%20`, hex in either case,
/// characters that need no encoding sometimes encoded, non-ASCII sometimes left raw.
fn enc(s: &str, rng: &mut Rng) -> String {
    let mut out = String::new();
    for c in s.chars() {
        let mut buf = [0; 4];
        let bytes = c.encode_utf8(&mut buf).as_bytes();
        match c {
            ' ' if rng.one_in(2) => out.push('+'),
            ' ' | '&' | '=' | '+' | '%' | '#' | '\u{0}'..='\u{1f}' | '\u{7f}' => {
                push_pct(&mut out, bytes[0], rng)
            }
            _ if c.is_ascii() && !rng.one_in(4) => out.push(c),
            _ if !c.is_ascii() && rng.one_in(4) => out.push(c),
            _ => bytes.iter().for_each(|&b| push_pct(&mut out, b, rng)),
        }
    }
    out
}

/// Insignificant JSON whitespace, usually none.
fn ws(out: &mut String, rng: &mut Rng) {
    if rng.one_in(3) {
        out.push_str(rng.pick(&[" ", "  ", "\n", "\t", "\r\n", " \n  "]));
    }
}

/// A JSON string (a member name or a string value, at any depth), spelled at random:
/// any character may be a `\u` escape (hex in either case, surrogate pairs above the
/// BMP) or its short escape (`\/`, `\n`, …); all strings are the same to a parser.
fn json_string(name: &str, rng: &mut Rng) -> String {
    fn unicode_escape(out: &mut String, unit: u16, rng: &mut Rng) {
        let hex = if rng.one_in(2) { HEX_UPPER } else { HEX_LOWER };
        out.push_str("\\u");
        for shift in [12, 8, 4, 0] {
            out.push(hex[((unit >> shift) & 15) as usize] as char);
        }
    }
    let mut out = String::from('"');
    for c in name.chars() {
        let short = match c {
            '"' => Some("\\\""),
            '\\' => Some("\\\\"),
            '/' => Some("\\/"),
            '\u{8}' => Some("\\b"),
            '\u{c}' => Some("\\f"),
            '\n' => Some("\\n"),
            '\r' => Some("\\r"),
            '\t' => Some("\\t"),
            _ => None,
        };
        let must_escape = matches!(c, '"' | '\\' | '\u{0}'..='\u{1f}');
        if must_escape || rng.one_in(4) {
            match short {
                Some(s) if rng.one_in(2) => out.push_str(s),
                _ => {
                    let mut units = [0; 2];
                    for &unit in c.encode_utf16(&mut units).iter() {
                        unicode_escape(&mut out, unit, rng);
                    }
                }
            }
        } else {
            out.push(c);
        }
    }
    out.push('"');
    out
}

/// A value below the lookup levels: always the same text, up to whitespace and string
/// escapes.
fn render_j(j: &J, out: &mut String, rng: &mut Rng) {
    match j {
        J::Null => out.push_str("null"),
        J::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        J::Num(n) => out.push_str(n),
        J::Str(s) => out.push_str(&json_string(s, rng)),
        J::Arr(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                ws(out, rng);
                render_j(item, out, rng);
                ws(out, rng);
            }
            ws(out, rng);
            out.push(']');
        }
        J::Obj(members) => {
            out.push('{');
            for (i, (name, value)) in members.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                ws(out, rng);
                out.push_str(&json_string(name, rng));
                ws(out, rng);
                out.push(':');
                ws(out, rng);
                render_j(value, out, rng);
                ws(out, rng);
            }
            ws(out, rng);
            out.push('}');
        }
    }
}

/// An object at a lookup level: members shuffled, null members sometimes omitted and
/// sometimes sent as `null`, names spelled at random.
fn render_lookup(members: Vec<(&str, Option<String>)>, rng: &mut Rng) -> String {
    let mut members: Vec<_> = members
        .into_iter()
        .filter_map(|(name, value)| match value {
            Some(v) => Some((name, v)),
            None if rng.one_in(2) => None,
            None => Some((name, "null".to_owned())),
        })
        .collect();
    rng.shuffle(&mut members);
    let mut out = String::from('{');
    for (i, (name, value)) in members.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        ws(&mut out, rng);
        out.push_str(&json_string(name, rng));
        ws(&mut out, rng);
        out.push(':');
        ws(&mut out, rng);
        out.push_str(value);
        ws(&mut out, rng);
    }
    ws(&mut out, rng);
    out.push('}');
    out
}

fn render_leaf_value(j: &J, rng: &mut Rng) -> Option<String> {
    match j {
        J::Null => None,
        j => {
            let mut s = String::new();
            render_j(j, &mut s, rng);
            Some(s)
        }
    }
}

fn render_leaf_level(level: &Level<J>, rng: &mut Rng) -> String {
    let members = level
        .iter()
        .map(|(n, v)| {
            (
                n.as_str(),
                v.as_ref().and_then(|j| render_leaf_value(j, rng)),
            )
        })
        .collect();
    render_lookup(members, rng)
}

fn render_user(user: &User, rng: &mut Rng) -> String {
    let mut members: Vec<(&str, Option<String>)> = user
        .top
        .iter()
        .map(|(n, j)| (n.as_str(), render_leaf_value(j, rng)))
        .collect();
    let up = user
        .user_properties
        .as_ref()
        .map(|l| render_leaf_level(l, rng));
    members.push(("user_properties", up));
    let groups = user.groups.as_ref().map(|l| render_leaf_level(l, rng));
    members.push(("groups", groups));
    let gp = user.group_properties.as_ref().map(|types| {
        let types = types
            .iter()
            .map(|(ty, names)| {
                let names = names.as_ref().map(|names| {
                    let names = names
                        .iter()
                        .map(|(n, props)| {
                            (
                                n.as_str(),
                                props.as_ref().map(|p| render_leaf_level(p, rng)),
                            )
                        })
                        .collect();
                    render_lookup(names, rng)
                });
                (ty.as_str(), names)
            })
            .collect();
        render_lookup(types, rng)
    });
    members.push(("group_properties", gp));
    let mut out = String::new();
    ws(&mut out, rng);
    out.push_str(&render_lookup(members, rng));
    ws(&mut out, rng);
    out
}

/// The flag list split at random between `flag_key` and `flag_keys`: items repeated,
/// padded with whitespace, interleaved with empty items, in any order.
fn render_flags(flags: &[String], rng: &mut Rng) -> [Vec<String>; 2] {
    let mut lists: [Vec<String>; 2] = [Vec::new(), Vec::new()];
    for f in flags {
        for _ in 0..1 + usize::from(rng.one_in(4)) {
            let pad = |rng: &mut Rng| rng.pick(&["", "", "", " ", "\t", "  "]).to_string();
            let item = format!("{}{f}{}", pad(rng), pad(rng));
            lists[rng.below(2)].push(item);
        }
    }
    for list in &mut lists {
        for _ in 0..rng.below(3) {
            list.push(rng.pick(&["", " ", "\t"]).to_string());
        }
        rng.shuffle(list);
    }
    lists
}

/// One spelling of a request: the query, and the headers.
fn render(req: &Req, seed: u64) -> (String, HeaderMap) {
    let rng = &mut Rng(seed);
    // (name, decoded value or None for a bare name)
    let mut params: Vec<(&str, Option<String>)> = Vec::new();
    for (name, value) in [("user_id", &req.user_id), ("device_id", &req.device_id)] {
        if !value.is_empty() {
            params.push((name, Some(value.clone())));
        } else {
            match rng.below(3) {
                0 => {}
                1 => params.push((name, Some(String::new()))),
                _ => params.push((name, None)),
            }
        }
    }
    let [fk, fks] = render_flags(&req.flags, rng);
    for (name, list) in [("flag_key", fk), ("flag_keys", fks)] {
        if !list.is_empty() || rng.one_in(4) {
            params.push((name, Some(list.join(","))));
        }
    }
    if !req.user.is_empty() || !rng.one_in(3) {
        params.push(("context", Some(render_user(&req.user, rng))));
    }
    // The same parameter twice with the same value is one parameter.
    for i in 0..params.len() {
        if rng.one_in(8) {
            params.push(params[i].clone());
        }
    }
    for (name, value) in &req.unknown {
        params.push((name, Some(value.clone())));
    }
    rng.shuffle(&mut params);

    let mut query = String::new();
    if rng.one_in(8) {
        query.push('&');
    }
    for (i, (name, value)) in params.iter().enumerate() {
        if i > 0 {
            query.push_str(if rng.one_in(10) { "&&" } else { "&" });
        }
        query.push_str(&enc(name, rng));
        if let Some(v) = value {
            query.push('=');
            query.push_str(&enc(v, rng));
        }
    }

    let mut headers = HeaderMap::new();
    let scheme: String = "Api-Key"
        .chars()
        .map(|c| {
            if rng.one_in(2) {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            }
        })
        .collect();
    let auth = format!(
        "{}{scheme}{}{}{}",
        rng.pick(&["", "", " "]),
        rng.pick(&[" ", " ", "  ", "\t", " \t "]),
        req.deployment,
        rng.pick(&["", "", " ", "  "]),
    );
    headers.insert(http::header::AUTHORIZATION, auth.parse().unwrap());
    if let Some(track) = &req.track {
        let padded = format!("{}{track}{}", rng.pick(&["", " "]), rng.pick(&["", " "]));
        headers.insert("x-amp-exp-track", padded.parse().unwrap());
    }
    if rng.one_in(3) {
        let v = rng.pick(&["no-track", "NO-TRACK", "No-Track", " no-track "]);
        headers.insert("x-amp-exp-exposure-track", HeaderValue::from_static(v));
    }
    if rng.one_in(3) {
        headers.insert("user-agent", HeaderValue::from_static("props/1"));
    }
    (query, headers)
}

// --- The expected canonical request, from the model alone -----------------------------

/// RFC 3986 unreserved characters stay, everything else is `%XX` in upper case.
fn canonical_enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A value below the lookup levels, canonically: as sent, strings as serde_json writes them.
fn canonical_j(j: &J) -> String {
    let mut out = String::new();
    fn go(j: &J, out: &mut String) {
        match j {
            J::Null => out.push_str("null"),
            J::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            J::Num(n) => out.push_str(n),
            J::Str(s) => out.push_str(&serde_json::to_string(s).unwrap()),
            J::Arr(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    go(item, out);
                }
                out.push(']');
            }
            J::Obj(members) => {
                out.push('{');
                for (i, (name, value)) in members.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&serde_json::to_string(name).unwrap());
                    out.push(':');
                    go(value, out);
                }
                out.push('}');
            }
        }
    }
    go(j, &mut out);
    out
}

/// A lookup level, canonically: members sorted by name (bytes), nulls dropped.
fn canonical_object(members: BTreeMap<&str, String>) -> String {
    let body: Vec<String> = members
        .into_iter()
        .map(|(n, v)| format!("{}:{v}", serde_json::to_string(n).unwrap()))
        .collect();
    format!("{{{}}}", body.join(","))
}

fn canonical_leaf_level(level: &Level<J>) -> String {
    canonical_object(
        level
            .iter()
            .filter_map(|(n, v)| match v {
                Some(J::Null) | None => None,
                Some(j) => Some((n.as_str(), canonical_j(j))),
            })
            .collect(),
    )
}

fn canonical_user(user: &User) -> Option<String> {
    let mut members: BTreeMap<&str, String> = user
        .top
        .iter()
        .filter(|(_, j)| !matches!(j, J::Null))
        .map(|(n, j)| (n.as_str(), canonical_j(j)))
        .collect();
    if let Some(l) = &user.user_properties {
        members.insert("user_properties", canonical_leaf_level(l));
    }
    if let Some(l) = &user.groups {
        members.insert("groups", canonical_leaf_level(l));
    }
    if let Some(types) = &user.group_properties {
        let types = types
            .iter()
            .filter_map(|(ty, names)| {
                let names = names.as_ref()?;
                let names = names
                    .iter()
                    .filter_map(|(n, props)| {
                        Some((n.as_str(), canonical_leaf_level(props.as_ref()?)))
                    })
                    .collect();
                Some((ty.as_str(), canonical_object(names)))
            })
            .collect();
        members.insert("group_properties", canonical_object(types));
    }
    (!members.is_empty()).then(|| canonical_object(members))
}

fn expected_path_and_query(req: &Req, mode: FlagKeysParam) -> String {
    let mut params: Vec<(&str, String)> = Vec::new();
    if let Some(c) = canonical_user(&req.user) {
        params.push(("context", canonical_enc(&c)));
    }
    if !req.device_id.is_empty() {
        params.push(("device_id", canonical_enc(&req.device_id)));
    }
    let flags: BTreeSet<&str> = req.flags.iter().map(String::as_str).collect();
    if !flags.is_empty() {
        let list = flags
            .iter()
            .map(|f| canonical_enc(f))
            .collect::<Vec<_>>()
            .join(",");
        if mode != FlagKeysParam::FlagKeys {
            params.push(("flag_key", list.clone()));
        }
        if mode != FlagKeysParam::FlagKey {
            params.push(("flag_keys", list));
        }
    }
    if !req.user_id.is_empty() {
        params.push(("user_id", canonical_enc(&req.user_id)));
    }
    let mut out = String::from("/v1/vardata");
    for (i, (name, value)) in params.iter().enumerate() {
        out.push(if i == 0 { '?' } else { '&' });
        out.push_str(name);
        out.push('=');
        out.push_str(value);
    }
    out
}

// --- Helpers --------------------------------------------------------------------------

fn key_of(
    query: &str,
    headers: &HeaderMap,
    mode: FlagKeysParam,
) -> Result<evalgate::CacheKey, TestCaseError> {
    match v1_vardata(&Method::GET, Some(query), headers, &limits(mode)) {
        Decision::Cache(k) => Ok(k),
        other => Err(TestCaseError::fail(format!(
            "expected a cache key for {query:?}, got {other:?}"
        ))),
    }
}

fn key_of_req(
    req: &Req,
    seed: u64,
    mode: FlagKeysParam,
) -> Result<evalgate::CacheKey, TestCaseError> {
    let (query, headers) = render(req, seed);
    key_of(&query, &headers, mode)
}

/// The request a key stands for, fed back in: its own query, `Api-Key`, and track.
fn reparse(key: &evalgate::CacheKey, mode: FlagKeysParam) -> Decision {
    let mut headers = HeaderMap::new();
    headers.insert(
        http::header::AUTHORIZATION,
        HeaderValue::try_from(format!("Api-Key {}", key.deployment())).unwrap(),
    );
    if let Some(t) = key.track() {
        headers.insert("x-amp-exp-track", HeaderValue::try_from(t).unwrap());
    }
    let pq = key.path_and_query();
    let query = pq.split_once('?').map(|(_, q)| q);
    v1_vardata(&Method::GET, query, &headers, &limits(mode))
}

// --- Properties -----------------------------------------------------------------------

proptest! {
    /// Every spelling of one request gives one key, and it is the model's canonical request.
    #[test]
    fn spellings_share_one_key(req in req(), s1 in any::<u64>(), s2 in any::<u64>(), mode in mode()) {
        let k1 = key_of_req(&req, s1, mode)?;
        let k2 = key_of_req(&req, s2, mode)?;
        prop_assert_eq!(&k1, &k2);
        prop_assert_eq!(k1.path_and_query(), expected_path_and_query(&req, mode));
        prop_assert_eq!(k1.deployment(), req.deployment.as_str());
        prop_assert_eq!(k1.track(), req.track.as_deref());
    }

    /// A key's own request normalizes to the same key.
    #[test]
    fn canonical_request_is_a_fixed_point(req in req(), seed in any::<u64>(), mode in mode()) {
        let k = key_of_req(&req, seed, mode)?;
        match reparse(&k, mode) {
            Decision::Cache(again) => prop_assert_eq!(again, k),
            other => prop_assert!(false, "{:?} re-normalized to {:?}", k, other),
        }
    }

    /// Requests for different users never share an entry.
    #[test]
    fn different_users_never_share_a_key(
        a in req(),
        b in req(),
        other_user in nonempty_text(),
        same_rest in any::<bool>(),
        s1 in any::<u64>(),
        s2 in any::<u64>(),
        mode in mode(),
    ) {
        let b = if same_rest {
            Req { user_id: if a.user_id == other_user { String::new() } else { other_user }, ..a.clone() }
        } else {
            b
        };
        prop_assume!(a.user_id != b.user_id);
        let ka = key_of_req(&a, s1, mode)?;
        let kb = key_of_req(&b, s2, mode)?;
        prop_assert_ne!(ka, kb);
    }

    /// A user spelled with arbitrary string escapes (and member order, nulls, whitespace)
    /// canonicalizes to its plain serialization, and the canonical form is a fixed point.
    #[test]
    fn string_escapes_never_change_the_canonical_user(user in user(), seed in any::<u64>()) {
        let spelled = render_user(&user, &mut Rng(seed));
        let canonical = evalgate::normalize::user::canonical_user(&spelled)
            .map_err(|e| TestCaseError::fail(format!("{spelled}: {e:?}")))?;
        prop_assert_eq!(&canonical, &canonical_user(&user), "{}", spelled);
        if let Some(c) = &canonical {
            prop_assert_eq!(
                evalgate::normalize::user::canonical_user(c),
                Ok(Some(c.clone()))
            );
        }
    }

    /// The same for SDK users: an escaped body and a plain base64 header share one key.
    #[test]
    fn sdk_users_with_any_escapes_share_one_key(user in user(), seed in any::<u64>()) {
        let spelled = render_user(&user, &mut Rng(seed));
        let plain = canonical_user(&user).unwrap_or_else(|| "{}".into());
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::AUTHORIZATION,
            HeaderValue::from_static("Api-Key props-key"),
        );
        let body = sdk_key(&Method::POST, &headers, spelled.as_bytes())?;
        headers.insert(
            "x-amp-exp-user",
            HeaderValue::try_from(evalgate::b64::encode_url(plain.as_bytes())).unwrap(),
        );
        let header = sdk_key(&Method::GET, &headers, b"")?;
        prop_assert_eq!(body.body(), Some(plain.as_str()));
        prop_assert_eq!(body, header);
    }
}

fn sdk_key(
    method: &Method,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<evalgate::CacheKey, TestCaseError> {
    match evalgate::normalize::sdk::vardata(
        evalgate::key::RouteFamily::SdkV2Vardata,
        method,
        None,
        headers,
        body,
        evalgate::config::Tracking::Passthrough,
    ) {
        Decision::Cache(k) => Ok(k),
        other => Err(TestCaseError::fail(format!(
            "expected a key, got {other:?}"
        ))),
    }
}

// --- Arbitrary input ------------------------------------------------------------------

/// Query fragments that stress the decoder and the parameter rules.
fn query_token() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(vec![
            "&", "&&", "=", "==", "%", "%%", "+", ",", "%2C", "%2c", "%20", "%0", "%G0", "%FF",
            "%C3", "%C3%A9", "%ED%A0%80", "%F4%90%80%80", "%00", "user_id", "user%5Fid",
            "device_id", "context", "flag_key", "flag_keys", "d", "%64", "=u", "=%7B%7D",
            "%7B", "%7D", "%22", "%3A", "{", "}", "[", "]", "\"", ":", "null", "%5Cu0000",
            "%5Cud800", "user_properties", "group_properties", "groups", "1e999", "-0",
        ])
        .prop_map(String::from),
        1 => any::<u8>().prop_map(|b| format!("%{b:02X}")),
        1 => any::<u8>().prop_map(|b| format!("%{b:02x}")),
        1 => "\\PC{0,4}",
        1 => "[ -~]{0,4}",
    ]
}

fn arbitrary_query() -> impl Strategy<Value = Option<String>> {
    prop::option::weighted(
        0.95,
        prop_oneof![
            3 => prop::collection::vec(query_token(), 0..40).prop_map(|t| t.concat()),
            1 => any::<String>(),
            1 => prop::collection::vec(any::<u8>(), 0..64)
                .prop_map(|b| b.iter().map(|b| format!("%{b:02X}")).collect()),
        ],
    )
}

/// JSON-ish text for `context`, mostly valid, percent-encoded.
fn arbitrary_context_param() -> impl Strategy<Value = String> {
    let tokens = prop::collection::vec(
        prop::sample::select(vec![
            "{",
            "}",
            "[",
            "]",
            ":",
            ",",
            " ",
            "\"a\"",
            "\"user_properties\"",
            "\"groups\"",
            "\"group_properties\"",
            "\"a\\u0000\"",
            "\"\\ud83d\\ude00\"",
            "\"\\ud800\"",
            "null",
            "true",
            "1",
            "1.0",
            "-0",
            "1e2",
            "\"x\"",
            "\"\"",
        ]),
        0..30,
    );
    tokens.prop_map(|t| format!("context={}", canonical_enc(&t.concat())))
}

fn arbitrary_headers() -> impl Strategy<Value = HeaderMap> {
    let value = prop_oneof![
        prop::sample::select(vec![
            "Api-Key k",
            "api-key k",
            "API-KEY   k  ",
            "Api-Key",
            "Api-Key ",
            "Bearer k",
            "Api-Key a b",
            "track",
            "no-track",
            "",
            " ",
            "\t",
            "Api-Key\tk\t",
        ])
        .prop_map(|s| s.as_bytes().to_vec()),
        prop::collection::vec(any::<u8>(), 0..16),
    ];
    let name = prop::sample::select(vec![
        "authorization",
        "x-amp-exp-track",
        "x-amp-exp-exposure-track",
        "x-other",
    ]);
    prop::collection::vec((name, value), 0..5).prop_map(|pairs| {
        let mut h = HeaderMap::new();
        for (name, value) in pairs {
            if let Ok(v) = HeaderValue::from_bytes(&value) {
                h.append(HeaderName::from_static(name), v);
            }
        }
        h
    })
}

fn arbitrary_method() -> impl Strategy<Value = Method> {
    prop::sample::select(vec![
        Method::GET,
        Method::GET,
        Method::HEAD,
        Method::POST,
        Method::DELETE,
    ])
}

/// For any input that does normalize, the key is a valid, stable upstream request.
fn check_key(decision: Decision, mode: FlagKeysParam) -> Result<(), TestCaseError> {
    if let Decision::Cache(k) = decision {
        prop_assert!(k.path_and_query().is_ascii());
        prop_assert!(
            k.upstream_request("http://upstream.test").is_ok(),
            "{:?}",
            k
        );
        match reparse(&k, mode) {
            Decision::Cache(again) => prop_assert_eq!(again, k),
            other => prop_assert!(false, "{:?} re-normalized to {:?}", k, other),
        }
    }
    Ok(())
}

proptest! {
    /// Arbitrary queries and headers never panic; whatever is cached is a fixed point.
    #[test]
    fn arbitrary_input_never_panics(
        method in arbitrary_method(),
        query in arbitrary_query(),
        headers in arbitrary_headers(),
        max_context_bytes in prop_oneof![Just(0usize), Just(16), Just(8192)],
        mode in mode(),
    ) {
        let limits = Limits { max_context_bytes, flag_keys_param: mode, tracking: evalgate::config::Tracking::Passthrough };
        let decision = v1_vardata(&method, query.as_deref(), &headers, &limits);
        if max_context_bytes == 8192 {
            check_key(decision, mode)?;
        }
    }

    /// Arbitrary context text with a valid request around it: never panics, and any key
    /// it gives is a fixed point.
    #[test]
    fn arbitrary_context_never_panics(
        context in arbitrary_context_param(),
        rest in prop::collection::vec(query_token(), 0..6),
        mode in mode(),
    ) {
        let mut headers = HeaderMap::new();
        headers.insert(http::header::AUTHORIZATION, HeaderValue::from_static("Api-Key k"));
        let query = format!("{context}&{}", rest.concat());
        let decision = v1_vardata(&Method::GET, Some(&query), &headers, &limits(mode));
        check_key(decision, mode)?;
    }
}
