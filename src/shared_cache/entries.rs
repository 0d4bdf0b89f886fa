//! One entry's life in Redis: read it (taking the fill lock when it is absent), wait for
//! another instance's fill, write an answer, release a lock.

use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use redis::Value;
use tokio::time::Instant;

use super::names::EntryNames;
use super::orphans::Orphan;
use super::scripts::{FILL, LOCK, PEEK, READ_OR_LOCK, RELEASE};
use super::{SharedCache, envelope};
use crate::cache::CachedResponse;

/// Where one key's entry is, under the generations of the moment it was asked for.
#[derive(Debug, Clone)]
pub struct Slot {
    pub names: EntryNames,
}

/// A fill lock held by this instance: its token.
#[derive(Debug, Clone)]
pub struct Token(pub(super) String);

/// What Redis said about an entry.
#[derive(Debug)]
pub enum Read {
    /// An answer (possibly stale: the caller decides).
    Found(CachedResponse),
    /// Not there (or Redis unusable): fetch it, holding the lock when there is one.
    Fetch(Option<Token>),
    /// Another instance holds the fill lock.
    Busy,
}

/// How a wait for another instance's fill ended.
#[derive(Debug)]
pub enum Waited {
    Found(CachedResponse),
    /// The lock was freed without a value (its holder failed or died): this instance
    /// took it over and fetches.
    TookOver(Token),
    /// `upstream.timeout_ms` passed, or Redis failed: fetch without the lock.
    GaveUp,
}

/// One script reply: `{1, value[, lock state]}`, `{2}`, `{3}`, `{4}` or `{0}`.
enum Reply {
    /// The value, and (PEEK) the state of the lock beside it.
    Value(Vec<u8>, Box<Reply>),
    Locked,
    Busy,
    Failed,
    Free,
}

fn code_reply(code: i64) -> Reply {
    match code {
        2 => Reply::Locked,
        3 => Reply::Busy,
        4 => Reply::Failed,
        _ => Reply::Free,
    }
}

fn reply(value: Value) -> redis::RedisResult<Reply> {
    let Value::Array(items) = value else {
        return Err((redis::ErrorKind::Parse, "unexpected script reply").into());
    };
    let mut items = items.into_iter();
    let code = match items.next() {
        Some(Value::Int(n)) => n,
        _ => return Err((redis::ErrorKind::Parse, "unexpected script reply").into()),
    };
    Ok(match (code, items.next(), items.next()) {
        (1, Some(Value::BulkString(bytes)), Some(Value::Int(lock))) => {
            Reply::Value(bytes, Box::new(code_reply(lock)))
        }
        (1, Some(Value::BulkString(bytes)), _) => Reply::Value(bytes, Box::new(Reply::Free)),
        (code, _, _) => code_reply(code),
    })
}

impl SharedCache {
    /// Asks Redis for `slot`'s entry, taking the fill lock when it is absent: one round
    /// trip. An unusable tier, an error or a timeout is `Fetch(None)` (as a single box).
    pub async fn read(&self, slot: &Slot) -> Read {
        let token = self.token();
        let asked = token.clone();
        let names = &slot.names;
        let ttl = self.lock_ttl_ms();
        let result = self
            .inner
            .calls
            .call("read", |mut conn| async move {
                let value: Value = READ_OR_LOCK
                    .key(&names.value)
                    .key(&names.lock)
                    .arg(&token.0)
                    .arg(ttl)
                    .invoke_async(&mut conn)
                    .await?;
                reply(value).map(|r| (r, token))
            })
            .await;
        let metrics = self.metrics();
        match result {
            Ok((Reply::Value(bytes, _), _)) => match self.decode(&bytes) {
                Some(entry) => {
                    let fresh = entry.stale_by(Instant::now()).is_none();
                    metrics.op("read", if fresh { "hit" } else { "stale" });
                    Read::Found(entry)
                }
                // Not ours to read (another layout version, garbage): fetch and replace.
                None => {
                    metrics.op("read", "error");
                    Read::Fetch(None)
                }
            },
            Ok((Reply::Locked, token)) => {
                metrics.op("read", "miss");
                Read::Fetch(Some(token))
            }
            Ok((Reply::Busy, _)) => {
                metrics.op("read", "locked");
                Read::Busy
            }
            // The holder's fetch just failed: fetch without the lock (errors are not stored,
            // so there is nothing to wait for).
            Ok((Reply::Failed | Reply::Free, _)) => {
                metrics.op("read", "miss");
                Read::Fetch(None)
            }
            Err(e) => {
                metrics.op("read", e.result());
                self.orphaned(&slot.names.lock, asked, &e);
                Read::Fetch(None)
            }
        }
    }

    /// Takes the fill lock for `slot` (an entry found stale is to be refreshed by one
    /// instance only): `Fetch(Some)` when taken, `Busy` when another holds it.
    pub async fn lock(&self, slot: &Slot) -> Read {
        let token = self.token();
        let asked = token.clone();
        let ttl = self.lock_ttl_ms();
        let lock = &slot.names.lock;
        let result = self
            .inner
            .calls
            .call("read", |mut conn| async move {
                let taken: i64 = LOCK
                    .key(lock)
                    .arg(&token.0)
                    .arg(ttl)
                    .invoke_async(&mut conn)
                    .await?;
                Ok((taken == 1, token))
            })
            .await;
        match result {
            Ok((true, token)) => Read::Fetch(Some(token)),
            Ok((false, _)) => Read::Busy,
            Err(e) => {
                self.orphaned(lock, asked, &e);
                Read::Fetch(None)
            }
        }
    }

    /// Waits for another instance's fill of `slot`, looking every
    /// `shared_cache.wait_poll_ms`, until `upstream.timeout_ms` after `since`. A value
    /// stale by `max_stale` or more is not what is waited for (the lock holder is
    /// refreshing it). A lock freed without a value is taken over by one waiter; one marked
    /// failed sends every waiter to the upstream.
    pub async fn wait(&self, slot: &Slot, since: Instant, max_stale: Duration) -> Waited {
        let deadline = since + self.inner.max_wait;
        let poll = self.inner.config.wait_poll();
        let metrics = self.metrics();
        loop {
            let now = Instant::now();
            if now >= deadline {
                metrics.op("wait", "gave_up");
                return Waited::GaveUp;
            }
            tokio::time::sleep_until((now + poll).min(deadline)).await;
            let names = &slot.names;
            let peeked = self
                .inner
                .calls
                .call("read", |mut conn| async move {
                    let value: Value = PEEK
                        .key(&names.value)
                        .key(&names.lock)
                        .invoke_async(&mut conn)
                        .await?;
                    reply(value)
                })
                .await;
            let (stale, lock) = match peeked {
                Ok(Reply::Value(bytes, lock)) => match self.decode(&bytes) {
                    Some(entry)
                        if entry
                            .stale_by(Instant::now())
                            .is_none_or(|late| late < max_stale) =>
                    {
                        metrics.op("wait", "waited");
                        return Waited::Found(entry);
                    }
                    // The old value, still being refreshed.
                    Some(_) => (true, *lock),
                    None => {
                        metrics.op("wait", "gave_up");
                        return Waited::GaveUp;
                    }
                },
                Ok(lock) => (false, lock),
                Err(_) => {
                    metrics.op("wait", "gave_up");
                    return Waited::GaveUp;
                }
            };
            match lock {
                // The holder's fetch failed (nothing storable): every waiter fetches now.
                Reply::Failed => {
                    metrics.op("wait", "released");
                    return Waited::GaveUp;
                }
                // Freed with no (new) value: its holder died. One waiter takes over.
                Reply::Free => {
                    let taken = if stale {
                        self.lock(slot).await
                    } else {
                        self.read(slot).await
                    };
                    match taken {
                        Read::Found(entry) => {
                            metrics.op("wait", "waited");
                            return Waited::Found(entry);
                        }
                        Read::Fetch(Some(token)) => {
                            metrics.op("wait", "took_over");
                            return Waited::TookOver(token);
                        }
                        Read::Fetch(None) => {
                            metrics.op("wait", "gave_up");
                            return Waited::GaveUp;
                        }
                        Read::Busy => {}
                    }
                }
                _ => {}
            }
        }
    }

    /// Stores `entry` for `slot` (and releases `lock`) in a tracked task, after the
    /// client has its answer; skipped (and counted) past `shared_cache.max_pending_writes`,
    /// when the answer is larger than `shared_cache.max_value_bytes` or has no lifetime
    /// left. A failed write is counted, never retried.
    pub fn write(&self, slot: Slot, entry: &CachedResponse, lock: Option<Token>) {
        let now = Instant::now();
        let metrics = self.metrics().clone();
        let Some(px) = envelope::remaining(entry, now) else {
            metrics.op("write", "skipped");
            return self.release(slot, lock);
        };
        if entry.body_slice().len() > self.inner.config.max_value_bytes {
            metrics.op("write", "skipped");
            return self.release(slot, lock);
        }
        let bytes = envelope::encode(entry, now, SystemTime::now());
        let px = u64::try_from(px.as_millis()).unwrap_or(u64::MAX).max(1);
        let held = lock.clone().map(|token| Orphan {
            lock: slot.names.lock.clone(),
            token,
        });
        self.spawn_write("write", held, move |this| async move {
            let token = lock.map_or_else(String::new, |t| t.0);
            let names = &slot.names;
            this.inner
                .calls
                .call("write", |mut conn| async move {
                    FILL.key(&names.value)
                        .key(&names.lock)
                        .arg(bytes)
                        .arg(px)
                        .arg(token)
                        .invoke_async::<i64>(&mut conn)
                        .await
                })
                .await
                .map(|_| ())
        });
    }

    /// Releases `lock` (the fetch failed or was not storable) in a tracked task: the lock
    /// becomes a one-second failure mark, so that waiting instances fetch for themselves
    /// at once instead of at the lock's expiry, or one after another.
    pub fn release(&self, slot: Slot, lock: Option<Token>) {
        let Some(token) = lock else { return };
        let held = Orphan {
            lock: slot.names.lock.clone(),
            token: token.clone(),
        };
        self.spawn_write("release", Some(held), move |this| async move {
            let lock = &slot.names.lock;
            this.inner
                .calls
                .call("write", |mut conn| async move {
                    RELEASE
                        .key(lock)
                        .arg(token.0)
                        .invoke_async::<i64>(&mut conn)
                        .await
                })
                .await
                .map(|_| ())
        });
    }

    /// Runs one write-like call in a tracked task within `max_pending_writes`. `held`:
    /// the fill lock the call releases, remembered as orphaned when it does not run.
    fn spawn_write<F, Fut>(&self, op: &'static str, held: Option<Orphan>, call: F)
    where
        F: FnOnce(SharedCache) -> Fut + Send + 'static,
        Fut: Future<Output = Result<(), super::CallError>> + Send + 'static,
    {
        let metrics = self.metrics().clone();
        let Ok(permit) = self.inner.writes.clone().try_acquire_owned() else {
            metrics.op(op, "skipped");
            self.remember(held);
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            metrics.op(op, "skipped");
            self.remember(held);
            return;
        };
        metrics.pending_writes(1);
        let this = self.clone();
        let task = self.inner.tracker.track_future(async move {
            let result = call(this.clone()).await;
            if result.is_err() {
                this.remember(held);
            }
            metrics.op(op, result.as_ref().map_or_else(|e| e.result(), |()| "ok"));
            metrics.pending_writes(-1);
            drop(permit);
        });
        drop(runtime.spawn(task));
    }

    fn token(&self) -> Token {
        let n = self.inner.next_token.fetch_add(1, Ordering::Relaxed);
        Token(format!("{:016x}-{n}", self.inner.instance))
    }

    fn lock_ttl_ms(&self) -> u64 {
        u64::try_from(self.inner.lock_ttl.as_millis())
            .unwrap_or(u64::MAX)
            .max(1)
    }

    fn decode(&self, bytes: &[u8]) -> Option<CachedResponse> {
        envelope::decode(bytes, Instant::now(), SystemTime::now())
    }
}
