//! HTTP/1.1 on the wire for [`super::pipeline`]: the head of a body-less request, and an
//! incremental reader of responses in the order they arrive.
//!
//! hyper's client connection carries one request at a time, so pipelined requests are
//! written and their answers read here. The response head is parsed by `httparse` (the
//! parser hyper itself uses); the body is framed as RFC 9112 §6.3 says: none for HEAD,
//! 1xx, 204 and 304; `Transfer-Encoding: chunked`; `Content-Length`; else until the
//! upstream closes. Anything ambiguous (both framings, differing lengths, an unknown
//! transfer coding) is an error, never a guess: a misread boundary would hand one
//! request's answer to the next.

#[cfg(test)]
use bytes::Bytes;
use bytes::{Buf, BytesMut};
#[cfg(test)]
use http::Request;
use http::header::{CONNECTION, CONTENT_LENGTH, TRANSFER_ENCODING};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};

use super::UpstreamResponse;

/// Most header fields accepted in one response head.
const MAX_HEADERS: usize = 100;

/// Largest response head (status line, fields, trailers) accepted, in bytes.
pub(super) const MAX_HEAD_BYTES: usize = 64 * 1024;

/// Why a response could not be read. Every one of them leaves the connection unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    #[error("malformed response head: {0}")]
    Head(String),
    #[error("response head larger than {MAX_HEAD_BYTES} bytes")]
    HeadTooLarge,
    #[error("ambiguous response framing: {0}")]
    Framing(&'static str),
    #[error("malformed chunked body")]
    Chunk,
    #[error("response body larger than the limit")]
    TooLarge,
    #[error("connection closed in the middle of a response")]
    Incomplete,
}

/// Writes the head of `request` (GET or HEAD, no body) in origin form to `out`, with
/// `host` as its `Host` field; a `Host` in the request itself is not written. (The
/// gateway writes its fills with [`crate::key::CacheKey::upstream_head`]; this is the
/// reference the tests hold that to.)
#[cfg(test)]
pub(super) fn encode_request(request: &Request<Bytes>, host: &HeaderValue, out: &mut Vec<u8>) {
    let target = request.uri().path_and_query().map_or("/", |pq| pq.as_str());
    out.extend_from_slice(request.method().as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\nhost: ");
    out.extend_from_slice(host.as_bytes());
    out.extend_from_slice(b"\r\n");
    for (name, value) in request.headers() {
        if name == http::header::HOST {
            continue;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// One response read off the connection.
#[derive(Debug)]
pub struct Parsed {
    pub response: UpstreamResponse,
    /// Whether the connection may carry the next response (`Connection: close` and
    /// close-delimited bodies say no).
    pub reusable: bool,
}

/// Reads responses from a connection's read buffer, one at a time, in order.
#[derive(Debug)]
pub struct ResponseReader {
    state: State,
    max_body: usize,
}

#[derive(Debug)]
enum State {
    Head,
    Body {
        head: Head,
        framing: Framing,
        body: BytesMut,
    },
}

#[derive(Debug)]
struct Head {
    status: StatusCode,
    headers: HeaderMap,
    reusable: bool,
}

#[derive(Debug, Clone, Copy)]
enum Framing {
    Length(usize),
    /// Chunked, at this point of the chunk grammar.
    Chunked(Chunk),
    UntilClose,
}

#[derive(Debug, Clone, Copy)]
enum Chunk {
    Size,
    Data(usize),
    DataEnd,
    Trailers,
}

impl ResponseReader {
    pub fn new(max_body: usize) -> ResponseReader {
        ResponseReader {
            state: State::Head,
            max_body,
        }
    }

    /// Whether no byte of the next response has arrived: nothing of it parsed, and `buf`
    /// (the connection's read buffer) empty.
    pub fn at_boundary(&self, buf: &BytesMut) -> bool {
        matches!(self.state, State::Head) && buf.is_empty()
    }

    /// Takes the next complete response to a request of `method` from the front of
    /// `buf`; `Ok(None)` while it needs more bytes. Interim (1xx) responses are skipped.
    pub fn read(
        &mut self,
        buf: &mut BytesMut,
        method: &Method,
    ) -> Result<Option<Parsed>, CodecError> {
        loop {
            match &mut self.state {
                State::Head => {
                    let Some((head, framing)) = parse_head(buf, method, self.max_body)? else {
                        return Ok(None);
                    };
                    let Some(framing) = framing else {
                        continue; // an interim response: the real one follows
                    };
                    // What the upstream announces is reserved only up to a point: the
                    // body grows as it arrives.
                    let capacity = match framing {
                        Framing::Length(n) => n.min(MAX_HEAD_BYTES),
                        _ => 0,
                    };
                    self.state = State::Body {
                        head,
                        framing,
                        body: BytesMut::with_capacity(capacity),
                    };
                }
                State::Body { framing, body, .. } => {
                    if !read_body(buf, framing, body, self.max_body)? {
                        return Ok(None);
                    }
                    return Ok(Some(self.finish(true)));
                }
            }
        }
    }

    /// The connection reached its end: completes a body delimited by the close, errs on
    /// any other response cut short, `Ok(None)` between responses.
    pub fn read_eof(&mut self, buf: &mut BytesMut) -> Result<Option<Parsed>, CodecError> {
        match &mut self.state {
            State::Head if buf.is_empty() => Ok(None),
            State::Body {
                framing: Framing::UntilClose,
                body,
                ..
            } => {
                if body.len() + buf.len() > self.max_body {
                    return Err(CodecError::TooLarge);
                }
                body.extend_from_slice(buf);
                buf.clear();
                Ok(Some(self.finish(false)))
            }
            _ => Err(CodecError::Incomplete),
        }
    }

    fn finish(&mut self, reusable: bool) -> Parsed {
        let State::Body { head, body, .. } = std::mem::replace(&mut self.state, State::Head) else {
            unreachable!("finish is called with a body read");
        };
        Parsed {
            reusable: reusable && head.reusable,
            response: UpstreamResponse {
                status: head.status,
                headers: head.headers,
                body: body.freeze(),
            },
        }
    }
}

/// Parses one response head off the front of `buf`. `Ok(None)`: incomplete. The framing
/// is `None` for an interim (1xx) response.
fn parse_head(
    buf: &mut BytesMut,
    method: &Method,
    max_body: usize,
) -> Result<Option<(Head, Option<Framing>)>, CodecError> {
    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Response::new(&mut fields);
    let len = match parsed.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD_BYTES => {
            return Err(CodecError::HeadTooLarge);
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(CodecError::Head(e.to_string())),
    };
    if len > MAX_HEAD_BYTES {
        return Err(CodecError::HeadTooLarge);
    }
    let code = parsed.code.unwrap_or_default();
    let status =
        StatusCode::from_u16(code).map_err(|_| CodecError::Head(format!("status code {code}")))?;
    let http11 = parsed.version == Some(1);
    let mut headers = HeaderMap::with_capacity(parsed.headers.len());
    for field in parsed.headers.iter() {
        let name = HeaderName::from_bytes(field.name.as_bytes())
            .map_err(|_| CodecError::Head(format!("field name {:?}", field.name)))?;
        let value = HeaderValue::from_bytes(field.value)
            .map_err(|_| CodecError::Head(format!("value of {name}")))?;
        headers.append(name, value);
    }
    buf.advance(len);

    if status.is_informational() {
        if status == StatusCode::SWITCHING_PROTOCOLS {
            return Err(CodecError::Head(
                "unexpected 101 Switching Protocols".into(),
            ));
        }
        return Ok(Some((
            Head {
                status,
                headers,
                reusable: true,
            },
            None,
        )));
    }
    let reusable = keeps_alive(&headers, http11);
    let framing = if method == Method::HEAD
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        Framing::Length(0)
    } else {
        body_framing(&headers, http11, max_body)?
    };
    let reusable = reusable && !matches!(framing, Framing::UntilClose);
    Ok(Some((
        Head {
            status,
            headers,
            reusable,
        },
        Some(framing),
    )))
}

/// Whether the connection stays open after this response: HTTP/1.1 unless it says
/// `close`, HTTP/1.0 only when it says `keep-alive`.
fn keeps_alive(headers: &HeaderMap, http11: bool) -> bool {
    let mut close = false;
    let mut keep_alive = false;
    for value in headers.get_all(CONNECTION) {
        for token in value.as_bytes().split(|&b| b == b',') {
            let token = token.trim_ascii();
            close |= token.eq_ignore_ascii_case(b"close");
            keep_alive |= token.eq_ignore_ascii_case(b"keep-alive");
        }
    }
    !close && (http11 || keep_alive)
}

/// How the body of a response that has one is delimited (RFC 9112 §6.3).
fn body_framing(headers: &HeaderMap, http11: bool, max_body: usize) -> Result<Framing, CodecError> {
    let lengths = headers.get_all(CONTENT_LENGTH);
    if headers.contains_key(TRANSFER_ENCODING) {
        if !http11 {
            // RFC 9112 §6.1: faulty framing in an HTTP/1.0 message.
            return Err(CodecError::Framing(
                "Transfer-Encoding in an HTTP/1.0 response",
            ));
        }
        if lengths.iter().next().is_some() {
            return Err(CodecError::Framing(
                "both Transfer-Encoding and Content-Length",
            ));
        }
        let last = headers
            .get_all(TRANSFER_ENCODING)
            .iter()
            .flat_map(|v| v.as_bytes().split(|&b| b == b','))
            .map(<[u8]>::trim_ascii)
            .rfind(|t| !t.is_empty());
        return match last {
            Some(t) if t.eq_ignore_ascii_case(b"chunked") => Ok(Framing::Chunked(Chunk::Size)),
            // Another final coding: the body runs to the close (§6.3, item 4).
            Some(_) => Ok(Framing::UntilClose),
            None => Err(CodecError::Framing("empty Transfer-Encoding")),
        };
    }
    let mut length: Option<u64> = None;
    for value in lengths.iter() {
        for item in value.as_bytes().split(|&b| b == b',') {
            let item = item.trim_ascii();
            let n = std::str::from_utf8(item)
                .ok()
                .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|s| s.parse::<u64>().ok())
                .ok_or(CodecError::Framing("invalid Content-Length"))?;
            if length.is_some_and(|l| l != n) {
                return Err(CodecError::Framing("differing Content-Length values"));
            }
            length = Some(n);
        }
    }
    match length {
        Some(n) if n > max_body as u64 => Err(CodecError::TooLarge),
        Some(n) => Ok(Framing::Length(n as usize)),
        None => Ok(Framing::UntilClose),
    }
}

/// Moves body bytes from `buf` into `body`; `true` once the body is complete.
fn read_body(
    buf: &mut BytesMut,
    framing: &mut Framing,
    body: &mut BytesMut,
    max_body: usize,
) -> Result<bool, CodecError> {
    match framing {
        Framing::Length(total) => {
            let take = (*total - body.len()).min(buf.len());
            body.extend_from_slice(&buf[..take]);
            buf.advance(take);
            Ok(body.len() == *total)
        }
        Framing::UntilClose => {
            if body.len() + buf.len() > max_body {
                return Err(CodecError::TooLarge);
            }
            body.extend_from_slice(buf);
            buf.clear();
            Ok(false)
        }
        Framing::Chunked(chunk) => read_chunked(buf, chunk, body, max_body),
    }
}

/// Decodes as much of a chunked body as `buf` holds; `true` once its last chunk and
/// trailer section are read. Trailer fields are dropped.
fn read_chunked(
    buf: &mut BytesMut,
    chunk: &mut Chunk,
    body: &mut BytesMut,
    max_body: usize,
) -> Result<bool, CodecError> {
    loop {
        match *chunk {
            // httparse reads a size line without digits as 0 (the last chunk): a stray
            // CRLF would end the body early and shift every answer after it.
            Chunk::Size if buf.first().is_some_and(|b| !b.is_ascii_hexdigit()) => {
                return Err(CodecError::Chunk);
            }
            Chunk::Size => match httparse::parse_chunk_size(buf) {
                Ok(httparse::Status::Complete((len, size))) => {
                    buf.advance(len);
                    if size == 0 {
                        *chunk = Chunk::Trailers;
                    } else if size > (max_body - body.len()) as u64 {
                        return Err(CodecError::TooLarge);
                    } else {
                        *chunk = Chunk::Data(size as usize);
                    }
                }
                Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD_BYTES => {
                    return Err(CodecError::Chunk);
                }
                Ok(httparse::Status::Partial) => return Ok(false),
                Err(_) => return Err(CodecError::Chunk),
            },
            Chunk::Data(left) => {
                let take = left.min(buf.len());
                body.extend_from_slice(&buf[..take]);
                buf.advance(take);
                if take < left {
                    *chunk = Chunk::Data(left - take);
                    return Ok(false);
                }
                *chunk = Chunk::DataEnd;
            }
            Chunk::DataEnd => {
                if buf.len() < 2 {
                    return Ok(false);
                }
                if &buf[..2] != b"\r\n" {
                    return Err(CodecError::Chunk);
                }
                buf.advance(2);
                *chunk = Chunk::Size;
            }
            Chunk::Trailers => {
                // Parsed as header fields (then dropped), so that anything else, such as
                // the next answer's status line, is an error and not a trailer.
                let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
                return match httparse::parse_headers(buf, &mut fields) {
                    Ok(httparse::Status::Complete((len, _))) => {
                        buf.advance(len);
                        Ok(true)
                    }
                    Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD_BYTES => {
                        Err(CodecError::HeadTooLarge)
                    }
                    Ok(httparse::Status::Partial) => Ok(false),
                    Err(_) => Err(CodecError::Chunk),
                };
            }
        }
    }
}

#[cfg(test)]
mod tests;
