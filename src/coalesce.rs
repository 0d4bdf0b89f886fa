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

use std::collections::HashMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};

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
    map: Arc<Mutex<HashMap<CacheKey, Flight, KeyHasher>>>,
}

impl Flights {
    /// Joins the flight for `key`, or starts one running `fetch`, and drives it until it
    /// lands.
    ///
    /// `fetch` should store a cacheable result before it returns: the flight is removed
    /// from the map only after it completes, so a later request finds either the flight or
    /// the stored entry, never neither.
    /// Returns the outcome and whether this call joined a flight already in progress.
    pub async fn join_or_start<F>(&self, key: &CacheKey, fetch: F) -> (Outcome, bool)
    where
        F: Future<Output = Outcome> + Send + 'static,
    {
        let (flight, joined) = {
            let mut map = self.lock();
            match map.get(key) {
                Some(flight) => (flight.clone(), true),
                None => {
                    let flight = self.launch(key, fetch);
                    map.insert(key.clone(), flight.clone());
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
        if !map.contains_key(key) {
            let flight = self.launch(key, fetch);
            map.insert(key.clone(), flight.clone());
            tokio::spawn(flight.map(drop));
        }
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

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<CacheKey, Flight, KeyHasher>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Fetches in progress.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
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
        let registered = map.get(self.key).is_some_and(|f| f.ptr_eq(&flight));
        let holders = flight.strong_count().unwrap_or(0);
        // Nobody but this waiter and the map: hand the flight to a task of its own.
        if registered && holders <= 2 {
            match tokio::runtime::Handle::try_current() {
                Ok(runtime) => drop(runtime.spawn(flight.map(drop))),
                // Outside a runtime (it is shutting down): nothing could finish it.
                Err(_) => tracing::debug!("flight abandoned outside a runtime"),
            }
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
        self.flights.lock().remove(&self.key);
    }
}

#[cfg(test)]
mod tests;
