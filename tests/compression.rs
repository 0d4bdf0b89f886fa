//! Compression, end to end: a real gateway in front of a real counting upstream;
//! negotiation, stored variants (compressed once, weighed), upstream codings, HEAD.

mod support;

use std::io::{Read, Write};

use bytes::Bytes;
use evalgate::compression::Encoding;
use http::Method;
use support::*;

const FLAGS: &str = "/sdk/v2/flags";

/// A flag configuration of about 200 KB, as `/sdk/v2/flags` answers.
fn flags_config() -> Bytes {
    let mut body = String::from("[");
    for i in 0..600 {
        if i > 0 {
            body.push(',');
        }
        body.push_str(&format!(
            r#"{{"key":"flag-{i}","metadata":{{"deployed":true,"evaluationMode":"remote","flagType":"release","flagVersion":{i}}},"segments":[{{"conditions":[[{{"op":"is","selector":["context","user","user_id"],"values":["u{i}","v{i}"]}}]],"variant":"on"}},{{"metadata":{{"segmentName":"All Other Users"}},"variant":"off"}}],"variants":{{"off":{{"key":"off","metadata":{{"default":true}}}},"on":{{"key":"on","value":"on"}}}}}}"#
        ));
    }
    body.push(']');
    Bytes::from(body)
}

fn gunzip(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(body)
        .read_to_end(&mut out)
        .unwrap();
    out
}

fn unbrotli(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    brotli::Decompressor::new(body, 4096)
        .read_to_end(&mut out)
        .unwrap();
    out
}

fn gzip(body: &[u8]) -> Bytes {
    let mut w = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    w.write_all(body).unwrap();
    Bytes::from(w.finish().unwrap())
}

/// A gateway (with a handle on its parts) in front of an upstream answering `body` with
/// `coding` on every path.
async fn start(
    coding: &'static str,
    body: Bytes,
) -> (FakeUpstream, evalgate::Gateway, TestGateway) {
    let upstream = FakeUpstream::start().await;
    upstream.update(|s| s.encoded_body = Some((coding, body)));
    let config = config_for(&upstream.url()).validate().unwrap();
    let gateway = evalgate::Gateway::new(config).unwrap();
    let gw = TestGateway::start_gateway(gateway.clone()).await;
    (upstream, gateway, gw)
}

async fn get(gw: &TestGateway, path: &str, accept: Option<&str>) -> Got {
    request(gw, Method::GET, path, accept).await
}

async fn request(gw: &TestGateway, method: Method, path: &str, accept: Option<&str>) -> Got {
    let auth = format!("Api-Key {KEY}");
    let mut headers = vec![("authorization", auth.as_str())];
    if let Some(accept) = accept {
        headers.push(("accept-encoding", accept));
    }
    send(&client(), method, &gw.url(path), &headers, "").await
}

fn varies_on_encoding(got: &Got) -> bool {
    got.headers
        .get_all("vary")
        .iter()
        .any(|v| v.to_str().unwrap().eq_ignore_ascii_case("accept-encoding"))
}

#[tokio::test]
async fn br_is_preferred_and_q_values_decide() {
    let body = flags_config();
    let (upstream, gateway, gw) = start("", body.clone()).await;
    let plain = get(&gw, FLAGS, None).await;
    assert_eq!(plain.x_cache(), "MISS");
    assert_eq!(plain.body, body);
    assert!(plain.header("content-encoding").is_none());
    assert!(varies_on_encoding(&plain));

    let br = get(&gw, FLAGS, Some("gzip, deflate, br")).await;
    assert_eq!(br.header("content-encoding"), Some("br"));
    assert!(varies_on_encoding(&br));
    assert_eq!(unbrotli(&br.body), body, "br decodes to the identity body");
    let length: usize = br.header("content-length").unwrap().parse().unwrap();
    assert_eq!(length, br.body.len());
    assert!(br.body.len() < body.len() / 5, "{} bytes", br.body.len());

    let gz = get(&gw, FLAGS, Some("gzip;q=1, br;q=0.5")).await;
    assert_eq!(gz.header("content-encoding"), Some("gzip"));
    assert_eq!(gunzip(&gz.body), body, "gzip decodes to the identity body");

    let refused = get(&gw, FLAGS, Some("br;q=0, gzip;q=0")).await;
    assert!(refused.header("content-encoding").is_none());
    assert_eq!(refused.body, body);

    assert_eq!(upstream.count(), 1);
    let metrics = gateway.metrics().compression();
    assert_eq!(metrics.compressions(Encoding::Br), 1);
    assert_eq!(metrics.compressions(Encoding::Gzip), 1);
}

#[tokio::test]
async fn small_answers_stay_identity_unless_identity_is_refused() {
    // An evaluation of a few hundred bytes, under compression.min_bytes (1024).
    let body =
        Bytes::from_static(br#"{"flag-a":{"key":"on","value":"on"},"flag-b":{"key":"off"}}"#);
    let (_upstream, gateway, gw) = start("", body.clone()).await;
    let path = "/v1/vardata?user_id=u1";
    let small = get(&gw, path, Some("gzip, br")).await;
    assert_eq!(small.body, body);
    assert!(small.header("content-encoding").is_none());
    assert!(varies_on_encoding(&small), "it could have been compressed");

    let forced = get(&gw, path, Some("gzip, identity;q=0")).await;
    assert_eq!(forced.x_cache(), "HIT");
    assert_eq!(forced.header("content-encoding"), Some("gzip"));
    assert_eq!(gunzip(&forced.body), body);
    assert_eq!(
        gateway.metrics().compression().compressions(Encoding::Gzip),
        1
    );
}

#[tokio::test]
async fn hits_serve_the_variant_compressed_once_and_weighed() {
    let body = flags_config();
    let (upstream, gateway, gw) = start("", body.clone()).await;
    assert_eq!(get(&gw, FLAGS, None).await.x_cache(), "MISS");
    gateway.cache().run_pending_tasks().await;
    let before = gateway.cache().weighted_size();

    // Many concurrent hits asking br: one compression.
    let mut hits = tokio::task::JoinSet::new();
    for _ in 0..16 {
        let url = gw.url(FLAGS);
        hits.spawn(async move {
            let auth = format!("Api-Key {KEY}");
            let headers = [("authorization", auth.as_str()), ("accept-encoding", "br")];
            send(&client(), Method::GET, &url, &headers, "").await
        });
    }
    let mut first: Option<Bytes> = None;
    while let Some(got) = hits.join_next().await {
        let got = got.unwrap();
        assert_eq!(got.x_cache(), "HIT");
        assert_eq!(got.header("content-encoding"), Some("br"));
        // Every hit serves the same stored bytes.
        let first = first.get_or_insert_with(|| got.body.clone());
        assert_eq!(&got.body, first);
    }
    for _ in 0..10 {
        assert_eq!(
            get(&gw, FLAGS, Some("br")).await.body,
            first.clone().unwrap()
        );
    }
    let compressed = first.unwrap().len() as u64;
    assert_eq!(
        gateway.metrics().compression().compressions(Encoding::Br),
        1
    );
    assert_eq!(upstream.count(), 1);

    // The variant is counted in the entry's weight: its bytes as allocated, the count
    // `Bytes` adds and the `Arc` around the entry's variants.
    gateway.cache().run_pending_tasks().await;
    let a = evalgate::cache::weight::allocation;
    let held =
        a(16 + std::mem::size_of::<evalgate::cache::Variants>()) + a(compressed as usize) + a(24);
    assert_eq!(gateway.cache().weighted_size(), before + held as u64);
    assert_eq!(gateway.cache().entry_count(), 1);
}

#[tokio::test]
async fn the_miss_that_fills_gets_its_encoding_and_keeps_it() {
    let body = flags_config();
    let (upstream, gateway, gw) = start("", body.clone()).await;
    let miss = get(&gw, FLAGS, Some("br")).await;
    assert_eq!(miss.x_cache(), "MISS");
    assert_eq!(miss.header("content-encoding"), Some("br"));
    assert_eq!(unbrotli(&miss.body), body);
    let hit = get(&gw, FLAGS, Some("br")).await;
    assert_eq!(hit.x_cache(), "HIT");
    assert_eq!(hit.body, miss.body);
    assert_eq!(
        gateway.metrics().compression().compressions(Encoding::Br),
        1
    );
    assert_eq!(upstream.count(), 1);
}

#[tokio::test]
async fn head_answers_like_get() {
    let body = flags_config();
    let (_upstream, _gateway, gw) = start("", body.clone()).await;
    for accept in [None, Some("gzip"), Some("br")] {
        let get = get(&gw, FLAGS, accept).await;
        let head = request(&gw, Method::HEAD, FLAGS, accept).await;
        assert!(head.body.is_empty());
        for name in ["content-length", "content-encoding", "vary", "content-type"] {
            assert_eq!(head.header(name), get.header(name), "{name} for {accept:?}");
        }
        assert_eq!(
            head.header("content-length").unwrap(),
            get.body.len().to_string()
        );
    }
}

#[tokio::test]
async fn cache_fills_ask_the_upstream_for_gzip() {
    let (upstream, _gateway, gw) = start("", flags_config()).await;
    get(&gw, FLAGS, None).await;
    let asked = upstream.last();
    assert_eq!(asked.headers.get("accept-encoding").unwrap(), "gzip");

    let upstream = FakeUpstream::start().await;
    let mut config = config_for(&upstream.url());
    config.compression.upstream_gzip = false;
    let gw = TestGateway::start(config).await;
    get(&gw, "/v1/vardata?user_id=u1", None).await;
    assert!(upstream.last().headers.get("accept-encoding").is_none());
}

#[tokio::test]
async fn upstream_gzip_is_decoded_and_kept_as_the_gzip_variant() {
    let body = flags_config();
    let (upstream, gateway, gw) = start("gzip", gzip(&body)).await;
    let plain = get(&gw, FLAGS, None).await;
    assert_eq!(plain.status, 200);
    assert_eq!(plain.body, body);
    assert!(plain.header("content-encoding").is_none());
    let gz = get(&gw, FLAGS, Some("gzip")).await;
    assert_eq!(gz.x_cache(), "HIT");
    assert_eq!(gz.header("content-encoding"), Some("gzip"));
    assert_eq!(gunzip(&gz.body), body);
    // The upstream's own gzip body: nothing compressed here.
    assert_eq!(
        gateway.metrics().compression().compressions(Encoding::Gzip),
        0
    );
    assert_eq!(upstream.count(), 1);
}

#[tokio::test]
async fn upstream_br_and_deflate_are_decoded() {
    let body = flags_config();
    let br = evalgate::compression::codec::compress(
        Encoding::Br,
        &body,
        evalgate::compression::Levels { gzip: 6, brotli: 5 },
    );
    let mut zlib = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
    zlib.write_all(&body).unwrap();
    for (coding, packed) in [("br", br), ("deflate", Bytes::from(zlib.finish().unwrap()))] {
        let (upstream, _gateway, gw) = start(coding, packed).await;
        for x_cache in ["MISS", "HIT"] {
            let got = get(&gw, FLAGS, None).await;
            assert_eq!(got.x_cache(), x_cache, "{coding}");
            assert_eq!(got.body, body, "{coding}");
            assert!(got.header("content-encoding").is_none(), "{coding}");
        }
        assert_eq!(upstream.count(), 1, "{coding}");
    }
}

#[tokio::test]
async fn an_unknown_upstream_coding_is_relayed_and_never_stored() {
    let packed = Bytes::from_static(b"\x28\xb5\x2f\xfd opaque zstd frame");
    let (upstream, _gateway, gw) = start("zstd", packed.clone()).await;
    for _ in 0..2 {
        let got = get(&gw, FLAGS, Some("zstd, br")).await;
        assert_eq!(got.status, 200);
        assert_eq!(got.x_cache(), "MISS");
        assert_eq!(got.header("content-encoding"), Some("zstd"));
        assert_eq!(got.body, packed);
    }
    assert_eq!(upstream.count(), 2);
}

#[tokio::test]
async fn a_gzip_bomb_from_the_upstream_is_refused_not_stored() {
    // A valid flag configuration of 64 MiB (over upstream.max_response_bytes, 4 MiB):
    // `[`, spaces, `]`, in ~64 KB.
    let mut json = vec![b' '; 64 << 20];
    json[0] = b'[';
    *json.last_mut().unwrap() = b']';
    let bomb = gzip(&json);
    drop(json);
    assert!(bomb.len() < 512 * 1024);
    let (upstream, _gateway, gw) = start("gzip", bomb).await;
    for _ in 0..2 {
        let got = get(&gw, FLAGS, None).await;
        assert_eq!(got.status, 502);
        assert!(got.json()["error"].is_string());
    }
    assert_eq!(upstream.count(), 2);
}

#[tokio::test]
async fn compression_off_serves_identity_without_vary() {
    let upstream = FakeUpstream::start().await;
    upstream.update(|s| s.encoded_body = Some(("", flags_config())));
    let mut config = config_for(&upstream.url());
    config.compression.enabled = false;
    let gw = TestGateway::start(config).await;
    for _ in 0..2 {
        let got = get(&gw, FLAGS, Some("br, gzip")).await;
        assert_eq!(got.body, flags_config());
        assert!(got.header("content-encoding").is_none());
        assert!(!varies_on_encoding(&got));
    }
}
