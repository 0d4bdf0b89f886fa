//! Preflights: every `OPTIONS` on the cacheable routes answered by evalgate, never
//! forwarded, for allowed, refused and `Origin`-less requests.

use evalgate::response::FORWARDED_METHODS;

use super::*;

/// The metric line `evalgate_cors_preflights_total{result="…"}`'s value.
fn preflights(gateway: &Gateway, result: &str) -> u64 {
    let text = gateway.metrics().encode();
    let prefix = format!("evalgate_cors_preflights_total{{result=\"{result}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .unwrap_or_else(|| panic!("no {prefix} in\n{text}"))
        .parse()
        .unwrap()
}

#[tokio::test]
async fn preflights_are_answered_for_every_route_and_method_never_forwarded() {
    let upstream = FakeUpstream::start().await;
    let (gateway, gw) = start(config(&upstream, &["*"])).await;
    let mut asked = 0;
    for (path, methods, _) in ROUTES {
        let allow = if methods.contains(&"POST") {
            "GET, HEAD, POST, OPTIONS"
        } else {
            "GET, HEAD, OPTIONS"
        };
        for method in methods {
            let got = preflight(&gw, path, method, Some(APP)).await;
            asked += 1;
            let what = format!("OPTIONS {path} for {method}");
            assert_eq!(got.status, StatusCode::NO_CONTENT, "{what}");
            assert!(got.body.is_empty(), "{what}");
            assert_cors(&got, "*", false, &what);
            assert_eq!(
                got.header("access-control-allow-methods"),
                Some(allow),
                "{what}"
            );
            // What evalgate serves or forwards there, as its 405 says.
            assert_eq!(got.header("allow"), Some(FORWARDED_METHODS), "{what}");
            let headers = got
                .header("access-control-allow-headers")
                .unwrap()
                .to_ascii_lowercase();
            for asked_for in ["authorization", "x-amp-exp-user", "x-amp-exp-flag-keys"] {
                assert!(headers.contains(asked_for), "{what}: {headers}");
            }
            assert_eq!(got.header("access-control-max-age"), Some("7200"), "{what}");
        }
    }
    // Without an `Origin` (not a browser) it is still answered here, with `Allow`.
    let plain = send(&client(), Method::OPTIONS, &gw.url("/v1/vardata"), &[], "").await;
    assert_eq!(plain.status, StatusCode::NO_CONTENT);
    assert_eq!(plain.header("allow"), Some(FORWARDED_METHODS));
    let trace = send(&client(), Method::TRACE, &gw.url("/v1/vardata"), &[], "").await;
    assert_eq!(trace.header("allow"), plain.header("allow"));
    assert_eq!(upstream.count(), 0, "no OPTIONS reaches the upstream");
    assert_eq!(preflights(&gateway, "allowed"), asked);
    assert_eq!(preflights(&gateway, "no_origin"), 1);

    // Any other path is not evalgate's to answer: OPTIONS there is forwarded as before.
    let other = send(&client(), Method::OPTIONS, &gw.url("/other"), &[], "").await;
    assert_eq!(other.x_cache(), "BYPASS");
    assert_eq!(upstream.count(), 1);
}

#[tokio::test]
async fn preflights_from_a_list_echo_allowed_origins_and_refuse_others() {
    let upstream = FakeUpstream::start().await;
    let (gateway, gw) = start(config(&upstream, &[APP, OTHER_APP])).await;
    for (path, methods, _) in ROUTES {
        for method in methods {
            for origin in [APP, OTHER_APP] {
                let got = preflight(&gw, path, method, Some(origin)).await;
                let what = format!("OPTIONS {path} for {method} from {origin}");
                assert_eq!(got.status, StatusCode::NO_CONTENT, "{what}");
                assert_cors(&got, origin, true, &what);
                assert!(
                    got.header("access-control-allow-methods")
                        .unwrap()
                        .contains(method),
                    "{what}"
                );
            }
            let refused = preflight(&gw, path, method, Some(EVIL)).await;
            let what = format!("OPTIONS {path} for {method} from {EVIL}");
            assert_eq!(refused.status, StatusCode::NO_CONTENT, "{what}");
            assert!(
                cors_headers(&refused).is_empty(),
                "{what}: {:?}",
                refused.headers
            );
            assert!(vary(&refused).contains(&"origin".to_string()), "{what}");
        }
    }
    // An origin is compared case-insensitively, with its default port.
    let spelled = preflight(
        &gw,
        "/v1/vardata",
        "GET",
        Some("HTTPS://App.Example.com:443"),
    )
    .await;
    assert_eq!(
        spelled.header("access-control-allow-origin"),
        Some("HTTPS://App.Example.com:443")
    );
    assert_eq!(upstream.count(), 0, "no OPTIONS reaches the upstream");
    assert_eq!(preflights(&gateway, "allowed"), 2 * 12 + 1);
    assert_eq!(preflights(&gateway, "refused"), 12);
}
