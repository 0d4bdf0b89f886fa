//! The response cache's stored entries and its negative cache of 401s.

use super::*;
use bytes::Bytes;
use http::{HeaderValue, StatusCode};

use crate::upstream::UpstreamResponse;

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
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
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
    assert_eq!(entry.content_type().unwrap(), "application/json");
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
    assert!(cache.purges.purge("key"));
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
async fn a_variant_inserted_after_a_purge_of_everything_is_never_served() {
    use crate::compression::Encoding;
    // The br variant passed its checks before the purge and is inserted after it (moka's
    // invalidation covers only what came before it): the entry keeps its generation,
    // under the purge's floor, so it is never served; the cleanup then takes it out.
    let mut cache = ResponseCache::new(&CacheConfig::default());
    let put = Arc::new(variants::PutHook::default());
    let cleanup = Arc::new(variants::PutHook::default());
    cache.put_hook = Some(put.clone());
    cache.cleanup_hook = Some(cleanup.clone());
    let k = key(RouteFamily::SdkV2Flags, "key");
    cache.insert(k.clone(), flags_entry(b"[1]")).await;
    let source = cache.get(&k).await.unwrap();
    let (c1, k1) = (cache.clone(), k.clone());
    let br = tokio::spawn(async move {
        c1.add_variant(&k1, &source, Encoding::Br, Bytes::from_static(b"br"))
            .await
    });
    put.reached.notified().await;
    cache.invalidate_all();
    put.proceed.notify_one();
    cleanup.reached.notified().await;
    let held = cache.segment(&k).get(&k).await;
    let held = held.expect("moka holds the variant's insert");
    assert!(held.variant(Encoding::Br).is_some());
    assert!(
        !cache.servable(&k, &held, Instant::now()),
        "the purged entry came back"
    );
    cleanup.proceed.notify_one();
    assert!(!br.await.unwrap(), "not kept");
    cache.run_pending_tasks().await;
    assert!(
        cache.segment(&k).get(&k).await.is_none(),
        "the cleanup removed it"
    );
}

#[tokio::test]
async fn a_deployment_purge_after_a_purge_of_everything_hides_what_came_between() {
    // The purge of everything forgets the deployment purges before it (its floor covers
    // them); one after it is remembered.
    let cache = ResponseCache::new(&CacheConfig::default());
    let (d, other) = (
        key(RouteFamily::V1Vardata, "d"),
        key(RouteFamily::V1Vardata, "other"),
    );
    cache.invalidate_deployment("d").await;
    cache.invalidate_all();
    cache.insert(d.clone(), entry_for(60, 0)).await;
    cache.insert(other.clone(), entry_for(60, 0)).await;
    assert!(cache.get(&d).await.is_some(), "stored after both purges");
    cache.invalidate_deployment("d").await;
    assert!(cache.get(&d).await.is_none());
    assert!(cache.get(&other).await.is_some());
}

fn entry_for(fresh_s: u64, grace_s: u64) -> CachedResponse {
    CachedResponse::new(
        StatusCode::OK,
        None,
        b"{}",
        Instant::now(),
        Duration::from_secs(fresh_s),
        Duration::from_secs(grace_s),
    )
}

fn removed(cache: &ResponseCache) -> [u64; 4] {
    cache.counts().removed
}

#[tokio::test(start_paused = true)]
async fn an_entry_is_served_through_its_grace_then_never_again_and_counted_expired() {
    let cache = ResponseCache::new(&CacheConfig::default());
    let k = key(RouteFamily::V1Vardata, "key");
    cache.insert(k.clone(), entry_for(10, 5)).await;
    tokio::time::advance(Duration::from_secs(12)).await;
    let stale = cache.get(&k).await.expect("served in its grace");
    assert!(stale.stale_by(Instant::now()).is_some());
    tokio::time::advance(Duration::from_secs(3)).await;
    assert!(cache.get(&k).await.is_none(), "served past its lifetime");
    cache.run_pending_tasks().await;
    assert_eq!(cache.entry_count(), 0, "removed as it was read");
    assert_eq!(removed(&cache), [0, 1, 0, 0]);
}

#[tokio::test]
async fn a_deployment_purge_hides_only_that_deployments_entries_stored_before_it() {
    let cache = ResponseCache::new(&CacheConfig::default());
    let (a, b) = (
        key(RouteFamily::V1Vardata, "a"),
        key(RouteFamily::V1Vardata, "b"),
    );
    cache.insert(a.clone(), entry_for(60, 0)).await;
    cache.insert(b.clone(), entry_for(60, 0)).await;
    cache.invalidate_deployment("a").await;
    assert!(cache.get(&a).await.is_none());
    assert!(cache.get(&b).await.is_some());
    // Stored after the purge: served.
    cache.insert(a.clone(), entry_for(60, 0)).await;
    assert!(cache.get(&a).await.is_some());
    cache.run_pending_tasks().await;
    assert_eq!(cache.entry_count(), 2);
    // The hidden entry went as it was read (explicit), the refill replaced nothing.
    assert_eq!(removed(&cache), [0, 0, 1, 0]);
}

#[tokio::test(start_paused = true)]
async fn a_sweep_removes_expired_and_purged_entries_and_nothing_else() {
    let cache = ResponseCache::new(&CacheConfig::default());
    let keep: Vec<_> = (0..50)
        .map(|i| key(RouteFamily::V1Vardata, &format!("live-{i}")))
        .collect();
    let short: Vec<_> = (0..30)
        .map(|i| key(RouteFamily::V1Vardata, &format!("short-{i}")))
        .collect();
    let purged: Vec<_> = (0..20)
        .map(|i| CacheKey::new(RouteFamily::V1Vardata, "gone", None, format!("/v?u={i}")))
        .collect();
    for k in &keep {
        cache.insert(k.clone(), entry_for(600, 0)).await;
    }
    for k in &short {
        cache.insert(k.clone(), entry_for(5, 5)).await;
    }
    for k in &purged {
        cache.insert(k.clone(), entry_for(600, 0)).await;
    }
    cache.invalidate_deployment("gone").await;
    tokio::time::advance(Duration::from_secs(11)).await;
    cache.run_pending_tasks().await;
    assert_eq!(cache.entry_count(), 100, "nothing removed before the sweep");
    assert_eq!(cache.sweep().await, 50);
    cache.run_pending_tasks().await;
    assert_eq!(cache.entry_count(), 50);
    assert_eq!(removed(&cache), [0, 30, 20, 0]);
    for k in &keep {
        assert!(cache.get(k).await.is_some());
    }
    assert_eq!(cache.sweep().await, 0, "a second pass finds nothing");
}

#[tokio::test]
async fn a_variant_of_a_purged_entry_stays_hidden() {
    use crate::compression::Encoding;
    // The variant keeps the entry's generation: whenever it lands, the purge still hides
    // it.
    let cache = ResponseCache::new(&CacheConfig::default());
    let k = key(RouteFamily::SdkV2Flags, "key");
    cache.insert(k.clone(), flags_entry(b"[1]")).await;
    let source = cache.get(&k).await.unwrap();
    assert!(cache.purges.purge("key"));
    // Past the epoch check (as if it had read it before the purge): the replacement is
    // made from the stored, hidden entry.
    let mut entry = cache.segment(&k).get(&k).await.unwrap();
    entry.variants = Some(Arc::new(Variants::one(
        Encoding::Br,
        Bytes::from_static(b"br"),
    )));
    cache.segment(&k).insert(k.clone(), entry).await;
    assert!(source.same_body(&cache.segment(&k).get(&k).await.unwrap()));
    assert!(cache.get(&k).await.is_none(), "the purged entry came back");
}

#[tokio::test]
async fn past_the_purge_bound_a_deployment_purge_drops_everything() {
    let mut cache = ResponseCache::new(&CacheConfig::default());
    cache.purges = Arc::new(Purges::with_max(64));
    let k = key(RouteFamily::V1Vardata, "bystander");
    for i in 0..64 {
        assert!(cache.purges.purge(&format!("d{i}")));
    }
    cache.insert(k.clone(), entry_for(60, 0)).await;
    cache.invalidate_deployment("one-more").await;
    assert!(cache.get(&k).await.is_none(), "more than asked, never less");
    assert_eq!(cache.purges.len(), 0, "the purges it covered are forgotten");
    cache.insert(k.clone(), entry_for(60, 0)).await;
    assert!(cache.get(&k).await.is_some());
}

#[tokio::test(start_paused = true)]
async fn the_sweeper_sweeps_on_its_interval_and_stops_when_told() {
    let cache = ResponseCache::new(&CacheConfig::default());
    let k = key(RouteFamily::V1Vardata, "key");
    cache.insert(k.clone(), entry_for(1, 0)).await;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let sweeper = tokio::spawn(run_sweeper(cache.clone(), Duration::from_secs(30), stopped));
    let start = Instant::now();
    for _ in 0..120 {
        if cache.counts().removed[1] > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        cache.run_pending_tasks().await;
    }
    assert_eq!(cache.counts().removed[1], 1, "not swept in 120 s");
    assert!(
        start.elapsed() >= Duration::from_secs(30),
        "swept before its interval"
    );
    assert_eq!(cache.entry_count(), 0);
    stop.send(true).unwrap();
    sweeper.await.unwrap();
}

#[tokio::test]
async fn flag_configurations_and_answers_never_evict_each_other() {
    let config = CacheConfig {
        max_bytes: 4 << 20,
        flags_percent: 10,
        ..CacheConfig::default()
    };
    let cache = ResponseCache::new(&config);
    let answers: Vec<_> = (0..1000)
        .map(|i| CacheKey::new(RouteFamily::V1Vardata, "k", None, format!("/v?u={i}")))
        .collect();
    for k in &answers {
        cache.insert(k.clone(), entry_for(600, 0)).await;
    }
    cache.run_pending_tasks().await;
    let answers_weight = cache.weighted_size();
    assert!(answers_weight < config.max_bytes - config.flags_bytes());
    // A burst of large configurations, ten times the flags segment.
    let big = vec![b'x'; 100 * 1024];
    for i in 0..40 {
        let k = CacheKey::new(RouteFamily::SdkV2Flags, &format!("d{i}"), None, "/f".into());
        let entry = CachedResponse::new(
            StatusCode::OK,
            None,
            &big,
            Instant::now(),
            Duration::from_secs(600),
            Duration::ZERO,
        );
        cache.insert(k, entry).await;
    }
    cache.run_pending_tasks().await;
    for k in &answers {
        assert!(cache.get(k).await.is_some(), "an answer was evicted");
    }
    let flags_weight = cache.weighted_size() - answers_weight;
    assert!(flags_weight > 0);
    assert!(
        flags_weight <= config.flags_bytes(),
        "{flags_weight} > {}",
        config.flags_bytes()
    );
    assert!(
        cache.counts().removed[0] >= 30,
        "configurations evicted each other"
    );
    let counts = cache.counts();
    assert_eq!(counts.flags.capacity_bytes, config.flags_bytes());
    assert_eq!(
        counts.answers.capacity_bytes,
        config.max_bytes - config.flags_bytes()
    );
    assert_eq!(counts.answers.entries, 1000);
    assert_eq!(counts.answers.weighted_bytes, answers_weight);
    assert_eq!(counts.flags.weighted_bytes, flags_weight);
}
