//! Browsers served from the shared tier (issues 13 and 16): an answer one instance fetched
//! and another serves from Redis (`X-Cache-Tier: l2`) is negotiated and dressed for a
//! browser exactly like an answer from memory: compressed in the encoding it accepts, with
//! `Vary: Origin, Accept-Encoding` and the CORS headers of its `Origin`; a HEAD from the
//! tier says the compressed length.

mod support;

use std::io::Read;

use bytes::Bytes;
use http::{Method, StatusCode};
use support::fleet::{Fleet, cache_and_tier, fleet_config};
use support::redis::RedisServer;
use support::*;

const FLAGS: &str = "/sdk/v2/flags";
/// The page's origin, one of the allowed list.
const ORIGIN: &str = "https://app.example.com";

/// A flag configuration of about 200 KB (far above `compression.min_bytes`), as
/// `/sdk/v2/flags` answers.
fn flags_config() -> Bytes {
    let mut body = String::from("[");
    for i in 0..600 {
        if i > 0 {
            body.push(',');
        }
        body.push_str(&format!(
            r#"{{"key":"flag-{i}","metadata":{{"deployed":true,"flagVersion":{i}}},"segments":[{{"conditions":[[{{"op":"is","selector":["context","user","user_id"],"values":["u{i}"]}}]],"variant":"on"}}],"variants":{{"on":{{"key":"on","value":"on"}}}}}}"#
        ));
    }
    body.push(']');
    Bytes::from(body)
}

fn unbrotli(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    brotli::Decompressor::new(body, 4096)
        .read_to_end(&mut out)
        .unwrap();
    out
}

/// The tokens of every `Vary` field, lowercased.
fn vary(got: &Got) -> Vec<String> {
    got.headers
        .get_all("vary")
        .iter()
        .flat_map(|v| v.to_str().unwrap().split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .collect()
}

/// A request as a page on [`ORIGIN`] sends it, accepting br only.
async fn from_page(c: &Client, method: Method, url: &str) -> Got {
    let auth = format!("Api-Key {KEY}");
    let headers = [
        ("authorization", auth.as_str()),
        ("origin", ORIGIN),
        ("accept-encoding", "br"),
    ];
    send(c, method, url, &headers, "").await
}

type Client = hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    http_body_util::Full<Bytes>,
>;

/// What a browser needs on every answer, whatever tier served it.
fn assert_dressed_for_the_page(got: &Got, what: &str) {
    assert_eq!(got.status, StatusCode::OK, "{what}: {got:?}");
    assert_eq!(got.header("content-encoding"), Some("br"), "{what}");
    assert_eq!(
        got.header("access-control-allow-origin"),
        Some(ORIGIN),
        "{what}"
    );
    let vary = vary(got);
    for token in ["origin", "accept-encoding"] {
        assert!(vary.iter().any(|t| t == token), "{what}: Vary {vary:?}");
    }
}

#[tokio::test]
async fn a_shared_hit_for_a_browser_is_compressed_with_its_cors_headers() {
    let redis = RedisServer::start();
    let upstream = FakeUpstream::start().await;
    let body = flags_config();
    upstream.update(|s| s.encoded_body = Some(("", body.clone())));
    let mut config = fleet_config(&upstream.url(), &redis.url());
    // A list: the answer varies on Origin.
    config.cors.allowed_origins = vec![ORIGIN.to_string(), "https://admin.example.com".into()];
    let fleet = Fleet::start(3, &config).await;
    let c = support::client();

    // A server-side client fills the entry on instance 0 (identity, no Origin).
    let first = get_with_key(&c, &fleet.url(0, FLAGS), KEY).await;
    assert_eq!(cache_and_tier(&first), ("MISS".into(), "upstream".into()));
    assert_eq!(first.body, body);
    assert!(first.header("content-encoding").is_none());
    fleet.await_ops("write", "ok", 1).await;

    // The page asks instance 1, which has it only in Redis.
    let shared = from_page(&c, Method::GET, &fleet.url(1, FLAGS)).await;
    assert_eq!(cache_and_tier(&shared), ("HIT".into(), "l2".into()));
    assert_dressed_for_the_page(&shared, "GET from l2");
    assert_eq!(
        unbrotli(&shared.body),
        body,
        "br decodes to the identity body"
    );
    assert_eq!(
        shared.header("content-length"),
        Some(shared.body.len().to_string().as_str())
    );
    assert!(
        shared.body.len() < body.len(),
        "{} bytes",
        shared.body.len()
    );

    // A HEAD on instance 2, which has it only in Redis: the compressed length, no body.
    let head = from_page(&c, Method::HEAD, &fleet.url(2, FLAGS)).await;
    assert_eq!(cache_and_tier(&head), ("HIT".into(), "l2".into()));
    assert_dressed_for_the_page(&head, "HEAD from l2");
    assert!(head.body.is_empty());
    let get = from_page(&c, Method::GET, &fleet.url(2, FLAGS)).await;
    assert_eq!(cache_and_tier(&get), ("HIT".into(), "l1".into()));
    assert_dressed_for_the_page(&get, "GET from l1 after the HEAD");
    assert_eq!(unbrotli(&get.body), body);
    assert_eq!(
        head.header("content-length"),
        Some(get.body.len().to_string().as_str()),
        "the HEAD says the length of the br body"
    );
    assert_eq!(upstream.count(), 1, "one upstream request for the fleet");
}
