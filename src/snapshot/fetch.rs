//! The one HTTP(S) request of a snapshot: `GET` with the deployment key, within a total
//! timeout and a body size limit, gzip accepted. Errors are one line (the key masked).

use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode, header};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_rustls::HttpsConnectorBuilder;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::compression::codec::{Coded, decode};
use crate::mask::Masked;

/// Asks `url` with `Authorization: Api-Key KEY`; the 200 body, decoded, at most
/// `max_bytes` of it. Everything (connect, TLS, answer, body) within `timeout`.
pub async fn fetch(
    url: &str,
    key: &str,
    timeout: Duration,
    max_bytes: usize,
) -> Result<Bytes, String> {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_connect_timeout(Some(timeout));
    let https = HttpsConnectorBuilder::new()
        .with_webpki_roots()
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build(https);
    let request = Request::get(url)
        .header(header::AUTHORIZATION, format!("Api-Key {key}"))
        .header(header::ACCEPT, "application/json")
        .header(header::ACCEPT_ENCODING, "gzip")
        .header(
            header::USER_AGENT,
            concat!("evalgate-snapshot/", env!("CARGO_PKG_VERSION")),
        )
        .body(Empty::new())
        .map_err(|e| format!("cannot build the request to {url}: {e}"))?;
    let exchange = async {
        let response = client
            .request(request)
            .await
            .map_err(|e| format!("cannot reach {url}: {}", chain(&e)))?;
        let (parts, body) = response.into_parts();
        if parts.status == StatusCode::UNAUTHORIZED {
            return Err(format!(
                "{url} answered 401 Unauthorized: deployment key {} was refused",
                Masked(key)
            ));
        }
        if let Some(length) = parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
            .filter(|n| *n > max_bytes as u64)
        {
            return Err(format!(
                "{url} answered {length} bytes, more than --max-bytes {max_bytes}"
            ));
        }
        let body = Limited::new(body, max_bytes)
            .collect()
            .await
            .map_err(|e| {
                if e.is::<http_body_util::LengthLimitError>() {
                    format!("{url} answered more than --max-bytes {max_bytes} bytes")
                } else {
                    format!("{url}: the answer broke off: {}", chain(e.as_ref()))
                }
            })?
            .to_bytes();
        if parts.status != StatusCode::OK {
            return Err(format!("{url} answered {}{}", parts.status, snippet(&body)));
        }
        match crate::compression::codec::coded(&parts.headers) {
            Coded::Identity => Ok(body),
            Coded::Known(coding) => decode(coding, &body, max_bytes).map_err(|e| {
                format!(
                    "{url}: the {} answer cannot be decoded: {e}",
                    coding.as_str()
                )
            }),
            Coded::Unknown => Err(format!(
                "{url} answered in a content coding evalgate does not decode"
            )),
        }
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .unwrap_or_else(|_| {
            Err(format!(
                "no complete answer from {url} within {} ms (--timeout-ms)",
                timeout.as_millis()
            ))
        })
}

/// An error and its causes on one line: `a: b: c`.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !out.ends_with(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = cause.source();
    }
    one_line(&out)
}

/// The start of an error body, on one line: `: {"error":…}`, or nothing when empty.
fn snippet(body: &[u8]) -> String {
    const MAX: usize = 200;
    let text = String::from_utf8_lossy(&body[..body.len().min(MAX)]);
    let text = one_line(text.trim());
    if text.is_empty() {
        String::new()
    } else if body.len() > MAX {
        format!(": {text}…")
    } else {
        format!(": {text}")
    }
}

fn one_line(text: &str) -> String {
    text.split(|c: char| c.is_control())
        .filter(|s| !s.trim().is_empty())
        .map(str::trim)
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies_are_cut_to_one_short_line() {
        assert_eq!(snippet(b""), "");
        assert_eq!(
            snippet(b"{\"error\":\n\"nope\"}\n"),
            ": {\"error\": \"nope\"}"
        );
        let long = vec![b'x'; 500];
        assert_eq!(snippet(&long).len(), 2 + 200 + '…'.len_utf8());
    }

    #[tokio::test]
    async fn a_closed_port_is_one_line_naming_the_url() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let url = format!("http://{addr}/sdk/v2/flags");
        let e = fetch(&url, "server-secret-key-9999", Duration::from_secs(5), 1024)
            .await
            .unwrap_err();
        assert!(e.starts_with(&format!("cannot reach {url}: ")), "{e}");
        assert!(!e.contains('\n') && !e.contains("secret"), "{e}");
    }
}
