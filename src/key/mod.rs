//! The cache key, which is also the canonical upstream request.
//!
//! A [`CacheKey`] holds everything the forwarded request is built from and nothing else,
//! so nothing outside the key can reach the upstream and poison an entry: two requests
//! share an entry exactly when evalgate would send the upstream the same request.

use std::borrow::Cow;
use std::fmt;
use std::hash::{BuildHasher, BuildHasherDefault, Hash, Hasher, RandomState};
use std::ops::Range;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use http::{HeaderValue, Method, Request, header};

mod layout;
mod query;

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
/// Its fields sit in one allocation ([`layout`]), the path and query decoded
/// ([`query`]): a cached entry's key costs that allocation and nothing else. The
/// accessors read the fields from it; [`CacheKey::path_and_query`] writes the canonical
/// string back.
///
/// The key's hash is computed once, when it is built (SipHash with a per-process random
/// key, so clients cannot aim collisions), and [`Hash`] feeds only that number to a map:
/// the cache and the coalescing map hash 8 bytes per lookup, not the whole canonical
/// request. Use [`KeyHasher`] as those maps' hasher.
#[derive(Clone)]
pub struct CacheKey(Arc<[u8]>);

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
        CacheKey::tracked(route, deployment, track, None, path_and_query)
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
        let mut hash = [0; layout::HEAD];
        hash.copy_from_slice(&self.0[..layout::HEAD]);
        u64::from_le_bytes(hash)
    }

    fn fields(&self) -> layout::Fields {
        layout::fields(&self.0)
    }

    /// A field as text: every field was written from a `&str` (a failure would be a bug,
    /// answered with an empty field rather than a panic).
    fn text(&self, range: Range<usize>) -> &str {
        std::str::from_utf8(&self.0[range]).unwrap_or_default()
    }

    pub fn route(&self) -> RouteFamily {
        self.fields().route
    }

    pub fn deployment(&self) -> &str {
        self.text(self.fields().deployment)
    }

    pub fn track(&self) -> Option<&str> {
        self.fields().track.map(|r| self.text(r))
    }

    /// `X-Amp-Exp-Exposure-Track` as forwarded (`no-track` under `upstream.tracking =
    /// "never"`).
    pub fn exposure_track(&self) -> Option<&str> {
        self.fields().exposure_track.map(|r| self.text(r))
    }

    /// The canonical path and query, as forwarded (written back from its decoded form).
    pub fn path_and_query(&self) -> Cow<'_, str> {
        let fields = self.fields();
        let stored = fields.path_and_query;
        if fields.packed {
            Cow::Owned(query::unpack(&self.0[stored]))
        } else {
            Cow::Borrowed(self.text(stored))
        }
    }

    /// Writes [`CacheKey::path_and_query`] to `out`.
    fn path_and_query_into(&self, out: &mut Vec<u8>) {
        let fields = self.fields();
        let stored = &self.0[fields.path_and_query];
        if fields.packed {
            query::unpack_into(stored, out);
        } else {
            out.extend_from_slice(stored);
        }
    }

    pub fn flag_keys_header(&self) -> Option<&str> {
        self.fields().flag_keys_header.map(|r| self.text(r))
    }

    /// The canonical user sent as a POST body, if this key is a POST.
    pub fn body(&self) -> Option<&str> {
        self.fields().body.map(|r| self.text(r))
    }

    /// Bytes of the key's one allocation (`Arc` counts included), for the cache's weigher.
    pub fn heap_bytes(&self) -> usize {
        2 * std::mem::size_of::<usize>() + self.0.len()
    }

    /// Length of the canonical request's fields as forwarded: the deployment key, the path
    /// and query, the headers' values and the body (what a key would hold undecoded).
    pub fn canonical_len(&self) -> usize {
        let f = self.fields();
        let len = |r: Option<Range<usize>>| r.map_or(0, |r| r.len());
        let pq = if f.packed {
            query::unpacked_len(&self.0[f.path_and_query.clone()])
        } else {
            f.path_and_query.len()
        };
        f.deployment.len()
            + pq
            + len(f.track)
            + len(f.exposure_track)
            + len(f.flag_keys_header)
            + len(f.body)
    }

    /// The request sent upstream on a miss, built from the key alone.
    pub fn upstream_request(&self, base: &str) -> Result<Request<Bytes>, http::Error> {
        let method = if self.body().is_some() {
            Method::POST
        } else {
            Method::GET
        };
        let mut uri = Vec::with_capacity(base.len() + self.canonical_len());
        uri.extend_from_slice(base.as_bytes());
        self.path_and_query_into(&mut uri);
        let mut builder = Request::builder()
            .method(method)
            .uri(uri)
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
        let value_ok = |s: &str| s.bytes().all(|b| b == b'\t' || (0x20..0x7f).contains(&b));
        let extra = [
            ("x-amp-exp-track", self.track()),
            ("x-amp-exp-exposure-track", self.exposure_track()),
            ("x-amp-exp-flag-keys", self.flag_keys_header()),
        ];
        let fields_ok =
            value_ok(self.deployment()) && extra.iter().all(|(_, v)| v.is_none_or(value_ok));
        let mut target = Vec::with_capacity(self.canonical_len());
        self.path_and_query_into(&mut target);
        let target_ok = |s: &[u8]| s.iter().all(|b| (0x21..0x7f).contains(b));
        if !(target_ok(prefix.as_bytes()) && target_ok(&target) && fields_ok) {
            return None;
        }
        let mut head = Vec::with_capacity(192 + self.canonical_len());
        let mut line = |parts: &[&[u8]]| {
            for part in parts {
                head.extend_from_slice(part);
            }
            head.extend_from_slice(b"\r\n");
        };
        line(&[b"GET ", prefix.as_bytes(), &target, b" HTTP/1.1"]);
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
        CacheKey(layout::encode(&parts, |bytes| {
            let hash = process_hasher().hash_one(&bytes[layout::HEAD..]);
            bytes[..layout::HEAD].copy_from_slice(&hash.to_le_bytes());
            Arc::from(&*bytes)
        }))
    }
}

/// Equal exactly when the canonical requests are: the bytes are a bijection of them
/// (the hash first, so most unequal keys differ in the first word).
impl PartialEq for CacheKey {
    fn eq(&self, other: &CacheKey) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || self.0 == other.0
    }
}

impl Eq for CacheKey {}

impl Hash for CacheKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash_value());
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
mod tests;
