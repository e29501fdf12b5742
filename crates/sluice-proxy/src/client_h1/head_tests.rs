use super::*;

fn parse_str(raw: &str) -> Result<Option<ReqHead>, Refusal> {
    parse(&mut BytesMut::from(raw), &HeadLimits::default())
}

fn head(raw: &str) -> ReqHead {
    parse_str(raw).unwrap().unwrap()
}

fn refused(raw: &str) -> Refusal {
    parse_str(raw).unwrap_err()
}

#[test]
fn a_head_is_parsed_and_consumed_leaving_what_follows() {
    let mut buf = BytesMut::from(
        "GET /p?q=1 HTTP/1.1\r\nHost: api.test\r\nX-A: 1\r\nX-A: 2\r\n\r\nGET /next",
    );
    let h = parse(&mut buf, &HeadLimits::default()).unwrap().unwrap();
    assert_eq!(h.parts.method, Method::GET);
    assert_eq!(h.parts.uri, "/p?q=1");
    assert_eq!(h.parts.version, Version::HTTP_11);
    assert_eq!(h.parts.headers["host"], "api.test");
    let xa: Vec<_> = h.parts.headers.get_all("x-a").iter().collect();
    assert_eq!(xa, ["1", "2"]);
    assert_eq!(h.body, BodyState::Done);
    assert!(h.keep_alive);
    assert!(!h.expect_continue);
    assert_eq!(&buf[..], b"GET /next", "a pipelined request stays");
}

#[test]
fn a_head_arriving_in_pieces_parses_once_whole_whatever_the_split() {
    let raw = b"POST /u HTTP/1.1\r\nHost: a.test\r\nContent-Length: 3\r\n\r\nabc";
    let head_len = raw.len() - 3;
    for split in 0..raw.len() {
        let mut buf = BytesMut::from(&raw[..split]);
        let first = parse(&mut buf, &HeadLimits::default()).unwrap();
        assert_eq!(first.is_some(), split >= head_len, "split at {split}");
        if first.is_some() {
            continue;
        }
        assert_eq!(buf.len(), split, "an incomplete head is left as it is");
        buf.extend_from_slice(&raw[split..]);
        let h = parse(&mut buf, &HeadLimits::default()).unwrap().unwrap();
        assert_eq!(h.body, BodyState::Length(3), "split at {split}");
        assert_eq!(&buf[..], b"abc");
    }
}

#[test]
fn content_length_must_be_digits_and_agree() {
    let with = |v: &str| {
        parse_str(&format!(
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: {v}\r\n\r\n"
        ))
    };
    assert_eq!(with("5").unwrap().unwrap().body, BodyState::Length(5));
    assert_eq!(with("5, 5").unwrap().unwrap().body, BodyState::Length(5));
    assert_eq!(with("0").unwrap().unwrap().body, BodyState::Done);
    for bad in [
        "+5",
        "-1",
        "0x5",
        "",
        "5 5",
        "1e3",
        "99999999999999999999999",
    ] {
        let e = with(bad).unwrap_err();
        assert_eq!(e.cause, Cause::BadRequest, "{bad:?}");
        assert!(
            e.detail.starts_with("invalid Content-Length"),
            "{bad:?}: {}",
            e.detail
        );
    }
    let e = refused("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n");
    assert_eq!(e.detail, "conflicting Content-Length values");
    let e = with("5, 6").unwrap_err();
    assert_eq!(e.detail, "conflicting Content-Length values");
}

#[test]
fn transfer_encoding_must_be_chunked_alone_on_http_1_1() {
    let te = |v: &str| {
        parse_str(&format!(
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: {v}\r\n\r\n"
        ))
    };
    for ok in ["chunked", "Chunked", " chunked "] {
        assert!(
            matches!(te(ok).unwrap().unwrap().body, BodyState::Chunked(_)),
            "{ok:?}"
        );
    }
    for (bad, cause) in [
        ("gzip, chunked", Cause::NotImplemented),
        ("chunked, gzip", Cause::BadRequest),
        ("xchunked", Cause::BadRequest),
        ("chunked, identity", Cause::BadRequest),
        ("identity", Cause::BadRequest),
        ("", Cause::BadRequest),
    ] {
        assert_eq!(te(bad).unwrap_err().cause, cause, "{bad:?}");
    }
    // CL.TE and TE.CL: framed two ways, refused whichever comes first.
    for raw in [
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n",
    ] {
        let e = refused(raw);
        assert_eq!(
            e.detail,
            "the request has both Content-Length and Transfer-Encoding"
        );
    }
    let e = refused("POST / HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n");
    assert_eq!(e.detail, "Transfer-Encoding in an HTTP/1.0 request");
    let two = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n";
    assert!(parse_str(two).is_err(), "chunked twice is refused");
}

#[test]
fn obsolete_and_ambiguous_header_syntax_is_refused() {
    for raw in [
        "GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n folded\r\n\r\n",
        "GET / HTTP/1.1\r\nHost : a\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\nX-A: a\rb\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\nX-A: a\0b\r\n\r\n",
        "GET / HTTP/2.0\r\nHost: a\r\n\r\n",
        "GET  / HTTP/1.1\r\nHost: a\r\n\r\n",
        "G(T / HTTP/1.1\r\nHost: a\r\n\r\n",
    ] {
        assert_eq!(refused(raw).cause, Cause::BadRequest, "{raw:?}");
    }
}

#[test]
fn persistence_and_expect_follow_the_version() {
    assert!(!head("GET / HTTP/1.0\r\nHost: a\r\n\r\n").keep_alive);
    assert!(head("GET / HTTP/1.0\r\nHost: a\r\nConnection: Keep-Alive\r\n\r\n").keep_alive);
    assert!(!head("GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, close\r\n\r\n").keep_alive);
    let h = head("PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\n");
    assert!(h.expect_continue);
    let h = head("PUT / HTTP/1.0\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n");
    assert!(!h.expect_continue, "an HTTP/1.0 client cannot take a 100");
}

#[test]
fn a_connect_has_no_body_and_keeps_its_authority() {
    let h =
        head("CONNECT api.test:443 HTTP/1.1\r\nHost: api.test:443\r\nContent-Length: 5\r\n\r\n");
    assert_eq!(h.body, BodyState::Done);
    assert_eq!(h.parts.uri.authority().unwrap(), "api.test:443");
}

/// Each limit of `l`: at it the head parses, one byte (or header) over it is refused.
fn edges(l: HeadLimits) {
    let parse_with = |raw: &str| parse(&mut BytesMut::from(raw), &l);
    let target = |n: usize| format!("GET /{} HTTP/1.1\r\n", "a".repeat(n));
    // The request line alone: "GET /" + n + " HTTP/1.1\r" is n + 15 bytes before the LF.
    let fits = l.line - 15;
    assert!(parse_with(&(target(fits) + "Host: a\r\n\r\n"))
        .unwrap()
        .is_some());
    let e = parse_with(&(target(fits + 1) + "Host: a\r\n\r\n")).unwrap_err();
    assert_eq!(e.cause, Cause::UriTooLong);
    assert!(e.detail.contains(&format!("{} bytes", l.line)), "{e:?}");
    // Still incomplete, but already too long.
    assert_eq!(
        parse_with(&target(l.line)[..l.line + 2]).unwrap_err().cause,
        Cause::UriTooLong
    );
    let big = |n: usize| format!("GET / HTTP/1.1\r\nHost: a\r\nX: {}\r\n\r\n", "b".repeat(n));
    let overhead = big(0).len();
    assert!(parse_with(&big(l.head - overhead)).unwrap().is_some());
    let e = parse_with(&big(l.head - overhead + 1)).unwrap_err();
    assert_eq!(e.cause, Cause::RequestHeaderTooLarge);
    assert!(e.detail.contains("max_request_head"), "{e:?}");
    let partial = format!("GET / HTTP/1.1\r\nX: {}", "b".repeat(l.head));
    assert_eq!(
        parse_with(&partial).unwrap_err().cause,
        Cause::RequestHeaderTooLarge
    );
    let many = |n: usize| {
        let mut s = String::from("GET / HTTP/1.1\r\n");
        for i in 0..n {
            s.push_str(&format!("X-{i}: v\r\n"));
        }
        s + "\r\n"
    };
    assert!(parse_with(&many(l.headers)).unwrap().is_some());
    let e = parse_with(&many(l.headers + 1)).unwrap_err();
    assert_eq!(e.cause, Cause::RequestHeaderTooLarge);
    assert!(e.detail.contains("max_request_headers"), "{e:?}");
}

#[test]
fn oversized_heads_are_414_or_431_at_their_limits() {
    edges(HeadLimits::default());
    edges(HeadLimits {
        line: 100,
        head: 1024,
        headers: 5,
    });
    // More headers than the stack holds: parsed into a vector.
    edges(HeadLimits {
        line: 64 * 1024,
        head: 1024 * 1024,
        headers: 500,
    });
}

#[test]
fn only_connect_takes_an_authority_form_target() {
    for bad in [
        "GET admin HTTP/1.1",
        "GET api.test:80 HTTP/1.1",
        "POST a/b HTTP/1.1",
    ] {
        let e = refused(&format!("{bad}\r\nHost: a\r\n\r\n"));
        assert_eq!(e.cause, Cause::BadRequest, "{bad}");
        assert!(e.detail.contains("origin-form"), "{e:?}");
    }
    for good in [
        "GET / HTTP/1.1",
        "GET http://a/x HTTP/1.1",
        "OPTIONS * HTTP/1.1",
    ] {
        assert!(parse_str(&format!("{good}\r\nHost: a\r\n\r\n"))
            .unwrap()
            .is_some());
    }
    assert!(parse_str("CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n")
        .unwrap()
        .is_some());
}

#[test]
fn equal_content_lengths_are_forwarded_as_one() {
    for raw in [
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 005\r\n\r\n",
    ] {
        let h = head(raw);
        let values: Vec<_> = h.parts.headers.get_all("content-length").iter().collect();
        assert_eq!(values, ["5"], "{raw:?}");
        assert_eq!(h.body, BodyState::Length(5));
    }
}
