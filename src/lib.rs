//! evalgate: a caching gateway for Amplitude Experiment remote evaluation.
//!
//! # Layout
//!
//! A request flows through these modules, in order:
//!
//! - [`server`]: accepts connections (HTTP/1.1 and h2c, and over TLS with ALPN `h2` and
//!   `http/1.1` on the `[tls]` listener: one accept loop and connection path for both),
//!   connection limits, idle and header timeouts, graceful drain; `server::connection`
//!   serves one connection (cleartext or TLS alike: hyper's HTTP/1.1-or-h2 server, the
//!   keep-alive idle watchdog, the drain); [`server::tls`] holds
//!   the rustls acceptor and the poll of the certificate files, `server::tls::cert_store`
//!   the pair in force re-read on change or SIGHUP (and `server::tls::der` its serial);
//!   `server::oversized` answers a request head too long
//!   for the connection's buffer with evalgate's JSON 414/431 instead of hyper's bare one.
//! - [`gateway`]: the pipeline for one request (its body read within
//!   `server.body_read_timeout_ms`); routes the five cacheable paths (`/v1/vardata`,
//!   `/sdk/v2/vardata`, `/sdk/vardata`, `/sdk/v2/flags`, `/v1/flags`) to the cache, or to
//!   the passthrough when their request bypasses it, and everything else to the
//!   passthrough.
//! - [`normalize`]: pure; turns a request head into a [`CacheKey`] or a reason to bypass
//!   ([`normalize::form`] decodes the query, [`normalize::user`] canonicalizes user JSON,
//!   [`normalize::json`] writes its strings one way; under `upstream.tracking = "never"`
//!   every key carries `no-track` for assignments and exposures instead of the client's
//!   tracking headers);
//!   [`spelling`] remembers the keys of `/v1/vardata` spellings seen to hit, so the same
//!   spelling again skips it.
//! - [`key`]: the cache key, which is also the canonical upstream request, held in one
//!   allocation with the path and query decoded (written back on a miss).
//! - [`cache`]: the byte-bounded moka cache of 200 responses (kept past freshness for
//!   stale serving), in two segments (flag configurations, `cache.flags_percent` of the
//!   budget, and answers), and the negative cache of 401s; each entry keeps the compressed
//!   variants made from it ([`cache::Variants`], one per encoding, counted in its
//!   weight); an entry weighs what its allocations and moka's cost ([`cache::weight`]);
//!   the cache itself hides entries past their lifetime or purged with their deployment
//!   (a generation per entry) and a periodic sweep removes them ([`cache::run_sweeper`]);
//!   [`freshness`] decides lifetimes.
//! - [`coalesce`]: one upstream request for any number of concurrent identical misses;
//!   fills nobody waits for any more run on within `upstream.max_abandoned_fills`.
//! - [`shared_cache`]: the optional second tier on Redis shared by a fleet
//!   (`[shared_cache]`): asked once per L1 miss inside the flight, a fill lock across
//!   instances, writes after the answer, purges fanned out by generation and channel,
//!   a circuit breaker; never on the L1 hit path.
//! - [`budget`]: the upstream budget, a token bucket per deployment key
//!   (`upstream.budget_rps`), a token taken by the upstream exchange (`gateway::exchange`)
//!   of every request really sent (fill, refresh, passthrough); over it a client gets a
//!   stale entry or `429`, a refresh is skipped.
//! - [`upstream`]: the HTTP(S) client with its timeouts; its keep-alive connections are
//!   pooled and driven by the requests that use them, and cache fills may share pipelined
//!   connections (`upstream.pipeline_depth`).
//! - [`compression`]: `Accept-Encoding` negotiation, gzip and brotli; each stored answer
//!   compressed once per encoding and kept with its entry; upstream codings decoded
//!   within the response size limit.
//! - [`response`]: `X-Cache`/`Age` headers, relayed responses, JSON errors, `Vary`, the
//!   `Cache-Control` clients get (the configured value on successes, `no-store` on errors).
//! - [`cors`]: the CORS policy of the cacheable routes (`cors.allowed_origins`): their
//!   `OPTIONS` answered by evalgate, the same CORS headers on every answer there;
//!   `cors::origin` parses and compares origins (IP addresses as browsers write them).
//! - [`error`]: errors evalgate answers itself, mapped to statuses in one place.
//! - [`metrics`]: what the request path records, in an explicit Prometheus registry.
//! - [`access_log`]: the optional, sampled per-request log line (`evalgate::access`).
//!
//! - [`embedded`]: the in-process evaluation server (`upstream.url = "embedded"`), reached
//!   through the same [`upstream::Upstream`] interface; evaluation itself is [`eval`].
//! - [`eval`]: pure; the flag-configuration evaluation engine (Amplitude's JS engine
//!   semantics): parse flags once, evaluate a context per request, v1/v2 result shapes.
//!
//! - [`simulation`]: `[simulation]`, the real service's behaviour on purpose: a seeded
//!   log-normal latency and 429s, 503s, timeouts and dropped connections, drawn per
//!   upstream exchange (in `gateway::exchange`) or per client request (at the top of
//!   [`Gateway::handle`], the listeners dropping what it leaves unanswered); counted in
//!   `metrics::simulation`, apart from evalgate's own metrics.
//!
//! - [`invalidation`]: polls each served deployment's flags and purges it on a change
//!   (with the shared tier, once per interval for the whole fleet, under a lease).
//!
//! - [`admin`]: the operator listener: `/metrics`, `/healthz`, `/readyz`, `/admin/stats`,
//!   `/admin/try` and the status page, behind `admin.token`.
//! - [`live`]: the settings a SIGHUP may change while running; [`reload`] re-reads
//!   `config.toml` on SIGHUP, applies them and reports the rest.
//!
//! - [`snapshot`]: `evalgate snapshot`, which pulls a deployment's flags from Amplitude
//!   into a file the embedded engine serves (fetch, engine check, atomic write, warnings
//!   about targeting only Amplitude can evaluate).
//! - [`workload`]: `evalgate workload`, a generator of request files for load tools
//!   (vegeta, oha/wrk, k6) from a flags file: Zipf-popular users, an endpoint mix, subsets,
//!   bad keys and contexts, byte-identical for a seed. Not on the request path.
//!
//! Around them: [`config`] (the `config.toml` schema and validation), [`logging`],
//! [`shutdown`] (signals), [`mask`] (deployment keys in logs), [`memory`] (the process's
//! resident set and the allocator's counts, for metrics) and [`b64`] (the SDKs' base64
//! flavours).

#![forbid(unsafe_code)]

pub mod access_log;
pub mod admin;
pub mod b64;
pub mod budget;
pub mod cache;
pub mod coalesce;
pub mod compression;
pub mod config;
pub mod cors;
pub mod embedded;
pub mod error;
pub mod eval;
pub mod freshness;
pub mod gateway;
pub mod invalidation;
pub mod key;
pub mod live;
pub mod logging;
pub mod mask;
pub mod memory;
pub mod metrics;
pub mod normalize;
pub mod reload;
pub mod response;
pub mod server;
pub mod shared_cache;
pub mod shutdown;
pub mod simulation;
pub mod snapshot;
pub mod spelling;
pub mod upstream;
pub mod workload;

pub use admin::AdminServer;
pub use config::Config;
pub use error::GatewayError;
pub use gateway::Gateway;
pub use key::CacheKey;
pub use server::{Listeners, RunError, run, serve, serve_listeners, serve_with_admin};
