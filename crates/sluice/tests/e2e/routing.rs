//! Routing and the request head: which origin a request reaches (by `Host`, by the
//! authority of an absolute-form request, by wildcard and path prefix, over TCP and Unix
//! sockets), what sluice answers when it cannot route, and which headers the origin sees.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use sluice_testkit::{
    bytes::Bytes,
    get, get_unix,
    http::{Method, Request},
    http_body_util::Empty,
    raw, scratch_dir, send, Certs, Origin, RawConn, Response, Sluice,
};
use std::{net::SocketAddr, time::Duration};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

const SLUICE: &str = env!("CARGO_BIN_EXE_sluice");

/// The request counters of `origins`, in order: compare two snapshots to see which
/// origin a request reached.
fn requests(origins: &[&Origin]) -> Vec<u64> {
    origins.iter().map(|o| o.requests()).collect()
}

/// Which of `origins` received exactly one request between two snapshots; panics unless
/// exactly one did.
fn served_by(before: &[u64], after: &[u64]) -> usize {
    let moved: Vec<usize> = (0..before.len())
        .filter(|&i| after[i] != before[i])
        .collect();
    assert_eq!(
        moved.len(),
        1,
        "expected exactly one origin to be reached; counters went from {before:?} to {after:?}"
    );
    assert_eq!(after[moved[0]], before[moved[0]] + 1, "one request, once");
    moved[0]
}

/// A backend entry (YAML list item, four-space indented) for a TLS origin whose
/// certificate is for `sni` and signed by the CA of `certs`.
fn tls_backend(name: &str, origin: &Origin, sni: &str, certs: &Certs) -> String {
    format!(
        "  - name: {name}\n    servers: [\"{}\"]\n    tls: {{sni: {sni}, ca_file: \"{}\"}}\n",
        origin.server_spec(),
        certs.ca_file().display()
    )
}

/// A backend entry for a plain-HTTP origin (TCP or Unix socket).
fn plain_backend(name: &str, origin: &Origin) -> String {
    format!(
        "  - name: {name}\n    servers: [\"{}\"]\n",
        origin.server_spec()
    )
}

/// A config with one listener `egress` bound to `bind` and the given routes/backends.
fn config(bind: &str, routes: &str, backends: &str) -> String {
    format!(
        "log: {{format: json}}\nlisteners: [{{name: egress, bind: \"{bind}\"}}]\nroutes:\n{routes}backends:\n{backends}"
    )
}

/// Writes `bytes` to a fresh TCP connection and reads until the server closes it (the
/// requests sent this way say `Connection: close`, are HTTP/1.0, or are malformed, so the
/// server closes after one response). Unlike the testkit's `raw`, this does not
/// half-close the connection after writing: see
/// [`a_client_that_half_closes_after_its_request_still_gets_the_response`].
async fn exchange(addr: SocketAddr, bytes: &[u8]) -> String {
    let work = async {
        let mut stream = TcpStream::connect(addr).await?;
        stream.write_all(bytes).await?;
        let mut received = Vec::new();
        stream.read_to_end(&mut received).await?;
        Ok::<_, std::io::Error>(String::from_utf8_lossy(&received).into_owned())
    };
    match tokio::time::timeout(Duration::from_secs(30), work).await {
        Ok(Ok(text)) => text,
        Ok(Err(e)) => panic!("raw exchange with {addr}: {e}"),
        Err(_) => panic!("raw exchange with {addr}: no close within 30s"),
    }
}

/// A response read off a raw socket: status code, headers (lower-cased names), body.
struct RawResponse {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl RawResponse {
    fn parse(text: &str) -> Self {
        let (head, body) = text
            .split_once("\r\n\r\n")
            .unwrap_or_else(|| panic!("no complete response head in {text:?}"));
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let status = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad status line {status_line:?} in {text:?}"));
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        Self {
            status,
            headers,
            body: body.to_owned(),
        }
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Two TLS origins behind one TCP listener, chosen by `Host`: each request reaches the
/// origin its host names, over verified TLS, with `Host` kept as the client sent it and
/// the forwarding headers (`X-Forwarded-For: 127.0.0.1`, `X-Forwarded-Proto: http`) added.
#[tokio::test]
async fn requests_are_routed_by_host_to_the_right_tls_origin() {
    let certs_a = Certs::new(&["a.test"]);
    let certs_b = Certs::new(&["b.test"]);
    let origin_a = Origin::builder().tls(&certs_a).start().await;
    let origin_b = Origin::builder().tls(&certs_b).start().await;
    let yaml = config(
        "127.0.0.1:0",
        "  - {host: a.test, backend: a}\n  - {host: b.test, backend: b}\n",
        &(tls_backend("a", &origin_a, "a.test", &certs_a)
            + &tls_backend("b", &origin_b, "b.test", &certs_b)),
    );
    let sluice = Sluice::start(SLUICE, &yaml).await;
    let egress = sluice.listener_addr("egress");
    let origins = [&origin_a, &origin_b];

    for (host, expected) in [
        ("a.test", 0),
        ("b.test", 1),
        ("a.test", 0),
        ("B.Test:8080", 1),
    ] {
        let before = requests(&origins);
        let response = get(egress, host, "/hello?x=1").await;
        assert_eq!(response.status, 200, "{host}: {}", response.text());
        assert_eq!(response.text(), "hello from origin");
        assert_eq!(
            served_by(&before, &requests(&origins)),
            expected,
            "Host: {host} reached the wrong origin"
        );
        assert_eq!(
            response.header("x-origin-host"),
            Some(host),
            "Host is preserved"
        );
        assert_eq!(response.header("x-origin-path"), Some("/hello?x=1"));
        assert_eq!(response.header("x-origin-xff"), Some("127.0.0.1"));
        assert_eq!(response.header("x-origin-xfp"), Some("http"));
        assert_eq!(response.header("sluice-error"), None);
    }
    assert_eq!(origin_a.stats().handshake_failures, 0);
    assert_eq!(origin_b.stats().handshake_failures, 0);
}

/// A Unix-socket listener (how PHP-FPM and friends often talk to sluice) routes like a
/// TCP one: to a TLS origin over TCP, and to a plain origin on a Unix socket. Unix
/// clients have no IP, so no `X-Forwarded-For` is invented for them.
#[tokio::test]
async fn a_unix_socket_listener_routes_to_tls_and_unix_socket_origins() {
    let certs = Certs::new(&["secure.test"]);
    let tls_origin = Origin::builder().tls(&certs).start().await;
    let unix_origin = Origin::builder().unix().start().await;
    let dir = scratch_dir();
    let socket = dir.path().join("egress.sock");
    let yaml = config(
        &format!("unix:{}", socket.display()),
        "  - {host: secure.test, backend: secure}\n  - {host: local.test, backend: local}\n",
        &(tls_backend("secure", &tls_origin, "secure.test", &certs)
            + &plain_backend("local", &unix_origin)),
    );
    let sluice = Sluice::start(SLUICE, &yaml).await;
    assert_eq!(sluice.listener_path("egress"), socket);
    let origins = [&tls_origin, &unix_origin];

    let before = requests(&origins);
    let response = get_unix(&socket, "secure.test", "/over/tls").await;
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(served_by(&before, &requests(&origins)), 0);
    assert_eq!(response.header("x-origin-host"), Some("secure.test"));
    assert_eq!(response.header("x-origin-path"), Some("/over/tls"));
    assert_eq!(response.header("x-origin-xfp"), Some("http"));
    assert_eq!(
        response.header("x-origin-xff"),
        None,
        "a Unix-socket client has no address to forward"
    );

    let before = requests(&origins);
    let response = get_unix(&socket, "local.test", "/over/unix").await;
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(served_by(&before, &requests(&origins)), 1);
    assert_eq!(response.header("x-origin-host"), Some("local.test"));
    assert_eq!(response.header("x-origin-path"), Some("/over/unix"));
    assert_eq!(unix_origin.accepted(), 1);
}

/// Route selection end to end: an exact host beats a wildcard, a wildcard matches any
/// depth of subdomain but not the apex, the longest matching path prefix wins, and when
/// no prefix of the exact host matches, the wildcard rule is used instead.
#[tokio::test]
async fn wildcard_hosts_and_the_longest_path_prefix_pick_the_route() {
    let wildcard = Origin::start().await;
    let v2 = Origin::start().await;
    let v2_admin = Origin::start().await;
    let routes = [
        "  - {host: \"*.example.test\", backend: wildcard}\n",
        "  - {host: api.example.test, path_prefix: /v2, backend: v2}\n",
        "  - {host: api.example.test, path_prefix: /v2/admin, backend: v2-admin}\n",
    ]
    .concat();
    let yaml = config(
        "127.0.0.1:0",
        &routes,
        &(plain_backend("wildcard", &wildcard)
            + &plain_backend("v2", &v2)
            + &plain_backend("v2-admin", &v2_admin)),
    );
    let sluice = Sluice::start(SLUICE, &yaml).await;
    let egress = sluice.listener_addr("egress");
    let origins = [&wildcard, &v2, &v2_admin];

    for (host, path, expected, why) in [
        ("www.example.test", "/", 0, "wildcard matches a subdomain"),
        ("a.b.example.test", "/x", 0, "wildcard matches any depth"),
        ("api.example.test", "/v2/users", 1, "exact host, prefix /v2"),
        ("api.example.test", "/v2/admin/x", 2, "longest prefix wins"),
        (
            "API.EXAMPLE.TEST",
            "/v2/admin",
            2,
            "hosts are case-insensitive",
        ),
        (
            "api.example.test",
            "/v1",
            0,
            "no exact prefix matches: wildcard",
        ),
    ] {
        let before = requests(&origins);
        let response = get(egress, host, path).await;
        assert_eq!(response.status, 200, "{host}{path}: {}", response.text());
        assert_eq!(
            served_by(&before, &requests(&origins)),
            expected,
            "{host}{path}: {why}"
        );
        assert_eq!(response.header("x-origin-path"), Some(path));
    }

    let apex = get(egress, "example.test", "/").await;
    assert_eq!(apex.status, 404, "*.example.test must not match the apex");
    assert_eq!(apex.header("sluice-error"), Some("no_route"));
}

/// Forward-proxy style: `GET http://host/path` (absolute form, as curl sends with
/// `--proxy`) is routed by the URI's authority, which wins over a `Host` header, and
/// reaches the origin in origin form (`GET /path`) with that authority as `Host`.
#[tokio::test]
async fn an_absolute_form_request_is_routed_by_its_authority_and_sent_in_origin_form() {
    let origin_a = Origin::start().await;
    let origin_b = Origin::start().await;
    let yaml = config(
        "127.0.0.1:0",
        "  - {host: a.test, backend: a}\n  - {host: b.test, backend: b}\n",
        &(plain_backend("a", &origin_a) + &plain_backend("b", &origin_b)),
    );
    let sluice = Sluice::start(SLUICE, &yaml).await;
    let egress = sluice.listener_addr("egress");
    let origins = [&origin_a, &origin_b];

    let before = requests(&origins);
    let answer = exchange(
        egress,
        b"GET http://a.test/x?q=1 HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n",
    )
    .await;
    let response = RawResponse::parse(&answer);
    assert_eq!(response.status, 200, "{answer}");
    assert_eq!(served_by(&before, &requests(&origins)), 0);
    assert_eq!(
        response.header("x-origin-uri"),
        Some("/x?q=1"),
        "origin form"
    );
    assert_eq!(response.header("x-origin-host"), Some("a.test"));
    assert_eq!(response.body, "hello from origin");

    let before = requests(&origins);
    let answer = exchange(
        egress,
        b"GET http://b.test/x HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n",
    )
    .await;
    let response = RawResponse::parse(&answer);
    assert_eq!(response.status, 200, "{answer}");
    assert_eq!(
        served_by(&before, &requests(&origins)),
        1,
        "the absolute URI's authority wins over Host (RFC 9112 3.2.2)"
    );
    assert_eq!(response.header("x-origin-uri"), Some("/x"));
    assert_eq!(response.header("x-origin-host"), Some("b.test"));
}

/// A host with no route gets a 404 from sluice itself, marked `sluice-error: no_route`,
/// whose body names the host, so a misconfigured app sees at once what went wrong.
#[tokio::test]
async fn an_unknown_host_gets_404_no_route_naming_the_host() {
    let origin = Origin::start().await;
    let yaml = config(
        "127.0.0.1:0",
        "  - {host: known.test, backend: app}\n",
        &plain_backend("app", &origin),
    );
    let sluice = Sluice::start(SLUICE, &yaml).await;

    let response = get(sluice.listener_addr("egress"), "unknown.test", "/").await;
    assert_eq!(response.status, 404);
    assert_eq!(response.header("sluice-error"), Some("no_route"));
    assert!(
        response.text().contains("unknown.test"),
        "the body should name the host: {:?}",
        response.text()
    );
    assert!(response.header("x-request-id").is_some());
    assert_eq!(origin.requests(), 0);
    assert_eq!(origin.accepted(), 0);

    let entry = &sluice.wait_for_access_log(1).await[0]["fields"];
    assert_eq!(entry["status"], 404);
    assert_eq!(entry["cause"], "no_route");
    assert_eq!(entry["host"], "unknown.test");
}

/// Requests sluice cannot route are answered 400 and never forwarded: an HTTP/1.0
/// request without `Host` (`sluice-error: missing_host`), and bytes that are not HTTP at
/// all (answered by the HTTP parser, logged as `malformed request`). Neither disturbs the
/// proxy: the next request is served normally.
#[tokio::test]
async fn requests_without_a_host_or_malformed_get_400_and_the_proxy_keeps_serving() {
    let origin = Origin::start().await;
    let yaml = config(
        "127.0.0.1:0",
        "  - {host: \"*\", backend: app}\n",
        &plain_backend("app", &origin),
    );
    let sluice = Sluice::start(SLUICE, &yaml).await;
    let egress = sluice.listener_addr("egress");

    let answer = exchange(egress, b"GET / HTTP/1.0\r\n\r\n").await;
    let response = RawResponse::parse(&answer);
    assert_eq!(response.status, 400, "{answer}");
    assert_eq!(response.header("sluice-error"), Some("missing_host"));

    for garbage in [
        &b"BLAH\r\n\r\n"[..],
        b"GET / HTTP/9.9 extra\r\nHost: x\r\n\r\n",
    ] {
        let answer = exchange(egress, garbage).await;
        assert!(
            answer.starts_with("HTTP/1.1 400"),
            "{:?} should get 400, got {answer:?}",
            String::from_utf8_lossy(garbage)
        );
    }
    sluice
        .wait_for_stderr(|l| l.contains("malformed request") && l.contains("bad_request"))
        .await;

    assert_eq!(origin.requests(), 0, "nothing unroutable is forwarded");
    let next = get(egress, "app.test", "/after").await;
    assert_eq!(next.status, 200, "{}", next.text());
    assert_eq!(next.header("x-origin-path"), Some("/after"));
    assert_eq!(origin.requests(), 1);
}

/// Hop-by-hop headers describe the client's connection to sluice and must not leak to
/// the origin (RFC 9110 7.6.1): `Connection` and the headers it names, `Keep-Alive`,
/// `Proxy-Connection`, `TE`, `Upgrade`, `Proxy-Authorization` (a proxy credential must
/// never reach a third party). Ordinary headers pass through untouched.
#[tokio::test]
async fn hop_by_hop_headers_stop_at_sluice_and_ordinary_headers_pass() {
    let origin = Origin::start().await;
    let yaml = config(
        "127.0.0.1:0",
        "  - {host: \"*\", backend: app}\n",
        &plain_backend("app", &origin),
    );
    let sluice = Sluice::start(SLUICE, &yaml).await;

    let request = Request::builder()
        .method(Method::GET)
        .uri("/headers")
        .header("host", "app.test")
        .header("connection", "x-foo")
        .header("x-foo", "named by Connection")
        .header("keep-alive", "timeout=5")
        .header("proxy-connection", "keep-alive")
        // `TE: trailers` passes (gRPC needs it); any other TE is the hop's.
        .header("te", "gzip")
        .header("upgrade", "websocket")
        .header("proxy-authorization", "Basic c2VjcmV0OnNlY3JldA==")
        .header("x-ordinary", "yes")
        .header("accept", "text/plain")
        .header("user-agent", "sluice-tests")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let response: Response = send(sluice.listener_addr("egress"), request)
        .await
        .expect("request through sluice");
    assert_eq!(response.status, 200, "{}", response.text());

    for hop in [
        "connection",
        "x-foo",
        "keep-alive",
        "proxy-connection",
        "te",
        "upgrade",
        "proxy-authorization",
    ] {
        assert!(
            !response.origin_saw(hop),
            "the origin received hop-by-hop header {hop}: {:?}",
            response.header("x-origin-headers")
        );
    }
    for ordinary in ["host", "x-ordinary", "accept", "user-agent"] {
        assert!(
            response.origin_saw(ordinary),
            "the origin did not receive {ordinary}: {:?}",
            response.header("x-origin-headers")
        );
    }
}

/// Every response carries an `X-Request-Id` that the origin also received and the
/// access log records, so one id follows a request through all three. A client that
/// brings its own id keeps it end to end.
#[tokio::test]
async fn request_ids_are_generated_or_passed_through_and_echoed() {
    let origin = Origin::start().await;
    let yaml = config(
        "127.0.0.1:0",
        "  - {host: \"*\", backend: app}\n",
        &plain_backend("app", &origin),
    );
    let sluice = Sluice::start(SLUICE, &yaml).await;
    let egress = sluice.listener_addr("egress");

    let generated = get(egress, "app.test", "/one").await;
    assert_eq!(generated.status, 200);
    let id = generated
        .header("x-request-id")
        .expect("sluice adds x-request-id to every response")
        .to_owned();
    assert!(!id.is_empty());
    assert!(
        generated.origin_saw("x-request-id"),
        "the origin gets the id too"
    );

    let request = Request::builder()
        .uri("/two")
        .header("host", "app.test")
        .header("x-request-id", "client-chosen-42")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let passed = send(egress, request).await.expect("request through sluice");
    assert_eq!(passed.status, 200);
    assert_eq!(passed.header("x-request-id"), Some("client-chosen-42"));
    assert!(passed.origin_saw("x-request-id"));

    let another = get(egress, "app.test", "/three").await;
    assert_ne!(
        another.header("x-request-id"),
        Some(id.as_str()),
        "generated ids are unique"
    );

    let log = sluice.wait_for_access_log(3).await;
    let logged_id = |path: &str| {
        log.iter()
            .find(|e| e["fields"]["path"] == path)
            .unwrap_or_else(|| panic!("no access log entry for {path}: {log:?}"))["fields"]
            ["request_id"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(logged_id("/one"), id);
    assert_eq!(logged_id("/two"), "client-chosen-42");
}

/// With `half_close: true`, a client may shut down its sending side once its request
/// is written and then wait for the answer (`printf 'GET ...' | nc -N`, the testkit's
/// `raw`, some HTTP/1.0 clients): the request is still forwarded and answered.
#[tokio::test]
async fn with_half_close_a_client_that_shuts_down_its_sending_side_still_gets_the_response() {
    let origin = Origin::start().await;
    let yaml = format!(
        "log: {{format: json}}\nlisteners: [{{name: egress, bind: \"127.0.0.1:0\", half_close: true}}]\nroutes:\n  - {{host: \"*\", backend: app}}\nbackends:\n{}",
        plain_backend("app", &origin)
    );
    let sluice = Sluice::start(SLUICE, &yaml).await;

    // `raw` writes the request, then half-closes the connection, then reads to the end.
    let answer = raw(
        sluice.listener_addr("egress"),
        b"GET /half-closed HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(
        answer.starts_with("HTTP/1.1 200"),
        "expected the origin's answer, got {answer:?}"
    );
    let response = RawResponse::parse(&answer);
    assert_eq!(response.header("x-origin-path"), Some("/half-closed"));
    assert_eq!(origin.requests(), 1);
}

/// By default (like NGINX and Envoy) a client whose FIN arrives while its request is in
/// flight is taken as gone: its request is cancelled and logged as `client_closed`
/// with status 499, and it gets no answer.
#[tokio::test]
async fn by_default_a_client_that_shuts_down_its_sending_side_is_taken_as_gone() {
    let origin = Origin::builder()
        .delay(Duration::from_secs(30))
        .start()
        .await;
    let yaml = config(
        "127.0.0.1:0",
        "  - {host: \"*\", backend: app}\n",
        &plain_backend("app", &origin),
    );
    let sluice = Sluice::start(SLUICE, &yaml).await;

    let mut conn = RawConn::connect(sluice.listener_addr("egress")).await;
    conn.send(b"GET /half-closed HTTP/1.1\r\nHost: app.test\r\n\r\n")
        .await;
    origin.wait_until(|s| s.in_flight == 1).await;
    conn.shutdown_write().await;
    let (answer, _) = conn.read_to_end(Duration::from_secs(10)).await;
    assert_eq!(answer, "", "no answer for a client that left");
    let entry = &sluice.wait_for_access_log(1).await[0]["fields"];
    assert_eq!(entry["status"], 499);
    assert_eq!(entry["cause"], "client_closed");
    assert_eq!(entry["complete"], false);
    // The upstream exchange is cancelled at once, long before the 30 s the origin takes.
    origin
        .wait_until(|s| s.closed == 1 && s.in_flight == 0)
        .await;
}
