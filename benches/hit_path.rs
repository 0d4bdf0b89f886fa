//! The in-process cache-hit path: `Gateway::handle` for a warmed key (normalization,
//! cache lookup, response building), no sockets on the timed path.
//!
//! The upstream is a tiny hyper server on 127.0.0.1:0 inside the bench; it is only asked
//! while warming, and stopped at the end.
//!
//! `cargo bench --bench hit_path`

use std::convert::Infallible;
use std::hint::black_box;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use evalgate::{Config, Gateway};
use http::{Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::{JoinHandle, JoinSet};

const KEY: &str = "server-bench-key-0001";
const POOL: usize = 1_000;
/// The page a browser's request comes from.
const ORIGIN: &str = "https://app.example.com";

/// A flag-variants body of about 300 bytes, as the evaluation API answers.
const BODY: &str = r#"{"checkout-redesign":{"key":"treatment","value":"treatment","payload":{"layout":"two-column","cta":"Buy now"}},"pricing-banner":{"key":"control","value":"control"},"onboarding-tour":{"key":"on","value":"on","payload":{"steps":["welcome","profile","invite"],"skippable":true}},"search-v2":{"key":"off"}}"#;

/// The in-bench upstream: answers every request with `BODY` and counts them.
struct Upstream {
    addr: SocketAddr,
    hits: Arc<AtomicUsize>,
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl Upstream {
    /// Answers `BODY` on `/v1/vardata` and `flags` on `/sdk/v2/flags`.
    async fn start(flags: Bytes) -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind upstream");
        let addr = listener.local_addr().expect("upstream address");
        let hits = Arc::new(AtomicUsize::new(0));
        let (stop, mut stopped) = oneshot::channel::<()>();
        let counter = hits.clone();
        let task = tokio::spawn(async move {
            let mut conns = JoinSet::new();
            loop {
                tokio::select! {
                    _ = &mut stopped => break,
                    accepted = listener.accept() => {
                        let Ok((stream, _)) = accepted else { continue };
                        let counter = counter.clone();
                        let flags = flags.clone();
                        conns.spawn(async move {
                            let svc = service_fn(move |req: Request<Incoming>| {
                                counter.fetch_add(1, Ordering::Relaxed);
                                let body = match req.uri().path() {
                                    FLAGS => flags.clone(),
                                    _ => Bytes::from_static(BODY.as_bytes()),
                                };
                                async move {
                                    let mut r = Response::new(Full::new(body));
                                    r.headers_mut().insert(
                                        header::CONTENT_TYPE,
                                        "application/json".parse().expect("header value"),
                                    );
                                    Ok::<_, Infallible>(r)
                                }
                            });
                            let _ = hyper::server::conn::http1::Builder::new()
                                .serve_connection(TokioIo::new(stream), svc)
                                .await;
                        });
                    }
                }
            }
            conns.shutdown().await;
        });
        Upstream {
            addr,
            hits,
            stop,
            task,
        }
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.expect("upstream task ends cleanly");
    }
}

fn request(user: usize) -> Request<Full<Bytes>> {
    request_from(user, None)
}

/// A browser's request: as [`request`], with an `Origin`.
fn request_from(user: usize, origin: Option<&'static str>) -> Request<Full<Bytes>> {
    let mut builder = Request::builder();
    if let Some(origin) = origin {
        builder = builder.header(header::ORIGIN, origin);
    }
    builder
        .method("GET")
        .uri(format!(
            "/v1/vardata?user_id=user-{user}&device_id=dev-7f3a9c2e&flag_key=checkout-redesign,pricing-banner"
        ))
        .header(header::HOST, "evalgate.internal")
        .header(header::AUTHORIZATION, format!("Api-Key {KEY}"))
        .header(header::ACCEPT, "application/json")
        .header(header::USER_AGENT, "bench/1.0")
        .body(Full::new(Bytes::new()))
        .expect("request builds")
}

const FLAGS: &str = "/sdk/v2/flags";

/// A flag configuration of about 200 KB (600 flags), as `/sdk/v2/flags` answers.
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

/// A flag-configuration request, with `Accept-Encoding` when given.
fn flags_request(accept: Option<&str>) -> Request<Full<Bytes>> {
    let mut builder = Request::builder()
        .method("GET")
        .uri(FLAGS)
        .header(header::HOST, "evalgate.internal")
        .header(header::AUTHORIZATION, format!("Api-Key {KEY}"))
        .header(header::USER_AGENT, "bench/1.0");
    if let Some(accept) = accept {
        builder = builder.header(header::ACCEPT_ENCODING, accept);
    }
    builder
        .body(Full::new(Bytes::new()))
        .expect("request builds")
}

/// The three encodings of one flag-configuration hit.
const FLAG_ENCODINGS: [(&str, Option<&str>); 3] = [
    ("flags_200k_identity", None),
    ("flags_200k_br", Some("gzip, deflate, br")),
    ("flags_200k_gzip", Some("gzip")),
];

fn x_cache<B>(response: &Response<B>) -> &str {
    response
        .headers()
        .get("x-cache")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let (upstream, gateway) = rt.block_on(setup(|_| {}));

    let mut group = c.benchmark_group("hit_path");
    group.bench_function("one_key", |b| {
        b.to_async(&rt).iter_batched(
            || request(0),
            |req| gateway.handle(black_box(req)),
            BatchSize::SmallInput,
        )
    });
    let mut next = 0usize;
    group.bench_function("pool_1000_keys", |b| {
        b.to_async(&rt).iter_batched(
            || {
                next = (next + 1) % POOL;
                request(next)
            },
            |req| gateway.handle(black_box(req)),
            BatchSize::SmallInput,
        )
    });
    // The same hit with the shared cache tier configured (issue 13): an L1 hit must not
    // touch it. Its Redis is never reached (the tier's task is not running here), and
    // L1 hits never ask for it.
    let (tiered_upstream, tiered) = rt.block_on(setup(|config| {
        config.shared_cache.url = "redis://127.0.0.1:1".into();
    }));
    group.bench_function("one_key_shared_tier_configured", |b| {
        b.to_async(&rt).iter_batched(
            || request(0),
            |req| tiered.handle(black_box(req)),
            BatchSize::SmallInput,
        )
    });
    // A ~200 KB flag configuration hit in identity, br and gzip: each variant was made
    // once while warming, so all three serve stored bytes and should cost the same.
    for (name, accept) in FLAG_ENCODINGS {
        group.bench_function(name, |b| {
            b.to_async(&rt).iter_batched(
                || flags_request(accept),
                |req| gateway.handle(black_box(req)),
                BatchSize::SmallInput,
            )
        });
    }
    // A browser's hit (issue 16): `Origin` sent, CORS headers added per answer. With the
    // default policy `*` (two static headers), and with a list of origins (the `Origin`
    // compared and echoed, `Vary: Origin`).
    group.bench_function("one_key_origin_cors_any", |b| {
        b.to_async(&rt).iter_batched(
            || request_from(0, Some(ORIGIN)),
            |req| gateway.handle(black_box(req)),
            BatchSize::SmallInput,
        )
    });
    let (listed_upstream, listed) = rt.block_on(setup(|config| {
        config.cors.allowed_origins = vec!["https://other.example.com".into(), ORIGIN.into()];
    }));
    group.bench_function("one_key_origin_cors_listed", |b| {
        b.to_async(&rt).iter_batched(
            || request_from(0, Some(ORIGIN)),
            |req| listed.handle(black_box(req)),
            BatchSize::SmallInput,
        )
    });
    let hit = rt.block_on(listed.handle(request_from(0, Some(ORIGIN))));
    assert_eq!(hit.headers()[header::ACCESS_CONTROL_ALLOW_ORIGIN], ORIGIN);
    group.finish();

    // Nothing on the timed path reached the upstream: every request was a hit.
    for upstream in [&upstream, &tiered_upstream, &listed_upstream] {
        assert_eq!(
            upstream.hits.load(Ordering::Relaxed),
            POOL + 1,
            "only warming may reach the upstream"
        );
    }
    rt.block_on(upstream.stop());
    rt.block_on(tiered_upstream.stop());
    rt.block_on(listed_upstream.stop());
}

/// Starts the upstream and a gateway on it (its config changed by `configure`), warms
/// `POOL` keys and checks they hit.
async fn setup(configure: impl FnOnce(&mut Config)) -> (Upstream, Gateway) {
    let flags = flags_config();
    let upstream = Upstream::start(flags.clone()).await;
    let mut config = Config::default();
    config.upstream.url = format!("http://{}", upstream.addr);
    // The flag configuration stays fresh however long the bench runs.
    config.cache.flags_ttl_s = 3600;
    configure(&mut config);
    let config = config.validate().expect("bench config is valid");
    let gateway = Gateway::new(config).expect("gateway builds");

    for user in 0..POOL {
        let warm = gateway.handle(request(user)).await;
        assert_eq!(warm.status(), StatusCode::OK, "warming user-{user}");
        assert_eq!(x_cache(&warm), "MISS", "warming user-{user}");
    }
    gateway.cache().run_pending_tasks().await;
    for user in 0..POOL {
        let hit = gateway.handle(request(user)).await;
        assert_eq!(hit.status(), StatusCode::OK, "user-{user}");
        assert_eq!(x_cache(&hit), "HIT", "user-{user} was warmed");
        let body = hit
            .into_body()
            .collect()
            .await
            .expect("full body")
            .to_bytes();
        assert_eq!(body, BODY.as_bytes(), "user-{user} body");
    }
    // The flag configuration, stored, then its variants made once.
    for (name, accept) in FLAG_ENCODINGS {
        let warm = gateway.handle(flags_request(accept)).await;
        assert_eq!(warm.status(), StatusCode::OK, "{name}");
        let encoding = warm.headers().get(header::CONTENT_ENCODING).cloned();
        assert_eq!(
            encoding.as_ref().map(|e| e.to_str().expect("token")),
            accept.map(|a| if a == "gzip" { "gzip" } else { "br" }),
            "{name}"
        );
    }
    gateway.cache().run_pending_tasks().await;
    for (name, accept) in FLAG_ENCODINGS {
        let hit = gateway.handle(flags_request(accept)).await;
        assert_eq!(x_cache(&hit), "HIT", "{name}");
        if accept.is_none() {
            let body = hit.into_body().collect().await.expect("full body");
            assert_eq!(body.to_bytes(), flags, "{name}");
        }
    }
    assert_eq!(upstream.hits.load(Ordering::Relaxed), POOL + 1);
    (upstream, gateway)
}

criterion_group!(benches, bench);
criterion_main!(benches);
