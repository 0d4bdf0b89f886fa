//! Request headers a passthrough does not carry to the upstream: names with `_`
//! (look-alikes of framing headers to CGI/WSGI upstreams, which fold `_` into `-`) unless
//! `server.underscores_in_headers` allows them; counted in a metric.

mod support;

use evalgate::{Config, Gateway};
use http::{Method, StatusCode};
use support::*;

/// Look-alikes of the framing headers and an ordinary custom header, all with `_`.
const UNDERSCORED: [(&str, &str); 3] = [
    ("Transfer_Encoding", "chunked"),
    ("Content_Length", "0"),
    ("X_Custom", "1"),
];

fn dropped_total(gateway: &Gateway) -> u64 {
    let text = gateway.metrics().encode();
    let line = r#"evalgate_request_headers_dropped_total{reason="underscore"} "#;
    text.lines()
        .find_map(|l| l.strip_prefix(line))
        .unwrap_or_else(|| panic!("no {line:?} in\n{text}"))
        .parse()
        .unwrap()
}

async fn gateway_for(config: Config) -> (Gateway, TestGateway) {
    let gateway = Gateway::new(config.validate().unwrap()).unwrap();
    let gw = TestGateway::start_gateway(gateway.clone()).await;
    (gateway, gw)
}

/// A bypassed `/v1/vardata` (the SDKs' cache-buster `d`) carrying the look-alikes and
/// `X-Custom: 2`; returns what the upstream received.
async fn bypass_with_underscores(gw: &TestGateway, upstream: &FakeUpstream) -> Recorded {
    let auth = format!("Api-Key {KEY}");
    let mut headers = vec![("authorization", auth.as_str()), ("X-Custom", "2")];
    headers.extend(UNDERSCORED);
    let url = gw.url("/v1/vardata?user_id=u&d=1");
    let got = send(&client(), Method::GET, &url, &headers, "").await;
    assert_eq!(got.status, StatusCode::OK, "{:?}", got.body);
    assert_eq!(got.x_cache(), "BYPASS");
    upstream.last()
}

#[tokio::test]
async fn header_names_with_underscores_are_not_forwarded_and_are_counted() {
    let upstream = FakeUpstream::start().await;
    let (gateway, gw) = gateway_for(config_for(&upstream.url())).await;
    assert_eq!(dropped_total(&gateway), 0);

    let seen = bypass_with_underscores(&gw, &upstream).await;
    for (name, _) in UNDERSCORED {
        assert!(!seen.headers.contains_key(name), "{name} was forwarded");
    }
    assert_eq!(seen.headers["x-custom"], "2", "ordinary headers still go");
    assert_eq!(seen.headers["authorization"], format!("Api-Key {KEY}"));
    assert_eq!(dropped_total(&gateway), 3);

    // A forwarded body is framed by evalgate alone, whatever a look-alike says.
    let mut headers = vec![("X-Custom", "2")];
    headers.extend(UNDERSCORED);
    let got = send(
        &client(),
        Method::POST,
        &gw.url("/other"),
        &headers,
        "{\"a\":1}",
    )
    .await;
    assert_eq!(got.status, StatusCode::OK);
    let seen = upstream.last();
    assert_eq!(&seen.body[..], b"{\"a\":1}");
    assert_eq!(seen.headers["content-length"], "7");
    assert!(!seen.headers.contains_key("content_length"));
    assert!(!seen.headers.contains_key("transfer_encoding"));
    assert_eq!(dropped_total(&gateway), 6);

    // Cached requests are built from the key alone: an underscored spelling of a keyed
    // header is neither read nor forwarded (and counts as nothing dropped).
    let auth = format!("Api-Key {KEY}");
    let headers = [
        ("authorization", auth.as_str()),
        ("X_Amp_Exp_Track", "no-track"),
    ];
    let url = gw.url("/v1/vardata?user_id=keyed");
    let got = send(&client(), Method::GET, &url, &headers, "").await;
    assert_eq!(got.x_cache(), "MISS");
    let seen = upstream.last();
    assert!(!seen.headers.contains_key("x_amp_exp_track"));
    assert!(!seen.headers.contains_key("x-amp-exp-track"));
    assert_eq!(dropped_total(&gateway), 6);
}

#[tokio::test]
async fn underscores_in_headers_forwards_them_and_changes_on_reload() {
    let upstream = FakeUpstream::start().await;
    let mut config = config_for(&upstream.url());
    config.server.underscores_in_headers = true;
    let (gateway, gw) = gateway_for(config.clone()).await;

    let seen = bypass_with_underscores(&gw, &upstream).await;
    for (name, value) in UNDERSCORED {
        assert_eq!(seen.headers[name], value, "{name} is forwarded");
    }
    assert_eq!(seen.headers["x-custom"], "2");
    assert_eq!(dropped_total(&gateway), 0);

    // SIGHUP turns it off without a restart.
    config.server.underscores_in_headers = false;
    let report = evalgate::reload::apply(&gateway, &config.validate().unwrap(), None);
    assert_eq!(report.applied, ["server.underscores_in_headers"]);
    let seen = bypass_with_underscores(&gw, &upstream).await;
    for (name, _) in UNDERSCORED {
        assert!(!seen.headers.contains_key(name), "{name} was forwarded");
    }
    assert_eq!(dropped_total(&gateway), 3);
}
