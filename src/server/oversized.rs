//! Request heads too large for the connection's HTTP/1 read buffer: evalgate's JSON answer
//! instead of hyper's bare one.
//!
//! hyper reads an HTTP/1 request head into a buffer of `max_buf_size` bytes
//! (`server.max_header_bytes + server.max_query_bytes + 8 KiB`). A head that does not fit
//! never reaches the gateway: hyper itself writes `431` with an empty body (`414` for a
//! complete head whose target passes its own 65,534-byte cap) and closes the connection.
//! [`Oversized`] sits between the socket and hyper and writes evalgate's answer in its
//! place: `414 {"error": …}` when the request line is what overflowed, `431 {"error": …}`
//! when the header fields did.
//!
//! How it knows:
//! - *That hyper answered an overflow*: hyper's bare answer is a fixed head with nothing
//!   after it (`connection: close`, `content-length: 0`, `date`); evalgate's own answers
//!   always carry `content-type` or `x-cache`, so they never look like it. Each write is
//!   checked at its tail only: a few byte compares, and only for writes ending in a blank
//!   line. (A relayed passthrough body ending in exactly such a head, dated this second,
//!   would be taken for one; only an upstream echoing a client's own bytes could send it,
//!   and only that client's connection would see the swap.)
//! - *Which part overflowed*: the read side keeps the length of the line being read (bytes
//!   since the last line feed) and whether the last line feed ended an empty line: one
//!   `memrchr` per read, none for a read ending in a line feed, as a whole head does. The
//!   request line overflowed when that line is at least a whole buffer long and follows an
//!   empty line (the end of the previous head) or the start of the connection; otherwise
//!   some header line ended before the buffer filled. This is exact on a new connection and
//!   after requests without a body; after a request whose body has a line break, its last
//!   line may be taken for a header line, and the answer is `431` rather than `414` (still
//!   evalgate's JSON).
//!
//! After its answer it closes the sending side and reads (and drops) what the client still
//! sends, until the client closes or `server.header_read_timeout_ms` passes, so the answer
//! is not lost to a reset from unread data. HTTP/2 connections are left alone: their
//! header limit is the h2 library's (see `serve_public`).

use std::future::Future;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use http::StatusCode;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

use crate::error::GatewayError;

/// hyper's bare answers to a head it could not take, up to the date (RFC 1123, fixed length).
const HYPER_431: &[u8] =
    b"HTTP/1.1 431 Request Header Fields Too Large\r\nconnection: close\r\ncontent-length: 0\r\ndate: ";
const HYPER_414: &[u8] =
    b"HTTP/1.1 414 URI Too Long\r\nconnection: close\r\ncontent-length: 0\r\ndate: ";
const DATE_LEN: usize = "Mon, 07 Dec 2026 03:02:45 GMT".len();
const HEAD_END: &[u8] = b"\r\n\r\n";

/// The socket as hyper sees it; see the module docs.
pub(super) struct Oversized<IO> {
    io: IO,
    /// hyper's HTTP/1 read buffer (`max_buf_size`).
    buffer: usize,
    /// How long to read and drop the client's bytes after answering.
    linger: Duration,
    protocol: Protocol,
    line: Line,
    /// Set once hyper answered an overflow: evalgate's answer, being written.
    answer: Option<Box<Answer>>,
}

/// Which protocol the connection speaks, from its first bytes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Protocol {
    /// This many bytes of the HTTP/2 preface's start (`PRI `) seen so far.
    Sniffing(usize),
    Http1,
    Http2,
}

/// The line being read.
struct Line {
    /// Bytes since the last line feed (or the start of the connection).
    len: usize,
    /// The last line feed ended an empty line, or there was none yet.
    after_empty: bool,
    /// The last byte read was a carriage return.
    last_cr: bool,
}

struct Answer {
    bytes: Vec<u8>,
    written: usize,
    shut: bool,
    linger: Pin<Box<Sleep>>,
    done: bool,
}

impl<IO> Oversized<IO> {
    pub(super) fn new(io: IO, buffer: usize, linger: Duration) -> Self {
        Oversized {
            io,
            buffer,
            linger,
            protocol: Protocol::Sniffing(0),
            line: Line {
                len: 0,
                after_empty: true,
                last_cr: false,
            },
            answer: None,
        }
    }

    /// Notes what hyper is about to read.
    fn observe(&mut self, new: &[u8]) {
        if new.is_empty() {
            return;
        }
        if let Protocol::Sniffing(seen) = self.protocol {
            let want = &b"PRI "[seen..];
            let n = want.len().min(new.len());
            self.protocol = if new[..n] != want[..n] {
                Protocol::Http1
            } else if seen + n == 4 {
                Protocol::Http2
            } else {
                Protocol::Sniffing(seen + n)
            };
        }
        if self.protocol == Protocol::Http2 {
            return;
        }
        let line = &mut self.line;
        // A request head read whole ends with its line feed: no scan at all.
        let last_lf = match new.last() {
            Some(b'\n') => Some(new.len() - 1),
            _ => memchr::memrchr(b'\n', new),
        };
        match last_lf {
            None => line.len = line.len.saturating_add(new.len()),
            Some(i) => {
                // The line this line feed ends is empty when it holds nothing or a lone CR.
                line.after_empty = match (i, new.get(i.wrapping_sub(1))) {
                    (0, _) => line.len == 0 || (line.len == 1 && line.last_cr),
                    (_, Some(b'\n')) => true,
                    (1, Some(b'\r')) => line.len == 0,
                    (_, Some(b'\r')) => new[i - 2] == b'\n',
                    _ => false,
                };
                line.len = new.len() - i - 1;
            }
        }
        line.last_cr = new.last() == Some(&b'\r');
    }

    /// What evalgate answers to hyper's bare `status`.
    fn error_for(&self, status: StatusCode) -> GatewayError {
        let request_line = self.line.len >= self.buffer && self.line.after_empty;
        if status == StatusCode::URI_TOO_LONG || request_line {
            GatewayError::UriTooLong
        } else {
            GatewayError::HeadersTooLarge
        }
    }
}

/// Where hyper's bare answer starts in `buf`, if `buf` ends with one.
fn hyper_answer_at(buf: &[u8]) -> Option<(usize, StatusCode)> {
    if !buf.ends_with(HEAD_END) {
        return None;
    }
    [
        (HYPER_431, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE),
        (HYPER_414, StatusCode::URI_TOO_LONG),
    ]
    .into_iter()
    .find_map(|(prefix, status)| {
        let start = buf
            .len()
            .checked_sub(prefix.len() + DATE_LEN + HEAD_END.len())?;
        buf[start..].starts_with(prefix).then_some((start, status))
    })
}

/// evalgate's answer, as bytes on the wire, dated like hyper's.
fn answer_bytes(err: &GatewayError, date: &[u8]) -> Vec<u8> {
    let body = crate::response::error_json(err);
    let status = err.status();
    let mut bytes = format!(
        "HTTP/1.1 {} {}\r\ncontent-type: application/json\r\nconnection: close\r\n\
         content-length: {}\r\ndate: ",
        status.as_str(),
        status.canonical_reason().unwrap_or(""),
        body.len()
    )
    .into_bytes();
    bytes.extend_from_slice(date);
    bytes.extend_from_slice(HEAD_END);
    bytes.extend_from_slice(&body);
    bytes
}

impl<IO: AsyncRead + AsyncWrite + Unpin> Oversized<IO> {
    /// Writes hyper's `bufs`, unless they end with its bare answer to an overflow: then
    /// what comes before it, and evalgate's answer in its place.
    fn write(&mut self, cx: &mut Context<'_>, bufs: &[IoSlice<'_>]) -> Poll<io::Result<usize>> {
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        if self.answer.is_some() {
            // Nothing of hyper's goes out after evalgate's answer.
            ready!(self.poll_answer(cx))?;
            return Poll::Ready(Ok(total));
        }
        let found = match (self.protocol, bufs.iter().rposition(|b| !b.is_empty())) {
            (Protocol::Http1, Some(last)) => {
                hyper_answer_at(&bufs[last]).map(|(start, status)| (last, start, status))
            }
            _ => None,
        };
        let Some((last, start, status)) = found else {
            return match bufs {
                [one] => Pin::new(&mut self.io).poll_write(cx, one),
                _ => Pin::new(&mut self.io).poll_write_vectored(cx, bufs),
            };
        };
        let before: usize = bufs[..last].iter().map(|b| b.len()).sum::<usize>() + start;
        if before > 0 {
            // What precedes hyper's answer (the end of an earlier response) goes out first.
            let mut head: Vec<IoSlice<'_>> = bufs[..last].to_vec();
            head.push(IoSlice::new(&bufs[last][..start]));
            return Pin::new(&mut self.io).poll_write_vectored(cx, &head);
        }
        let date_at = bufs[last].len() - HEAD_END.len() - DATE_LEN;
        let date = &bufs[last][date_at..date_at + DATE_LEN];
        let err = self.error_for(status);
        tracing::debug!(status = %err.status(), "request head over the connection buffer");
        self.answer = Some(Box::new(Answer {
            bytes: answer_bytes(&err, date),
            written: 0,
            shut: false,
            linger: Box::pin(tokio::time::sleep(self.linger)),
            done: false,
        }));
        ready!(self.poll_answer(cx))?;
        Poll::Ready(Ok(total))
    }

    /// Drives evalgate's answer: write it, close the sending side, then read and drop what
    /// the client still sends until it closes or the linger time passes.
    fn poll_answer(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let Some(answer) = self.answer.as_deref_mut() else {
            return Poll::Ready(Ok(()));
        };
        while !answer.done {
            if answer.written < answer.bytes.len() {
                let n =
                    ready!(Pin::new(&mut self.io).poll_write(cx, &answer.bytes[answer.written..]))?;
                if n == 0 {
                    return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                }
                answer.written += n;
            } else if !answer.shut {
                ready!(Pin::new(&mut self.io).poll_shutdown(cx))?;
                answer.shut = true;
            } else if answer.linger.as_mut().poll(cx).is_ready() {
                answer.done = true;
            } else {
                let mut scratch = [0u8; 8192];
                let mut buf = ReadBuf::new(&mut scratch);
                match ready!(Pin::new(&mut self.io).poll_read(cx, &mut buf)) {
                    Ok(()) if !buf.filled().is_empty() => {}
                    // The client closed, or the connection is gone: done either way.
                    _ => answer.done = true,
                }
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> AsyncRead for Oversized<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.answer.is_some() {
            // Answered: hyper reads the end of the connection.
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.io).poll_read(cx, buf))?;
        this.observe(&buf.filled()[before..]);
        Poll::Ready(Ok(()))
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Oversized<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().write(cx, &[IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().write(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.answer.is_some() {
            return this.poll_answer(cx);
        }
        Pin::new(&mut this.io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.answer.is_some() {
            return this.poll_answer(cx);
        }
        Pin::new(&mut this.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests;
