//! HTTP/1.1 over a raw `TcpStream`, for tests that need to send what a well-behaved client
//! never would (stalled bodies, oversized heads) and to see exactly what comes back.

use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::time::timeout;

/// Generous bound for "the server eventually answers / closes": proves no hang, not speed.
pub const NO_HANG: Duration = Duration::from_secs(10);

/// One response as read off the wire.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    /// The head, status line included, as text.
    pub head: String,
    pub body: Vec<u8>,
}

impl RawResponse {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!("JSON body ({e}): {:?}", String::from_utf8_lossy(&self.body))
        })
    }

    /// Asserts evalgate's own JSON error: the status, `application/json`, `{"error": "…"}`.
    pub fn assert_json_error(&self, status: u16) {
        assert_eq!(self.status, status, "{self:?}");
        assert_eq!(
            self.header("content-type"),
            Some("application/json"),
            "{self:?}"
        );
        let json = self.json();
        let message = json["error"].as_str().expect("an `error` string");
        assert!(!message.is_empty());
        assert_eq!(json.as_object().unwrap().len(), 1, "{json}");
    }
}

/// Reads one response with a `content-length` body (skipping `100 Continue`), within
/// [`NO_HANG`]. Bytes after it are dropped: read pipelined answers with [`await_close`] and
/// [`parse_responses`].
pub async fn read_response(stream: &mut TcpStream) -> RawResponse {
    timeout(NO_HANG, read_response_now(stream))
        .await
        .expect("the server answers")
}

async fn read_response_now(stream: &mut TcpStream) -> RawResponse {
    let mut buf = Vec::new();
    loop {
        if let Some((response, _)) = parse_response(&buf) {
            return response;
        }
        fill(stream, &mut buf).await;
    }
}

/// Every complete response in `bytes`, in order (`100 Continue` skipped).
pub fn parse_responses(mut bytes: &[u8]) -> Vec<RawResponse> {
    let mut responses = Vec::new();
    while let Some((response, used)) = parse_response(bytes) {
        responses.push(response);
        bytes = &bytes[used..];
    }
    assert!(
        bytes.is_empty(),
        "trailing bytes: {:?}",
        String::from_utf8_lossy(bytes)
    );
    responses
}

/// The first response in `bytes` with the bytes it took, if it is complete.
fn parse_response(bytes: &[u8]) -> Option<(RawResponse, usize)> {
    let mut skipped = 0;
    loop {
        let rest = &bytes[skipped..];
        let head_end = rest.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
        let head = String::from_utf8_lossy(&rest[..head_end]).to_string();
        let status: u16 = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("status line");
        if status == 100 {
            skipped += head_end;
            continue;
        }
        let mut response = RawResponse {
            status,
            head,
            body: Vec::new(),
        };
        let length: usize = response
            .header("content-length")
            .and_then(|v| v.parse().ok())
            .expect("content-length");
        let body = rest.get(head_end..head_end + length)?;
        response.body = body.to_vec();
        return Some((response, skipped + head_end + length));
    }
}

async fn fill(stream: &mut TcpStream, buf: &mut Vec<u8>) {
    let mut chunk = [0u8; 16 * 1024];
    let n = match stream.read(&mut chunk).await {
        Ok(n) => n,
        Err(e) => panic!("{e} mid-response: {:?}", String::from_utf8_lossy(buf)),
    };
    assert!(
        n > 0,
        "connection closed mid-response: {:?}",
        String::from_utf8_lossy(buf)
    );
    buf.extend_from_slice(&chunk[..n]);
}

/// Reads until the peer closes (EOF or reset) and returns what arrived before; panics if it
/// does not close within [`NO_HANG`].
pub async fn await_close(stream: &mut TcpStream) -> Vec<u8> {
    let mut seen = Vec::new();
    timeout(NO_HANG, async {
        loop {
            let mut chunk = [0u8; 16 * 1024];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => seen.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await
    .expect("the server closes the connection");
    seen
}
