//! `[simulation]`: makes evalgate behave like the real service, or its upstream like one
//! having a bad day: a log-normal latency and a mix of 429s, 503s, timeouts and dropped
//! connections, drawn per request from a seed.
//!
//! Draw `n` (the `n`-th simulated request since start) is a pure function of the seed and
//! `n` ([`Simulation::draw_at`]): an RNG seeded from both makes it, so the same seed and the
//! same sequence of requests give the same draws, whatever the threads. The gateway applies
//! a draw in one of two places ([`AppliesTo`]): around each upstream exchange
//! ([`Simulation::upstream`], from `gateway::exchange`), or before each client request
//! ([`Simulation::client`], from [`crate::Gateway::handle`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Response, StatusCode, header};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use rand_distr::{Distribution, LogNormal};

use crate::config::{AppliesTo, SimulationConfig};
use crate::error::UpstreamError;
use crate::metrics::simulation::{Simulated, SimulationMetrics};
use crate::response;
use crate::upstream::UpstreamResponse;

/// The standard normal's 99th percentile: a log-normal with median `m` has its p99 at
/// `m · exp(2.326348 σ)`.
const Z_99: f64 = 2.326_348;

/// The status of a simulated server error.
pub const SERVER_ERROR: StatusCode = StatusCode::SERVICE_UNAVAILABLE;

/// What one draw says to do with one request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Draw {
    /// Added before the answer (zero without a latency profile), at most
    /// `simulation.latency_max_ms`.
    pub delay: Duration,
    /// The failure simulated instead of the answer, if any.
    pub failure: Option<Simulated>,
}

/// A request the simulation leaves without an answer (a timeout's hold has run out, or a
/// reset): carried as an extension of the placeholder response [`Simulation::client`]
/// returns, which the listeners turn into a dropped connection (HTTP/1) or a reset stream
/// (HTTP/2) instead of writing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("no answer: simulated {}", if *.0 == Simulated::Reset { "reset" } else { "timeout" })]
pub struct Unanswered(pub Simulated);

/// What [`Simulation::upstream`] decided for one upstream exchange.
#[derive(Debug)]
pub enum Exchange {
    /// Go ahead, within what is left of `upstream.timeout_ms` after the simulated delay
    /// (`None`: no delay was added, the upstream's own timeout applies).
    Send { within: Option<Duration> },
    /// The simulated outcome, in place of the exchange: the upstream never sees it.
    Instead(Result<UpstreamResponse, UpstreamError>),
}

/// What [`Simulation::client`] decided for one client request.
#[derive(Debug)]
pub enum ClientTurn {
    /// Answer it as usual (any delay has been spent).
    Answer,
    /// This instead: a simulated 429 or 503, or a placeholder carrying [`Unanswered`].
    Instead(Response<response::Body>),
}

/// The simulation in force; built only when `[simulation]` simulates something.
pub struct Simulation {
    applies_to: AppliesTo,
    seed: u64,
    latency: Option<LogNormal<f64>>,
    max_delay_ms: f64,
    /// Upper ends of the 429, 5xx, timeout and reset intervals of `[0, 1)`.
    thresholds: [f64; 4],
    retry_after: HeaderValue,
    timeout_hold: Duration,
    /// Draws so far: the next draw's `n`.
    next: AtomicU64,
    metrics: SimulationMetrics,
}

impl Simulation {
    /// The simulation `config` describes, or `None` when it simulates nothing. `config`
    /// is validated ([`crate::Config::validate`]).
    pub fn new(config: &SimulationConfig, metrics: SimulationMetrics) -> Option<Simulation> {
        if !config.enabled() {
            return None;
        }
        // Validated (p99 >= p50 > 0); an unvalidated config gets no latency, not a panic.
        let latency = (config.latency_p50_ms > 0)
            .then(|| {
                let p50 = config.latency_p50_ms as f64;
                let p99 = config.latency_p99_ms as f64;
                let sigma = ((p99 / p50).ln() / Z_99).max(0.0);
                LogNormal::new(p50.ln(), sigma).ok()
            })
            .flatten();
        let mut thresholds = [0.0; 4];
        let mut sum = 0.0;
        for (threshold, (_, rate)) in thresholds.iter_mut().zip(config.rates()) {
            sum += rate;
            *threshold = sum;
        }
        Some(Simulation {
            applies_to: config.applies_to,
            seed: config.seed,
            latency,
            max_delay_ms: config.latency_max_ms as f64,
            thresholds,
            retry_after: HeaderValue::from(config.retry_after_s),
            timeout_hold: Duration::from_millis(config.timeout_hold_ms),
            next: AtomicU64::new(0),
            metrics,
        })
    }

    pub fn applies_to(&self) -> AppliesTo {
        self.applies_to
    }

    /// Draws made so far.
    pub fn draws(&self) -> u64 {
        self.next.load(Ordering::Relaxed)
    }

    /// Draw `n`: a pure function of the seed and `n`, recorded nowhere.
    pub fn draw_at(&self, n: u64) -> Draw {
        let mut rng = StdRng::seed_from_u64(self.seed ^ splitmix64(n));
        let u: f64 = rng.random();
        let failure = match self.thresholds.iter().position(|&t| u < t) {
            Some(0) => Some(Simulated::TooManyRequests),
            Some(1) => Some(Simulated::ServerError),
            Some(2) => Some(Simulated::Timeout),
            Some(3) => Some(Simulated::Reset),
            _ => None,
        };
        let delay = match &self.latency {
            Some(latency) => {
                let ms = latency.sample(&mut rng).min(self.max_delay_ms);
                Duration::from_secs_f64(ms / 1000.0)
            }
            None => Duration::ZERO,
        };
        Draw { delay, failure }
    }

    /// The next draw, counted in the metrics.
    pub fn draw(&self) -> Draw {
        let draw = self.draw_at(self.next.fetch_add(1, Ordering::Relaxed));
        self.metrics.record(draw.delay, draw.failure);
        draw
    }

    /// `applies_to = "misses"`: one upstream exchange, whose whole time (the simulated
    /// delay included) is bounded by `timeout` (`upstream.timeout_ms`). The delay is spent
    /// here; a delay of `timeout` or more ends as evalgate's upstream timeout, as a slow
    /// upstream would. A 429 or 503 is answered in the upstream's place, a timeout hangs
    /// until `timeout` and fails as one, a reset fails as an unreachable upstream.
    pub async fn upstream(&self, timeout: Duration) -> Exchange {
        let Draw { delay, failure } = self.draw();
        if delay >= timeout {
            tokio::time::sleep(timeout).await;
            return Exchange::Instead(Err(UpstreamError::Timeout));
        }
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let instead = match failure {
            None => {
                let within = (!delay.is_zero()).then(|| timeout - delay);
                return Exchange::Send { within };
            }
            Some(Simulated::TooManyRequests | Simulated::ServerError) => {
                let (status, headers, body) = self.answer(failure);
                Ok(UpstreamResponse {
                    status,
                    headers,
                    body,
                })
            }
            Some(Simulated::Timeout) => {
                tokio::time::sleep(timeout - delay).await;
                Err(UpstreamError::Timeout)
            }
            Some(Simulated::Reset) => Err(UpstreamError::Connect(
                "connection reset (simulated: simulation.rate_reset)".into(),
            )),
        };
        Exchange::Instead(instead)
    }

    /// `applies_to = "all"`: one client request, before evalgate looks at it. The delay
    /// is spent here; a 429 or 503 is answered instead; a timeout holds the request for
    /// `simulation.timeout_hold_ms`, then, like a reset, ends with no answer.
    pub async fn client(&self) -> ClientTurn {
        let Draw { delay, failure } = self.draw();
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        match failure {
            None => ClientTurn::Answer,
            Some(Simulated::TooManyRequests | Simulated::ServerError) => {
                let (status, headers, body) = self.answer(failure);
                let mut response = Response::new(response::Body::from(body));
                *response.status_mut() = status;
                *response.headers_mut() = headers;
                ClientTurn::Instead(response)
            }
            Some(dropped @ (Simulated::Timeout | Simulated::Reset)) => {
                if dropped == Simulated::Timeout {
                    tokio::time::sleep(self.timeout_hold).await;
                }
                ClientTurn::Instead(unanswered(dropped))
            }
        }
    }

    /// A simulated 429 (with `Retry-After`) or 503, with a JSON body saying so.
    fn answer(&self, failure: Option<Simulated>) -> (StatusCode, HeaderMap, Bytes) {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        let (status, body) = if failure == Some(Simulated::TooManyRequests) {
            headers.insert(header::RETRY_AFTER, self.retry_after.clone());
            (
                StatusCode::TOO_MANY_REQUESTS,
                r#"{"error":"too many requests (simulated: simulation.rate_429)"}"#,
            )
        } else {
            (
                SERVER_ERROR,
                r#"{"error":"service unavailable (simulated: simulation.rate_5xx)"}"#,
            )
        };
        (status, headers, Bytes::from_static(body.as_bytes()))
    }
}

/// The placeholder for a request left without an answer: what an in-process caller (the
/// listeners drop the connection instead) sees, a 504 JSON error, with [`Unanswered`].
fn unanswered(kind: Simulated) -> Response<response::Body> {
    let body = match kind {
        Simulated::Reset => r#"{"error":"no answer: connection reset (simulated)"}"#,
        _ => r#"{"error":"no answer: timed out (simulated)"}"#,
    };
    let mut response = Response::new(response::Body::from(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = StatusCode::GATEWAY_TIMEOUT;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response.extensions_mut().insert(Unanswered(kind));
    response
}

/// SplitMix64's output function: spreads consecutive draw numbers over the whole seed
/// space, so draw `n` and draw `n + 1` get unrelated RNG streams.
fn splitmix64(n: u64) -> u64 {
    let mut z = n.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests;
