//! The passthrough: a request that is not looked up is forwarded as is and its answer
//! relayed, storing nothing; it takes a token of the upstream budget, and under
//! `upstream.tracking = "never"` its tracking headers say `no-track`.

use bytes::Bytes;
use http::{HeaderValue, Request, Response, header};

use super::Gateway;
use crate::budget::Purpose;
use crate::config::Tracking;
use crate::error::GatewayError;
use crate::normalize;
use crate::response::{self, CacheStatus};
use crate::upstream::UpstreamResponse;

impl Gateway {
    /// Forwards a request as is (method, path, query, body, end-to-end headers but those
    /// with `_` in their name, see [`drop_underscored`]) and relays the answer, storing
    /// nothing.
    pub(super) async fn passthrough(
        &self,
        parts: http::request::Parts,
        body: Bytes,
    ) -> Response<response::Body> {
        match self.forward(parts, body).await {
            Ok(upstream) => response::relayed(
                upstream.status,
                &upstream.headers,
                upstream.body,
                CacheStatus::Bypass,
            ),
            Err(err) => response::error(&err, Some(CacheStatus::Bypass)),
        }
    }

    async fn forward(
        &self,
        parts: http::request::Parts,
        body: Bytes,
    ) -> Result<UpstreamResponse, GatewayError> {
        let pq = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
        let mut builder = Request::builder()
            .method(parts.method)
            .uri(format!("{}{pq}", self.inner.upstream.base()));
        let headers = builder.headers_mut().expect("fresh builder");
        response::copy_end_to_end(&parts.headers, headers);
        headers.remove(header::HOST);
        headers.remove(header::CONTENT_LENGTH);
        if self.inner.config.upstream.tracking == Tracking::Never {
            // Replaces every value the client sent.
            let no_track = HeaderValue::from_static(normalize::NO_TRACK);
            headers.insert(normalize::X_AMP_EXP_TRACK.clone(), no_track.clone());
            headers.insert(normalize::X_AMP_EXP_EXPOSURE_TRACK.clone(), no_track);
        }
        if !self.inner.live.underscores_in_headers() {
            let dropped = drop_underscored(headers);
            if dropped > 0 {
                self.inner.metrics.underscored_headers_dropped(dropped);
            }
        }
        let request = builder
            .body(body)
            .map_err(|_| GatewayError::Unforwardable)?;
        // Requests without a deployment key share one budget bucket.
        let deployment = normalize::deployment_key(&parts.headers).unwrap_or("");
        self.exchange(
            (deployment, Purpose::Passthrough),
            self.inner.upstream.send(request),
        )
        .await
    }
}

/// Removes every header field whose name contains `_` and returns how many there were.
///
/// CGI and WSGI servers (and anything built on them) turn `-` into `_` when they put header
/// names in the environment, so to them `Content_Length` and `Content-Length` are one
/// header: forwarded beside a real `Content-Length`, a look-alike would make the upstream
/// frame the request differently than evalgate did. Like nginx (`underscores_in_headers
/// off`), such fields are not forwarded.
fn drop_underscored(headers: &mut http::HeaderMap) -> u64 {
    response::remove_matching(headers, |name| name.as_str().contains('_'))
}
