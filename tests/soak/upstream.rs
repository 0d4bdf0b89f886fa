//! The soak's upstream: a real HTTP server on 127.0.0.1:0 that answers [`model::answer`]
//! of each request it receives, except when it injects a fault.
//!
//! While faults are on ([`Upstream::set_faulty`]) each request draws one from a seeded
//! generator: a 500 or a 429, a hang past the gateway's `upstream.timeout_ms`, a connection
//! reset, a slow body (within or past the timeout). Every fault is logged in a
//! [`FaultLog`], which is what explains a client's 5xx/429.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Either, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::task::JoinSet;

use crate::model;
use crate::rng::Rng;

/// How long after a fault ended a client's error may still be blamed on it: covers the
/// gateway noticing the fault and answering every waiter coalesced on it. A loose bound
/// for a busy machine, not a speed requirement.
const FAULT_GRACE: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fault {
    Status500,
    Status429,
    Hang,
    Reset,
    SlowBody,
    SlowBodyPastTimeout,
}

/// Per-request fault odds in percent, while faults are on.
const FAULT_ODDS: [(Fault, u64); 6] = [
    (Fault::Status500, 5),
    (Fault::Status429, 3),
    (Fault::Hang, 3),
    (Fault::Reset, 4),
    (Fault::SlowBody, 3),
    (Fault::SlowBodyPastTimeout, 2),
];

/// When faults were active: enough to say whether a client's error overlaps one.
#[derive(Default)]
pub struct FaultLog {
    active: AtomicUsize,
    last_end: Mutex<Option<Instant>>,
}

impl FaultLog {
    /// Whether a fault was active at some time from `start - FAULT_GRACE` until now.
    pub fn explains(&self, start: Instant) -> bool {
        self.active.load(Ordering::SeqCst) > 0
            || self
                .last_end
                .lock()
                .unwrap()
                .is_some_and(|end| end + FAULT_GRACE >= start)
    }

    fn begin(self: &Arc<Self>) -> FaultGuard {
        self.active.fetch_add(1, Ordering::SeqCst);
        FaultGuard(self.clone())
    }
}

/// An active fault; it ends when dropped.
struct FaultGuard(Arc<FaultLog>);

impl Drop for FaultGuard {
    fn drop(&mut self) {
        *self.0.last_end.lock().unwrap() = Some(Instant::now());
        self.0.active.fetch_sub(1, Ordering::SeqCst);
    }
}

struct State {
    rng: Mutex<Rng>,
    faulty: AtomicBool,
    log: Arc<FaultLog>,
    requests: AtomicU64,
    faults: Mutex<BTreeMap<Fault, u64>>,
    /// The gateway's `upstream.timeout_ms`.
    timeout: Duration,
}

pub struct Upstream {
    pub addr: SocketAddr,
    state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
}

type Body = Either<
    Full<Bytes>,
    StreamBody<futures_util::stream::BoxStream<'static, Result<Frame<Bytes>, std::io::Error>>>,
>;

impl Upstream {
    pub async fn start(seed: u64, timeout: Duration) -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State {
            rng: Mutex::new(Rng::new(seed)),
            faulty: AtomicBool::new(false),
            log: Arc::default(),
            requests: AtomicU64::new(0),
            faults: Mutex::default(),
            timeout,
        });
        let st = state.clone();
        let task = tokio::spawn(async move {
            // Dropping the set (when this task is aborted) aborts every connection.
            let mut conns = JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                while conns.try_join_next().is_some() {}
                let st = st.clone();
                conns.spawn(async move {
                    let svc = service_fn(move |req| {
                        let st = st.clone();
                        async move { serve(&st, req).await }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Upstream { addr, state, task }
    }

    pub fn set_faulty(&self, on: bool) {
        self.state.faulty.store(on, Ordering::SeqCst);
    }

    pub fn fault_log(&self) -> Arc<FaultLog> {
        self.state.log.clone()
    }

    pub fn requests(&self) -> u64 {
        self.state.requests.load(Ordering::SeqCst)
    }

    pub fn faults(&self) -> BTreeMap<Fault, u64> {
        self.state.faults.lock().unwrap().clone()
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Answers one request; `Err` makes hyper drop the connection (a reset).
async fn serve(state: &State, req: Request<Incoming>) -> Result<Response<Body>, std::io::Error> {
    state.requests.fetch_add(1, Ordering::SeqCst);
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let headers: Vec<(String, String)> = parts
        .headers
        .iter()
        .map(|(n, v)| {
            (
                n.to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let path_and_query = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let answer = model::answer(&model::Request {
        method: parts.method.as_str(),
        path_and_query,
        headers: &headers,
        body: &body,
    });

    let fault = state
        .faulty
        .load(Ordering::SeqCst)
        .then(|| draw(&mut state.rng.lock().unwrap()))
        .flatten();
    let Some(fault) = fault else {
        return Ok(respond(answer.status, answer.body.to_string(), None));
    };
    *state.faults.lock().unwrap().entry(fault).or_default() += 1;
    let guard = state.log.begin();
    let body = answer.body.to_string();
    match fault {
        Fault::Status500 | Fault::Status429 => {
            let status = if fault == Fault::Status500 { 500 } else { 429 };
            Ok(respond(status, format!("{{\"fault\":{status}}}"), None))
        }
        Fault::Hang => {
            // Past the gateway's timeout, then the (too late) answer.
            tokio::time::sleep(state.timeout + state.timeout / 2).await;
            drop(guard);
            Ok(respond(answer.status, body, None))
        }
        Fault::Reset => Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "injected reset",
        )),
        Fault::SlowBody | Fault::SlowBodyPastTimeout => {
            // Four pieces; in all a fifth of the timeout, or one and a half times it.
            let pause = if fault == Fault::SlowBody {
                state.timeout / 20
            } else {
                state.timeout * 3 / 8
            };
            Ok(respond(answer.status, body, Some((pause, guard))))
        }
    }
}

fn draw(rng: &mut Rng) -> Option<Fault> {
    let mut roll = rng.below(100);
    for (fault, odds) in FAULT_ODDS {
        if roll < odds {
            return Some(fault);
        }
        roll -= odds;
    }
    None
}

/// A JSON response; with `slow`, the body comes in four pieces, `pause` apart, and the
/// fault ends when the body has been sent (or dropped).
fn respond(status: u16, body: String, slow: Option<(Duration, FaultGuard)>) -> Response<Body> {
    let len = body.len();
    let body = match slow {
        None => Either::Left(Full::new(Bytes::from(body))),
        Some((pause, guard)) => {
            let bytes = Bytes::from(body);
            let step = len.div_ceil(4).max(1);
            let pieces: Vec<Bytes> = (0..len)
                .step_by(step)
                .map(|at| bytes.slice(at..(at + step).min(len)))
                .collect();
            let stream = futures_util::stream::unfold(
                (pieces.into_iter(), guard),
                move |(mut pieces, guard)| async move {
                    let piece = pieces.next()?;
                    tokio::time::sleep(pause).await;
                    Some((Ok(Frame::data(piece)), (pieces, guard)))
                },
            );
            Either::Right(StreamBody::new(Box::pin(stream) as _))
        }
    };
    let mut response = Response::new(body);
    *response.status_mut() = http::StatusCode::from_u16(status).unwrap();
    let headers = response.headers_mut();
    headers.insert("content-type", "application/json".parse().unwrap());
    headers.insert("content-length", len.into());
    response
}
