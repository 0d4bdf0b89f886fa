use super::*;

const BUFFER: usize = 1000;

/// Feeds `stream` in chunks of `chunk` bytes and says which error an overflow would get.
fn verdict(stream: &[u8], chunk: usize) -> GatewayError {
    let mut guard = Oversized::new((), BUFFER, Duration::ZERO);
    for piece in stream.chunks(chunk) {
        guard.observe(piece);
    }
    guard.error_for(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE)
}

fn is_414(err: GatewayError) -> bool {
    matches!(err, GatewayError::UriTooLong)
}

/// Every chunking of the same bytes gives the same verdict.
fn check(stream: &[u8], want_414: bool) {
    for chunk in [1, 2, 3, 7, 64, 999, 1000, 5000] {
        assert_eq!(
            is_414(verdict(stream, chunk)),
            want_414,
            "chunk {chunk}: {:?}",
            String::from_utf8_lossy(&stream[..stream.len().min(80)])
        );
    }
}

#[test]
fn a_long_request_line_on_a_new_connection_is_414() {
    let mut stream = b"GET /".to_vec();
    stream.extend(std::iter::repeat_n(b'a', 3 * BUFFER));
    check(&stream, true);
}

#[test]
fn a_long_header_line_is_431() {
    let mut stream = b"GET / HTTP/1.1\r\nHost: x\r\nx-big: ".to_vec();
    stream.extend(std::iter::repeat_n(b'v', 3 * BUFFER));
    check(&stream, false);
}

#[test]
fn many_short_header_lines_are_431() {
    let mut stream = b"GET / HTTP/1.1\r\n".to_vec();
    for i in 0..100 {
        stream.extend(format!("x-h{i}: {}\r\n", "v".repeat(40)).bytes());
    }
    stream.extend(b"x-last: vvvv");
    check(&stream, false);
}

#[test]
fn a_long_request_line_after_earlier_requests_is_414() {
    // After a bodiless request, and after one whose body has no line break.
    for earlier in [
        &b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n"[..],
        b"POST /a HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc",
        b"GET /a HTTP/1.1\n\n",
        b"\r\n",
    ] {
        let mut stream = earlier.to_vec();
        stream.extend(b"GET /");
        stream.extend(std::iter::repeat_n(b'a', 3 * BUFFER));
        check(&stream, true);
    }
}

#[test]
fn a_complete_head_with_too_many_fields_is_431() {
    // hyper's other 431: more header fields than it takes, the head complete, and maybe
    // the start of a pipelined request after it.
    let mut stream = b"GET / HTTP/1.1\r\n".to_vec();
    for i in 0..120 {
        stream.extend(format!("x-h{i}: v\r\n").bytes());
    }
    stream.extend(b"\r\nGET /next");
    check(&stream, false);
}

#[test]
fn hyper_414_is_always_414() {
    let mut guard = Oversized::new((), BUFFER, Duration::ZERO);
    guard.observe(b"GET / HTTP/1.1\r\n\r\n");
    assert!(is_414(guard.error_for(StatusCode::URI_TOO_LONG)));
}

#[test]
fn http2_connections_are_not_watched() {
    let mut guard = Oversized::new((), BUFFER, Duration::ZERO);
    guard.observe(b"PR");
    guard.observe(b"I * HTTP/2.0\r\n\r\nSM\r\n\r\n");
    assert!(guard.protocol == Protocol::Http2);
    let mut guard = Oversized::new((), BUFFER, Duration::ZERO);
    guard.observe(b"POST / HTTP/1.1\r\n");
    assert!(guard.protocol == Protocol::Http1);
}

const DATE: &str = "Mon, 07 Dec 2026 03:02:45 GMT";

#[test]
fn hyper_bare_answers_are_recognized_at_the_end_of_a_write() {
    let bare = format!(
        "HTTP/1.1 431 Request Header Fields Too Large\r\nconnection: close\r\n\
         content-length: 0\r\ndate: {DATE}\r\n\r\n"
    );
    assert_eq!(
        hyper_answer_at(bare.as_bytes()),
        Some((0, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE))
    );
    let after = format!("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{{}}{bare}");
    let start = after.len() - bare.len();
    assert_eq!(
        hyper_answer_at(after.as_bytes()),
        Some((start, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE))
    );
    let uri = format!(
        "HTTP/1.1 414 URI Too Long\r\nconnection: close\r\ncontent-length: 0\r\ndate: {DATE}\r\n\r\n"
    );
    assert_eq!(
        hyper_answer_at(uri.as_bytes()),
        Some((0, StatusCode::URI_TOO_LONG))
    );
}

#[test]
fn evalgate_answers_are_never_taken_for_hyper_ones() {
    for head in [
        // A relayed upstream 431 with no body: evalgate adds `x-cache`.
        format!(
            "HTTP/1.1 431 Request Header Fields Too Large\r\nx-cache: BYPASS\r\nage: 0\r\n\
             connection: close\r\ncontent-length: 0\r\ndate: {DATE}\r\n\r\n"
        ),
        // evalgate's own 414 carries a JSON body.
        "HTTP/1.1 414 URI Too Long\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}"
            .to_string(),
        format!("HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\ndate: {DATE}\r\n\r\n"),
    ] {
        assert_eq!(hyper_answer_at(head.as_bytes()), None, "{head}");
    }
}

#[test]
fn the_answer_is_json_dated_like_hyper() {
    let bytes = answer_bytes(&GatewayError::UriTooLong, DATE.as_bytes());
    let text = String::from_utf8(bytes).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 414 URI Too Long\r\n"), "{head}");
    assert!(
        head.contains("\r\ncontent-type: application/json\r\n"),
        "{head}"
    );
    assert!(head.contains("\r\nconnection: close\r\n"), "{head}");
    assert!(head.ends_with(&format!("\r\ndate: {DATE}")), "{head}");
    assert!(head.contains(&format!("\r\ncontent-length: {}\r\n", body.len())));
    let json: serde_json::Value = serde_json::from_str(body).unwrap();
    assert!(json["error"].as_str().unwrap().contains("max_query_bytes"));
}

#[tokio::test]
async fn the_bare_answer_is_replaced_after_what_precedes_it_and_the_client_is_drained() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let (server, mut client) = tokio::io::duplex(64 * 1024);
    let mut guard = Oversized::new(server, BUFFER, Duration::from_secs(600));
    // The client sends a request line longer than the buffer.
    let mut target = b"GET /".to_vec();
    target.extend(std::iter::repeat_n(b'a', 2 * BUFFER));
    client.write_all(&target).await.unwrap();
    let mut read = vec![0u8; 4 * BUFFER];
    let n = guard.read(&mut read).await.unwrap();
    assert_eq!(n, target.len());

    // hyper writes the end of an earlier answer and its bare 431 in one write.
    let earlier = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}";
    let bare = format!(
        "HTTP/1.1 431 Request Header Fields Too Large\r\nconnection: close\r\n\
         content-length: 0\r\ndate: {DATE}\r\n\r\n"
    );
    let writer = tokio::spawn(async move {
        guard
            .write_all(format!("{earlier}{bare}").as_bytes())
            .await
            .unwrap();
        guard.flush().await.unwrap();
        // After the answer hyper reads the end of the connection.
        assert_eq!(guard.read(&mut [0u8; 16]).await.unwrap(), 0);
    });

    let mut seen = Vec::new();
    let mut chunk = [0u8; 1024];
    loop {
        let n = client.read(&mut chunk).await.unwrap();
        if n == 0 {
            break;
        }
        seen.extend_from_slice(&chunk[..n]);
    }
    let seen = String::from_utf8(seen).unwrap();
    let answer =
        String::from_utf8(answer_bytes(&GatewayError::UriTooLong, DATE.as_bytes())).unwrap();
    assert_eq!(seen, format!("{earlier}{answer}"));
    // Still draining what the client sends, until it closes.
    client.write_all(b"more of the target").await.unwrap();
    assert!(!writer.is_finished());
    drop(client);
    writer.await.unwrap();
}
