//! The soak's client tasks, and the context they share: mixed requests over HTTP/1.1 and
//! HTTP/2, bursts of identical misses, slow and stalled clients, admin purges. Each runs
//! until the deadline, one request at a time (a burst at a time).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use tokio::time::timeout;

use crate::check::{Tally, check};
use crate::inputs::{bad, bypass};
use crate::rng::Rng;
use crate::slow::{self, Ending};
use crate::traffic::{self, Spec, hot_meaning, meaning, spell};
use crate::upstream::FaultLog;
use crate::{BODY_GIVE_UP, BURST, HEADER_READ_TIMEOUT, HOT, NO_HANG};

pub type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// What every client task shares.
pub struct Ctx {
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    pub deadline: Instant,
    pub seed: u64,
    pub tally: Tally,
    pub faults: Arc<FaultLog>,
    pub h1: HttpClient,
    pub h2: HttpClient,
}

impl Ctx {
    pub fn running(&self) -> bool {
        Instant::now() < self.deadline
    }

    pub fn rng(&self, task: u64) -> Rng {
        Rng::new(self.seed ^ (task + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15))
    }

    /// Sends `spec`, checks the answer, counts it.
    async fn send(&self, spec: &Spec, h2: bool) {
        let kind = if h2 {
            format!("h2 {}", spec.kind)
        } else {
            spec.kind.to_string()
        };
        let mut builder = http::Request::builder()
            .method(spec.method)
            .uri(format!("http://{}{}", self.addr, spec.path_and_query));
        for (name, value) in &spec.headers {
            builder = builder.header(name, value);
        }
        let request = builder
            .body(Full::new(Bytes::from(spec.body.clone())))
            .unwrap();
        let client = if h2 { &self.h2 } else { &self.h1 };
        let started = Instant::now();
        let result = timeout(NO_HANG, async {
            let response = client
                .request(request)
                .await
                .map_err(|e| format!("{e:?}"))?;
            let (parts, body) = response.into_parts();
            let body = body
                .collect()
                .await
                .map_err(|e| format!("{e:?}"))?
                .to_bytes();
            Ok::<_, String>((parts, body))
        })
        .await;
        match result {
            Err(_) => self.tally.wrong(&kind, "no answer within NO_HANG", spec),
            Ok(Err(e)) => self
                .tally
                .wrong(&kind, &format!("transport error: {e}"), spec),
            Ok(Ok((parts, body))) => {
                let x_cache = parts
                    .headers
                    .get("x-cache")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("-");
                match check(
                    spec,
                    parts.status.as_u16(),
                    x_cache,
                    &body,
                    started,
                    &self.faults,
                ) {
                    Ok(label) => self.tally.count(&kind, &label),
                    Err(what) => self.tally.wrong(&kind, &what, spec),
                }
            }
        }
    }
}

/// Hits, misses, bypasses and bad inputs, over HTTP/1.1 or HTTP/2.
pub async fn mixed(ctx: Arc<Ctx>, id: u64, h2: bool) {
    let mut rng = ctx.rng(id);
    let mut n = 0u64;
    while ctx.running() {
        n += 1;
        let spec = match rng.below(100) {
            0..50 => spell(&hot_meaning(rng.below(HOT)), &mut rng, "hit"),
            50..70 => spell(
                &meaning(&mut rng, format!("miss-{id}-{n}")),
                &mut rng,
                "miss",
            ),
            70..82 => bypass(&mut rng, id * 1_000_000_000 + n),
            _ => bad(&mut rng, n, !h2),
        };
        ctx.send(&spec, h2).await;
    }
}

/// Bursts of [`BURST`] concurrent requests for one fresh meaning, each spelled its own
/// way, half over HTTP/2: one upstream request for all (or all the same fault).
pub async fn bursts(ctx: Arc<Ctx>) {
    let mut rng = ctx.rng(100);
    let mut n = 0u64;
    while ctx.running() {
        n += 1;
        let m = meaning(&mut rng, format!("burst-{n}"));
        let specs: Vec<Spec> = (0..BURST).map(|_| spell(&m, &mut rng, "burst")).collect();
        futures_util::future::join_all(
            specs
                .iter()
                .enumerate()
                .map(|(i, spec)| ctx.send(spec, i % 2 == 1)),
        )
        .await;
    }
}

/// A dribbled request head (checked like any answer), a stalled head, a stalled body.
pub async fn slow_clients(ctx: Arc<Ctx>) {
    let mut rng = ctx.rng(200);
    let mut n = 0u64;
    while ctx.running() {
        n += 1;
        match rng.below(3) {
            0 => {
                let spec = if rng.chance(50) {
                    spell(&hot_meaning(rng.below(HOT)), &mut rng, "slow")
                } else {
                    spell(&meaning(&mut rng, format!("slow-{n}")), &mut rng, "slow")
                };
                let started = Instant::now();
                let pause = Duration::from_millis(10);
                match slow::dribble(ctx.addr, &spec, 16, pause, NO_HANG).await {
                    Ending::Answer(status, x_cache, body) => {
                        match check(&spec, status, &x_cache, &body, started, &ctx.faults) {
                            Ok(label) => ctx.tally.count("slow", &label),
                            Err(what) => ctx.tally.wrong("slow", &what, &spec),
                        }
                    }
                    other => {
                        ctx.tally
                            .wrong("slow", &format!("dribbled request: {other:?}"), &spec)
                    }
                }
            }
            1 => {
                let head =
                    format!("GET /v1/vardata?user_id=stalled-{n} HTTP/1.1\r\nhost: soak\r\n");
                let ending = slow::stall(ctx.addr, &head, b"", HEADER_READ_TIMEOUT + NO_HANG).await;
                match ending {
                    Ending::Closed => ctx.tally.count("stalled", "head: closed"),
                    Ending::Answer(408, ..) => ctx.tally.count("stalled", "head: 408"),
                    other => {
                        let spec = spell(&meaning(&mut rng, "stalled".into()), &mut rng, "stalled");
                        ctx.tally
                            .wrong("stalled", &format!("stalled head: {other:?}"), &spec)
                    }
                }
            }
            _ => {
                let head = format!(
                    "POST /sdk/v2/vardata HTTP/1.1\r\nhost: soak\r\nauthorization: Api-Key {}\r\ncontent-length: 200\r\n\r\n",
                    traffic::KEY
                );
                let ending =
                    slow::stall(ctx.addr, &head, b"{\"user_id\": \"stal", BODY_GIVE_UP).await;
                // `server.body_read_timeout_ms` (1 s here) answers a stalled body 408 and
                // closes; anything else, or no answer within BODY_GIVE_UP, is wrong.
                let label = match ending {
                    Ending::Answer(408, ..) => "body: 408",
                    other => {
                        let spec = spell(&meaning(&mut rng, "stalled".into()), &mut rng, "stalled");
                        ctx.tally
                            .wrong("stalled", &format!("stalled body: {other:?}"), &spec);
                        continue;
                    }
                };
                ctx.tally.count("stalled", label);
            }
        }
    }
}

/// Purges through the admin API: everything, or one deployment.
pub async fn purges(ctx: Arc<Ctx>) {
    let mut rng = ctx.rng(300);
    while ctx.running() {
        tokio::time::sleep(Duration::from_millis(500 + rng.below(2000))).await;
        let query = match rng.below(3) {
            0 => String::new(),
            1 => format!("?deployment={}", traffic::KEY),
            _ => format!("?deployment={}", traffic::KEY2),
        };
        let request = http::Request::post(format!("http://{}/admin/purge{query}", ctx.admin))
            .body(Full::new(Bytes::new()))
            .unwrap();
        let status = timeout(NO_HANG, ctx.h1.request(request))
            .await
            .ok()
            .and_then(Result::ok)
            .map(|r| r.status().as_u16());
        let label = format!(
            "purge {}",
            status.map_or("failed".into(), |s| s.to_string())
        );
        ctx.tally.count("admin", &label);
        assert_eq!(status, Some(200), "admin purge{query} failed");
    }
}
