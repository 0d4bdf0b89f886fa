//! Answering a cacheable request: a fresh entry, a stale one (while it is refreshed, or
//! when the upstream fails or the upstream budget is spent), a remembered 401, or the one
//! coalesced fetch, which takes one token of the budget and stores what may be stored.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use http::{Response, StatusCode};
use tokio::time::Instant;

use super::decode::{Decoded, undecoded};
use super::{Gateway, without_body};
use crate::budget::Purpose;
use crate::coalesce::{Landed, Outcome};
use crate::compression::Accepted;
use crate::error::GatewayError;
use crate::key::CacheKey;
use crate::response::{self, CacheStatus, Tier};
use crate::shared_cache::{Read, SharedCache, Slot, Token, Waited};

impl Gateway {
    /// A cacheable request: answer from a fresh entry; from a stale one while it is
    /// refreshed in the background (within `cache.stale_while_revalidate_s`); else from the
    /// one coalesced fetch, falling back to a stale entry when the upstream fails (within
    /// `cache.stale_if_error_s`).
    pub(super) async fn cached(
        &self,
        key: CacheKey,
        head: bool,
        accepted: Accepted,
        now: Instant,
    ) -> (Response<response::Body>, CacheStatus) {
        let cache = &self.inner.live.cache();
        let mut fallback = None;
        let mark = self.inner.flights.mark();
        if let Some(entry) = self.inner.cache.get(&key).await {
            match entry.stale_by(now) {
                None => {
                    let response = self
                        .answer_entry(&key, &entry, now, CacheStatus::Hit, head, accepted)
                        .await;
                    return (response, CacheStatus::Hit);
                }
                Some(late) if late < Duration::from_secs(cache.stale_while_revalidate_s) => {
                    // Started before the answer, which may wait for a compression: the
                    // refresh does not wait for it, nor depend on this client staying.
                    self.refresh_in_background(key.clone());
                    let response = self
                        .answer_entry(&key, &entry, now, CacheStatus::Stale, head, accepted)
                        .await;
                    return (response, CacheStatus::Stale);
                }
                Some(late) if late < Duration::from_secs(cache.stale_if_error_s) => {
                    fallback = Some(entry);
                }
                Some(_) => {}
            }
        }
        if let Some(denied) = self.inner.cache.unauthorized(&key).await {
            let response = self
                .answer_entry(&key, &denied, now, CacheStatus::Hit, head, accepted)
                .await;
            return (response, CacheStatus::Hit);
        }
        let this = self.clone();
        let fetch_key = key.clone();
        let (outcome, joined) = self
            .inner
            .flights
            .join_or_start(&key, mark, move |recheck| async move {
                this.fetch_and_store(fetch_key, recheck, now, false).await
            })
            .await;
        if joined {
            self.inner.metrics.coalesced();
        }
        let over_budget = matches!(outcome, Err(GatewayError::OverBudget { .. }));
        let fallback = fallback.filter(|_| upstream_failed(&outcome));
        if over_budget && let Some(budget) = &self.inner.budget {
            budget.answered(key.deployment(), fallback.is_some());
        }
        if let Some(entry) = fallback {
            let now = Instant::now();
            let response = self
                .answer_entry(&key, &entry, now, CacheStatus::Stale, head, accepted)
                .await;
            return (response, CacheStatus::Stale);
        }
        let (response, cache, tier) = match outcome.as_deref() {
            // Another instance's answer, from the shared tier: fresh, or stale while it is
            // refreshed.
            Ok(Landed::Shared(entry)) => {
                let now = Instant::now();
                let cache = match entry.stale_by(now) {
                    None => CacheStatus::Hit,
                    Some(_) => {
                        self.refresh_in_background(key.clone());
                        CacheStatus::Stale
                    }
                };
                let response = self
                    .answer_entry(&key, entry, now, cache, false, accepted)
                    .await;
                (response, cache, Tier::L2)
            }
            // Stored (or storable) as identity: in the client's encoding.
            Ok(Landed::Upstream(upstream))
                if upstream.status == StatusCode::OK && !undecoded(upstream) =>
            {
                let response = self.answer_fill(&key, upstream, accepted).await;
                (response, CacheStatus::Miss, Tier::Upstream)
            }
            // Not stored, so relayed whole: a 401 keeps its `WWW-Authenticate`, a 429 its
            // `Retry-After`.
            Ok(Landed::Upstream(upstream)) => (
                response::relayed(
                    upstream.status,
                    &upstream.headers,
                    upstream.body.clone(),
                    CacheStatus::Miss,
                ),
                CacheStatus::Miss,
                Tier::Upstream,
            ),
            Err(err) => (
                response::error(err, Some(CacheStatus::Miss)),
                CacheStatus::Miss,
                Tier::Upstream,
            ),
        };
        let response = if head {
            without_body(response)
        } else {
            response
        };
        (self.tier(response, tier), cache)
    }

    /// Adds `X-Cache-Tier` when the shared tier is configured. Answers from this
    /// instance's memory carry none: the L1 hit path is the same with or without the tier
    /// (measured: the header alone cost a hit 3 % more instructions).
    fn tier(&self, response: Response<response::Body>, tier: Tier) -> Response<response::Body> {
        match &self.inner.shared {
            Some(_) => response::with_tier(response, tier),
            None => response,
        }
    }

    /// Starts one refresh of `key` unless one is already running; nobody waits for it.
    fn refresh_in_background(&self, key: CacheKey) {
        if let Some(budget) = &self.inner.budget
            && !budget.refresh_allowed(key.deployment())
        {
            return;
        }
        let this = self.clone();
        let fetch_key = key.clone();
        self.inner.flights.start_if_idle(&key, async move {
            this.fetch_and_store(fetch_key, true, Instant::now(), true)
                .await
        });
    }

    /// The body of a flight: the shared tier when there is one, else (or when it has
    /// nothing) one upstream request for `key`. A storable 200 is stored before the flight
    /// ends, and a 401 remembered for its deployment key on its route; anything else is
    /// returned to the waiters and not stored, so an error never replaces an entry.
    /// `recheck`: a flight for this key may have landed since the request missed.
    /// `since`: when the request that started the flight arrived (waits count from it);
    /// `refresh`: a background refresh of a stale entry, which nobody waits for.
    async fn fetch_and_store(
        &self,
        key: CacheKey,
        recheck: bool,
        since: Instant,
        refresh: bool,
    ) -> Outcome {
        // A request may have missed just before the previous flight for this key landed:
        // answer it from that flight's entry rather than asking the upstream again.
        let stored = match recheck {
            true => self.inner.cache.get(&key).await,
            false => None,
        };
        if let Some(entry) = stored.filter(|e| e.stale_by(Instant::now()).is_none()) {
            return Ok(Arc::new(Landed::Upstream(entry.into_upstream_response())));
        }
        let generation = self.inner.generation.load(Ordering::SeqCst);
        let mut fill = None;
        if let Some(shared) = &self.inner.shared
            && let Some(slot) = shared.slot(&key)
        {
            match self
                .ask_shared(shared, &key, &slot, since, refresh, generation)
                .await
            {
                Ok(found) => return Ok(found),
                Err(lock) => fill = Some((shared, slot, lock)),
            }
        }
        // One budget token per upstream request (taken by the exchange): coalesced misses
        // share this one.
        let charge = match refresh {
            true => (key.deployment(), Purpose::Refresh),
            false => (key.deployment(), Purpose::Fill),
        };
        let origin = &self.inner.upstream;
        let sent = match origin.pipelined(&key) {
            Some(request) => self.exchange(charge, origin.send_pipelined(request)).await,
            None => match origin.fill_request(&key) {
                Ok(request) => self.exchange(charge, origin.send(request)).await,
                Err(_) => Err(GatewayError::Unforwardable),
            },
        };
        // Decoded into identity (an unknown coding is relayed as it came).
        let sent = match sent {
            Ok(upstream) => self.decoded(upstream).await,
            Err(e) => Err(e),
        };
        let Decoded {
            response: mut upstream,
            gzip,
        } = match sent {
            Ok(decoded) => decoded,
            Err(e) => {
                if let GatewayError::Upstream(e) = &e {
                    tracing::warn!(error = %e, deployment = %crate::mask::Masked(key.deployment()), "upstream request failed");
                }
                if let Some((shared, slot, lock)) = fill {
                    shared.release(slot, lock);
                }
                return Err(e);
            }
        };
        let stored = self.store(&key, &upstream, gzip, generation).await;
        // Waiters answer from the stored body itself, so that their compressed variant is
        // the stored entry's (found by its allocation).
        if let Ok(Some(entry)) = &stored
            && entry.status == StatusCode::OK
        {
            upstream.body = entry.body();
        }
        match (fill, &stored) {
            (Some((shared, slot, lock)), Ok(Some(entry))) => shared.write(slot, entry, lock),
            (Some((shared, slot, lock)), _) => shared.release(slot, lock),
            (None, _) => {}
        }
        stored?;
        Ok(Arc::new(Landed::Upstream(upstream)))
    }

    /// Asks the shared tier for `key`: `Ok` with an answer found there (kept in L1), or
    /// `Err` with the fill lock when this instance is to fetch (`None`: fetch anyway).
    /// Another instance's fill in progress is waited for, until `upstream.timeout_ms`
    /// after `since`.
    async fn ask_shared(
        &self,
        shared: &SharedCache,
        key: &CacheKey,
        slot: &Slot,
        since: Instant,
        refresh: bool,
        generation: u64,
    ) -> Result<Arc<Landed>, Option<Token>> {
        let cache = self.inner.live.cache();
        let swr = Duration::from_secs(cache.stale_while_revalidate_s);
        // What a waiting client may be given: fresh, or stale within stale-while-revalidate
        // (a background refresh wants a fresh answer).
        let max_stale = if refresh { Duration::ZERO } else { swr };
        let mut read = shared.read(slot).await;
        if let Read::Found(entry) = &read {
            match entry.stale_by(Instant::now()) {
                // Fresh, or stale within stale-while-revalidate for a client waiting (the
                // caller serves it and starts a refresh).
                None => {}
                Some(late) if late < swr && !refresh => {}
                // Stale past that, or this is the refresh: one instance refreshes it.
                Some(_) => read = shared.lock(slot).await,
            }
        }
        let mut entry = match read {
            Read::Found(entry) => entry,
            Read::Fetch(lock) => return Err(lock),
            Read::Busy => match shared.wait(slot, since, max_stale).await {
                Waited::Found(entry) => entry,
                Waited::TookOver(lock) => return Err(Some(lock)),
                Waited::GaveUp => return Err(None),
            },
        };
        // Lifetimes as this instance would give them at most (another writer's envelope
        // is not trusted past them).
        let grace = cache.stale_while_revalidate_s.max(cache.stale_if_error_s);
        let longest = cache.max_ttl_s.max(cache.flags_ttl_s).max(cache.ttl_s);
        entry.cap_lifetimes(Duration::from_secs(longest), Duration::from_secs(grace));
        // Kept in L1 unless a purge came in meanwhile.
        let current = || self.inner.generation.load(Ordering::SeqCst) == generation;
        if current() {
            if entry.status == StatusCode::UNAUTHORIZED {
                shared.note(key.deployment());
                self.inner
                    .cache
                    .remember_unauthorized(key, entry.clone())
                    .await;
            } else {
                self.note_deployment(key.deployment());
                self.inner.cache.insert(key.clone(), entry.clone()).await;
                // A purge that came in between the check and the insert did not see
                // this entry (it may have been read under a generation being raised).
                if !current() {
                    self.inner.cache.remove(key).await;
                }
            }
        }
        Ok(Arc::new(Landed::Shared(entry)))
    }
}

/// Whether an outcome is one where a stale entry beats the answer: the upstream could not
/// be reached, timed out, answered garbage, 5xx or 429, or evalgate's own in-flight limit
/// or upstream budget.
fn upstream_failed(outcome: &Outcome) -> bool {
    match outcome {
        Ok(r) => r.status().is_server_error() || r.status() == StatusCode::TOO_MANY_REQUESTS,
        Err(
            GatewayError::Upstream(_) | GatewayError::Overloaded | GatewayError::OverBudget { .. },
        ) => true,
        Err(_) => false,
    }
}
