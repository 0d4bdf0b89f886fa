//! Request coalescing: any number of concurrent misses for one key share one upstream
//! request.
//!
//! The first miss for a key starts the fetch in its own task and registers it here; later
//! misses for the same key await the same shared result. Because the fetch runs in its own
//! task, a client that hangs up (even the first) cancels nothing: the fetch completes for
//! everyone still waiting, and the fetch itself is bounded by `upstream.timeout_ms`, so no
//! waiter waits longer than that. Every waiter gets the one outcome, whatever its status.

use std::collections::HashMap;
use std::future::Future;
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
    /// Joins the flight for `key`, or starts one running `fetch` in a new task.
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
            let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
            match map.get(key) {
                Some(flight) => (flight.clone(), true),
                None => {
                    let flight = self.launch(key, fetch);
                    map.insert(key.clone(), flight.clone());
                    (flight, false)
                }
            }
        };
        (flight.await, joined)
    }

    /// Starts a flight for `key` running `fetch` unless one is in progress; does not wait.
    pub fn start_if_idle<F>(&self, key: &CacheKey, fetch: F)
    where
        F: Future<Output = Outcome> + Send + 'static,
    {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if !map.contains_key(key) {
            let flight = self.launch(key, fetch);
            map.insert(key.clone(), flight);
        }
    }

    /// Spawns the task of a new flight; the caller inserts it into the map (under the lock).
    fn launch<F>(&self, key: &CacheKey, fetch: F) -> Flight
    where
        F: Future<Output = Outcome> + Send + 'static,
    {
        let guard = Landing {
            flights: self.clone(),
            key: key.clone(),
        };
        let task = tokio::spawn(async move {
            let outcome = fetch.await;
            drop(guard);
            outcome
        });
        async move { task.await.unwrap_or_else(|_| Err(GatewayError::Internal)) }
            .boxed()
            .shared()
    }

    /// Fetches in progress.
    pub fn len(&self) -> usize {
        self.map.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Removes a flight from the map when its task ends, even by panic.
struct Landing {
    flights: Flights,
    key: CacheKey,
}

impl Drop for Landing {
    fn drop(&mut self) {
        let mut map = self.flights.map.lock().unwrap_or_else(|e| e.into_inner());
        map.remove(&self.key);
    }
}
