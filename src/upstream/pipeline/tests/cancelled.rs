//! Fills cancelled on a lane (their cache fill was dropped): never written if they were
//! still queued, read and dropped if written, so no answer shifts, and a batch nobody
//! waits for any more closes its connection.

use std::task::Poll;

use tokio::sync::oneshot;

use super::*;

/// Sends `path` and drops the request once it is queued on a lane (polled once).
async fn queue_and_cancel(p: &Pipeline, path: &str) {
    let request = get(path);
    let mut fill = std::pin::pin!(send(p, &request));
    let polled = std::future::poll_fn(|cx| Poll::Ready(fill.as_mut().poll(cx))).await;
    assert!(polled.is_pending(), "not answered yet");
}

#[tokio::test]
async fn a_fill_cancelled_before_its_request_is_written_is_never_sent() {
    let (seen_tx, seen) = oneshot::channel::<String>();
    let seen_tx = Mutex::new(Some(seen_tx));
    let up = raw(move |mut s, n| {
        let tx = seen_tx.lock().unwrap().take();
        async move {
            if n == 0 {
                let first = read_heads(&mut s, 1).await.remove(0);
                s.write_all(ok(&first).as_bytes()).await.unwrap();
                let _ = tx.map(|tx| tx.send(first));
            }
            echo(s, n).await;
        }
    })
    .await;
    let p = pipeline(up.addr, 8);
    // Queued on a new lane while it connects, then cancelled.
    queue_and_cancel(&p, "/cancelled").await;
    let kept = exchange_all(&p, &["/kept".to_string()]).await;
    assert_eq!(body(&kept[0]), "/kept");
    assert_eq!(seen.await.unwrap(), "/kept", "the first request written");
    assert_eq!(up.accepted.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_written_fill_cancelled_in_a_batch_has_its_answer_read_and_none_shifts() {
    let (heads_tx, heads_in) = oneshot::channel::<()>();
    let (go, gate) = oneshot::channel::<()>();
    let hooks = Mutex::new(Some((heads_tx, gate)));
    let up = raw(move |mut s, n| {
        let hooks = hooks.lock().unwrap().take();
        async move {
            if let (0, Some((heads_tx, gate))) = (n, hooks) {
                let targets = read_heads(&mut s, 3).await;
                heads_tx.send(()).unwrap();
                gate.await.unwrap();
                let answers: String = targets.iter().map(|t| ok(t)).collect();
                s.write_all(answers.as_bytes()).await.unwrap();
            }
            echo(s, n).await;
        }
    })
    .await;
    let p = pipeline(up.addr, 8);
    // Three fills in one batch (spawned in one pass of this single-threaded runtime).
    let fills: Vec<_> = ["/a", "/b", "/c"]
        .into_iter()
        .map(|path| {
            let p = p.clone();
            tokio::spawn(async move { send(&p, &get(path)).await })
        })
        .collect();
    heads_in.await.unwrap();
    let [a, b, c]: [_; 3] = fills.try_into().unwrap();
    b.abort();
    assert!(b.await.unwrap_err().is_cancelled());
    go.send(()).unwrap();
    let a = tokio::time::timeout(BOUND, a).await.unwrap().unwrap();
    let c = tokio::time::timeout(BOUND, c).await.unwrap().unwrap();
    assert_eq!(body(&a), "/a");
    assert_eq!(
        body(&c),
        "/c",
        "b's answer was read and dropped, not handed to c"
    );
    // The lane stays in step for the next batch.
    each_gets_its_own_answer(&p, &paths(3)).await;
    assert_eq!(up.accepted.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_lane_whose_every_unanswered_fill_was_cancelled_closes_its_connection() {
    let (heads_tx, heads_in) = oneshot::channel::<()>();
    let (closed_tx, closed) = oneshot::channel::<()>();
    let hooks = Mutex::new(Some((heads_tx, closed_tx)));
    let up = raw(move |mut s, n| {
        let hooks = hooks.lock().unwrap().take();
        async move {
            if let (0, Some((heads_tx, closed_tx))) = (n, hooks) {
                let targets = read_heads(&mut s, 2).await;
                // Answers the first only, then waits: for the close, never answering.
                s.write_all(ok(&targets[0]).as_bytes()).await.unwrap();
                heads_tx.send(()).unwrap();
                let mut rest = Vec::new();
                let _ = s.read_to_end(&mut rest).await;
                let _ = closed_tx.send(());
            } else {
                echo(s, n).await;
            }
        }
    })
    .await;
    // An answer timeout far past BOUND: only the cancellation can close the lane in time.
    let p = pipeline_with(
        up.addr,
        8,
        Duration::from_secs(600),
        Duration::from_secs(600),
    );
    let fills: Vec<_> = ["/answered", "/wanted-by-nobody"]
        .into_iter()
        .map(|path| {
            let p = p.clone();
            tokio::spawn(async move { send(&p, &get(path)).await })
        })
        .collect();
    heads_in.await.unwrap();
    let [answered, abandoned]: [_; 2] = fills.try_into().unwrap();
    let answered = tokio::time::timeout(BOUND, answered)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(body(&answered), "/answered");
    abandoned.abort();
    assert!(abandoned.await.unwrap_err().is_cancelled());
    tokio::time::timeout(BOUND, closed)
        .await
        .expect("the lane closes its connection once nobody waits for its answers")
        .unwrap();
    // The next fill goes on a new connection.
    each_gets_its_own_answer(&p, &paths(2)).await;
    assert_eq!(up.accepted.load(Ordering::SeqCst), 2);
}
