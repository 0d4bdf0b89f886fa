//! Requests that go around the cache (bypasses) and bad inputs: the upstream's 400/401
//! (through a bypass or the negative cache) or one of evalgate's own limits.

use crate::model::BAD_KEY_PREFIX;
use crate::rng::Rng;
use crate::traffic::{
    Expect, KEY, MAX_BODY_BYTES, MAX_CONTEXT_BYTES, MAX_HEADER_BYTES, MAX_QUERY_BYTES, Spec,
    meaning, percent, spell,
};

/// A request that goes around the cache, answered by the upstream.
pub fn bypass(rng: &mut Rng, n: u64) -> Spec {
    let m = meaning(rng, format!("bypass-{n}"));
    let mut spec = match rng.below(4) {
        0 => Spec {
            kind: "bypass",
            method: "GET",
            path_and_query: format!("/soak/other/{n}?b=2&a={}", rng.below(10)),
            headers: vec![("authorization".into(), format!("Api-Key {KEY}"))],
            body: Vec::new(),
            expect: Expect::Model,
        },
        1 => Spec {
            kind: "bypass",
            method: "POST",
            path_and_query: format!("/v1/vardata?user_id=post-{n}"),
            headers: vec![
                ("authorization".into(), format!("Api-Key {KEY}")),
                ("content-type".into(), "application/json".into()),
            ],
            body: format!("{{\"user_id\":\"post-{n}\"}}").into_bytes(),
            expect: Expect::Model,
        },
        // The SDKs' cache buster.
        2 => {
            let mut s = spell(&m, rng, "bypass");
            let sep = if s.path_and_query.contains('?') {
                '&'
            } else {
                '?'
            };
            s.path_and_query.push_str(&format!("{sep}d={n}"));
            s
        }
        _ => {
            let mut s = spell(&m, rng, "bypass");
            s.headers
                .push(("x-amp-exp-exposure-track".into(), "track".into()));
            s
        }
    };
    spec.kind = "bypass";
    spec
}

/// A bad input: the upstream's 400/401 (through a bypass or the negative cache) or one of
/// evalgate's own limits. `raw_limits` allows the inputs an HTTP/2 client cannot send as
/// such (oversized header blocks).
pub fn bad(rng: &mut Rng, n: u64, raw_limits: bool) -> Spec {
    let auth = ("authorization".to_string(), format!("Api-Key {KEY}"));
    let get = |path_and_query: String, headers: Vec<(String, String)>, expect| Spec {
        kind: "bad",
        method: "GET",
        path_and_query,
        headers,
        body: Vec::new(),
        expect,
    };
    let choices = if raw_limits { 9 } else { 7 };
    match rng.below(choices) {
        0 => get(
            format!("/v1/vardata?user_id=u{n}&context=%7B%22plan%22%3A"),
            vec![auth],
            Expect::Model,
        ),
        1 => get(
            "/v1/vardata?user_id=u1&context=%5B1%2C2%5D".into(),
            vec![auth],
            Expect::Model,
        ),
        2 => {
            let key = format!("{BAD_KEY_PREFIX}{}", rng.below(3));
            get(
                format!("/v1/vardata?user_id=u{}", rng.below(5)),
                vec![("authorization".into(), format!("Api-Key {key}"))],
                Expect::Model,
            )
        }
        3 => get(
            "/sdk/v2/vardata".into(),
            vec![auth, ("x-amp-exp-user".into(), "!!not*base64".into())],
            Expect::Model,
        ),
        4 => get(
            format!("/v1/vardata?user_id={}", "x".repeat(MAX_QUERY_BYTES)),
            vec![auth],
            Expect::Gateway(414),
        ),
        5 => {
            let context = format!("{{\"pad\":\"{}\"}}", "p".repeat(MAX_CONTEXT_BYTES));
            get(
                format!("/v1/vardata?user_id=u1&context={}", percent(&context, true)),
                vec![auth],
                Expect::Gateway(414),
            )
        }
        6 => Spec {
            kind: "bad",
            method: "POST",
            path_and_query: "/sdk/v2/vardata".into(),
            headers: vec![auth],
            body: vec![b' '; MAX_BODY_BYTES + 1],
            expect: Expect::Gateway(413),
        },
        7 => Spec {
            kind: "bad",
            method: "POST",
            path_and_query: "/sdk/v2/vardata".into(),
            headers: vec![auth],
            body: b"[1, 2]".to_vec(),
            expect: Expect::Model,
        },
        _ => {
            let mut headers = vec![auth];
            let filler = "h".repeat(400);
            for i in 0..(MAX_HEADER_BYTES / 400 + 2) {
                headers.push((format!("x-filler-{i}"), filler.clone()));
            }
            get(
                "/v1/vardata?user_id=u1".into(),
                headers,
                Expect::Gateway(431),
            )
        }
    }
}
