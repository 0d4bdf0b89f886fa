//! The cache key, which is also the canonical upstream request.
//!
//! A [`CacheKey`] holds everything the forwarded request is built from and nothing else,
//! so nothing outside the key can reach the upstream and poison an entry: two requests
//! share an entry exactly when evalgate would send the upstream the same request.

use std::fmt;
use std::hash::{BuildHasher, BuildHasherDefault, Hash, Hasher, RandomState};
use std::sync::{Arc, OnceLock};

use http::{HeaderValue, Method, Request, header};

/// Which endpoint family a key belongs to; families never share entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RouteFamily {
    /// `GET /v1/vardata`.
    V1Vardata,
}

impl RouteFamily {
    /// A short label for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            RouteFamily::V1Vardata => "v1_vardata",
        }
    }
}

/// A canonical request: cheap to clone (one `Arc`), compared by value.
///
/// The key's hash is computed once, when it is built (SipHash with a per-process random
/// key, so clients cannot aim collisions), and [`Hash`] feeds only that number to a map:
/// the cache and the coalescing map hash 8 bytes per lookup, not the whole canonical
/// request. Use [`KeyHasher`] as those maps' hasher.
#[derive(Clone)]
pub struct CacheKey(Arc<Inner>);

struct Inner {
    parts: KeyParts,
    hash: u64,
}

#[derive(PartialEq, Eq, Hash)]
struct KeyParts {
    route: RouteFamily,
    /// The deployment key, in full: it is forwarded, and two deployments never share.
    deployment: Box<str>,
    /// `X-Amp-Exp-Track`, forwarded as is.
    track: Option<Box<str>>,
    /// Canonical path and query, forwarded as is.
    path_and_query: Box<str>,
}

/// The `User-Agent` evalgate sends upstream.
pub const USER_AGENT: &str = concat!("evalgate/", env!("CARGO_PKG_VERSION"));

fn process_hasher() -> &'static RandomState {
    static HASHER: OnceLock<RandomState> = OnceLock::new();
    HASHER.get_or_init(RandomState::new)
}

impl CacheKey {
    pub fn new(
        route: RouteFamily,
        deployment: &str,
        track: Option<&str>,
        path_and_query: String,
    ) -> CacheKey {
        let parts = KeyParts {
            route,
            deployment: deployment.into(),
            track: track.map(Into::into),
            path_and_query: path_and_query.into_boxed_str(),
        };
        let hash = process_hasher().hash_one(&parts);
        CacheKey(Arc::new(Inner { parts, hash }))
    }

    pub fn route(&self) -> RouteFamily {
        self.0.parts.route
    }

    pub fn deployment(&self) -> &str {
        &self.0.parts.deployment
    }

    pub fn track(&self) -> Option<&str> {
        self.0.parts.track.as_deref()
    }

    pub fn path_and_query(&self) -> &str {
        &self.0.parts.path_and_query
    }

    /// Bytes this key holds, for the cache's weigher.
    pub fn weight(&self) -> usize {
        let p = &self.0.parts;
        p.deployment.len() + p.track.as_ref().map_or(0, |t| t.len()) + p.path_and_query.len()
    }

    /// The request sent upstream on a miss, built from the key alone.
    pub fn upstream_request(&self, base: &str) -> Result<Request<()>, http::Error> {
        let mut builder = Request::builder()
            .method(Method::GET)
            .uri(format!("{base}{}", self.path_and_query()))
            .header(header::ACCEPT, HeaderValue::from_static("application/json"))
            .header(header::USER_AGENT, HeaderValue::from_static(USER_AGENT))
            .header(
                header::AUTHORIZATION,
                HeaderValue::try_from(format!("Api-Key {}", self.deployment()))?,
            );
        if let Some(track) = self.track() {
            builder = builder.header("x-amp-exp-track", HeaderValue::try_from(track)?);
        }
        builder.body(())
    }
}

impl PartialEq for CacheKey {
    fn eq(&self, other: &CacheKey) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
            || (self.0.hash == other.0.hash && self.0.parts == other.0.parts)
    }
}

impl Eq for CacheKey {}

impl Hash for CacheKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.0.hash);
    }
}

/// A map hasher for [`CacheKey`]s: passes their precomputed hash through.
pub type KeyHasher = BuildHasherDefault<PrehashedHasher>;

/// Takes the `u64` a [`CacheKey`] writes as the hash. Other input (never written by
/// `CacheKey`) is folded in FNV-style so the hasher stays correct for any type.
#[derive(Default)]
pub struct PrehashedHasher(u64);

impl Hasher for PrehashedHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// Debug output masks the deployment key, so keys can be logged.
impl fmt::Debug for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheKey")
            .field("route", &self.route())
            .field("deployment", &crate::mask::Masked(self.deployment()))
            .field("track", &self.track())
            .field("path_and_query", &self.path_and_query())
            .finish()
    }
}
