//! Upstream answers in identity: a gzip, br or deflate body decoded into the body that
//! is stored (within the response size limit), or, when that cannot be done for an
//! answer that is not stored anyway, relayed as it came.

use bytes::Bytes;
use http::{HeaderName, StatusCode, header};

use super::Gateway;
use crate::compression::BLOCKING_BYTES;
use crate::compression::codec::{self, Coded, Coding, DecodeError};
use crate::error::{GatewayError, UpstreamError};
use crate::upstream::UpstreamResponse;

/// An upstream answer ready to store and serve: identity, unless its coding is unknown,
/// or a non-200 could not be decoded (then relayed as it came, never stored).
pub(super) struct Decoded {
    pub response: UpstreamResponse,
    /// The upstream's own gzip body, kept as the stored gzip variant: one gzip member
    /// exactly (browsers read only the first).
    pub gzip: Option<Bytes>,
}

/// Headers describing the coded body, wrong once evalgate has decoded it.
const CODED_BODY: [HeaderName; 3] = [
    header::CONTENT_ENCODING,
    header::CONTENT_LENGTH,
    header::ETAG,
];

impl Gateway {
    /// `upstream`'s answer in identity: a gzip, br or deflate body decoded (at most
    /// `upstream.max_response_bytes` of it; past that it is refused like a body too
    /// large), the headers describing the coded body dropped ([`CODED_BODY`],
    /// `Content-MD5`); an unknown coding left as it came. An empty body is identity
    /// whatever its header says. Only a 200 is refused when it cannot be decoded (it
    /// would be stored); any other status is relayed as it came.
    pub(super) async fn decoded(
        &self,
        mut upstream: UpstreamResponse,
    ) -> Result<Decoded, GatewayError> {
        let metrics = self.inner.metrics.compression();
        let as_came = |response| Decoded {
            response,
            gzip: None,
        };
        let coding = match codec::coded(&upstream.headers) {
            Coded::Identity => return Ok(as_came(upstream)),
            Coded::Unknown => {
                metrics.decoded(None);
                return Ok(as_came(upstream));
            }
            Coded::Known(_) if upstream.body.is_empty() => {
                strip_coded(&mut upstream.headers);
                return Ok(as_came(upstream));
            }
            Coded::Known(coding) => coding,
        };
        let max = self.inner.upstream.max_response_bytes();
        let (identity, one_member) = match decode(coding, upstream.body.clone(), max).await {
            Ok(decoded) => decoded,
            Err(e) => {
                metrics.refused(coding);
                // The fill logs the error it becomes; this says which coding.
                tracing::debug!(coding = coding.as_str(), error = %e, "upstream body refused");
                if upstream.status != StatusCode::OK {
                    // Not stored: the client gets the answer (a 401, a 429) as it came.
                    return Ok(as_came(upstream));
                }
                return Err(match e {
                    DecodeError::TooLarge => UpstreamError::TooLarge,
                    DecodeError::Invalid => UpstreamError::Protocol(e.to_string()),
                }
                .into());
            }
        };
        metrics.decoded(Some(coding));
        let gzip = (one_member
            && self.inner.compressor.enabled()
            && identity.len() >= self.inner.config.compression.min_bytes)
            .then(|| Bytes::copy_from_slice(&upstream.body));
        strip_coded(&mut upstream.headers);
        upstream.body = identity;
        Ok(Decoded {
            response: upstream,
            gzip,
        })
    }
}

/// `upstream`'s body decoded from `coding` (at most `max` bytes), and whether it is one
/// gzip member; past 8 KiB of input on the blocking pool (decoding expands a body several
/// times over, JSON 5-10x, like a compression of 64 KiB).
async fn decode(coding: Coding, body: Bytes, max: usize) -> Result<(Bytes, bool), DecodeError> {
    let body_len = body.len();
    let work = move || match coding {
        Coding::Gzip => codec::decode_gzip(&body, max),
        _ => codec::decode(coding, &body, max).map(|identity| (identity, false)),
    };
    if body_len <= BLOCKING_BYTES / 8 {
        return work();
    }
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or(Err(DecodeError::Invalid))
}

/// Drops what describes the coded body from decoded `headers`.
fn strip_coded(headers: &mut http::HeaderMap) {
    for name in CODED_BODY {
        headers.remove(name);
    }
    headers.remove("content-md5");
}

/// Whether `upstream` came in a coding evalgate does not decode (relayed, never stored).
pub(super) fn undecoded(upstream: &UpstreamResponse) -> bool {
    codec::coded(&upstream.headers) != Coded::Identity
}
