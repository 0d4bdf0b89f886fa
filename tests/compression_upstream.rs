//! What evalgate does with the upstream's content codings beyond the plain cases of
//! tests/compression.rs: a gzip body of several members, coded non-200 answers (relayed,
//! never turned into a 502), and the headers that describe a body evalgate decoded.

mod support;

use std::io::{Read, Write};

use bytes::Bytes;
use http::{Method, StatusCode};
use support::*;

const FLAGS: &str = "/sdk/v2/flags";

/// A flag configuration of about 30 KB, as `/sdk/v2/flags` answers.
fn flags_config() -> Bytes {
    let flags: Vec<_> = (0..100)
        .map(|i| format!(r#"{{"key":"flag-{i}","metadata":{{"flagVersion":{i}}},"segments":[{{"variant":"on"}}],"variants":{{"on":{{"key":"on","value":"on"}}}}}}"#))
        .collect();
    Bytes::from(format!("[{}]", flags.join(",")))
}

fn gzip(body: &[u8]) -> Vec<u8> {
    let mut w = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    w.write_all(body).unwrap();
    w.finish().unwrap()
}

/// What a browser reads of a gzip body: its first member only.
fn first_member(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(body)
        .read_to_end(&mut out)
        .unwrap();
    out
}

async fn start(script: Script) -> (FakeUpstream, TestGateway) {
    let upstream = FakeUpstream::start().await;
    upstream.script(script);
    let gw = TestGateway::start(config_for(&upstream.url())).await;
    (upstream, gw)
}

async fn get(gw: &TestGateway, accept: &str) -> Got {
    let auth = format!("Api-Key {KEY}");
    let headers = [
        ("authorization", auth.as_str()),
        ("accept-encoding", accept),
    ];
    send(&client(), Method::GET, &gw.url(FLAGS), &headers, "").await
}

/// An upstream gzip body of two members decodes to the whole configuration, but is not
/// kept as the gzip variant: a browser would read only the first half. The gzip answer,
/// on the miss and on the hit, is one member holding all of it.
#[tokio::test]
async fn a_gzip_body_of_several_members_is_not_served_as_it_came() {
    let flags = flags_config();
    let (head, tail) = flags.split_at(flags.len() / 2);
    let mut two = gzip(head);
    two.extend_from_slice(&gzip(tail));
    let (upstream, gw) = start(Script {
        encoded_body: Some(("gzip", Bytes::from(two))),
        ..Script::default()
    })
    .await;
    for expected in ["MISS", "HIT"] {
        let got = get(&gw, "gzip").await;
        assert_eq!(got.status, StatusCode::OK);
        assert_eq!(got.x_cache(), expected);
        assert_eq!(got.header("content-encoding"), Some("gzip"));
        assert_eq!(first_member(&got.body), flags, "{expected}");
    }
    // Identity is the whole configuration too.
    let plain = get(&gw, "identity").await;
    assert_eq!(plain.body, flags);
    assert_eq!(upstream.count(), 1);
}

/// A 429 whose body is not valid gzip, and a 401 with a gzip header and no body, are
/// relayed as the upstream's answers (never stored), not turned into 502s.
#[tokio::test]
async fn coded_non_200s_that_cannot_be_decoded_are_relayed() {
    let (upstream, gw) = start(Script {
        encoded_body: Some(("gzip", Bytes::from_static(b"slow down"))),
        encoded_status: Some(StatusCode::TOO_MANY_REQUESTS),
        ..Script::default()
    })
    .await;
    let got = get(&gw, "gzip").await;
    assert_eq!(got.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(got.header("content-encoding"), Some("gzip"));
    assert_eq!(got.body, "slow down");

    upstream.update(|s| {
        s.encoded_body = Some(("gzip", Bytes::new()));
        s.encoded_status = Some(StatusCode::UNAUTHORIZED);
    });
    let got = get(&gw, "gzip").await;
    assert_eq!(got.status, StatusCode::UNAUTHORIZED);
    assert_eq!(got.header("content-encoding"), None, "empty is identity");
    assert!(got.body.is_empty());
    assert_eq!(upstream.count(), 2);
}

/// A decoded non-200 is relayed without the `ETag` (and `Content-MD5`) of the gzip body
/// it was decoded from.
#[tokio::test]
async fn a_decoded_answer_loses_the_coded_body_validators() {
    let (upstream, gw) = start(Script {
        encoded_body: Some(("gzip", Bytes::from(gzip(br#"{"error":"slow down"}"#)))),
        encoded_status: Some(StatusCode::TOO_MANY_REQUESTS),
        headers: vec![
            ("etag", "\"gz-1\""),
            ("content-md5", "Q2hlY2sgSW50ZWdyaXR5IQ=="),
            ("retry-after", "3"),
        ],
        ..Script::default()
    })
    .await;
    let got = get(&gw, "identity").await;
    assert_eq!(got.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(got.body, r#"{"error":"slow down"}"#);
    assert_eq!(got.header("content-encoding"), None);
    assert_eq!(got.header("etag"), None);
    assert_eq!(got.header("content-md5"), None);
    assert_eq!(got.header("retry-after"), Some("3"), "the rest is relayed");
    assert_eq!(upstream.count(), 1);
}
