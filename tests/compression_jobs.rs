//! Compression jobs, driven in-process so that a request can be left half-way: past
//! `compression.max_concurrent` an answer is identity; a job goes on when the client that
//! started it is gone (made and stored once); a STALE answer's refresh starts before its
//! compression. `#[tokio::test]` runs on one thread: a spawned job runs only once the
//! test awaits something that yields.

mod support;

use std::future::Future;
use std::io::Read;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use evalgate::compression::Encoding;
use evalgate::metrics::Skipped;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use support::*;

const FLAGS: &str = "/sdk/v2/flags";
const V1_FLAGS: &str = "/v1/flags";

/// A flag configuration of about 120 KB: past the inline size, so a compression waits
/// for the blocking pool.
fn flags_config() -> Bytes {
    let flags: Vec<_> = (0..1000)
        .map(|i| format!(r#"{{"key":"flag-{i}","metadata":{{"flagVersion":{i}}},"segments":[{{"variant":"on"}}],"variants":{{"on":{{"key":"on","value":"on"}}}}}}"#))
        .collect();
    Bytes::from(format!("[{}]", flags.join(",")))
}

fn request(path: &str, accept: Option<&str>) -> Request<Full<Bytes>> {
    let mut builder = Request::get(path).header("authorization", format!("Api-Key {KEY}"));
    if let Some(accept) = accept {
        builder = builder.header("accept-encoding", accept);
    }
    builder.body(Full::new(Bytes::new())).unwrap()
}

/// Polls `fut` once.
async fn poll_once<F: Future>(mut fut: Pin<&mut F>) -> Poll<F::Output> {
    std::future::poll_fn(|cx| Poll::Ready(fut.as_mut().poll(cx))).await
}

async fn body(response: Response<evalgate::response::Body>) -> Bytes {
    response.into_body().collect().await.unwrap().to_bytes()
}

fn header<'a>(response: &'a Response<evalgate::response::Body>, name: &str) -> Option<&'a str> {
    response.headers().get(name).map(|v| v.to_str().unwrap())
}

/// A gateway on an upstream answering `body` on every path, its config changed by
/// `configure`.
async fn start(
    body: Bytes,
    configure: impl FnOnce(&mut evalgate::Config),
) -> (FakeUpstream, evalgate::Gateway) {
    let upstream = FakeUpstream::start().await;
    upstream.update(|s| s.encoded_body = Some(("", body)));
    let mut config = config_for(&upstream.url());
    configure(&mut config);
    let gateway = evalgate::Gateway::new(config.validate().unwrap()).unwrap();
    (upstream, gateway)
}

#[tokio::test]
async fn past_max_concurrent_identity_and_a_gone_client_leaves_its_job_running() {
    let flags = flags_config();
    let (upstream, gateway) = start(flags.clone(), |c| c.compression.max_concurrent = 1).await;
    for path in [FLAGS, V1_FLAGS] {
        let fill = gateway.handle(request(path, None)).await;
        assert_eq!(fill.status(), StatusCode::OK, "{path}");
    }
    gateway.cache().run_pending_tasks().await;
    let compression = gateway.metrics().compression();

    // A client's br hit starts the one compression allowed (its job not yet run).
    let mut first = Box::pin(gateway.handle(request(FLAGS, Some("br"))));
    assert!(poll_once(first.as_mut()).await.is_pending());
    // Another entry's br hit meanwhile: identity at once, counted.
    let mut other = Box::pin(gateway.handle(request(V1_FLAGS, Some("br"))));
    let Poll::Ready(other) = poll_once(other.as_mut()).await else {
        panic!("waited for a compression past compression.max_concurrent");
    };
    assert_eq!(header(&other, "x-cache"), Some("HIT"));
    assert_eq!(header(&other, "content-encoding"), None);
    assert_eq!(header(&other, "vary"), Some("Accept-Encoding"));
    assert_eq!(body(other).await, flags);
    assert_eq!(compression.skips(Skipped::Busy), 1);

    // The first client goes away: its job is made and stored anyway, once.
    drop(first);
    for _ in 0..2 {
        let hit = gateway.handle(request(FLAGS, Some("br"))).await;
        assert_eq!(header(&hit, "content-encoding"), Some("br"));
        let mut identity = Vec::new();
        brotli::Decompressor::new(&body(hit).await[..], 4096)
            .read_to_end(&mut identity)
            .unwrap();
        assert_eq!(identity, flags);
    }
    assert_eq!(compression.compressions(Encoding::Br), 1);
    assert_eq!(compression.skips(Skipped::Failed), 0);
    assert_eq!(upstream.count(), 2);
}

#[tokio::test]
async fn a_stale_answer_starts_its_refresh_before_its_compression() {
    let flags = flags_config();
    let (upstream, gateway) = start(flags, |c| {
        c.cache.flags_ttl_s = 1;
        c.cache.stale_while_revalidate_s = 60;
    })
    .await;
    let fill = gateway.handle(request(FLAGS, None)).await;
    assert_eq!(fill.status(), StatusCode::OK);
    // Stale by a second on the gateway's clock (moka's own keeps the entry 61 s).
    tokio::time::pause();
    tokio::time::advance(Duration::from_secs(2)).await;
    // A br client, gone while its answer waits for the compression.
    let mut stale = Box::pin(gateway.handle(request(FLAGS, Some("br"))));
    assert!(poll_once(stale.as_mut()).await.is_pending());
    assert_eq!(
        gateway.flights_in_progress(),
        1,
        "the refresh started first"
    );
    drop(stale);
    tokio::time::resume();
    upstream.wait_for(2).await;
}
