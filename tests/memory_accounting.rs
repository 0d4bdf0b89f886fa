//! The cache's weigher against what its entries really cost: jemalloc's own count of the
//! bytes allocated, in this process of its own (one test binary, one test, so nothing
//! else allocates alongside). Fails when `evalgate_cache_weighted_bytes` drifts from the
//! measured cost by more than `cache::weight::MARGIN_PERCENT` (README, "Memory").
//!
//! Built only with the `jemalloc` feature (the default): the weigher models jemalloc's
//! size classes.

use std::time::Duration;

use evalgate::cache::weight::MARGIN_PERCENT;
use evalgate::cache::{CachedResponse, ResponseCache};
use evalgate::compression::Encoding;
use evalgate::config::CacheConfig;
use evalgate::key::{CacheKey, CanonicalRequest, RouteFamily};
use evalgate::normalize::form::encode_into;
use http::{HeaderValue, StatusCode};
use tikv_jemalloc_ctl::{epoch, stats};
use tokio::time::Instant;

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn allocated() -> i64 {
    epoch::advance().expect("jemalloc epoch");
    stats::allocated::read().expect("jemalloc stats") as i64
}

/// A `/v1/vardata` key as normalization writes it: a ~150-byte context, a user and a
/// device.
fn vardata_key(n: usize) -> CacheKey {
    let context = format!(
        r#"{{"app_version":"5.12.{n}","country":"US","language":"en-US","os":"iOS 17.5","platform":"iOS","plan":"enterprise","cohort":"beta-{}"}}"#,
        n % 97
    );
    let mut pq = String::from("/v1/vardata?context=");
    encode_into(&mut pq, &context);
    pq.push_str(&format!("&device_id=d-{n:08x}&user_id=user-{n}"));
    CacheKey::new(
        RouteFamily::V1Vardata,
        "client-4f1c2d3e5a6b7c8d9e0f1a2b3c4d5e6f",
        None,
        pq,
    )
}

/// An `/sdk/v2/vardata` POST key with the canonical user as its body.
fn post_key(n: usize) -> CacheKey {
    CacheKey::from(CanonicalRequest {
        route: RouteFamily::SdkV2Vardata,
        deployment: "client-4f1c2d3e5a6b7c8d9e0f1a2b3c4d5e6f".into(),
        track: None,
        exposure_track: Some("no-track".into()),
        path_and_query: "/sdk/v2/vardata?v=0".into(),
        flag_keys_header: n.is_multiple_of(2).then(|| "WyJhIiwiYiJd".into()),
        body: Some(format!(r#"{{"device_id":"d-{n}","user_id":"user-{n}"}}"#)),
    })
}

fn body(len: usize, n: usize) -> Vec<u8> {
    let mut body = format!(r#"{{"n":{n},"pad":""#).into_bytes();
    body.resize(len - 2, b'x');
    body.extend_from_slice(b"\"}");
    body
}

fn entry(content_type: Option<&'static str>, body: Vec<u8>) -> CachedResponse {
    CachedResponse::new(
        StatusCode::OK,
        content_type.map(HeaderValue::from_static).as_ref(),
        &body,
        Instant::now(),
        Duration::from_secs(60),
        Duration::from_secs(3600),
    )
}

/// Fills a cache with the mix a deployment sees (typical `/v1/vardata` answers, SDK POSTs,
/// an odd content type, large flag configurations, compressed variants), then empties it
/// by eviction: at each step the weighted bytes are within the margin of what the
/// allocator counts.
#[tokio::test(flavor = "current_thread")]
async fn the_weigher_counts_what_entries_really_cost() {
    let config = CacheConfig {
        max_bytes: 4 << 30,
        ..CacheConfig::default()
    };
    let cache = ResponseCache::new(&config);
    // The table moka sized up front is allocated: later growth is the entries'.
    cache.run_pending_tasks().await;
    let before = allocated();

    const TYPICAL: usize = 100_000;
    for n in 0..TYPICAL {
        let (key, ct, len) = match n % 20 {
            0 => (post_key(n), Some("application/json"), 288),
            1 => (vardata_key(n), Some("application/json; charset=utf-8"), 288),
            2 => (vardata_key(n), None, 17),
            _ => (vardata_key(n), Some("application/json"), 288),
        };
        cache.insert(key, entry(ct, body(len, n))).await;
    }
    for n in 0..200 {
        let key = CacheKey::new(
            RouteFamily::SdkV2Flags,
            &format!("server-{n:04}-0123456789abcdef0123456789ab"),
            None,
            "/sdk/v2/flags?v=0".into(),
        );
        let value = entry(Some("application/json"), body(20_000 + n * 37, n));
        cache.insert(key.clone(), value.clone()).await;
        // A hit clones the body; the gzip variant is made and kept.
        let stored = cache.get(&key).await.expect("just stored");
        let gzip = evalgate::compression::codec::compress(
            Encoding::Gzip,
            stored.body_slice(),
            evalgate::compression::codec::Levels { gzip: 6, brotli: 5 },
        );
        assert!(cache.add_variant(&key, &stored, Encoding::Gzip, gzip).await);
    }
    // Hits on a share of the typical entries (each hands out its body without a copy).
    for n in (0..TYPICAL).step_by(3).filter(|n| n % 20 > 2) {
        assert!(cache.get(&vardata_key(n)).await.is_some());
    }
    cache.run_pending_tasks().await;
    let measured = allocated() - before;
    let weighted = cache.weighted_size() as i64;
    assert_eq!(cache.entry_count(), TYPICAL as u64 + 200);
    assert_within_margin("full cache", weighted, measured);

    // Down to a quarter by eviction: what is freed is what was weighed.
    let quarter = ResponseCache::new(&CacheConfig {
        max_bytes: (weighted / 4) as u64,
        ..CacheConfig::default()
    });
    drop(cache);
    quarter.run_pending_tasks().await;
    let before = allocated();
    for n in 0..TYPICAL {
        quarter
            .insert(
                vardata_key(n),
                entry(Some("application/json"), body(288, n)),
            )
            .await;
    }
    quarter.run_pending_tasks().await;
    let measured = allocated() - before;
    assert!(quarter.entry_count() < TYPICAL as u64 / 2, "evicted");
    assert_within_margin("after eviction", quarter.weighted_size() as i64, measured);
}

fn assert_within_margin(what: &str, weighted: i64, measured: i64) {
    let drift = (weighted - measured).abs() * 100 / measured.max(1);
    eprintln!("{what}: weighted {weighted} B, measured {measured} B, drift {drift}%");
    assert!(
        drift <= MARGIN_PERCENT as i64,
        "{what}: the weigher says {weighted} B, jemalloc counts {measured} B ({drift}% apart, \
         margin {MARGIN_PERCENT}%)"
    );
}
