//! The cache key, which is also the canonical upstream request.
//!
//! A [`CacheKey`] holds everything the forwarded request is built from and nothing else,
//! so nothing outside the key can reach the upstream and poison an entry: two requests
//! share an entry exactly when evalgate would send the upstream the same request.

use std::fmt;
use std::hash::{BuildHasher, BuildHasherDefault, Hash, Hasher, RandomState};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use http::{HeaderValue, Method, Request, header};

/// Which endpoint family a key belongs to; families never share entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RouteFamily {
    /// `GET /v1/vardata`.
    V1Vardata,
    /// `GET|POST /sdk/v2/vardata` (v2 response shape).
    SdkV2Vardata,
    /// `GET|POST /sdk/vardata` (legacy SDK endpoint, v1 response shape).
    SdkVardata,
    /// `GET /sdk/v2/flags`.
    SdkV2Flags,
    /// `GET /v1/flags`.
    V1Flags,
}

impl RouteFamily {
    /// Every family.
    pub const ALL: [RouteFamily; 5] = [
        RouteFamily::V1Vardata,
        RouteFamily::SdkV2Vardata,
        RouteFamily::SdkVardata,
        RouteFamily::SdkV2Flags,
        RouteFamily::V1Flags,
    ];

    /// A short label for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            RouteFamily::V1Vardata => "v1_vardata",
            RouteFamily::SdkV2Vardata => "sdk_v2_vardata",
            RouteFamily::SdkVardata => "sdk_vardata",
            RouteFamily::SdkV2Flags => "sdk_v2_flags",
            RouteFamily::V1Flags => "v1_flags",
        }
    }

    /// Whether answers of this family are flag configurations (`cache.flags_ttl_s`).
    pub fn is_flags(self) -> bool {
        matches!(self, RouteFamily::SdkV2Flags | RouteFamily::V1Flags)
    }
}

/// Everything an upstream request is built from; becomes a [`CacheKey`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CanonicalRequest {
    pub route: RouteFamily,
    /// The deployment key, in full: it is forwarded, and two deployments never share.
    pub deployment: String,
    /// `X-Amp-Exp-Track`, forwarded as is.
    pub track: Option<String>,
    /// `X-Amp-Exp-Exposure-Track`, forwarded as is: `no-track` under
    /// `upstream.tracking = "never"`, else absent (the client's own is never forwarded on a
    /// cached route: `track` bypasses the cache, `no-track` is the default there).
    pub exposure_track: Option<String>,
    /// Canonical path and query, forwarded as is.
    pub path_and_query: String,
    /// `X-Amp-Exp-Flag-Keys`, forwarded as is (base64url of a sorted JSON array).
    pub flag_keys_header: Option<String>,
    /// Canonical user JSON; when present the request is a POST with this body.
    pub body: Option<String>,
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
    parts: CanonicalRequest,
    hash: u64,
}

/// The `User-Agent` evalgate sends upstream.
pub const USER_AGENT: &str = concat!("evalgate/", env!("CARGO_PKG_VERSION"));

fn process_hasher() -> &'static RandomState {
    static HASHER: OnceLock<RandomState> = OnceLock::new();
    HASHER.get_or_init(RandomState::new)
}

impl CacheKey {
    /// A GET key with no flag-keys header and no body (the `/v1/vardata` shape).
    pub fn new(
        route: RouteFamily,
        deployment: &str,
        track: Option<&str>,
        path_and_query: String,
    ) -> CacheKey {
        CacheKey::from(CanonicalRequest {
            route,
            deployment: deployment.into(),
            track: track.map(Into::into),
            exposure_track: None,
            path_and_query,
            flag_keys_header: None,
            body: None,
        })
    }

    /// A GET key (the shape of [`CacheKey::new`]) that also forwards
    /// `X-Amp-Exp-Exposure-Track`.
    pub fn tracked(
        route: RouteFamily,
        deployment: &str,
        track: Option<&str>,
        exposure_track: Option<&str>,
        path_and_query: String,
    ) -> CacheKey {
        CacheKey::from(CanonicalRequest {
            route,
            deployment: deployment.into(),
            track: track.map(Into::into),
            exposure_track: exposure_track.map(Into::into),
            path_and_query,
            flag_keys_header: None,
            body: None,
        })
    }

    /// The key's hash (per-process SipHash of the canonical request).
    pub fn hash_value(&self) -> u64 {
        self.0.hash
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

    /// `X-Amp-Exp-Exposure-Track` as forwarded (`no-track` under `upstream.tracking =
    /// "never"`).
    pub fn exposure_track(&self) -> Option<&str> {
        self.0.parts.exposure_track.as_deref()
    }

    pub fn path_and_query(&self) -> &str {
        &self.0.parts.path_and_query
    }

    pub fn flag_keys_header(&self) -> Option<&str> {
        self.0.parts.flag_keys_header.as_deref()
    }

    /// The canonical user sent as a POST body, if this key is a POST.
    pub fn body(&self) -> Option<&str> {
        self.0.parts.body.as_deref()
    }

    /// Bytes this key holds, for the cache's weigher.
    pub fn weight(&self) -> usize {
        let p = &self.0.parts;
        let len = |s: &Option<String>| s.as_ref().map_or(0, String::len);
        p.deployment.len()
            + p.path_and_query.len()
            + len(&p.track)
            + len(&p.exposure_track)
            + len(&p.flag_keys_header)
            + len(&p.body)
    }

    /// The request sent upstream on a miss, built from the key alone.
    pub fn upstream_request(&self, base: &str) -> Result<Request<Bytes>, http::Error> {
        let method = if self.body().is_some() {
            Method::POST
        } else {
            Method::GET
        };
        let mut builder = Request::builder()
            .method(method)
            .uri(concat_exact(base, self.path_and_query()))
            .header(header::ACCEPT, HeaderValue::from_static("application/json"))
            .header(header::USER_AGENT, HeaderValue::from_static(USER_AGENT))
            .header(
                header::AUTHORIZATION,
                HeaderValue::try_from(concat_exact("Api-Key ", self.deployment()))?,
            );
        if let Some(track) = self.track() {
            builder = builder.header("x-amp-exp-track", HeaderValue::try_from(track)?);
        }
        if let Some(exposure) = self.exposure_track() {
            builder = builder.header("x-amp-exp-exposure-track", HeaderValue::try_from(exposure)?);
        }
        if let Some(keys) = self.flag_keys_header() {
            builder = builder.header("x-amp-exp-flag-keys", HeaderValue::try_from(keys)?);
        }
        match self.body() {
            Some(body) => builder
                .header(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                )
                .body(Bytes::copy_from_slice(body.as_bytes())),
            None => builder.body(Bytes::new()),
        }
    }
}

impl CacheKey {
    /// The same request as [`CacheKey::upstream_request`], as the HTTP/1.1 head written on
    /// the wire: a GET of `prefix` + the canonical path and query, with `host` as its
    /// `Host`. `None` for a POST key, or a field that may not go on the wire as is (the
    /// caller then takes the [`CacheKey::upstream_request`] path, which rejects it).
    pub fn upstream_head(&self, prefix: &str, host: &HeaderValue) -> Option<Vec<u8>> {
        if self.body().is_some() {
            return None;
        }
        let target_ok = |s: &str| s.bytes().all(|b| (0x21..0x7f).contains(&b));
        let value_ok = |s: &str| s.bytes().all(|b| b == b'\t' || (0x20..0x7f).contains(&b));
        let extra = [
            ("x-amp-exp-track", self.track()),
            ("x-amp-exp-exposure-track", self.exposure_track()),
            ("x-amp-exp-flag-keys", self.flag_keys_header()),
        ];
        let fields_ok =
            value_ok(self.deployment()) && extra.iter().all(|(_, v)| v.is_none_or(value_ok));
        if !(target_ok(prefix) && target_ok(self.path_and_query()) && fields_ok) {
            return None;
        }
        let mut head = Vec::with_capacity(192 + self.weight());
        let mut line = |parts: &[&[u8]]| {
            for part in parts {
                head.extend_from_slice(part);
            }
            head.extend_from_slice(b"\r\n");
        };
        line(&[
            b"GET ",
            prefix.as_bytes(),
            self.path_and_query().as_bytes(),
            b" HTTP/1.1",
        ]);
        line(&[b"host: ", host.as_bytes()]);
        line(&[b"accept: application/json"]);
        line(&[b"user-agent: ", USER_AGENT.as_bytes()]);
        line(&[b"authorization: Api-Key ", self.deployment().as_bytes()]);
        for (name, value) in extra {
            if let Some(value) = value {
                line(&[name.as_bytes(), b": ", value.as_bytes()]);
            }
        }
        line(&[]);
        Some(head)
    }
}

/// `a` then `b` in one allocation of exactly their length (`format!` guesses the size and
/// grows; a miss would pay for a second allocation and a copy).
fn concat_exact(a: &str, b: &str) -> String {
    let mut s = String::with_capacity(a.len() + b.len());
    s.push_str(a);
    s.push_str(b);
    s
}

impl From<CanonicalRequest> for CacheKey {
    fn from(parts: CanonicalRequest) -> CacheKey {
        let hash = process_hasher().hash_one(&parts);
        CacheKey(Arc::new(Inner { parts, hash }))
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
            .field("exposure_track", &self.exposure_track())
            .field("path_and_query", &self.path_and_query())
            .field("flag_keys_header", &self.flag_keys_header())
            .field("body", &self.body())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::RouteFamily;

    #[test]
    fn all_lists_every_family_once() {
        for (at, family) in RouteFamily::ALL.into_iter().enumerate() {
            // Exhaustive: a new family does not compile here until it is placed in `ALL`.
            let expected = match family {
                RouteFamily::V1Vardata => 0,
                RouteFamily::SdkV2Vardata => 1,
                RouteFamily::SdkVardata => 2,
                RouteFamily::SdkV2Flags => 3,
                RouteFamily::V1Flags => 4,
            };
            assert_eq!(at, expected, "{family:?}");
        }
    }
}
