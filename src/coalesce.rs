//! Request coalescing: any number of concurrent misses for one key share one upstream
//! request.
//!
//! The first miss for a key registers a flight here; later misses for the same key await
//! the same shared result. The flight is driven by its waiters, in their own tasks (no
//! task per miss): whichever waiter is polled does the work, and every waiter gets the one
//! outcome, whatever its status. A waiter whose client hangs up cancels nothing: when the
//! last waiter of an unfinished flight leaves, a task is spawned to finish it, so the
//! answer is still stored and the next request for the key finds it. The fetch itself is
//! bounded by `upstream.timeout_ms`, so no waiter waits longer than that. A panic in a
//! fetch becomes an internal error for its waiters.
//!
//! A request looks its key up in the cache before it gets here, and a flight for that key
//! may land in between: its fetch is told so (from a record of the last landings), so it
//! can look again instead of asking the upstream twice, and skip that second look
//! otherwise.

use std::collections::HashMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use futures_util::FutureExt;
use futures_util::future::{BoxFuture, Shared};

use crate::error::GatewayError;
use crate::key::{CacheKey, KeyHasher};
use crate::upstream::UpstreamResponse;

/// The result every waiter of a flight receives.
pub type Outcome = Result<Arc<UpstreamResponse>, GatewayError>;

type Flight = Shared<BoxFuture<'static, Outcome>>;

/// The fetches in progress, by key. Cheap to clone.
#[derive(Clone, Default)]
pub struct Flights {
    // A std mutex: held only to look up or insert, never across an await.
    map: Arc<Mutex<Map>>,
    /// Flights landed so far; written under the lock, read without it by [`Flights::mark`].
    landed: Arc<AtomicU64>,
}

struct Map {
    flights: HashMap<CacheKey, Flight, KeyHasher>,
    /// Key hashes of the last [`RECENT`] flights to land, at `landed % RECENT`.
    recent: [u64; RECENT],
}

impl Default for Map {
    fn default() -> Map {
        Map {
            flights: HashMap::default(),
            recent: [0; RECENT],
        }
    }
}

/// Landings remembered by key hash; a request that saw more land since its cache lookup
/// always looks again.
const RECENT: usize = 64;

/// How many flights had landed when a request looked its key up in the cache.
#[derive(Debug, Clone, Copy)]
pub struct Mark(u64);

impl Flights {
    /// Joins the flight for `key`, or starts one running `fetch`, and drives it until it
    /// lands.
    ///
    /// `fetch` should store a cacheable result before it returns: the flight is removed
    /// from the map only after it completes, so a later request finds either the flight or
    /// the stored entry, never neither.
    /// `fetch` is called with whether a flight for `key` may have landed since `mark`
    /// (taken before the caller's cache lookup): then the answer may be stored already.
    /// Returns the outcome and whether this call joined a flight already in progress.
    pub async fn join_or_start<F, Fut>(
        &self,
        key: &CacheKey,
        mark: Mark,
        fetch: F,
    ) -> (Outcome, bool)
    where
        F: FnOnce(bool) -> Fut,
        Fut: Future<Output = Outcome> + Send + 'static,
    {
        let (flight, joined) = {
            let mut map = self.lock();
            match map.flights.get(key) {
                Some(flight) => (flight.clone(), true),
                None => {
                    let landed = self.landed.load(Ordering::Acquire);
                    let maybe_landed = map.landed_since(mark.0, landed, key.hash_value());
                    let flight = self.launch(key, fetch(maybe_landed));
                    map.flights.insert(key.clone(), flight.clone());
                    (flight, false)
                }
            }
        };
        let mut waiter = Waiter {
            flights: self,
            key,
            flight: Some(flight),
        };
        let flight = waiter.flight.as_mut().expect("set above");
        (flight.await, joined)
    }

    /// Starts a flight for `key` running `fetch` in a task of its own unless one is in
    /// progress; does not wait.
    pub fn start_if_idle<F>(&self, key: &CacheKey, fetch: F)
    where
        F: Future<Output = Outcome> + Send + 'static,
    {
        let mut map = self.lock();
        if !map.flights.contains_key(key) {
            let flight = self.launch(key, fetch);
            map.flights.insert(key.clone(), flight.clone());
            tokio::spawn(flight.map(drop));
        }
    }

    /// The mark to take before looking a key up in the cache.
    pub fn mark(&self) -> Mark {
        Mark(self.landed.load(Ordering::Acquire))
    }

    /// A new flight running `fetch`; the caller inserts it into the map (under the lock).
    fn launch<F>(&self, key: &CacheKey, fetch: F) -> Flight
    where
        F: Future<Output = Outcome> + Send + 'static,
    {
        let guard = Landing {
            flights: self.clone(),
            key: key.clone(),
        };
        async move {
            let outcome = AssertUnwindSafe(fetch)
                .catch_unwind()
                .await
                .unwrap_or(Err(GatewayError::Internal));
            drop(guard);
            outcome
        }
        .boxed()
        .shared()
    }

    fn lock(&self) -> MutexGuard<'_, Map> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Fetches in progress.
    pub fn len(&self) -> usize {
        self.lock().flights.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Map {
    /// Whether a flight for the key hashed `hash` may have landed between `mark` and
    /// `landed` (landings so far): yes if one of those did, or if there were too many to
    /// tell.
    fn landed_since(&self, mark: u64, landed: u64, hash: u64) -> bool {
        let since = landed.saturating_sub(mark);
        if since > RECENT as u64 {
            return true;
        }
        (mark..landed).any(|n| self.recent[n as usize % RECENT] == hash)
    }
}

/// One waiter's hold on a flight. The last waiter to leave an unfinished flight (its
/// client hung up) hands it to a new task, which finishes it.
struct Waiter<'a> {
    flights: &'a Flights,
    key: &'a CacheKey,
    flight: Option<Flight>,
}

impl Drop for Waiter<'_> {
    fn drop(&mut self) {
        let Some(flight) = self.flight.take() else {
            return;
        };
        // A clone that saw the outcome holds nothing any more (no count); one that did
        // not may still find it ready.
        if flight.strong_count().is_none() || flight.peek().is_some() {
            return;
        }
        // Under the lock, so that nobody joins between the count and the hand-over.
        let map = self.flights.lock();
        let registered = map.flights.get(self.key).is_some_and(|f| f.ptr_eq(&flight));
        let holders = flight.strong_count().unwrap_or(0);
        // Nobody but this waiter and the map: hand the flight to a task of its own.
        if registered && holders <= 2 {
            match tokio::runtime::Handle::try_current() {
                Ok(runtime) => drop(runtime.spawn(flight.map(drop))),
                // Outside a runtime (it is shutting down): nothing could finish it.
                Err(_) => tracing::debug!("flight abandoned outside a runtime"),
            }
        } else {
            // Let go of this hold before the lock: two waiters leaving at once must not
            // both count the other as staying. (Never the last hold on an unfinished
            // flight, which the map keeps: dropping it cannot run the flight's `Landing`.)
            drop(flight);
        }
        drop(map);
    }
}

/// Removes a flight from the map when its fetch ends, even by panic.
struct Landing {
    flights: Flights,
    key: CacheKey,
}

impl Drop for Landing {
    fn drop(&mut self) {
        let mut map = self.flights.lock();
        map.flights.remove(&self.key);
        let landed = self.flights.landed.load(Ordering::Relaxed);
        map.recent[landed as usize % RECENT] = self.key.hash_value();
        self.flights.landed.store(landed + 1, Ordering::Release);
    }
}

#[cfg(test)]
mod tests;
