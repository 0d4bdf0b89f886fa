//! Slow clients over raw TCP: a head dribbled in small pieces (a real request, answered and
//! checked like any other), a head that stops (cut off by `server.header_read_timeout_ms`),
//! and a body that stops.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

use crate::traffic::Spec;

/// What a raw exchange ended with.
#[derive(Debug)]
pub enum Ending {
    /// A whole response: status, `X-Cache`, body.
    Answer(u16, String, Vec<u8>),
    /// The gateway closed the connection without a response.
    Closed,
    /// Our own bound ran out first.
    GaveUp,
}

/// Sends `spec` (as HTTP/1.1 with `Connection: close`) `piece` bytes at a time, `pause`
/// apart, and reads the response, all within `bound`.
pub async fn dribble(
    addr: SocketAddr,
    spec: &Spec,
    piece: usize,
    pause: Duration,
    bound: Duration,
) -> Ending {
    let mut request = format!(
        "{} {} HTTP/1.1\r\nhost: soak\r\nconnection: close\r\n",
        spec.method, spec.path_and_query
    );
    for (n, v) in &spec.headers {
        request.push_str(&format!("{n}: {v}\r\n"));
    }
    if !spec.body.is_empty() || spec.method == "POST" {
        request.push_str(&format!("content-length: {}\r\n", spec.body.len()));
    }
    request.push_str("\r\n");
    let mut bytes = request.into_bytes();
    bytes.extend_from_slice(&spec.body);
    timeout(bound, async {
        let mut stream = TcpStream::connect(addr).await.ok()?;
        for chunk in bytes.chunks(piece) {
            stream.write_all(chunk).await.ok()?;
            tokio::time::sleep(pause).await;
        }
        Some(read_response(&mut stream).await)
    })
    .await
    .map_or(Ending::GaveUp, |e| e.unwrap_or(Ending::Closed))
}

/// Sends `head` and then `partial` bytes of a body (or nothing more), then waits, within
/// `bound`, for the gateway to answer or close.
pub async fn stall(addr: SocketAddr, head: &str, partial: &[u8], bound: Duration) -> Ending {
    timeout(bound, async {
        let mut stream = TcpStream::connect(addr).await.ok()?;
        stream.write_all(head.as_bytes()).await.ok()?;
        stream.write_all(partial).await.ok()?;
        Some(read_response(&mut stream).await)
    })
    .await
    .map_or(Ending::GaveUp, |e| e.unwrap_or(Ending::Closed))
}

/// Reads one response to the end of the connection (the request said `Connection: close`,
/// or the gateway closes after an error); a response is complete when its
/// `Content-Length` (or its chunked body) has arrived.
async fn read_response(stream: &mut TcpStream) -> Ending {
    let mut data = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        if let Some(parsed) = parse(&data) {
            return parsed;
        }
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return parse(&data).unwrap_or(Ending::Closed),
            Ok(n) => data.extend_from_slice(&buf[..n]),
        }
    }
}

fn parse(data: &[u8]) -> Option<Ending> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut response = httparse::Response::new(&mut headers);
    let httparse::Status::Complete(head_len) = response.parse(data).ok()? else {
        return None;
    };
    let header = |name: &str| {
        response
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| String::from_utf8_lossy(h.value).into_owned())
    };
    let x_cache = header("x-cache").unwrap_or_default();
    let rest = &data[head_len..];
    let body = if header("transfer-encoding").is_some_and(|t| t.contains("chunked")) {
        dechunk(rest)?
    } else {
        let len: usize = header("content-length").and_then(|l| l.trim().parse().ok())?;
        rest.get(..len)?.to_vec()
    };
    Some(Ending::Answer(response.code?, x_cache, body))
}

fn dechunk(mut data: &[u8]) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line_end = data.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&data[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Some(body);
        }
        body.extend_from_slice(data.get(..size)?);
        data = data.get(size + 2..)?;
    }
}
