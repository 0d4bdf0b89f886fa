use super::*;
use proptest::prelude::*;

const MAX: usize = 1024 * 1024;

/// Reads every response in `wire` (answers to `methods`, in order), feeding it in pieces
/// split at `cuts`, then the end of the connection.
fn read_all(wire: &[u8], methods: &[Method], cuts: &[usize]) -> Result<Vec<Parsed>, CodecError> {
    let mut reader = ResponseReader::new(MAX);
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    let mut bounds: Vec<usize> = cuts.iter().map(|c| c % (wire.len() + 1)).collect();
    bounds.push(wire.len());
    bounds.sort_unstable();
    let mut at = 0;
    for end in bounds {
        buf.extend_from_slice(&wire[at..end]);
        at = end;
        while out.len() < methods.len() {
            match reader.read(&mut buf, &methods[out.len()])? {
                Some(parsed) => out.push(parsed),
                None => break,
            }
        }
    }
    if out.len() < methods.len()
        && let Some(parsed) = reader.read_eof(&mut buf)?
    {
        out.push(parsed);
    }
    Ok(out)
}

fn one(wire: &str) -> Result<Parsed, CodecError> {
    let mut all = read_all(wire.as_bytes(), &[Method::GET], &[])?;
    all.pop().ok_or(CodecError::Incomplete)
}

#[test]
fn a_request_head_is_written_in_origin_form_with_the_pools_host() {
    let request = Request::get("http://up.example:8080/v1/vardata?user_id=u")
        .header("authorization", "Api-Key k")
        .header("host", "elsewhere")
        .body(Bytes::new())
        .unwrap();
    let mut out = Vec::new();
    encode_request(
        &request,
        &HeaderValue::from_static("up.example:8080"),
        &mut out,
    );
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "GET /v1/vardata?user_id=u HTTP/1.1\r\nhost: up.example:8080\r\n\
         authorization: Api-Key k\r\n\r\n"
    );
}

#[test]
fn a_keys_upstream_head_is_the_request_it_builds_on_the_wire() {
    use crate::key::{CacheKey, CanonicalRequest, RouteFamily};
    let host = HeaderValue::from_static("up.example:8080");
    let keys = [
        CacheKey::new(
            RouteFamily::V1Vardata,
            "server-k",
            None,
            "/v1/vardata?user_id=u".into(),
        ),
        CacheKey::from(CanonicalRequest {
            route: RouteFamily::SdkV2Vardata,
            deployment: "client-k".into(),
            track: Some("track".into()),
            exposure_track: None,
            path_and_query: "/sdk/v2/vardata?v=0".into(),
            flag_keys_header: Some("WyJhIl0".into()),
            body: None,
        }),
        // `upstream.tracking = "never"`: both no-track headers, on the pipelined head too.
        CacheKey::tracked(
            RouteFamily::V1Vardata,
            "server-k",
            Some("no-track"),
            Some("no-track"),
            "/v1/vardata?user_id=u".into(),
        ),
    ];
    for prefix in ["", "/prefix"] {
        for key in &keys {
            let request = key
                .upstream_request(&format!("http://up.example:8080{prefix}"))
                .unwrap();
            let mut reference = Vec::new();
            encode_request(&request, &host, &mut reference);
            let head = key.upstream_head(prefix, &host).expect("a GET key");
            assert_eq!(
                String::from_utf8(head).unwrap(),
                String::from_utf8(reference).unwrap()
            );
        }
    }
}

#[test]
fn keys_that_cannot_go_on_the_wire_as_is_have_no_upstream_head() {
    use crate::key::{CacheKey, CanonicalRequest, RouteFamily};
    let host = HeaderValue::from_static("up");
    let post = CacheKey::from(CanonicalRequest {
        route: RouteFamily::SdkV2Vardata,
        deployment: "k".into(),
        track: None,
        exposure_track: None,
        path_and_query: "/sdk/v2/vardata".into(),
        flag_keys_header: None,
        body: Some("{}".into()),
    });
    assert!(post.upstream_head("", &host).is_none(), "a POST");
    for (deployment, path) in [
        ("k\r\nx: y", "/v1/vardata"),
        ("k", "/v1/vardata x"),
        ("k", "/v1/\n"),
    ] {
        let key = CacheKey::new(RouteFamily::V1Vardata, deployment, None, path.into());
        assert!(
            key.upstream_head("", &host).is_none(),
            "{deployment:?} {path:?}"
        );
    }
}

#[test]
fn content_length_frames_pipelined_responses() {
    let wire = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 7\r\n\r\n{\"a\":1}\
                HTTP/1.1 401 Unauthorized\r\ncontent-length: 2\r\nwww-authenticate: Api-Key\r\n\r\n{}";
    let all = read_all(wire.as_bytes(), &[Method::GET, Method::GET], &[]).unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].response.status, 200);
    assert_eq!(&all[0].response.body[..], b"{\"a\":1}");
    assert_eq!(all[0].response.headers["content-type"], "application/json");
    assert!(all[0].reusable);
    assert_eq!(all[1].response.status, 401);
    assert_eq!(&all[1].response.body[..], b"{}");
    assert_eq!(all[1].response.headers["www-authenticate"], "Api-Key");
}

#[test]
fn chunked_bodies_are_decoded_with_extensions_and_trailers() {
    let wire = "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n\
                3;name=value\r\n{\"a\r\n4\r\n\":1}\r\n0\r\nx-trailer: t\r\n\r\n\
                HTTP/1.1 204 No Content\r\n\r\n";
    let all = read_all(wire.as_bytes(), &[Method::GET, Method::GET], &[]).unwrap();
    assert_eq!(&all[0].response.body[..], b"{\"a\":1}");
    assert!(all[0].reusable);
    assert_eq!(all[1].response.status, 204);
    assert!(all[1].response.body.is_empty());
}

#[test]
fn head_and_bodiless_statuses_have_no_body_whatever_their_length_says() {
    let wire = "HTTP/1.1 200 OK\r\ncontent-length: 50\r\n\r\n\
                HTTP/1.1 304 Not Modified\r\ncontent-length: 50\r\n\r\n\
                HTTP/1.1 200 OK\r\ncontent-length: 1\r\n\r\nx";
    let all = read_all(
        wire.as_bytes(),
        &[Method::HEAD, Method::GET, Method::GET],
        &[],
    )
    .unwrap();
    assert_eq!(all.len(), 3);
    assert!(all[0].response.body.is_empty());
    assert_eq!(all[0].response.headers["content-length"], "50");
    assert_eq!(all[1].response.status, 304);
    assert_eq!(&all[2].response.body[..], b"x");
}

#[test]
fn interim_responses_are_skipped() {
    let parsed = one("HTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}").unwrap();
    assert_eq!(parsed.response.status, 200);
    assert!(!parsed.response.headers.contains_key("link"));
}

#[test]
fn connection_close_and_http10_end_reuse() {
    assert!(
        !one("HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 0\r\n\r\n")
            .unwrap()
            .reusable
    );
    assert!(
        !one("HTTP/1.1 200 OK\r\nConnection: Keep-Alive, Close\r\ncontent-length: 0\r\n\r\n")
            .unwrap()
            .reusable
    );
    assert!(
        !one("HTTP/1.0 200 OK\r\ncontent-length: 0\r\n\r\n")
            .unwrap()
            .reusable
    );
    assert!(
        one("HTTP/1.0 200 OK\r\nconnection: keep-alive\r\ncontent-length: 0\r\n\r\n")
            .unwrap()
            .reusable
    );
}

#[test]
fn a_body_without_length_runs_to_the_close_and_ends_reuse() {
    let parsed = one("HTTP/1.1 200 OK\r\n\r\n{\"until\":\"close\"}").unwrap();
    assert_eq!(&parsed.response.body[..], b"{\"until\":\"close\"}");
    assert!(!parsed.reusable);
    let parsed = one("HTTP/1.1 200 OK\r\ntransfer-encoding: gzip\r\n\r\nzz").unwrap();
    assert_eq!(&parsed.response.body[..], b"zz");
    assert!(!parsed.reusable);
}

#[test]
fn ambiguous_framing_is_an_error() {
    for wire in [
        "HTTP/1.1 200 OK\r\ncontent-length: 2\r\ntransfer-encoding: chunked\r\n\r\n",
        "HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-length: 3\r\n\r\n",
        "HTTP/1.1 200 OK\r\ncontent-length: 2, 3\r\n\r\n",
        "HTTP/1.1 200 OK\r\ncontent-length: +2\r\n\r\n",
        "HTTP/1.1 200 OK\r\ncontent-length: \r\n\r\n",
    ] {
        assert!(
            matches!(one(wire), Err(CodecError::Framing(_))),
            "{wire:?}: {:?}",
            one(wire)
        );
    }
    // The same length repeated is one length.
    let parsed =
        one("HTTP/1.1 200 OK\r\ncontent-length: 2, 2\r\ncontent-length: 2\r\n\r\n{}").unwrap();
    assert_eq!(&parsed.response.body[..], b"{}");
}

#[test]
fn malformed_input_is_an_error() {
    assert!(matches!(
        one("HTTP/1.1 2000 OK\r\n\r\n"),
        Err(CodecError::Head(_))
    ));
    assert!(matches!(one("garbage\r\n\r\n"), Err(CodecError::Head(_))));
    assert!(matches!(
        one("HTTP/1.1 101 Switching Protocols\r\n\r\n"),
        Err(CodecError::Head(_))
    ));
    assert_eq!(
        one("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n").unwrap_err(),
        CodecError::Chunk
    );
    assert!(matches!(
        one("HTTP/1.0 200 OK\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n"),
        Err(CodecError::Framing(_))
    ));
    assert_eq!(
        one("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\n{}XX").unwrap_err(),
        CodecError::Chunk
    );
}

/// A chunked body that ends wrongly must never let the next answer's head be read as part
/// of it (and so shift every answer after it to the wrong request).
#[test]
fn a_malformed_chunked_end_never_swallows_the_next_answer() {
    let next = "HTTP/1.1 401 Unauthorized\r\ncontent-length: 0\r\n\r\n\
                HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}";
    for bad_end in [
        "2\r\n{}\r\n\r\n0\r\n\r\n", // a size line without digits
        "2\r\n{}\r\n;ext\r\n",      // the same, with only an extension
        "2\r\n{}\r\n0\r\n",         // no empty line after the last chunk
    ] {
        let wire = format!("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n{bad_end}{next}");
        let read = read_all(
            wire.as_bytes(),
            &[Method::GET, Method::GET, Method::GET],
            &[],
        );
        assert!(read.is_err(), "{bad_end:?}: {read:?}");
    }
}

#[test]
fn a_response_cut_short_by_the_close_is_incomplete() {
    for wire in [
        "HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n{}",
        "HTTP/1.1 200 OK\r\ncontent-le",
        "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\n{}\r\n",
    ] {
        assert_eq!(one(wire).unwrap_err(), CodecError::Incomplete, "{wire:?}");
    }
    // Nothing at all between responses is a clean end.
    assert!(read_all(b"", &[Method::GET], &[]).unwrap().is_empty());
}

#[test]
fn limits_bound_bodies_and_heads() {
    let mut reader = ResponseReader::new(4);
    let mut buf = BytesMut::from(&b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n"[..]);
    assert_eq!(
        reader.read(&mut buf, &Method::GET).unwrap_err(),
        CodecError::TooLarge
    );

    let mut reader = ResponseReader::new(4);
    let mut buf = BytesMut::from(
        &b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\n"[..],
    );
    assert_eq!(
        reader.read(&mut buf, &Method::GET).unwrap_err(),
        CodecError::TooLarge
    );

    let mut reader = ResponseReader::new(4);
    let mut buf = BytesMut::from(&b"HTTP/1.1 200 OK\r\n\r\nabcde"[..]);
    assert_eq!(
        reader.read(&mut buf, &Method::GET).unwrap_err(),
        CodecError::TooLarge
    );

    let mut reader = ResponseReader::new(MAX);
    let mut buf = BytesMut::from(&b"HTTP/1.1 200 OK\r\nx: "[..]);
    buf.extend_from_slice(&vec![b'a'; MAX_HEAD_BYTES]);
    assert_eq!(
        reader.read(&mut buf, &Method::GET).unwrap_err(),
        CodecError::HeadTooLarge
    );
}

#[test]
fn the_reader_knows_when_it_is_between_responses() {
    let mut reader = ResponseReader::new(MAX);
    assert!(reader.at_boundary(&BytesMut::new()));
    let mut buf = BytesMut::from(&b"HTTP/1.1 200 OK\r\ncont"[..]);
    assert!(reader.read(&mut buf, &Method::GET).unwrap().is_none());
    assert!(!reader.at_boundary(&buf), "part of a head has arrived");
    buf.extend_from_slice(b"ent-length: 4\r\n\r\n{");
    assert!(reader.read(&mut buf, &Method::GET).unwrap().is_none());
    assert!(!reader.at_boundary(&buf));
    buf.extend_from_slice(b"\"\"}");
    assert!(reader.read(&mut buf, &Method::GET).unwrap().is_some());
    assert!(reader.at_boundary(&buf));
}

proptest! {
    /// Where the bytes of a pipelined stream are split by the network never changes what
    /// is read: same statuses, same bodies, same order.
    #[test]
    fn splitting_the_stream_anywhere_reads_the_same(
        cuts in proptest::collection::vec(0usize..2000, 0..12),
        bodies in proptest::collection::vec("[a-z{}\":,]{0,40}", 1..6),
    ) {
        let mut wire = Vec::new();
        for (i, body) in bodies.iter().enumerate() {
            if i % 2 == 0 {
                wire.extend_from_slice(format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}", body.len()).as_bytes());
            } else {
                wire.extend_from_slice(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n");
                for piece in body.as_bytes().chunks(7) {
                    wire.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
                    wire.extend_from_slice(piece);
                    wire.extend_from_slice(b"\r\n");
                }
                wire.extend_from_slice(b"0\r\n\r\n");
            }
        }
        let methods = vec![Method::GET; bodies.len()];
        let all = read_all(&wire, &methods, &cuts).unwrap();
        prop_assert_eq!(all.len(), bodies.len());
        for (parsed, body) in all.iter().zip(&bodies) {
            prop_assert_eq!(&parsed.response.body[..], body.as_bytes());
            prop_assert!(parsed.reusable);
        }
    }

    /// Arbitrary bytes never panic the reader.
    #[test]
    fn arbitrary_input_never_panics(wire in proptest::collection::vec(any::<u8>(), 0..600), cuts in proptest::collection::vec(0usize..600, 0..6)) {
        let _ = read_all(&wire, &[Method::GET, Method::HEAD, Method::GET], &cuts);
    }
}
