//! The response cache's stored entries and its negative cache of 401s.

use super::*;

#[test]
fn a_stored_entry_holds_no_part_of_the_buffer_it_was_read_from() {
    // As hyper hands them over: body and header value are views into one larger
    // read buffer.
    let buffer = Bytes::from(vec![b'x'; 16 * 1024]);
    let mut headers = http::HeaderMap::new();
    let ct = HeaderValue::from_maybe_shared(buffer.slice(0..24)).unwrap();
    headers.insert(http::header::CONTENT_TYPE, ct);
    let upstream = UpstreamResponse {
        status: StatusCode::OK,
        headers,
        body: buffer.slice(100..388),
    };
    let now = Instant::now();
    let entry = CachedResponse::stored(
        StatusCode::OK,
        &upstream,
        now,
        Duration::from_secs(60),
        Duration::ZERO,
    );
    assert_eq!(entry.body, upstream.body);
    assert_eq!(
        entry.content_type.as_ref().unwrap().as_bytes(),
        &buffer[..24]
    );
    drop(upstream);
    // The buffer is referenced by `buffer` alone again: the entry copied what it keeps.
    assert!(buffer.is_unique());
    assert_eq!(entry.body.len(), 288);
}

fn unauthorized_entry() -> CachedResponse {
    let upstream = UpstreamResponse {
        status: StatusCode::UNAUTHORIZED,
        headers: http::HeaderMap::new(),
        body: Bytes::from_static(b"Invalid deployment key"),
    };
    let ttl = Duration::from_secs(60);
    CachedResponse::stored(
        StatusCode::UNAUTHORIZED,
        &upstream,
        Instant::now(),
        ttl,
        ttl,
    )
}

fn key(route: RouteFamily, deployment: &str) -> CacheKey {
    CacheKey::new(route, deployment, None, "/any?user_id=u".into())
}

#[tokio::test]
async fn remembered_401s_are_counted_so_that_none_held_skips_the_lookup() {
    let cache = ResponseCache::new(&CacheConfig::default());
    let held = || cache.negative_held.load(Ordering::Acquire);
    let bad = key(RouteFamily::V1Vardata, "bad-key");
    assert_eq!(held(), 0);
    assert!(cache.unauthorized(&bad).await.is_none());
    cache
        .remember_unauthorized(&bad, unauthorized_entry())
        .await;
    assert!(cache.unauthorized(&bad).await.is_some());
    let other = key(RouteFamily::V1Vardata, "other-key");
    assert!(cache.unauthorized(&other).await.is_none());
    // Replacing counts once.
    cache
        .remember_unauthorized(&bad, unauthorized_entry())
        .await;
    cache.negative.run_pending_tasks().await;
    assert_eq!(held(), 1);
    assert!(cache.unauthorized(&bad).await.is_some());
    // Removed: back to zero, and the lookup is skipped again.
    cache.invalidate_deployment("bad-key").await;
    cache.negative.run_pending_tasks().await;
    assert_eq!(held(), 0);
    assert!(cache.unauthorized(&bad).await.is_none());
}

#[tokio::test]
async fn a_401_is_remembered_for_its_route_only_and_purged_on_all() {
    let cache = ResponseCache::new(&CacheConfig::default());
    let flags = key(RouteFamily::SdkV2Flags, "key");
    cache
        .remember_unauthorized(&flags, unauthorized_entry())
        .await;
    assert!(cache.unauthorized(&flags).await.is_some());
    for route in RouteFamily::ALL {
        let same_key = key(route, "key");
        let remembered = cache.unauthorized(&same_key).await.is_some();
        assert_eq!(remembered, route == RouteFamily::SdkV2Flags, "{route:?}");
        cache
            .remember_unauthorized(&same_key, unauthorized_entry())
            .await;
    }
    cache.invalidate_deployment("key").await;
    for route in RouteFamily::ALL {
        assert!(cache.unauthorized(&key(route, "key")).await.is_none());
    }
    cache.negative.run_pending_tasks().await;
    assert_eq!(cache.negative_held.load(Ordering::Acquire), 0);
}

#[test]
fn json_content_type_is_stored() {
    let mut headers = http::HeaderMap::new();
    headers.insert(http::header::CONTENT_TYPE, HeaderValue::from_static(JSON));
    let upstream = UpstreamResponse {
        status: StatusCode::OK,
        headers,
        body: Bytes::from_static(b"{}"),
    };
    let entry = CachedResponse::stored(
        StatusCode::OK,
        &upstream,
        Instant::now(),
        Duration::from_secs(1),
        Duration::ZERO,
    );
    assert_eq!(entry.content_type.unwrap(), JSON);
}
