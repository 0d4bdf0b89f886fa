//! The status page at `/`: one HTML file, its script and its stylesheet, compiled into the
//! binary (`include_str!`, no build step, nothing fetched from elsewhere). The page polls
//! `/admin/stats` every second and posts its "try it" form to `/admin/try`.

use http::{HeaderValue, Response, header};

use crate::response::Body;

const HTML: &str = include_str!("page.html");
const JS: &str = include_str!("page.js");
const CSS: &str = include_str!("page.css");

/// Path → (content type, content).
const ASSETS: &[(&str, &str, &str)] = &[
    ("/", "text/html; charset=utf-8", HTML),
    ("/admin/page.js", "text/javascript; charset=utf-8", JS),
    ("/admin/page.css", "text/css; charset=utf-8", CSS),
];

pub fn is_asset(path: &str) -> bool {
    ASSETS.iter().any(|(p, _, _)| *p == path)
}

/// The asset at `path`; call only when [`is_asset`].
pub fn asset(path: &str) -> Response<Body> {
    let (_, content_type, content) = ASSETS
        .iter()
        .find(|(p, _, _)| *p == path)
        .copied()
        .unwrap_or(ASSETS[0]);
    let mut response = Response::new(Body::from(content));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // Everything the page loads comes from this listener.
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'self'; img-src 'self' data:"),
    );
    response
}
