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
    assert_eq!(entry.body(), upstream.body);
    assert_eq!(entry.content_type().unwrap().as_bytes(), &buffer[..24]);
    drop(upstream);
    // The buffer is referenced by `buffer` alone again: the entry copied what it keeps.
    assert!(buffer.is_unique());
    assert_eq!(entry.body_slice().len(), 288);
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
    assert_eq!(entry.content_type().unwrap(), JSON);
}

fn flags_entry(body: &'static [u8]) -> CachedResponse {
    let upstream = UpstreamResponse {
        status: StatusCode::OK,
        headers: http::HeaderMap::new(),
        body: Bytes::from_static(body),
    };
    let ttl = Duration::from_secs(60);
    CachedResponse::stored(StatusCode::OK, &upstream, Instant::now(), ttl, ttl)
}

#[tokio::test]
async fn a_variant_is_kept_with_its_entry_and_weighed() {
    use crate::compression::Encoding;
    let cache = ResponseCache::new(&CacheConfig::default());
    let k = key(RouteFamily::SdkV2Flags, "key");
    cache.insert(k.clone(), flags_entry(b"[1,2,3]")).await;
    cache.run_pending_tasks().await;
    let before = cache.weighted_size();
    let source = cache.get(&k).await.unwrap();
    let packed = Bytes::from(vec![7u8; 500]);
    assert!(
        cache
            .add_variant(&k, &source, Encoding::Br, packed.clone())
            .await
    );
    let stored = cache.get(&k).await.unwrap();
    assert_eq!(stored.variant(Encoding::Br), Some(&packed));
    assert!(stored.variant(Encoding::Gzip).is_none());
    assert!(stored.same_body(&source));
    // The second encoding joins the first.
    assert!(
        cache
            .add_variant(&k, &source, Encoding::Gzip, Bytes::from_static(b"gz"))
            .await
    );
    let stored = cache.get(&k).await.unwrap();
    assert_eq!(stored.variant(Encoding::Br), Some(&packed));
    cache.run_pending_tasks().await;
    // Each body as allocated, with the count `Bytes` adds, and the `Arc` around both.
    let a = super::weight::allocation;
    let held = a(16 + std::mem::size_of::<super::Variants>()) + a(500) + a(2) + 2 * a(24);
    assert_eq!(cache.weighted_size(), before + held as u64);
}

#[tokio::test]
async fn a_purge_before_a_variant_insert_is_never_undone() {
    use crate::compression::Encoding;
    let cache = ResponseCache::new(&CacheConfig::default());
    let k = key(RouteFamily::SdkV2Flags, "key");
    cache.insert(k.clone(), flags_entry(b"[1]")).await;
    let source = cache.get(&k).await.unwrap();
    // Purged (lazily, by predicate) while the variant was being made.
    cache.invalidate_deployment("key").await;
    let kept = cache
        .add_variant(&k, &source, Encoding::Br, Bytes::from_static(b"br"))
        .await;
    assert!(!kept);
    assert!(cache.get(&k).await.is_none(), "the purged entry came back");
    cache.run_pending_tasks().await;
    assert!(cache.get(&k).await.is_none());

    // Removed outright.
    cache.insert(k.clone(), flags_entry(b"[1]")).await;
    let source = cache.get(&k).await.unwrap();
    cache.remove(&k).await;
    assert!(
        !cache
            .add_variant(&k, &source, Encoding::Gzip, Bytes::from_static(b"gz"))
            .await
    );
    assert!(cache.get(&k).await.is_none());
}

#[tokio::test]
async fn a_variant_of_an_older_fill_never_replaces_a_newer_one() {
    use crate::compression::Encoding;
    let cache = ResponseCache::new(&CacheConfig::default());
    let k = key(RouteFamily::SdkV2Flags, "key");
    cache.insert(k.clone(), flags_entry(b"[1]")).await;
    let old = cache.get(&k).await.unwrap();
    // Refreshed meanwhile, with equal bytes (each entry has an allocation of its own).
    let newer = flags_entry(b"[1]");
    assert!(!newer.same_body(&old));
    cache.insert(k.clone(), newer.clone()).await;
    assert!(
        !cache
            .add_variant(&k, &old, Encoding::Br, Bytes::from_static(b"old"))
            .await
    );
    let stored = cache.get(&k).await.unwrap();
    assert!(stored.same_body(&newer));
    assert!(stored.variants.is_none());
}

#[tokio::test]
async fn a_purge_between_the_check_and_the_insert_is_never_undone() {
    use crate::compression::Encoding;
    // The race the epoch closes: the purge lands after add_variant found the entry
    // unchanged, before moka inserts the replacement (so the purge's predicate, older
    // than the insert, does not cover it).
    for purge_all in [false, true] {
        let mut cache = ResponseCache::new(&CacheConfig::default());
        let hook = Arc::new(variants::PutHook::default());
        cache.put_hook = Some(hook.clone());
        let k = key(RouteFamily::SdkV2Flags, "key");
        cache.insert(k.clone(), flags_entry(b"[1]")).await;
        let source = cache.get(&k).await.unwrap();
        let (c1, k1) = (cache.clone(), k.clone());
        let add = tokio::spawn(async move {
            c1.add_variant(&k1, &source, Encoding::Br, Bytes::from_static(b"br"))
                .await
        });
        hook.reached.notified().await;
        if purge_all {
            cache.invalidate_all();
        } else {
            cache.invalidate_deployment("key").await;
        }
        hook.proceed.notify_one();
        assert!(!add.await.unwrap(), "not kept");
        assert!(
            cache.get(&k).await.is_none(),
            "purged entry back ({purge_all})"
        );
        cache.run_pending_tasks().await;
        assert!(cache.get(&k).await.is_none());
    }
}

#[tokio::test]
async fn a_variant_checked_while_a_purge_registers_is_never_kept() {
    use crate::compression::Encoding;
    // The epoch is raised before moka has the invalidation: an add_variant that loads the
    // new epoch and finds the entry still there must not insert after the invalidation
    // took effect (that insert, newer than the predicate, would survive it).
    let mut cache = ResponseCache::new(&CacheConfig::default());
    let hook = Arc::new(variants::PutHook::default());
    cache.put_hook = Some(hook.clone());
    let k = key(RouteFamily::SdkV2Flags, "key");
    cache.insert(k.clone(), flags_entry(b"[1]")).await;
    let source = cache.get(&k).await.unwrap();
    // The purge, step by step: in progress and epoch raised, invalidation not yet given.
    let purging = cache.begin_purge();
    let (c1, k1) = (cache.clone(), k.clone());
    let mut add = tokio::spawn(async move {
        c1.add_variant(&k1, &source, Encoding::Br, Bytes::from_static(b"br"))
            .await
    });
    // Either it refuses at once, or it reaches its insert: then the invalidation lands
    // before the insert goes on.
    let reached = tokio::select! {
        kept = &mut add => {
            assert!(!kept.unwrap(), "kept during a purge");
            false
        }
        () = hook.reached.notified() => true,
    };
    let _ = cache
        .inner
        .invalidate_entries_if(|key: &CacheKey, _: &CachedResponse| key.deployment() == "key");
    drop(purging);
    if reached {
        hook.proceed.notify_one();
        assert!(!add.await.unwrap(), "not kept");
    }
    assert!(cache.get(&k).await.is_none(), "the purged entry came back");
    cache.run_pending_tasks().await;
    assert!(cache.get(&k).await.is_none());
}

#[tokio::test]
async fn a_resurrected_entry_is_dropped_though_another_variant_replaced_it() {
    use crate::compression::Encoding;
    // A br variant inserted after a purge's invalidation resurrects the entry; before
    // its cleanup, a gzip variant of the same body replaces that entry (a new `Arc` of
    // variants). The cleanup drops whatever still holds the purged body.
    let mut cache = ResponseCache::new(&CacheConfig::default());
    let put = Arc::new(variants::PutHook::default());
    let cleanup = Arc::new(variants::PutHook::default());
    cache.put_hook = Some(put.clone());
    cache.cleanup_hook = Some(cleanup.clone());
    let k = key(RouteFamily::SdkV2Flags, "key");
    cache.insert(k.clone(), flags_entry(b"[1]")).await;
    let source = cache.get(&k).await.unwrap();
    let (c1, k1, s1) = (cache.clone(), k.clone(), source.clone());
    let br = tokio::spawn(async move {
        c1.add_variant(&k1, &s1, Encoding::Br, Bytes::from_static(b"br"))
            .await
    });
    put.reached.notified().await;
    cache.invalidate_deployment("key").await;
    put.proceed.notify_one();
    cleanup.reached.notified().await;
    // The br insert came after the invalidation: the entry is back, for now.
    assert!(cache.get(&k).await.is_some());
    let (c2, k2) = (cache.clone(), k.clone());
    let gz = tokio::spawn(async move {
        c2.add_variant(&k2, &source, Encoding::Gzip, Bytes::from_static(b"gz"))
            .await
    });
    put.reached.notified().await;
    put.proceed.notify_one();
    gz.await.unwrap();
    assert!(
        cache
            .get(&k)
            .await
            .unwrap()
            .variant(Encoding::Gzip)
            .is_some()
    );
    cleanup.proceed.notify_one();
    assert!(!br.await.unwrap(), "not kept");
    assert!(cache.get(&k).await.is_none(), "the purged entry came back");
    cache.run_pending_tasks().await;
    assert!(cache.get(&k).await.is_none());
}
