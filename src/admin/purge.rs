//! `POST /admin/purge` (everything) and `POST /admin/purge?deployment=<key>` (one
//! deployment's entries).

use http::StatusCode;
use http::request::Parts;

use super::{Body, json};
use crate::gateway::{Gateway, PurgeScope};
use crate::mask::Masked;
use crate::normalize::form;

pub async fn handle(gateway: &Gateway, parts: &Parts) -> http::Response<Body> {
    let mut deployment = None;
    for pair in form::pairs(parts.uri.query().unwrap_or("")) {
        match pair {
            Ok((name, value)) if name == "deployment" => deployment = Some(value.into_owned()),
            Ok(_) => {}
            Err(_) => return super::error(StatusCode::BAD_REQUEST, "query is not valid UTF-8"),
        }
    }
    let scope = match deployment {
        Some(key) if key.trim().is_empty() => {
            return super::error(StatusCode::BAD_REQUEST, "deployment must not be empty");
        }
        Some(key) => PurgeScope::Deployment(key.trim().to_string()),
        None => PurgeScope::All,
    };
    let fanout = gateway.purge(&scope).await;
    let mut purged = match &scope {
        PurgeScope::All => serde_json::json!({ "purged": "all" }),
        PurgeScope::Deployment(key) => {
            serde_json::json!({ "purged": "deployment", "deployment": Masked(key).to_string() })
        }
    };
    // With the shared tier: `sent` (every instance drops it), or `pending` (Redis
    // unreachable: this instance at once, the fleet when Redis takes the replay).
    if let Some(fanout) = fanout {
        purged["fanout"] = serde_json::to_value(fanout).unwrap_or_default();
    }
    json(StatusCode::OK, &purged)
}
