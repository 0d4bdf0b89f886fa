//! The pipelined upstream response codec (`evalgate::upstream::codec`): answers read in
//! order off one connection, whatever pieces the network delivers them in.
//!
//! The first input byte picks the mode:
//! - `H` (a raw HTTP stream, as the seeds are) or any even byte: **raw**. The rest of the
//!   input (all of it for `H`) is the wire; with an even byte, its bits 1..8 mark which
//!   requests are HEADs. It is read whole and again one byte at a time: neither panics,
//!   and both read the same answers and the same error.
//! - odd: **framed**. The input builds a stream of answers (Content-Length, chunked with
//!   extensions and trailers, HEAD, 204/304, interim 1xx, close-delimited, HTTP/1.0),
//!   each body carrying its own id, maybe corrupts it (cut short, or stray bytes at an
//!   answer or chunk boundary), and splits it at chosen points. Every answer read is
//!   exactly its own (status, body, reuse) — never another's bytes — or reading stops at
//!   an error; an intact stream reads whole, with no error.

#![no_main]

use bytes::BytesMut;
use evalgate::upstream::codec::{CodecError, Parsed, ResponseReader};
use http::Method;
use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;

const MAX_BODY: usize = 1024 * 1024;

fuzz_target!(|data: &[u8]| {
    match data.first() {
        None => {}
        Some(b'H') => raw(data, &[Method::GET; 8]),
        Some(&mode) if mode % 2 == 0 => {
            let methods: Vec<Method> = (1..8)
                .map(|bit| {
                    if mode & (1 << bit) != 0 {
                        Method::HEAD
                    } else {
                        Method::GET
                    }
                })
                .collect();
            raw(&data[1..], &methods);
        }
        Some(_) => {
            let _ = framed(&mut Unstructured::new(&data[1..]));
        }
    }
});

/// Reads answers to `methods` from `wire`, delivered in pieces ending at `cuts` (sorted,
/// within the wire), then the close. Stops at the first error.
fn read(
    wire: &[u8],
    methods: &[Method],
    cuts: &[usize],
    max_body: usize,
) -> Vec<std::result::Result<Parsed, CodecError>> {
    let mut reader = ResponseReader::new(max_body);
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    let mut at = 0;
    for end in cuts.iter().copied().chain([wire.len()]) {
        buf.extend_from_slice(&wire[at..end]);
        at = end;
        while out.len() < methods.len() {
            match reader.read(&mut buf, &methods[out.len()]) {
                Ok(Some(parsed)) => out.push(Ok(parsed)),
                Ok(None) => break,
                Err(e) => {
                    out.push(Err(e));
                    return out;
                }
            }
        }
    }
    if out.len() < methods.len() {
        match reader.read_eof(&mut buf) {
            Ok(Some(parsed)) => out.push(Ok(parsed)),
            Ok(None) => {}
            Err(e) => out.push(Err(e)),
        }
    } else {
        assert!(
            !buf.is_empty() || reader.at_boundary(&buf),
            "the reader is mid-answer after reading its last answer"
        );
    }
    out
}

/// Raw mode: arbitrary bytes, read whole and byte by byte.
fn raw(wire: &[u8], methods: &[Method]) {
    let whole = read(wire, methods, &[], MAX_BODY);
    let bytewise: Vec<usize> = (0..wire.len()).collect();
    let split = read(wire, methods, &bytewise, MAX_BODY);
    assert_eq!(whole.len(), split.len(), "{whole:?}\n{split:?}");
    for (a, b) in whole.iter().zip(&split) {
        match (a, b) {
            (Ok(a), Ok(b)) => {
                assert_eq!(a.response.status, b.response.status);
                assert_eq!(a.response.headers, b.response.headers);
                assert_eq!(a.response.body, b.response.body);
                assert_eq!(a.reusable, b.reusable);
            }
            (Err(a), Err(b)) => assert_eq!(a, b),
            _ => panic!("whole: {a:?}\nbyte by byte: {b:?}"),
        }
    }
    // Small body limits: errors, never panics.
    for max_body in [0, 1, 7] {
        let _ = read(wire, methods, &[], max_body);
        let _ = read(wire, methods, &bytewise, max_body);
    }
}

/// One answer of a framed stream, as the reader must return it.
#[derive(Debug)]
struct Expected {
    status: u16,
    body: Vec<u8>,
    reusable: bool,
    /// Delimited by the close: a stream cut short may end it early.
    until_close: bool,
}

/// Bytes that cannot start a status line nor extend a chunk size: inserted at a boundary
/// they must be skipped or refused, never read as (part of) an answer.
const STRAY: &[u8] = b"\r\n \t;=z:";

fn framed(u: &mut Unstructured) -> Result<()> {
    let count = u.int_in_range(1..=6)?;
    let mut wire = Vec::new();
    let mut methods = Vec::new();
    let mut expected = Vec::new();
    // Where stray bytes may go: answer starts and chunk boundaries.
    let mut boundaries = Vec::new();
    for id in 0..count {
        boundaries.push(wire.len());
        let last = id + 1 == count;
        let filler: String = (0..u.int_in_range(0..=40)?)
            .map(|_| u.choose(&['a', 'b', 'c', 'x', 'y', 'z', ' ']).copied())
            .collect::<Result<_>>()?;
        let body = format!("{{\"id\":{id},\"pad\":\"{filler}\"}}").into_bytes();
        let status = *u.choose(&[200u16, 202, 400, 401, 404, 429, 500])?;
        let http10 = u.ratio(1, 8)?;
        let close = u.ratio(1, 8)?;
        let keep_alive = http10 && u.arbitrary()?;
        if u.ratio(1, 6)? {
            let interim = u.choose(&["100 Continue", "103 Early Hints\r\nlink: </a>"])?;
            wire.extend_from_slice(format!("HTTP/1.1 {interim}\r\n\r\n").as_bytes());
        }
        let version = if http10 { "1.0" } else { "1.1" };
        let kind = u.int_in_range(0..=6u8)?;
        let mut head = String::new();
        if close {
            head.push_str("connection: close\r\n");
        } else if keep_alive {
            head.push_str("connection: keep-alive\r\n");
        }
        if u.arbitrary()? {
            head.push_str("content-type: application/json\r\n");
        }
        let reusable = !close && (!http10 || keep_alive);
        let answer = match kind {
            // Content-Length, maybe repeated.
            0 | 1 => {
                let len = body.len();
                let field = match u.int_in_range(0..=2u8)? {
                    0 => format!("content-length: {len}\r\n"),
                    1 => format!("Content-Length: {len}, {len}\r\n"),
                    _ => format!("content-length: {len}\r\ncontent-length: {len}\r\n"),
                };
                wire_answer(&mut wire, version, status, &head, &field);
                wire.extend_from_slice(&body);
                Expected {
                    status,
                    body,
                    reusable,
                    until_close: false,
                }
            }
            // Chunked (HTTP/1.1 only), with size spellings, extensions and trailers.
            2 | 3 if !http10 => {
                wire_answer(
                    &mut wire,
                    "1.1",
                    status,
                    &head,
                    "transfer-encoding: chunked\r\n",
                );
                let mut rest = &body[..];
                while !rest.is_empty() {
                    boundaries.push(wire.len());
                    let n = u.int_in_range(1..=rest.len())?;
                    let size = match u.int_in_range(0..=2u8)? {
                        0 => format!("{n:x}"),
                        1 => format!("{n:X}"),
                        _ => format!("00{n:x}"),
                    };
                    let ext = if u.ratio(1, 4)? { ";name=value" } else { "" };
                    wire.extend_from_slice(format!("{size}{ext}\r\n").as_bytes());
                    wire.extend_from_slice(&rest[..n]);
                    boundaries.push(wire.len());
                    wire.extend_from_slice(b"\r\n");
                    rest = &rest[n..];
                }
                boundaries.push(wire.len());
                wire.extend_from_slice(b"0\r\n");
                if u.arbitrary()? {
                    wire.extend_from_slice(b"x-trailer: t\r\n");
                }
                wire.extend_from_slice(b"\r\n");
                Expected {
                    status,
                    body,
                    reusable,
                    until_close: false,
                }
            }
            // A HEAD: its length is announced, no body follows.
            4 => {
                methods.push(Method::HEAD);
                let field = format!("content-length: {}\r\n", body.len());
                wire_answer(&mut wire, version, status, &head, &field);
                expected.push(Expected {
                    status,
                    body: Vec::new(),
                    reusable,
                    until_close: false,
                });
                continue;
            }
            // 204 and 304 never have a body, whatever they announce.
            5 => {
                let status = *u.choose(&[204u16, 304])?;
                let field = if u.arbitrary()? {
                    "content-length: 9\r\n"
                } else {
                    ""
                };
                wire_answer(&mut wire, version, status, &head, field);
                Expected {
                    status,
                    body: Vec::new(),
                    reusable,
                    until_close: false,
                }
            }
            // No length: the body runs to the close (the last answer only).
            _ if last => {
                wire_answer(&mut wire, version, status, &head, "");
                wire.extend_from_slice(&body);
                Expected {
                    status,
                    body,
                    reusable: false,
                    until_close: true,
                }
            }
            _ => {
                let field = format!("content-length: {}\r\n", body.len());
                wire_answer(&mut wire, version, status, &head, &field);
                wire.extend_from_slice(&body);
                Expected {
                    status,
                    body,
                    reusable,
                    until_close: false,
                }
            }
        };
        methods.push(Method::GET);
        expected.push(answer);
    }
    if !expected.last().is_some_and(|e| e.until_close) {
        boundaries.push(wire.len());
    }

    // Maybe corrupt the stream: cut it short, or put stray bytes at a boundary.
    let mut cut_short = false;
    let mut corrupt = false;
    match u.int_in_range(0..=3u8)? {
        0 => {
            let at = u.int_in_range(0..=wire.len())?;
            cut_short = at < wire.len();
            corrupt = cut_short;
            wire.truncate(at);
        }
        1 => {
            let at = *u.choose(&boundaries)?;
            let stray: Vec<u8> = (0..u.int_in_range(1..=6)?)
                .map(|_| u.choose(STRAY).copied())
                .collect::<Result<_>>()?;
            wire.splice(at..at, stray);
            corrupt = true;
        }
        _ => {}
    }
    let max_body = if u.arbitrary()? {
        MAX_BODY
    } else {
        u.int_in_range(0..=64)?
    };
    let mut cuts: Vec<usize> = (0..u.int_in_range(0..=16)?)
        .map(|_| u.int_in_range(0..=wire.len()))
        .collect::<Result<_>>()?;
    cuts.sort_unstable();

    let read = read(&wire, &methods, &cuts, max_body);
    let fits = expected.iter().all(|e| e.body.len() <= max_body);
    for (i, (got, want)) in read.iter().zip(&expected).enumerate() {
        let Ok(got) = got else {
            assert!(
                corrupt || !fits,
                "answer {i}: {got:?} from an intact stream"
            );
            assert_eq!(i + 1, read.len(), "reading went on after an error");
            continue;
        };
        let body = &got.response.body[..];
        let own = body == &want.body[..]
            || (cut_short && want.until_close && want.body.starts_with(body));
        assert!(
            own && got.response.status == want.status,
            "answer {i} read as {} {:?}, expected {} {:?}",
            got.response.status,
            String::from_utf8_lossy(body),
            want.status,
            String::from_utf8_lossy(&want.body),
        );
        assert_eq!(got.reusable, want.reusable, "answer {i}");
    }
    if !corrupt && fits {
        assert_eq!(read.len(), expected.len(), "an intact stream reads whole");
    }
    Ok(())
}

fn wire_answer(wire: &mut Vec<u8>, version: &str, status: u16, head: &str, framing: &str) {
    wire.extend_from_slice(format!("HTTP/{version} {status} X\r\n{head}{framing}\r\n").as_bytes());
}
