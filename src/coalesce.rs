//! Request coalescing: any number of concurrent misses for one key share one upstream
//! request.
//!
//! The first miss for a key registers a flight here; later misses for the same key await
//! the same shared result. The flight is driven by its waiters, in their own tasks (no
//! task per miss): whichever waiter is polled does the work, and every waiter gets the one
//! outcome, whatever its status. A waiter whose client hangs up cancels nothing by itself:
//! when the last waiter of an unfinished flight leaves, a task is spawned to finish it, so
//! the answer is still stored and the next request for the key finds it. The fetch itself
//! is bounded by `upstream.timeout_ms`, so no waiter waits longer than that. A panic in a
//! fetch becomes an internal error for its waiters.
//!
//! Flights running with nobody waiting (abandoned ones, and background refreshes started
//! by [`Flights::start_if_idle`]) are work a client can leave behind without holding a
//! stream open, so they have a budget of their own (`upstream.max_abandoned_fills`): an
//! abandoned flight past it is cancelled instead (its fetch dropped, which abandons its
//! upstream request and frees its in-flight permit) and leaves the map, so the next
//! request for its key starts afresh; a refresh past it is not started.
//!
//! A request looks its key up in the cache before it gets here, and a flight for that key
//! may land in between: its fetch is told so (from a record of the last landings), so it
//! can look again instead of asking the upstream twice, and skip that second look
//! otherwise.

use std::collections::HashMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use futures_util::FutureExt;
use futures_util::future::{BoxFuture, Shared};

use crate::cache::CachedResponse;
use crate::error::GatewayError;
use crate::key::{CacheKey, KeyHasher};
use crate::metrics::AbandonedFills;
use crate::upstream::UpstreamResponse;

/// The result every waiter of a flight receives.
pub type Outcome = Result<Arc<Landed>, GatewayError>;

/// What a flight brought back.
#[derive(Debug)]
pub enum Landed {
    /// The upstream's answer (or this instance's entry stored meanwhile, as one).
    Upstream(UpstreamResponse),
    /// An entry from the shared cache tier (another instance's fill).
    Shared(CachedResponse),
}

impl Landed {
    pub fn status(&self) -> http::StatusCode {
        match self {
            Landed::Upstream(r) => r.status,
            Landed::Shared(e) => e.status,
        }
    }

    pub fn body(&self) -> bytes::Bytes {
        match self {
            Landed::Upstream(r) => r.body.clone(),
            Landed::Shared(e) => e.body(),
        }
    }
}

type Flight = Shared<BoxFuture<'static, Outcome>>;

/// The fetches in progress, by key. Cheap to clone.
#[derive(Clone)]
pub struct Flights {
    // A std mutex: held only to look up or insert, never across an await.
    map: Arc<Mutex<Map>>,
    /// Flights landed so far; written under the lock, read without it by [`Flights::mark`].
    landed: Arc<AtomicU64>,
    budget: Arc<Budget>,
}

/// The default of `upstream.max_abandoned_fills`.
pub const DEFAULT_MAX_ABANDONED: usize = 32;

impl Default for Flights {
    /// With the default budget and unregistered metrics.
    fn default() -> Flights {
        Flights::new(DEFAULT_MAX_ABANDONED, AbandonedFills::default())
    }
}

struct Map {
    flights: HashMap<CacheKey, Registered, KeyHasher>,
    /// Key hashes of the last [`RECENT`] flights to land, at `landed % RECENT`.
    recent: [u64; RECENT],
    /// The id the next flight gets.
    next_id: u64,
}

/// A flight in the map, with its id: a cancelled flight's [`Landing`] must not remove a
/// later flight for the same key.
struct Registered {
    id: u64,
    flight: Flight,
}

impl Default for Map {
    fn default() -> Map {
        Map {
            flights: HashMap::default(),
            recent: [0; RECENT],
            next_id: 0,
        }
    }
}

/// Flights running with nobody waiting, within `upstream.max_abandoned_fills`.
struct Budget {
    limit: usize,
    /// Taken under the map lock, given back by the flight's task when it ends.
    running: AtomicUsize,
    metrics: AbandonedFills,
}

impl Budget {
    /// One more flight may run with nobody waiting: `None` when the budget is spent.
    fn take(self: &Arc<Self>) -> Option<Unwaited> {
        self.running
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.limit).then_some(n + 1)
            })
            .ok()?;
        self.metrics.started();
        Some(Unwaited {
            budget: self.clone(),
            finished: false,
        })
    }
}

/// One flight's share of the budget, given back when its task ends (or is dropped with
/// the runtime).
struct Unwaited {
    budget: Arc<Budget>,
    finished: bool,
}

impl Unwaited {
    /// Runs `flight` to its end with nobody waiting, in a task of its own.
    fn spawn(self, runtime: &tokio::runtime::Handle, flight: Flight) {
        drop(runtime.spawn(async move {
            let _ = flight.await;
            self.finish();
        }));
    }

    fn finish(mut self) {
        self.finished = true;
    }
}

impl Drop for Unwaited {
    fn drop(&mut self) {
        self.budget.running.fetch_sub(1, Ordering::AcqRel);
        self.budget.metrics.ended(self.finished);
    }
}

/// Landings remembered by key hash; a request that saw more land since its cache lookup
/// always looks again.
const RECENT: usize = 64;

/// How many flights had landed when a request looked its key up in the cache.
#[derive(Debug, Clone, Copy)]
pub struct Mark(u64);

impl Flights {
    /// No flight in progress; at most `max_abandoned` run with nobody waiting
    /// (`upstream.max_abandoned_fills`), recorded in `metrics`.
    pub fn new(max_abandoned: usize, metrics: AbandonedFills) -> Flights {
        Flights {
            map: Arc::default(),
            landed: Arc::default(),
            budget: Arc::new(Budget {
                limit: max_abandoned,
                running: AtomicUsize::new(0),
                metrics,
            }),
        }
    }

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
                Some(registered) => (registered.flight.clone(), true),
                None => {
                    let landed = self.landed.load(Ordering::Acquire);
                    let maybe_landed = map.landed_since(mark.0, landed, key.hash_value());
                    let flight = map.launch(self, key, fetch(maybe_landed));
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
    /// progress or the budget of flights nobody waits for is spent; does not wait.
    pub fn start_if_idle<F>(&self, key: &CacheKey, fetch: F)
    where
        F: Future<Output = Outcome> + Send + 'static,
    {
        let mut map = self.lock();
        if map.flights.contains_key(key) {
            return;
        }
        let Some(unwaited) = self.budget.take() else {
            self.budget.metrics.skipped();
            return;
        };
        let flight = map.launch(self, key, fetch);
        unwaited.spawn(&tokio::runtime::Handle::current(), flight);
    }

    /// The mark to take before looking a key up in the cache.
    pub fn mark(&self) -> Mark {
        Mark(self.landed.load(Ordering::Acquire))
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
    /// A new flight for `key` running `fetch`, registered in the map.
    fn launch<F>(&mut self, flights: &Flights, key: &CacheKey, fetch: F) -> Flight
    where
        F: Future<Output = Outcome> + Send + 'static,
    {
        let id = self.next_id;
        self.next_id += 1;
        let guard = Landing {
            flights: flights.clone(),
            key: key.clone(),
            id,
        };
        let flight = async move {
            let outcome = AssertUnwindSafe(fetch)
                .catch_unwind()
                .await
                .unwrap_or(Err(GatewayError::Internal));
            drop(guard);
            outcome
        }
        .boxed()
        .shared();
        let registered = Registered {
            id,
            flight: flight.clone(),
        };
        self.flights.insert(key.clone(), registered);
        flight
    }

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
/// client hung up) hands it to a new task, which finishes it, within the budget; past it,
/// cancels it.
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
        let mut map = self.flights.lock();
        let registered = map
            .flights
            .get(self.key)
            .is_some_and(|r| r.flight.ptr_eq(&flight));
        let holders = flight.strong_count().unwrap_or(0);
        // Nobody but this waiter and the map: the flight is abandoned.
        if registered && holders <= 2 {
            match tokio::runtime::Handle::try_current() {
                Ok(runtime) => match self.flights.budget.take() {
                    // Within the budget: a task of its own finishes it.
                    Some(unwaited) => unwaited.spawn(&runtime, flight),
                    None => {
                        // Past it: out of the map (nobody can join any more), then
                        // dropped outside the lock, as dropping the last hold runs the
                        // fetch's `Landing`, which takes the lock.
                        let registered = map.flights.remove(self.key);
                        drop(map);
                        self.flights.budget.metrics.cancelled();
                        tracing::debug!("abandoned fill cancelled: upstream.max_abandoned_fills");
                        drop(registered);
                        drop(flight);
                        return;
                    }
                },
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

/// Removes a flight from the map when its fetch ends, even by panic. A cancelled flight
/// left the map already: its key may have a new flight by now, which stays.
struct Landing {
    flights: Flights,
    key: CacheKey,
    id: u64,
}

impl Drop for Landing {
    fn drop(&mut self) {
        let mut map = self.flights.lock();
        match map.flights.remove(&self.key) {
            Some(r) if r.id == self.id => {}
            // Cancelled, and a new flight for the key started since: it stays (rare).
            Some(newer) => {
                map.flights.insert(self.key.clone(), newer);
                return;
            }
            None => return,
        }
        let landed = self.flights.landed.load(Ordering::Relaxed);
        map.recent[landed as usize % RECENT] = self.key.hash_value();
        self.flights.landed.store(landed + 1, Ordering::Release);
    }
}

#[cfg(test)]
mod tests;
