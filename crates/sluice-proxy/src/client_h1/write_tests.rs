use super::*;
use http::Response;
use tokio::io::AsyncReadExt;

const GET11: Asked = Asked {
    head: false,
    connect: false,
    version: Version::HTTP_11,
    keep_alive: true,
};

fn parts(status: u16, headers: &[(&str, &str)]) -> Parts {
    let mut b = Response::builder().status(status);
    for (n, v) in headers {
        b = b.header(*n, *v);
    }
    b.body(()).unwrap().into_parts().0
}

fn framed(p: &mut Parts, asked: Asked, end: bool, exact: Option<u64>) -> (Framing, bool) {
    frame(p, asked, end, exact)
}

#[test]
fn a_body_of_known_length_gets_content_length_and_unknown_is_chunked() {
    let mut p = parts(200, &[]);
    assert_eq!(
        framed(&mut p, GET11, false, Some(5)),
        (Framing::Length, true)
    );
    assert_eq!(p.headers["content-length"], "5");
    assert!(p.headers.contains_key("date"));
    assert!(!p.headers.contains_key("connection"));
    let mut p = parts(200, &[("transfer-encoding", "gzip")]);
    assert_eq!(framed(&mut p, GET11, false, None), (Framing::Chunked, true));
    assert_eq!(
        p.headers["transfer-encoding"], "chunked",
        "our framing, not the origin's"
    );
    let mut p = parts(200, &[]);
    assert_eq!(framed(&mut p, GET11, true, Some(0)), (Framing::None, true));
    assert_eq!(p.headers["content-length"], "0");
    let mut p = parts(200, &[("content-length", "7")]);
    assert_eq!(framed(&mut p, GET11, false, None), (Framing::Length, true));
}

#[test]
fn http_1_0_clients_get_no_chunks_and_a_close_when_the_length_is_unknown() {
    let old = Asked {
        version: Version::HTTP_10,
        ..GET11
    };
    let mut p = parts(200, &[]);
    assert_eq!(framed(&mut p, old, false, None), (Framing::ToEof, false));
    assert_eq!(p.headers["connection"], "close");
    assert!(!p.headers.contains_key("transfer-encoding"));
    let mut p = parts(200, &[]);
    assert_eq!(framed(&mut p, old, false, Some(3)), (Framing::Length, true));
    assert_eq!(p.headers["connection"], "keep-alive");
}

#[test]
fn bodiless_answers_keep_the_origins_length_and_send_no_bytes() {
    let head = Asked {
        head: true,
        ..GET11
    };
    let mut p = parts(200, &[("content-length", "42")]);
    assert_eq!(framed(&mut p, head, true, Some(0)), (Framing::None, true));
    assert_eq!(p.headers["content-length"], "42");
    let mut p = parts(200, &[]);
    assert_eq!(framed(&mut p, head, false, Some(9)).0, Framing::None);
    assert_eq!(
        p.headers["content-length"], "9",
        "sluice's own answer to a HEAD"
    );
    for status in [204, 304, 103] {
        let mut p = parts(status, &[]);
        assert_eq!(
            framed(&mut p, GET11, false, Some(4)).0,
            Framing::None,
            "{status}"
        );
        assert!(!p.headers.contains_key("content-length"), "{status}");
    }
}

#[test]
fn switches_carry_no_framing_and_no_connection_header_of_ours() {
    let mut p = parts(101, &[("upgrade", "websocket"), ("connection", "upgrade")]);
    let closing = Asked {
        keep_alive: false,
        ..GET11
    };
    assert_eq!(framed(&mut p, closing, true, Some(0)).0, Framing::None);
    assert_eq!(p.headers["connection"], "upgrade");
    let connect = Asked {
        connect: true,
        ..GET11
    };
    let mut p = parts(200, &[]);
    assert_eq!(framed(&mut p, connect, true, Some(0)).0, Framing::None);
    assert!(!p.headers.contains_key("content-length"), "RFC 9110 §9.3.6");
    assert!(!p.headers.contains_key("connection"));
    let mut p = parts(403, &[]);
    assert_eq!(
        framed(&mut p, connect, false, Some(3)).0,
        Framing::Length,
        "a refusal is a response"
    );
}

#[test]
fn a_closing_connection_says_so() {
    let closing = Asked {
        keep_alive: false,
        ..GET11
    };
    let mut p = parts(200, &[]);
    assert_eq!(
        framed(&mut p, closing, false, Some(1)),
        (Framing::Length, false)
    );
    assert_eq!(p.headers["connection"], "close");
}

#[test]
fn the_head_is_a_status_line_then_the_headers() {
    let mut p = parts(404, &[("x-a", "1"), ("x-a", "2")]);
    p.headers.insert("date", HeaderValue::from_static("d"));
    let text = String::from_utf8(encode_head(&p).to_vec()).unwrap();
    assert_eq!(
        text,
        "HTTP/1.1 404 Not Found\r\nx-a: 1\r\nx-a: 2\r\ndate: d\r\n\r\n"
    );
    let odd = parts(599, &[]);
    assert!(String::from_utf8(encode_head(&odd).to_vec())
        .unwrap()
        .starts_with("HTTP/1.1 599 Unknown\r\n"));
}

#[tokio::test]
async fn the_sink_writes_everything_in_order_through_partial_writes() {
    // A pipe of 7 bytes: every write is partial, and vectored writes split mid-slice.
    let (mut tx, mut rx) = tokio::io::duplex(7);
    let mut sink = Sink::default();
    sink.push(Bytes::from_static(b"HEAD\r\n"));
    sink.push_chunk(Bytes::from(vec![b'x'; 26]));
    sink.push_chunk(Bytes::new());
    sink.push(Bytes::from_static(b"0\r\n\r\n"));
    let expected = format!("HEAD\r\n1a\r\n{}\r\n0\r\n\r\n", "x".repeat(26));
    assert_eq!(sink.queued(), expected.len());
    let reader = tokio::spawn(async move {
        let mut got = vec![0u8; expected.len()];
        rx.read_exact(&mut got).await.unwrap();
        (String::from_utf8(got).unwrap(), expected)
    });
    std::future::poll_fn(|cx| sink.poll_write_all(&mut tx, cx))
        .await
        .unwrap();
    assert_eq!(sink.queued(), 0);
    let (got, expected) = reader.await.unwrap();
    assert_eq!(got, expected);
}
