//! The value stored in Redis for one entry: a small binary header and the body.
//!
//! `"EG" | version u8 | status u16 | fetched_at unix ms u64 | fresh ms u64 | grace ms u64 |
//! content-type length u16 | content type | body`, big-endian. The fetch time is wall
//! clock, so that `Age` counts from when the upstream answered on whichever instance
//! that was; anything that does not parse is a miss.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderValue, StatusCode};
use tokio::time::Instant;

use crate::cache::CachedResponse;

const MAGIC: &[u8; 2] = b"EG";
const VERSION: u8 = 1;
const HEADER: usize = 2 + 1 + 2 + 8 + 8 + 8 + 2;

/// Milliseconds since the Unix epoch now.
pub fn unix_ms(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// `entry` as stored bytes; `now`/`wall_now` are one moment on both clocks.
pub fn encode(entry: &CachedResponse, now: Instant, wall_now: SystemTime) -> Vec<u8> {
    let age = now.saturating_duration_since(entry.fetched_at);
    let fetched = unix_ms(wall_now).saturating_sub(millis(age));
    let ct = entry.content_type().map_or(&[][..], |v| v.as_bytes());
    let ct = &ct[..ct.len().min(usize::from(u16::MAX))];
    let mut out = Vec::with_capacity(HEADER + ct.len() + entry.body_slice().len());
    out.extend_from_slice(MAGIC);
    out.push(VERSION);
    out.extend_from_slice(&entry.status.as_u16().to_be_bytes());
    out.extend_from_slice(&fetched.to_be_bytes());
    out.extend_from_slice(&millis(entry.fresh_for()).to_be_bytes());
    out.extend_from_slice(&millis(entry.grace()).to_be_bytes());
    out.extend_from_slice(&(ct.len() as u16).to_be_bytes());
    out.extend_from_slice(ct);
    out.extend_from_slice(entry.body_slice());
    out
}

/// The entry in `bytes`, its fetch time moved onto this process's clock (a fetch time in
/// the future, from clock skew between instances, counts as now).
pub fn decode(bytes: &[u8], now: Instant, wall_now: SystemTime) -> Option<CachedResponse> {
    if bytes.len() < HEADER || &bytes[..2] != MAGIC || bytes[2] != VERSION {
        return None;
    }
    let u16_at = |at: usize| u16::from_be_bytes([bytes[at], bytes[at + 1]]);
    let u64_at = |at: usize| u64::from_be_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
    let status = StatusCode::from_u16(u16_at(3)).ok()?;
    let fetched = u64_at(5);
    let fresh_for = Duration::from_millis(u64_at(13));
    let grace = Duration::from_millis(u64_at(21));
    let ct_len = usize::from(u16_at(29));
    let rest = &bytes[HEADER..];
    if rest.len() < ct_len {
        return None;
    }
    let (ct, body) = rest.split_at(ct_len);
    let content_type = match ct {
        [] => None,
        other => Some(HeaderValue::from_bytes(other).ok()?),
    };
    let age = Duration::from_millis(unix_ms(wall_now).saturating_sub(fetched));
    let fetched_at = now.checked_sub(age).unwrap_or(now);
    Some(CachedResponse::new(
        status,
        content_type.as_ref(),
        body,
        fetched_at,
        fresh_for,
        grace,
    ))
}

/// How long Redis should keep `entry` from `now`: what is left of its freshness and
/// grace; `None` when nothing is.
pub fn remaining(entry: &CachedResponse, now: Instant) -> Option<Duration> {
    let age = now.saturating_duration_since(entry.fetched_at);
    entry.lifetime().checked_sub(age).filter(|d| !d.is_zero())
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(now: Instant, content_type: Option<&'static str>) -> CachedResponse {
        CachedResponse::new(
            StatusCode::OK,
            content_type.map(HeaderValue::from_static).as_ref(),
            br#"{"f":{"key":"on"}}"#,
            now - Duration::from_secs(5),
            Duration::from_secs(60),
            Duration::from_secs(30),
        )
    }

    #[test]
    fn round_trip_keeps_everything_and_the_age() {
        let now = Instant::now();
        let wall = SystemTime::now();
        let e = entry(now, Some("application/json"));
        let bytes = encode(&e, now, wall);
        // Read two seconds later on another instance.
        let later = now + Duration::from_secs(2);
        let back = decode(&bytes, later, wall + Duration::from_secs(2)).unwrap();
        assert_eq!(back.status, e.status);
        assert_eq!(back.content_type(), e.content_type());
        assert_eq!(back.body_slice(), e.body_slice());
        assert_eq!(back.fresh_for(), e.fresh_for());
        assert_eq!(back.grace(), e.grace());
        assert_eq!(back.age_secs(later), 7);
    }

    #[test]
    fn other_content_types_and_401s_round_trip() {
        let now = Instant::now();
        let wall = SystemTime::now();
        let mut e = entry(now, Some("text/plain; charset=utf-8"));
        e.status = StatusCode::UNAUTHORIZED;
        let back = decode(&encode(&e, now, wall), now, wall).unwrap();
        assert_eq!(back.status, StatusCode::UNAUTHORIZED);
        assert_eq!(back.content_type(), e.content_type());
        let e = entry(now, None);
        assert_eq!(
            decode(&encode(&e, now, wall), now, wall)
                .unwrap()
                .content_type(),
            None
        );
    }

    #[test]
    fn garbage_and_other_versions_are_misses() {
        let now = Instant::now();
        let wall = SystemTime::now();
        let mut bytes = encode(&entry(now, Some("application/json")), now, wall);
        assert!(decode(b"", now, wall).is_none());
        assert!(decode(b"EG", now, wall).is_none());
        assert!(decode(&bytes[..HEADER - 1], now, wall).is_none());
        bytes[2] = 9;
        assert!(decode(&bytes, now, wall).is_none());
    }

    #[test]
    fn a_fetch_time_in_the_future_counts_as_now() {
        let now = Instant::now();
        let wall = SystemTime::now();
        let bytes = encode(&entry(now, Some("application/json")), now, wall);
        let back = decode(&bytes, now, wall - Duration::from_secs(60)).unwrap();
        assert_eq!(back.age_secs(now), 0);
    }

    #[test]
    fn remaining_lifetime_counts_from_the_fetch() {
        let now = Instant::now();
        let e = entry(now, Some("application/json"));
        assert_eq!(remaining(&e, now), Some(Duration::from_secs(85)));
        assert_eq!(remaining(&e, now + Duration::from_secs(85)), None);
    }
}
