//! Forward-proxy listeners (issue 10, items 2-5) driven by real clients: curl `-x`
//! (absolute form for `http://`, CONNECT for `https://`), Python `requests` with
//! `proxies=`, PHP curl with `CURLOPT_PROXY` and a fresh handle per call (the PHP-FPM
//! case) over TCP and a Unix socket. Destinations resolve through a test DNS server
//! to in-process origins on loopback; the policy only lets through what the config
//! names (`cidr: 127.0.0.1/32` on the origins' ports), so every loopback or private
//! address is otherwise denied, and the origins bound there count that nothing
//! reached them.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use sluice_testkit::{scratch_dir, Certs, Origin, RawConn, Sluice, TestDns};
use std::net::IpAddr;
use std::time::Duration;
use tokio::process::Command;

const SLUICE: &str = env!("CARGO_BIN_EXE_sluice");
const CLIENT_WAIT: Duration = Duration::from_secs(60);

struct Setup {
    sluice: Sluice,
    dns: TestDns,
    plain: Origin,
    secure: Origin,
    /// An origin on 127.0.0.2, which no rule allows: it must see nothing.
    forbidden: Origin,
    certs: Certs,
    _dir: sluice_testkit::tempfile::TempDir,
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// `allow`: more rules for the policy's allow list; `extra`: more `forward` settings.
async fn setup(allow: &str, extra: &str) -> Setup {
    let dns = TestDns::start().await;
    let certs = Certs::new(&["secure.example.test"]);
    let plain = Origin::start().await;
    let secure = Origin::builder().tls(&certs).start().await;
    let forbidden = Origin::builder().bind_ip(ip("127.0.0.2")).start().await;
    for name in ["plain.example.test", "secure.example.test"] {
        dns.set(name, &[ip("127.0.0.1")], 60);
    }
    dns.set("private.example.test", &[ip("10.0.0.1")], 60);
    dns.set("forbidden.example.test", &[ip("127.0.0.2")], 60);
    let dir = scratch_dir();
    let forward = format!(
        r#"
      originate_tls: ["secure.example.test"]
      connect: {{ports: [{sp}]}}
      destination: {{tls: {{ca_file: "{ca}"}}, timeouts: {{connect: 500ms}}, dns: {{min_ttl: 100ms, max_ttl: 200ms, retry_interval: 100ms}}}}
      audit_log: true
      policy:
        allow: [{{cidr: 127.0.0.1/32, ports: [{pp}, {sp}]}}{allow}]{extra}"#,
        sp = secure.addr().port(),
        pp = plain.addr().port(),
        ca = certs.ca_file().display(),
    );
    let yaml = format!(
        r#"
log: {{format: json}}
admin: {{bind: "127.0.0.1:0"}}
resolver: {{nameservers: ["{dns}"]}}
listeners:
  - name: proxy
    bind: "127.0.0.1:0"
    forward:{forward}
  - name: unix
    bind: "unix:{sock}"
    forward:{forward}
  - name: plain
    bind: "127.0.0.1:0"
routes: [{{host: routed.example.test, backend: routed}}]
backends: [{{name: routed, servers: ["{plain}"]}}]
"#,
        dns = dns.addr(),
        sock = dir.path().join("proxy.sock").display(),
        plain = plain.server_spec(),
    );
    let sluice = Sluice::start(SLUICE, &yaml).await;
    Setup {
        sluice,
        dns,
        plain,
        secure,
        forbidden,
        certs,
        _dir: dir,
    }
}

impl Setup {
    fn proxy(&self) -> String {
        format!("http://{}", self.sluice.listener_addr("proxy"))
    }

    fn plain_url(&self, path: &str) -> String {
        format!(
            "http://plain.example.test:{}{path}",
            self.plain.addr().port()
        )
    }

    /// `http://`: sluice originates TLS on the same port.
    fn secure_url(&self, path: &str) -> String {
        format!(
            "http://secure.example.test:{}{path}",
            self.secure.addr().port()
        )
    }

    async fn opened(&self) -> f64 {
        let m = self.sluice.metrics().await;
        m.lines()
            .filter(|l| l.starts_with("sluice_upstream_connections_opened_total{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }
}

/// Runs a client to its end (bounded) and returns its exit status and stdout.
async fn run(program: &str, args: &[&str]) -> (bool, String) {
    let out = tokio::time::timeout(CLIENT_WAIT, Command::new(program).args(args).output())
        .await
        .unwrap_or_else(|_| panic!("{program} did not finish within {CLIENT_WAIT:?}"))
        .unwrap_or_else(|e| panic!("{program}: {e} (scripts/test-deps.sh installs it)"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        eprintln!("{program} stderr: {}", String::from_utf8_lossy(&out.stderr));
    }
    (out.status.success(), stdout)
}

/// curl through the proxy: `-w` prints the status after the body.
async fn curl(args: &[&str]) -> (u16, String) {
    let mut all = vec!["-sS", "--max-time", "20", "-w", "\n%{http_code}"];
    all.extend_from_slice(args);
    let (_, out) = run("curl", &all).await;
    let (body, code) = out.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

#[tokio::test]
async fn curl_reaches_plain_and_originated_tls_destinations_and_tunnels_https() {
    let s = setup("", "").await;
    let proxy = s.proxy();
    let (code, body) = curl(&["-x", &proxy, &s.plain_url("/a")]).await;
    assert_eq!((code, body.as_str()), (200, "hello from origin"));
    // The app asked for http://; the origin only speaks TLS, so sluice did.
    let (code, body) = curl(&["-x", &proxy, "-D", "-", &s.secure_url("/b")]).await;
    assert_eq!(code, 200, "{body}");
    let lower = body.to_ascii_lowercase();
    let host = format!(
        "x-origin-host: secure.example.test:{}",
        s.secure.addr().port()
    );
    assert!(lower.contains(&host), "{body}");
    assert_eq!(s.secure.accepted(), 1);
    // https:// is a CONNECT: curl speaks TLS itself through the tunnel.
    let https = format!("https://secure.example.test:{}/c", s.secure.addr().port());
    let ca = s.certs.ca_file().display().to_string();
    let (code, body) = curl(&["-x", &proxy, "--cacert", &ca, &https]).await;
    assert_eq!((code, body.as_str()), (200, "hello from origin"));
    assert_eq!(s.secure.accepted(), 2);
    // Configured routes still win on a forward listener.
    let (code, _) = curl(&["-x", &proxy, "http://routed.example.test/r"]).await;
    assert_eq!(code, 200);
    let log = s.sluice.wait_for_access_log(4).await;
    let routes: Vec<&str> = log
        .iter()
        .filter_map(|e| e["fields"]["route"].as_str())
        .collect();
    assert!(
        routes.contains(&"forward:proxy") && routes.contains(&"routed.example.test/"),
        "{routes:?}"
    );
    // Audit lines go out before the access-log line of their request.
    let audit = s.sluice.stdout_lines();
    assert!(
        audit
            .iter()
            .any(|l| l.contains("\"target\":\"audit\"") && l.contains("\"decision\":\"allow\"")),
        "no audit line in {audit:?}"
    );
}

/// The PHP-FPM case: a fresh curl handle per call, `CURLOPT_PROXY` set, `http://`
/// URLs: 1,000 calls reach the TLS origin through a handful of pooled connections.
/// Then the same over the Unix socket listener.
#[tokio::test]
async fn php_curl_with_a_fresh_handle_per_call_shares_a_few_tls_connections() {
    let s = setup("", "").await;
    let script = r#"
$proxy = $argv[1]; $url = $argv[2]; $n = (int)$argv[3]; $unix = $argv[4] ?? '';
$ok = 0;
for ($i = 0; $i < $n; $i++) {
    $h = curl_init($url);
    curl_setopt($h, CURLOPT_PROXY, $proxy);
    if ($unix !== '') { curl_setopt($h, CURLOPT_UNIX_SOCKET_PATH, $unix); }
    curl_setopt($h, CURLOPT_RETURNTRANSFER, true);
    curl_setopt($h, CURLOPT_TIMEOUT, 10);
    $body = curl_exec($h);
    if ($body === 'hello from origin' && curl_getinfo($h, CURLINFO_RESPONSE_CODE) == 200) { $ok++; }
    curl_close($h);
}
echo $ok;
"#;
    let url = s.secure_url("/php");
    let (ok, out) = run("php", &["-r", script, &s.proxy(), &url, "1000"]).await;
    assert!(ok);
    assert_eq!(out.trim(), "1000");
    let opened = s.opened().await;
    assert!(
        opened <= 4.0,
        "1,000 PHP calls opened {opened} upstream connections"
    );
    let sock = s.sluice.listener_path("unix");
    let sock = sock.display().to_string();
    let (ok, out) = run(
        "php",
        &["-r", script, "http://localhost", &url, "100", &sock],
    )
    .await;
    assert!(ok);
    assert_eq!(out.trim(), "100");
    assert!(s.opened().await <= 4.0);
}

#[tokio::test]
async fn python_requests_with_proxies_reaches_the_origin() {
    let s = setup("", "").await;
    let script = "import sys, requests\n\
        r = requests.get(sys.argv[2], proxies={'http': sys.argv[1]}, timeout=10)\n\
        print(r.status_code, r.text)";
    let (ok, out) = run(
        "/usr/bin/python3",
        &["-c", script, &s.proxy(), &s.secure_url("/py")],
    )
    .await;
    assert!(ok);
    assert_eq!(out.trim(), "200 hello from origin");
}

/// The SSRF cases: the metadata address (and its IPv4-mapped form), a numeric host
/// for loopback, a name resolving to a private address, an address nobody allowed;
/// each is a 403 naming the rule, and the origin bound there sees nothing.
#[tokio::test]
async fn denied_destinations_get_403_naming_the_rule_and_reach_nothing() {
    let s = setup("", "").await;
    let proxy = s.proxy();
    let forbidden_port = s.forbidden.addr().port();
    let plain_port = s.plain.addr().port();
    let cases = [
        (
            "http://169.254.169.254/latest/meta-data/".to_string(),
            "builtin cloud-metadata 169.254.169.254/32",
        ),
        (
            "http://[::ffff:169.254.169.254]/".to_string(),
            "builtin cloud-metadata 169.254.169.254/32 (as IPv4-mapped)",
        ),
        (
            "http://0x7f000001/".to_string(),
            "builtin loopback 127.0.0.0/8",
        ),
        // On a port a rule names, so it is looked up: its address is what is denied.
        (
            format!("http://private.example.test:{plain_port}/"),
            "builtin private 10.0.0.0/8",
        ),
        // On a port no rule names: denied before any lookup.
        ("http://private.example.test/".to_string(), "rule default"),
        (
            format!("http://127.0.0.2:{forbidden_port}/"),
            "builtin loopback 127.0.0.0/8",
        ),
        (
            format!("http://forbidden.example.test:{plain_port}/"),
            "builtin loopback 127.0.0.0/8",
        ),
        (
            format!("http://forbidden.example.test:{forbidden_port}/"),
            "rule default",
        ),
    ];
    for (url, rule) in &cases {
        let (code, body) = curl(&["-x", &proxy, "-D", "-", url]).await;
        assert_eq!(code, 403, "{url}: {body}");
        assert!(
            body.to_ascii_lowercase()
                .contains("sluice-error: denied_by_policy"),
            "{url}: {body}"
        );
        assert!(
            body.contains(rule),
            "{url}: expected rule {rule:?} in {body}"
        );
    }
    assert_eq!(s.forbidden.accepted(), 0);
    let series =
        r#"sluice_policy_denied_total{listener="proxy",rule="builtin loopback 127.0.0.0/8"}"#;
    s.sluice.wait_for_metric(series, |v| v >= 3.0).await;
}

/// DNS rebinding: a name first resolves to a public-looking address, then to one a
/// listener is bound at on loopback. The refreshed answer is checked like the first:
/// the destination is denied and the listener never sees a connection.
#[tokio::test]
async fn an_answer_that_flips_to_a_private_address_is_denied() {
    let s = setup(", {cidr: 198.51.100.0/24}", "").await;
    let port = s.forbidden.addr().port();
    s.dns.set("flip.example.test", &[ip("198.51.100.7")], 1);
    let url = format!("http://flip.example.test:{port}/");
    let (code, body) = curl(&["-x", &s.proxy(), "-D", "-", &url]).await;
    // Allowed, and dialled: nothing answers at that address here.
    assert!(matches!(code, 502 | 504), "{code}: {body}");
    let before = s.dns.queries();
    s.dns.set("flip.example.test", &[ip("127.0.0.2")], 1);
    s.dns.wait_for_queries(before + 2).await;
    let (code, body) = curl(&["-x", &s.proxy(), "-D", "-", &url]).await;
    assert_eq!(code, 403, "{body}");
    assert!(body.contains("resolves to 127.0.0.2"), "{body}");
    assert_eq!(s.forbidden.accepted(), 0);
}

/// CONNECT only where a listener takes it, to its ports; userinfo in a target is a
/// 400; the origin sees none of it.
#[tokio::test]
async fn connect_and_bad_targets_are_refused_clearly() {
    let s = setup("", "").await;
    let plain_port = s.plain.addr().port();
    let connect =
        format!("CONNECT 127.0.0.1:{plain_port} HTTP/1.1\r\nHost: 127.0.0.1:{plain_port}\r\n\r\n");
    let mut c = RawConn::connect(s.sluice.listener_addr("plain")).await;
    c.send(connect.as_bytes()).await;
    let head = c.read_until("\r\n\r\n").await;
    assert!(head.starts_with("HTTP/1.1 405"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("sluice-error: connect_not_allowed"),
        "{head}"
    );
    let mut c = RawConn::connect(s.sluice.listener_addr("proxy")).await;
    c.send(connect.as_bytes()).await;
    let head = c.read_until("\r\n\r\n").await;
    assert!(head.starts_with("HTTP/1.1 403"), "{head}");
    let mut c = RawConn::connect(s.sluice.listener_addr("proxy")).await;
    let userinfo = format!("GET http://user:secret@plain.example.test:{plain_port}/ HTTP/1.1\r\nHost: plain.example.test\r\n\r\n");
    c.send(userinfo.as_bytes()).await;
    let head = c.read_until("\r\n\r\n").await;
    assert!(head.starts_with("HTTP/1.1 400"), "{head}");
    assert!(head.contains("credentials_in_uri"), "{head}");
    assert_eq!(s.plain.accepted(), 0);
}

#[tokio::test]
async fn proxy_authentication_is_asked_for_and_checked() {
    let dir = scratch_dir();
    let users = dir.path().join("users");
    std::fs::write(&users, "# user:password\nalice:wonder land\n").unwrap();
    let auth = format!("\n      auth: {{basic_file: \"{}\"}}", users.display());
    let s = setup("", &auth).await;
    let url = s.plain_url("/auth");
    let (code, body) = curl(&["-x", &s.proxy(), "-D", "-", &url]).await;
    assert_eq!(code, 407, "{body}");
    assert!(
        body.to_ascii_lowercase()
            .contains("proxy-authenticate: basic realm=\"sluice\""),
        "{body}"
    );
    let (code, _) = curl(&["-x", &s.proxy(), "-U", "alice:wrong", &url]).await;
    assert_eq!(code, 407);
    let (code, body) = curl(&["-x", &s.proxy(), "-U", "alice:wonder land", &url]).await;
    assert_eq!((code, body.as_str()), (200, "hello from origin"));
    // The file is re-read when it changes, without a reload.
    std::fs::write(&users, "bob:builder\n").unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while curl(&["-x", &s.proxy(), "-U", "bob:builder", &url]).await.0 != 200 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "new credentials not taken within 10 s"
        );
    }
    let (code, _) = curl(&["-x", &s.proxy(), "-U", "alice:wonder land", &url]).await;
    assert_eq!(code, 407);
}

/// `backends[].policy` (opt-in): a configured backend's addresses pass the same
/// policy. A static server it denies is a config error naming the server and the
/// rule; a name that resolves to a denied address gets 403 and nothing connects;
/// allowing the range lets it through.
#[tokio::test]
async fn a_configured_backend_can_opt_into_the_policy() {
    let dns = TestDns::start().await;
    let origin = Origin::start().await;
    dns.set("internal.example.test", &[ip("127.0.0.1")], 60);
    let port = origin.addr().port();
    let dir = scratch_dir();
    let file = dir.path().join("static.yaml");
    std::fs::write(
        &file,
        format!(
            "listeners: [{{name: e, bind: '127.0.0.1:0'}}]\nroutes: [{{host: '*', backend: b}}]\n\
             backends: [{{name: b, servers: ['{}'], policy: {{}}}}]\n",
            origin.server_spec()
        ),
    )
    .unwrap();
    let (ok, out) = sluice_testkit::check_config(SLUICE, &file);
    assert!(!ok, "{out}");
    assert!(out.contains("backends[0].servers[0]"), "{out}");
    assert!(out.contains("builtin loopback 127.0.0.0/8"), "{out}");

    let config = |policy: &str| {
        format!(
            r#"
log: {{format: json}}
admin: {{bind: "127.0.0.1:0"}}
resolver: {{nameservers: ["{dns}"]}}
listeners: [{{name: egress, bind: "127.0.0.1:0"}}]
routes: [{{host: "*", backend: internal}}]
backends: [{{name: internal, servers: ["internal.example.test:{port}"], policy: {policy}}}]
"#,
            dns = dns.addr(),
        )
    };
    let sluice = Sluice::start(SLUICE, &config("{}")).await;
    let addr = sluice.listener_addr("egress");
    let denied = sluice_testkit::get(addr, "app.test", "/").await;
    assert_eq!(denied.status, 403);
    assert_eq!(denied.header("sluice-error"), Some("denied_by_policy"));
    assert!(
        denied.text().contains("builtin loopback"),
        "{}",
        denied.text()
    );
    assert_eq!(origin.accepted(), 0);
    let series = r#"sluice_policy_denied_total{listener="backend:internal",rule="builtin loopback 127.0.0.0/8"}"#;
    sluice.wait_for_metric(series, |v| v >= 1.0).await;

    sluice.write_config(&config("{allow: [{cidr: 127.0.0.1/32}]}"));
    let event = sluice.sighup_and_wait().await;
    assert_eq!(
        event["fields"]["message"], "config reload applied",
        "{event}"
    );
    let allowed = sluice_testkit::get(addr, "app.test", "/").await;
    assert_eq!(allowed.status, 200, "{}", allowed.text());
    assert_eq!(origin.accepted(), 1);
}
