//! Looking into a server: every key with its value, and every pub/sub message as it passes.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use redis::{Client, Connection};

/// A blocking connection with `timeout` for connect, reads and writes.
pub fn connect(client: &Client, timeout: Duration) -> Connection {
    let conn = client
        .get_connection_with_timeout(timeout)
        .unwrap_or_else(|e| panic!("connect to {:?}: {e}", client.get_connection_info().addr()));
    conn.set_read_timeout(Some(timeout))
        .expect("set read timeout");
    conn.set_write_timeout(Some(timeout))
        .expect("set write timeout");
    conn
}

/// A key's value as stored.
#[derive(Clone, PartialEq, Eq)]
pub enum Stored {
    String(Vec<u8>),
    /// Field → value.
    Hash(BTreeMap<String, Vec<u8>>),
    /// Any other type, by its `TYPE` name (`list`, `set`, `zset`, `stream`).
    Other(String),
}

impl Stored {
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Stored::String(bytes) => Some(bytes),
            _ => None,
        }
    }

    pub fn as_hash(&self) -> Option<&BTreeMap<String, Vec<u8>>> {
        match self {
            Stored::Hash(fields) => Some(fields),
            _ => None,
        }
    }
}

impl fmt::Debug for Stored {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
        match self {
            Stored::String(bytes) => write!(f, "String({:?})", text(bytes)),
            Stored::Hash(fields) => {
                let fields: BTreeMap<_, _> = fields.iter().map(|(k, v)| (k, text(v))).collect();
                write!(f, "Hash({fields:?})")
            }
            Stored::Other(kind) => write!(f, "Other({kind})"),
        }
    }
}

/// A key's value and its remaining lifetime (`PTTL`: -1 without expiry).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredKey {
    pub value: Stored,
    pub pttl_ms: i64,
}

/// Every key on the server behind `conn` (SCAN, so it sees a consistent-enough picture without
/// blocking the server); keys that expire while being read are left out.
pub fn dump_keys(conn: &mut Connection) -> BTreeMap<String, StoredKey> {
    let mut keys = BTreeMap::new();
    let mut cursor: u64 = 0;
    loop {
        let (next, batch): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("COUNT")
            .arg(1000)
            .query(conn)
            .expect("SCAN");
        for key in batch {
            let kind: String = redis::cmd("TYPE").arg(&key).query(conn).expect("TYPE");
            let value = match kind.as_str() {
                "none" => continue,
                "string" => match redis::cmd("GET")
                    .arg(&key)
                    .query::<Option<Vec<u8>>>(conn)
                    .expect("GET")
                {
                    Some(bytes) => Stored::String(bytes),
                    None => continue,
                },
                "hash" => {
                    let fields: BTreeMap<Vec<u8>, Vec<u8>> = redis::cmd("HGETALL")
                        .arg(&key)
                        .query(conn)
                        .expect("HGETALL");
                    if fields.is_empty() {
                        continue;
                    }
                    let text = |k: Vec<u8>| String::from_utf8_lossy(&k).into_owned();
                    Stored::Hash(fields.into_iter().map(|(k, v)| (text(k), v)).collect())
                }
                other => Stored::Other(other.to_string()),
            };
            let pttl_ms: i64 = redis::cmd("PTTL").arg(&key).query(conn).expect("PTTL");
            if pttl_ms == -2 {
                continue;
            }
            keys.insert(
                String::from_utf8_lossy(&key).into_owned(),
                StoredKey { value, pttl_ms },
            );
        }
        if next == 0 {
            return keys;
        }
        cursor = next;
    }
}

/// One pub/sub message as published.
#[derive(Clone, PartialEq, Eq)]
pub struct Message {
    pub channel: String,
    pub payload: Vec<u8>,
}

impl Message {
    pub fn payload_text(&self) -> String {
        String::from_utf8_lossy(&self.payload).into_owned()
    }
}

impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {:?}", self.channel, self.payload_text())
    }
}

/// Records every message on every channel (`PSUBSCRIBE *`) from a background thread until
/// dropped. If its connection is killed (`CLIENT KILL TYPE pubsub`, a restart) it subscribes
/// again; messages published in between are not seen.
pub struct PubSubCollector {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

#[derive(Default)]
struct Shared {
    messages: Mutex<Vec<Message>>,
    arrived: Condvar,
    stop: AtomicBool,
    /// Times the subscription was lost after the first subscribe.
    lost: AtomicUsize,
}

/// How often the background thread looks at the stop flag.
const STOP_POLL: Duration = Duration::from_millis(50);

impl PubSubCollector {
    /// Subscribes `PSUBSCRIBE *` and returns once the server confirmed it.
    pub fn start(client: Client) -> Self {
        let shared = Arc::new(Shared::default());
        let (ready_tx, ready_rx) = mpsc::channel();
        let thread = {
            let shared = Arc::clone(&shared);
            std::thread::spawn(move || collect(client, &shared, ready_tx))
        };
        let mut collector = Self {
            shared,
            thread: Some(thread),
        };
        match ready_rx.recv_timeout(Duration::from_secs(10)) {
            Ok(Ok(())) => collector,
            Ok(Err(e)) => {
                collector.finish();
                panic!("pub/sub collector: PSUBSCRIBE * failed: {e}")
            }
            Err(_) => {
                collector.finish();
                panic!("pub/sub collector: PSUBSCRIBE * not confirmed within 10 s")
            }
        }
    }

    /// The messages so far (kept).
    pub fn messages(&self) -> Vec<Message> {
        self.shared.messages.lock().unwrap().clone()
    }

    /// The messages so far, removing them.
    pub fn take(&self) -> Vec<Message> {
        std::mem::take(&mut *self.shared.messages.lock().unwrap())
    }

    /// Waits until `done` holds for the messages so far (kept), at most `timeout`; returns
    /// whether it did.
    pub fn wait_for(&self, timeout: Duration, done: impl Fn(&[Message]) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        let mut messages = self.shared.messages.lock().unwrap();
        loop {
            if done(&messages) {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            messages = self.shared.arrived.wait_timeout(messages, left).unwrap().0;
        }
    }

    /// How many times the subscription was lost (and taken up again) since it started.
    pub fn lost(&self) -> usize {
        self.shared.lost.load(Ordering::SeqCst)
    }

    fn finish(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for PubSubCollector {
    fn drop(&mut self) {
        self.finish();
    }
}

fn collect(client: Client, shared: &Shared, ready: mpsc::Sender<Result<(), String>>) {
    let mut ready = Some(ready);
    while !shared.stop.load(Ordering::SeqCst) {
        let mut up = false;
        let subscribed = client
            .get_connection_with_timeout(Duration::from_secs(1))
            .and_then(|mut conn| {
                conn.set_read_timeout(Some(STOP_POLL))?;
                let mut pubsub = conn.as_pubsub();
                // A stopped server would hold the confirmation: bound it (short once running,
                // so that dropping the collector stays quick).
                let confirm = if ready.is_some() { 5 } else { 1 };
                pubsub.set_read_timeout(Some(Duration::from_secs(confirm)))?;
                pubsub.psubscribe("*")?;
                pubsub.set_read_timeout(Some(STOP_POLL))?;
                up = true;
                if let Some(ready) = ready.take() {
                    let _ = ready.send(Ok(()));
                }
                loop {
                    if shared.stop.load(Ordering::SeqCst) {
                        return Ok(());
                    }
                    match pubsub.get_message() {
                        Ok(msg) => {
                            let payload = msg.get_payload_bytes().to_vec();
                            let channel = msg.get_channel_name().to_string();
                            shared
                                .messages
                                .lock()
                                .unwrap()
                                .push(Message { channel, payload });
                            shared.arrived.notify_all();
                        }
                        Err(e) if e.is_timeout() => continue,
                        Err(e) => return Err(e),
                    }
                }
            });
        match subscribed {
            Ok(()) => return,
            Err(e) => {
                if let Some(ready) = ready.take() {
                    let _ = ready.send(Err(e.to_string()));
                    return;
                }
                if up {
                    shared.lost.fetch_add(1, Ordering::SeqCst);
                }
                std::thread::sleep(STOP_POLL);
            }
        }
    }
}
