//! `[cors]`: which web pages may read the answers of the cacheable routes, and what their
//! preflights allow.

use serde::{Deserialize, Serialize};

use super::ConfigError;
use super::validate::{invalid, range};
use crate::cors::origin::Origin;

/// `[cors]`: which web pages may read the answers of the cacheable routes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct CorsConfig {
    /// Origins (`scheme://host[:port]`) whose pages may read the answers, or `["*"]` for
    /// any page; `[]` sends no CORS headers.
    pub allowed_origins: Vec<String>,
    /// Request headers preflights allow besides the SDKs' own (a tracing library's
    /// `traceparent`, `baggage`, …).
    pub allowed_headers_extra: Vec<String>,
    /// `Access-Control-Max-Age` of preflight answers: how long a browser may reuse one.
    pub max_age_s: u64,
}

impl Default for CorsConfig {
    fn default() -> Self {
        CorsConfig {
            allowed_origins: vec!["*".into()],
            allowed_headers_extra: Vec::new(),
            max_age_s: 7200,
        }
    }
}

impl CorsConfig {
    /// `cors.allowed_origins`: `["*"]` alone, or origins `scheme://host[:port]`;
    /// `cors.allowed_headers_extra`: header names; `cors.max_age_s` within what browsers
    /// honour at most (Firefox: 24 h).
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        let key = "cors.allowed_origins";
        let star = self.allowed_origins.iter().any(|o| o == "*");
        if star && self.allowed_origins.len() > 1 {
            return Err(invalid(
                key,
                "`*` allows every origin: list it alone, or list origins without it".into(),
            ));
        }
        for entry in self.allowed_origins.iter().filter(|o| *o != "*") {
            if let Err(problem) = Origin::parse(entry) {
                return Err(invalid(key, format!("`{entry}`: {problem}")));
            }
        }
        for name in &self.allowed_headers_extra {
            if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                return Err(invalid(
                    "cors.allowed_headers_extra",
                    format!("`{name}` is not a header name"),
                ));
            }
        }
        range("cors.max_age_s", self.max_age_s, 0, 86_400)
    }
}
