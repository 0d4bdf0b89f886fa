//! The gateway as a real client sees it: every request here is made by the `curl`
//! binary (HTTP/1.1 and cleartext HTTP/2), against a gateway and an upstream on
//! 127.0.0.1:0.
//!
//! curl is required, not optional: when it is missing these tests fail and say so.

mod support;

use std::io::ErrorKind;
use std::process::Command;

use support::*;

/// A response as curl printed it with `-i` / `-I`.
#[derive(Debug)]
struct CurlResponse {
    /// `HTTP/1.1`, `HTTP/2`, …
    version: String,
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl CurlResponse {
    /// The first value of a header, by case-insensitive name.
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn x_cache(&self) -> &str {
        self.header("x-cache").unwrap_or("")
    }

    fn content_length(&self) -> Option<usize> {
        self.header("content-length").map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("bad content-length {v:?}"))
        })
    }
}

/// Runs curl with `args` (after options that make it quiet, deterministic and
/// independent of the environment) on a blocking thread, so the in-process gateway
/// keeps serving, and parses the `-i`/`-I` output.
async fn curl(args: &[&str]) -> CurlResponse {
    let mut argv: Vec<String> = [
        "-q", // ignore ~/.curlrc; must come first
        "-sS",
        "--noproxy",
        "*",
        "--max-time",
        "20",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if !args.contains(&"-I") {
        argv.push("-i".into());
    }
    argv.extend(args.iter().map(|s| s.to_string()));
    let shown = argv.join(" ");
    let output = tokio::task::spawn_blocking(move || Command::new("curl").args(&argv).output())
        .await
        .expect("curl thread");
    let output = match output {
        Ok(o) => o,
        Err(e) if e.kind() == ErrorKind::NotFound => panic!(
            "the `curl` binary was not found on PATH ({e}): tests/curl.rs drives the gateway \
             with the real curl and does not skip; install curl (e.g. `apt-get install curl`)"
        ),
        Err(e) => panic!("could not run curl: {e}"),
    };
    assert!(
        output.status.success(),
        "curl {shown} failed with {}: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    parse(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "curl {shown}: {e}; output was:\n{}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

/// Splits curl's `-i` output into status line, headers and body bytes (kept verbatim).
/// Interim `1xx` responses are skipped.
fn parse(out: &[u8]) -> Result<CurlResponse, String> {
    let mut rest = out;
    loop {
        let end = rest
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .ok_or("no end of headers")?;
        let head = std::str::from_utf8(&rest[..end]).map_err(|_| "head is not UTF-8")?;
        let body = &rest[end + 4..];
        let mut lines = head.split("\r\n");
        let status_line = lines.next().ok_or("no status line")?;
        let mut parts = status_line.split_whitespace();
        let version = parts.next().ok_or("no version")?.to_string();
        let status: u16 = parts
            .next()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("bad status line {status_line:?}"))?;
        if (100..200).contains(&status) {
            rest = body;
            continue;
        }
        let headers = lines
            .map(|l| {
                let (n, v) = l
                    .split_once(':')
                    .ok_or_else(|| format!("bad header line {l:?}"))?;
                Ok((n.trim().to_string(), v.trim().to_string()))
            })
            .collect::<Result<_, String>>()?;
        return Ok(CurlResponse {
            version,
            status,
            headers,
            body: body.to_vec(),
        });
    }
}

fn auth(key: &str) -> String {
    format!("Authorization: Api-Key {key}")
}

#[tokio::test(flavor = "multi_thread")]
async fn curl_get_twice_is_miss_then_hit() {
    let upstream = FakeUpstream::start().await;
    let gw = TestGateway::start(config_for(&upstream.url())).await;
    let url = gw.url("/v1/vardata?user_id=u1&device_id=d1&flag_key=a,b");
    let auth = auth(KEY);

    let first = curl(&["-H", &auth, &url]).await;
    assert_eq!(first.status, 200, "{first:?}");
    assert_eq!(first.version, "HTTP/1.1");
    assert_eq!(first.x_cache(), "MISS");
    assert_eq!(first.header("age"), Some("0"));
    assert_eq!(first.header("content-type"), Some("application/json"));

    let second = curl(&["-H", &auth, &url]).await;
    assert_eq!(second.status, 200, "{second:?}");
    assert_eq!(second.x_cache(), "HIT");
    assert_eq!(second.body, first.body);
    assert_eq!(second.header("content-type"), Some("application/json"));
    assert_eq!(
        second.content_length(),
        Some(second.body.len()),
        "content-length matches the body"
    );
    assert_eq!(upstream.count(), 1);
    gw.shutdown().await;
    upstream.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn curl_reordered_context_with_whitespace_is_a_hit() {
    let upstream = FakeUpstream::start().await;
    let gw = TestGateway::start(config_for(&upstream.url())).await;
    let url = gw.url("/v1/vardata");
    let auth = auth(KEY);

    let first = curl(&[
        "--get",
        "--data-urlencode",
        r#"context={"user_properties":{"b":1,"a":2}}"#,
        "--data-urlencode",
        "user_id=u1",
        "-H",
        &auth,
        &url,
    ])
    .await;
    assert_eq!(first.status, 200, "{first:?}");
    assert_eq!(first.x_cache(), "MISS");

    let second = curl(&[
        "--get",
        "--data-urlencode",
        "user_id=u1",
        "--data-urlencode",
        "context={ \"user_properties\" : {\n  \"a\" : 2,\n  \"b\" : 1\n} }",
        "-H",
        &auth,
        &url,
    ])
    .await;
    assert_eq!(second.status, 200, "{second:?}");
    assert_eq!(second.x_cache(), "HIT");
    assert_eq!(second.body, first.body);
    assert_eq!(upstream.count(), 1);

    // The upstream was asked the canonical form: members sorted, whitespace gone.
    let asked = upstream.last().path_and_query;
    let (_, query) = asked.split_once('?').expect("a query was forwarded");
    let context = query
        .split('&')
        .find_map(|p| p.strip_prefix("context="))
        .expect("context forwarded");
    assert_eq!(
        evalgate::normalize::form::decode(context).unwrap(),
        r#"{"user_properties":{"a":2,"b":1}}"#,
        "forwarded {asked}"
    );
    gw.shutdown().await;
    upstream.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn curl_http2_prior_knowledge_gets_a_hit() {
    let upstream = FakeUpstream::start().await;
    let gw = TestGateway::start(config_for(&upstream.url())).await;
    let url = gw.url("/v1/vardata?user_id=u2&flag_key=a");
    let auth = auth(KEY);

    let warm = curl(&["-H", &auth, &url]).await;
    assert_eq!(warm.status, 200, "{warm:?}");
    assert_eq!(warm.x_cache(), "MISS");

    let h2 = curl(&["--http2-prior-knowledge", "-H", &auth, &url]).await;
    assert_eq!(h2.version, "HTTP/2", "{h2:?}");
    assert_eq!(h2.status, 200, "{h2:?}");
    assert_eq!(h2.x_cache(), "HIT");
    assert_eq!(h2.body, warm.body);
    assert_eq!(h2.header("content-type"), Some("application/json"));

    // And a cold key over h2c is a miss filled from the upstream.
    let cold_url = gw.url("/v1/vardata?user_id=u3&flag_key=a");
    let cold = curl(&["--http2-prior-knowledge", "-H", &auth, &cold_url]).await;
    assert_eq!(cold.version, "HTTP/2", "{cold:?}");
    assert_eq!(cold.status, 200, "{cold:?}");
    assert_eq!(cold.x_cache(), "MISS");
    assert_eq!(upstream.count(), 2);
    gw.shutdown().await;
    upstream.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn curl_head_gets_200_with_x_cache_and_no_body() {
    let upstream = FakeUpstream::start().await;
    let gw = TestGateway::start(config_for(&upstream.url())).await;
    let url = gw.url("/v1/vardata?user_id=u4&flag_key=a");
    let auth = auth(KEY);

    let cold = curl(&["-I", "-H", &auth, &url]).await;
    assert_eq!(cold.status, 200, "{cold:?}");
    assert_eq!(cold.x_cache(), "MISS");
    assert!(cold.body.is_empty(), "HEAD has no body: {cold:?}");

    let warm = curl(&["-I", "-H", &auth, &url]).await;
    assert_eq!(warm.status, 200, "{warm:?}");
    assert_eq!(warm.x_cache(), "HIT");
    assert!(warm.body.is_empty(), "HEAD has no body: {warm:?}");
    assert_eq!(warm.header("content-type"), Some("application/json"));

    // The HEAD filled the entry a GET is then served from, and Content-Length on
    // both HEADs is the GET body's length.
    let get = curl(&["-H", &auth, &url]).await;
    assert_eq!(get.status, 200, "{get:?}");
    assert_eq!(get.x_cache(), "HIT");
    assert!(!get.body.is_empty());
    assert_eq!(cold.content_length(), Some(get.body.len()), "{cold:?}");
    assert_eq!(warm.content_length(), Some(get.body.len()), "{warm:?}");

    // HEAD over h2c too.
    let h2 = curl(&["--http2-prior-knowledge", "-I", "-H", &auth, &url]).await;
    assert_eq!(h2.version, "HTTP/2", "{h2:?}");
    assert_eq!(h2.status, 200, "{h2:?}");
    assert_eq!(h2.x_cache(), "HIT");
    assert!(h2.body.is_empty(), "HEAD has no body: {h2:?}");
    assert_eq!(upstream.count(), 1);
    gw.shutdown().await;
    upstream.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn curl_bad_key_gets_the_upstream_401_verbatim() {
    let upstream = FakeUpstream::start().await;
    let gw = TestGateway::start(config_for(&upstream.url())).await;
    let url = gw.url("/v1/vardata?user_id=u5&flag_key=a");
    let auth = auth("server-not-a-real-key");

    let first = curl(&["-H", &auth, &url]).await;
    assert_eq!(first.status, 401, "{first:?}");
    assert_eq!(first.body, b"Invalid deployment key\n", "{first:?}");
    assert_eq!(
        first.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    assert_eq!(first.header("www-authenticate"), Some("Api-Key"));
    assert_eq!(first.x_cache(), "MISS");

    // A 401 is never stored: the next request asks the upstream again.
    let second = curl(&["-H", &auth, &url]).await;
    assert_eq!(second.status, 401, "{second:?}");
    assert_eq!(second.body, b"Invalid deployment key\n");
    assert_ne!(second.x_cache(), "HIT");
    assert_eq!(upstream.count(), 2);

    // Over h2c as well.
    let h2 = curl(&["--http2-prior-knowledge", "-H", &auth, &url]).await;
    assert_eq!(h2.version, "HTTP/2", "{h2:?}");
    assert_eq!(h2.status, 401, "{h2:?}");
    assert_eq!(h2.body, b"Invalid deployment key\n");
    assert_eq!(upstream.count(), 3);
    gw.shutdown().await;
    upstream.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn curl_trace_gets_405_json_and_is_not_forwarded() {
    let upstream = FakeUpstream::start().await;
    let gw = TestGateway::start(config_for(&upstream.url())).await;
    let url = gw.url("/v1/vardata?user_id=u6");
    let auth = auth(KEY);
    for http2 in [false, true] {
        let mut args = vec!["-X", "TRACE", "-H", &auth, &url];
        if http2 {
            args.insert(0, "--http2-prior-knowledge");
        }
        let got = curl(&args).await;
        assert_eq!(got.status, 405, "{got:?}");
        assert_eq!(got.header("content-type"), Some("application/json"));
        assert!(got.header("allow").is_some(), "{got:?}");
        let json: serde_json::Value = serde_json::from_slice(&got.body).unwrap();
        assert!(json["error"].is_string(), "{got:?}");
    }
    assert_eq!(upstream.count(), 0);
    gw.shutdown().await;
    upstream.stop().await;
}
