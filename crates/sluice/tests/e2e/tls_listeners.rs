//! TLS listeners: the certificate picked by SNI (exact, wildcard, default), HTTP/2 and
//! HTTP/1.1 by ALPN, `421` when Host and SNI disagree, mTLS, and certificates that
//! reload from disk without dropping a connection.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use sluice_testkit::{Certs, Origin, Sluice, TlsConn};
use std::path::{Path, PathBuf};
use std::sync::Arc;

const SLUICE: &str = env!("CARGO_BIN_EXE_sluice");

/// One CA, three listener certificates: `a.test`, `*.wild.test`, and a default.
struct Site {
    ca: Certs,
    a: Certs,
    wild: Certs,
    default: Certs,
    files: Vec<(PathBuf, PathBuf)>,
}

impl Site {
    fn new() -> Self {
        let ca = Certs::new(&["ca-holder.test"]);
        let a = ca.sibling(&["a.test"]);
        let wild = ca.sibling(&["*.wild.test"]);
        let default = ca.sibling(&["default.test"]);
        let files = vec![
            a.write_leaf("a"),
            wild.write_leaf("wild"),
            default.write_leaf("default"),
        ];
        Self {
            ca,
            a,
            wild,
            default,
            files,
        }
    }

    fn certificates_yaml(&self) -> String {
        let mut out = String::new();
        for (i, (cert, key)) in self.files.iter().enumerate() {
            let default = if i == 2 { ", default: true" } else { "" };
            out.push_str(&format!(
                "        - {{cert_file: \"{}\", key_file: \"{}\"{default}}}\n",
                cert.display(),
                key.display()
            ));
        }
        out
    }

    fn client(&self) -> Arc<rustls::ClientConfig> {
        self.ca.client_config()
    }
}

fn config(origin: &Origin, certificates: &str, tls_extra: &str) -> String {
    format!(
        r#"listeners:
  - name: ingress
    bind: 127.0.0.1:0
    tls:
      certificates:
{certificates}{tls_extra}
admin:
  bind: 127.0.0.1:0
log:
  format: json
  access_log: true
routes:
  - host: "*"
    backend: app
backends:
  - name: app
    servers: ["{}"]
"#,
        origin.server_spec()
    )
}

async fn start(site: &Site, tls_extra: &str) -> (Origin, Sluice) {
    let origin = Origin::start().await;
    let yaml = config(&origin, &site.certificates_yaml(), tls_extra);
    let sluice = Sluice::start(SLUICE, &yaml).await;
    (origin, sluice)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sni_picks_exact_wildcard_or_default_certificate_over_h2_and_h1() {
    let site = Site::new();
    let (_origin, sluice) = start(&site, "").await;
    let addr = sluice.listener_addr("ingress");
    let cases: [(Option<&str>, &Certs); 5] = [
        (Some("a.test"), &site.a),
        (Some("x.wild.test"), &site.wild),
        (Some("unknown.test"), &site.default),
        (Some("a.b.wild.test"), &site.default),
        (None, &site.default),
    ];
    for (sni, expected) in cases {
        for alpn in [&["h2", "http/1.1"][..], &["http/1.1"][..]] {
            // The default certificate names none of these: only the leaf served is
            // compared, by a client that accepts any.
            let config = if std::ptr::eq(expected, &site.default) {
                insecure()
            } else {
                site.client()
            };
            let mut conn = TlsConn::connect(addr, sni, config, alpn).await.unwrap();
            assert_eq!(&conn.peer_leaf, expected.leaf_der(), "SNI {sni:?}");
            let want_alpn = if alpn.len() == 2 { "h2" } else { "http/1.1" };
            assert_eq!(conn.alpn.as_deref(), Some(want_alpn));
            let host = sni.unwrap_or("anything.test");
            let r = conn.get(host, "/hello").await.unwrap();
            assert_eq!(r.status, 200, "SNI {sni:?} ALPN {alpn:?}: {}", r.text());
            assert_eq!(r.header("x-origin-path"), Some("/hello"));
        }
    }
    let hs = sluice
        .metric(r#"sluice_tls_handshakes_total{listener="ingress",version="TLSv1_3",cipher="TLS13_AES_256_GCM_SHA384",result="ok"}"#)
        .await
        .unwrap_or_default();
    let hs128 = sluice
        .metric(r#"sluice_tls_handshakes_total{listener="ingress",version="TLSv1_3",cipher="TLS13_AES_128_GCM_SHA256",result="ok"}"#)
        .await
        .unwrap_or_default();
    assert_eq!(
        hs + hs128,
        10.0,
        "every handshake counted:\n{}",
        sluice.metrics().await
    );
    let m = sluice.metrics().await;
    assert!(
        m.contains(r#"sluice_tls_certificate_expiry_seconds{listener="ingress",name="a.test"}"#),
        "{m}"
    );
    assert!(
        m.contains("sluice_client_h2_streams_total{listener=\"ingress\"} 5"),
        "{m}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_other_than_the_sni_is_misdirected_unless_allowed() {
    let site = Site::new();
    let (origin, sluice) = start(&site, "").await;
    let addr = sluice.listener_addr("ingress");
    for alpn in [&["h2"][..], &["http/1.1"][..]] {
        let mut conn = TlsConn::connect(addr, Some("a.test"), site.client(), alpn)
            .await
            .unwrap();
        let r = conn.get("x.wild.test", "/").await.unwrap();
        assert_eq!(r.status, 421, "{alpn:?}: {}", r.text());
        assert_eq!(r.header("sluice-error"), Some("misdirected_request"));
        assert!(r.text().contains("a.test"), "{}", r.text());
        // The port and the case of Host do not matter.
        let r = conn.get("A.test:443", "/").await.unwrap();
        assert_eq!(r.status, 200, "{alpn:?}: {}", r.text());
    }
    assert_eq!(
        origin.requests(),
        2,
        "the misdirected requests never reached it"
    );
    drop(sluice);

    let (_origin, sluice) = start(&site, "      host_must_match_sni: false\n").await;
    let addr = sluice.listener_addr("ingress");
    let mut conn = TlsConn::connect(addr, Some("a.test"), site.client(), &["h2"])
        .await
        .unwrap();
    assert_eq!(conn.get("x.wild.test", "/").await.unwrap().status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_gets_the_right_certificate_over_http2_and_http1() {
    let site = Site::new();
    let (_origin, sluice) = start(&site, "").await;
    let port = sluice.listener_addr("ingress").port();
    let ca = site.ca.ca_file();
    for (flag, version) in [("--http2", "2"), ("--http1.1", "1.1")] {
        for name in ["a.test", "x.wild.test"] {
            let out = curl(&[
                flag,
                "--cacert",
                ca.to_str().unwrap(),
                "--resolve",
                &format!("{name}:{port}:127.0.0.1"),
                "-w",
                "%{http_code} %{http_version}",
                "-o",
                "/dev/null",
                &format!("https://{name}:{port}/x"),
            ]);
            assert_eq!(out, format!("200 {version}"), "curl {flag} {name}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mtls_accepts_a_client_of_the_ca_and_logs_its_identity() {
    let site = Site::new();
    let extra = format!(
        "      client_ca_file: \"{}\"\n",
        site.ca.ca_file().display()
    );
    let (origin, sluice) = start(&site, &extra).await;
    let addr = sluice.listener_addr("ingress");
    let with_cert = site
        .ca
        .client_config_with_identity("billing.internal", "spiffe://corp.test/billing");
    let mut conn = TlsConn::connect(addr, Some("a.test"), with_cert, &["h2"])
        .await
        .unwrap();
    let r = conn.get("a.test", "/").await.unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let log = sluice.wait_for_access_log(1).await;
    assert_eq!(
        log[0]["fields"]["client_identity"], "spiffe://corp.test/billing",
        "{log:?}"
    );
    assert_eq!(log[0]["fields"]["sni"], "a.test");

    // No client certificate: the handshake fails (TLS 1.3 reports it on first use).
    let refused = match TlsConn::connect(addr, Some("a.test"), site.client(), &["h2"]).await {
        Err(_) => true,
        Ok(mut c) => c.get("a.test", "/").await.is_err(),
    };
    assert!(refused, "a client without a certificate was served");
    // A certificate from another CA: refused too.
    let other = site.ca.client_config_with_identity_from(
        &Certs::new(&["x.test"]),
        "x.test",
        "spiffe://other/x",
    );
    let refused = match TlsConn::connect(addr, Some("a.test"), other, &["h2"]).await {
        Err(_) => true,
        Ok(mut c) => c.get("a.test", "/").await.is_err(),
    };
    assert!(refused, "a client certificate of another CA was accepted");
    assert_eq!(origin.requests(), 1);
    let failed = sluice
        .metric(r#"sluice_tls_handshakes_total{listener="ingress",version="-",cipher="-",result="error"}"#)
        .await;
    assert!(
        failed.unwrap_or_default() >= 1.0,
        "{}",
        sluice.metrics().await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_http2_client_connection_is_closed_at_keepalive_timeout() {
    let site = Site::new();
    let origin = Origin::start().await;
    let yaml = config(&origin, &site.certificates_yaml(), "").replace(
        "    bind: 127.0.0.1:0\n    tls:",
        "    bind: 127.0.0.1:0\n    keepalive_timeout: 300ms\n    tls:",
    );
    let sluice = Sluice::start(SLUICE, &yaml).await;
    let addr = sluice.listener_addr("ingress");
    let mut conn = TlsConn::connect(addr, Some("a.test"), site.client(), &["h2"])
        .await
        .unwrap();
    let started = tokio::time::Instant::now();
    // A stream that lasts longer than the keep-alive timeout is not idleness: the
    // connection is neither closed under it nor right after it.
    let r = conn.get("a.test", "/delay/500").await.unwrap();
    assert_eq!(r.status, 200);
    assert!(started.elapsed() >= std::time::Duration::from_millis(500));
    assert_eq!(conn.get("a.test", "/").await.unwrap().status, 200);
    assert!(
        conn.closed_within(std::time::Duration::from_secs(5)).await,
        "an idle HTTP/2 connection outlived keepalive_timeout"
    );
    // The gauge drops as the connection task ends, a moment after the close the
    // client saw.
    sluice
        .wait_for_metric(r#"sluice_client_h2_connections{listener="ingress"}"#, |v| {
            v == 0.0
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls12_is_served_by_default_and_refused_with_min_version_13() {
    let site = Site::new();
    let tls12 = || {
        let mut roots = rustls::RootCertStore::empty();
        let pem = std::fs::read(site.ca.ca_file()).unwrap();
        for c in rustls::pki_types::pem::PemObject::pem_slice_iter(&pem) {
            roots.add(c.unwrap()).unwrap();
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS12])
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        Arc::new(config)
    };
    let (_origin, sluice) = start(&site, "").await;
    let addr = sluice.listener_addr("ingress");
    let mut conn = TlsConn::connect(addr, Some("a.test"), tls12(), &["h2"])
        .await
        .unwrap();
    assert_eq!(conn.version, "TLSv1_2");
    assert_eq!(conn.get("a.test", "/").await.unwrap().status, 200);
    drop(sluice);

    let (_origin, sluice) = start(&site, "      min_version: \"1.3\"\n").await;
    let addr = sluice.listener_addr("ingress");
    assert!(TlsConn::connect(addr, Some("a.test"), tls12(), &["h2"])
        .await
        .is_err());
    let conn = TlsConn::connect(addr, Some("a.test"), site.client(), &["h2"])
        .await
        .unwrap();
    assert_eq!(conn.version, "TLSv1_3");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_resumes_on_its_listener_but_never_past_another_listeners_mtls() {
    let site = Site::new();
    let origin = Origin::start().await;
    let public = config(&origin, &site.certificates_yaml(), "");
    let internal = format!(
        "  - name: internal\n    bind: 127.0.0.1:0\n    tls:\n      certificates:\n{}      client_ca_file: \"{}\"\nadmin:",
        site.certificates_yaml(),
        site.ca.ca_file().display()
    );
    let yaml = public.replacen("admin:", &internal, 1);
    let sluice = Sluice::start(SLUICE, &yaml).await;
    // One client config: one session store, as a real client keeps.
    let client = site.client();
    let mut first = TlsConn::connect(
        sluice.listener_addr("ingress"),
        Some("a.test"),
        client.clone(),
        &["h2"],
    )
    .await
    .unwrap();
    // Reading an answer also reads the tickets sent after the handshake.
    assert_eq!(first.get("a.test", "/").await.unwrap().status, 200);
    let mut again = TlsConn::connect(
        sluice.listener_addr("ingress"),
        Some("a.test"),
        client.clone(),
        &["h2"],
    )
    .await
    .unwrap();
    assert!(again.resumed, "a ticket of this listener resumes on it");
    assert_eq!(again.get("a.test", "/").await.unwrap().status, 200);
    // The same ticket offered to the mTLS listener: a full handshake asks for the
    // client certificate this client does not have.
    let refused = match TlsConn::connect(
        sluice.listener_addr("internal"),
        Some("a.test"),
        client,
        &["h2"],
    )
    .await
    {
        Err(_) => true,
        Ok(mut c) => c.get("a.test", "/").await.is_err(),
    };
    assert!(
        refused,
        "a ticket from a listener without mTLS got past client authentication"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_admits_only_the_client_identities_it_lists() {
    let site = Site::new();
    let origin = Origin::start().await;
    let extra = format!(
        "      client_ca_file: \"{}\"\n      client_auth: optional\n",
        site.ca.ca_file().display()
    );
    let yaml = config(&origin, &site.certificates_yaml(), &extra).replace(
        "  - host: \"*\"\n    backend: app\n",
        "  - host: \"*\"\n    path_prefix: /billing\n    backend: app\n    client_identities: [\"spiffe://corp.test/billing/*\"]\n  - host: \"*\"\n    backend: app\n",
    );
    let sluice = Sluice::start(SLUICE, &yaml).await;
    let addr = sluice.listener_addr("ingress");
    let billing = site
        .ca
        .client_config_with_identity("b.internal", "spiffe://corp.test/billing/api");
    let other = site
        .ca
        .client_config_with_identity("o.internal", "spiffe://corp.test/other");
    let cases = [
        (billing, "/billing/pay", 200),
        (other.clone(), "/billing/pay", 403),
        (other, "/public", 200),
        (site.client(), "/billing/pay", 403),
    ];
    for (client, path, status) in cases {
        let mut conn = TlsConn::connect(addr, Some("a.test"), client, &["h2"])
            .await
            .unwrap();
        let r = conn.get("a.test", path).await.unwrap();
        assert_eq!(r.status, status, "{path}: {}", r.text());
        if status == 403 {
            assert_eq!(r.header("sluice-error"), Some("client_identity_denied"));
            assert!(
                r.text().contains("/billing"),
                "names the route: {}",
                r.text()
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_replaced_on_disk_serves_the_next_handshake_and_a_bad_one_is_refused() {
    let site = Site::new();
    let (_origin, sluice) = start(&site, "").await;
    let addr = sluice.listener_addr("ingress");
    let mut kept = TlsConn::connect(addr, Some("a.test"), site.client(), &["h2"])
        .await
        .unwrap();
    assert_eq!(kept.get("a.test", "/").await.unwrap().status, 200);

    // A renewal: new key and certificate, written by rename like cert-manager's swap.
    let renewed = site.a.expiring_in(90);
    let (cert, key) = &site.files[0];
    replace(&renewed, cert, key);
    sluice
        .wait_for_log("config reload applied", |e| {
            e["fields"]["trigger"] == "certificate"
        })
        .await;
    let fresh = TlsConn::connect(addr, Some("a.test"), site.client(), &["h2"])
        .await
        .unwrap();
    assert_eq!(
        &fresh.peer_leaf,
        renewed.leaf_der(),
        "the next handshake gets the renewal"
    );
    assert_eq!(
        kept.get("a.test", "/again").await.unwrap().status,
        200,
        "the open connection lives on"
    );

    // A broken renewal (the key of another certificate): rejected, the last good one serves.
    let other = site.ca.sibling(&["a.test"]);
    std::fs::write(
        key,
        other
            .write_leaf("other")
            .1
            .to_str()
            .map(std::fs::read)
            .unwrap()
            .unwrap(),
    )
    .unwrap();
    // Written in place: a reload may catch the file half-written first (rejected too).
    let rejected = sluice
        .wait_for_log("config reload rejected", |e| {
            e["fields"]["trigger"] == "certificate"
                && e["fields"]["error"]
                    .as_str()
                    .is_some_and(|e| e.contains("does not belong"))
        })
        .await;
    let error = rejected["fields"]["error"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(error.contains("listeners[0].tls"), "{error}");
    assert!(
        error.contains(key.to_str().unwrap()),
        "names the file: {error}"
    );
    assert!(error.contains("does not belong"), "says why: {error}");
    let after = TlsConn::connect(addr, Some("a.test"), site.client(), &["h2"])
        .await
        .unwrap();
    assert_eq!(&after.peer_leaf, renewed.leaf_der());
}

#[test]
fn check_names_the_file_and_the_reason_of_a_bad_certificate() {
    let site = Site::new();
    let dir = sluice_testkit::scratch_dir();
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not a certificate").unwrap();
    let (_, key) = &site.files[0];
    let yaml = format!(
        "listeners:\n  - name: ingress\n    bind: 127.0.0.1:0\n    tls:\n      certificates:\n        - {{cert_file: \"{}\", key_file: \"{}\"}}\nroutes: []\nbackends: []\n",
        garbage.display(),
        key.display()
    );
    let path = dir.path().join("sluice.yaml");
    std::fs::write(&path, yaml).unwrap();
    let (ok, out) = sluice_testkit::check_config(SLUICE, &path);
    assert!(!ok, "{out}");
    assert!(out.contains("listeners[0].tls"), "{out}");
    assert!(out.contains(garbage.to_str().unwrap()), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ocsp_response_file_is_stapled() {
    let site = Site::new();
    // rustls staples the bytes as they are; a client checks them. Any DER-looking
    // bytes show that the file's content is what the handshake carries.
    let ocsp = site.ca.dir().join("a.ocsp");
    std::fs::write(&ocsp, b"\x30\x03\x0a\x01\x00").unwrap();
    let (cert, key) = &site.files[0];
    let certificates = format!(
        "        - {{cert_file: \"{}\", key_file: \"{}\", ocsp_file: \"{}\"}}\n",
        cert.display(),
        key.display(),
        ocsp.display()
    );
    let origin = Origin::start().await;
    let sluice = Sluice::start(SLUICE, &config(&origin, &certificates, "")).await;
    let seen = Arc::new(parking_lot::Mutex::new(None));
    let client = recording(seen.clone());
    let mut conn = TlsConn::connect(
        sluice.listener_addr("ingress"),
        Some("a.test"),
        client,
        &["h2"],
    )
    .await
    .unwrap();
    assert_eq!(conn.get("a.test", "/").await.unwrap().status, 200);
    assert_eq!(seen.lock().as_deref(), Some(&b"\x30\x03\x0a\x01\x00"[..]));
}

#[test]
fn check_reports_names_and_expiry_warns_before_it_and_refuses_a_chain_out_of_order() {
    let site = Site::new();
    let dir = sluice_testkit::scratch_dir();
    let soon = site.a.expiring_in(10);
    let (cert, key) = soon.write_leaf("soon");
    let yaml = |cert: &Path, key: &Path| {
        format!(
            "listeners:\n  - name: ingress\n    bind: 127.0.0.1:0\n    tls:\n      certificates:\n        - {{cert_file: \"{}\", key_file: \"{}\"}}\nroutes: []\nbackends: []\n",
            cert.display(),
            key.display()
        )
    };
    let path = dir.path().join("sluice.yaml");
    std::fs::write(&path, yaml(&cert, &key)).unwrap();
    let (ok, out) = sluice_testkit::check_config(SLUICE, &path);
    assert!(ok, "{out}");
    assert!(out.contains("a.test"), "names: {out}");
    assert!(
        out.contains("warning") && out.contains("expires in"),
        "{out}"
    );

    // The leaf followed by a certificate that did not issue it.
    let stray = dir.path().join("stray.pem");
    let mut pem = std::fs::read_to_string(&cert).unwrap();
    pem.push_str(&std::fs::read_to_string(site.wild.write_leaf("w2").0).unwrap());
    std::fs::write(&stray, pem).unwrap();
    std::fs::write(&path, yaml(&stray, &key)).unwrap();
    let (ok, out) = sluice_testkit::check_config(SLUICE, &path);
    assert!(!ok, "{out}");
    assert!(out.contains("out of order"), "{out}");
}

/// Writes `certs`' leaf over `cert`/`key` by rename (as a Secret volume update does).
fn replace(certs: &Certs, cert: &Path, key: &Path) {
    let (c, k) = certs.write_leaf("renewed");
    std::fs::rename(k, key).unwrap();
    std::fs::rename(c, cert).unwrap();
}

fn curl(args: &[&str]) -> String {
    let out = std::process::Command::new("curl")
        .args(["-sS", "--max-time", "20"])
        .args(args)
        .output()
        .expect("run curl");
    assert!(
        out.status.success(),
        "curl failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A client that accepts any certificate (to look at the one served without SNI).
fn insecure() -> Arc<rustls::ClientConfig> {
    recording(Arc::default())
}

/// Accepts any certificate and keeps the stapled OCSP response it came with.
fn recording(ocsp: Arc<parking_lot::Mutex<Option<Vec<u8>>>>) -> Arc<rustls::ClientConfig> {
    #[derive(Debug)]
    struct Any(
        Arc<rustls::crypto::CryptoProvider>,
        Arc<parking_lot::Mutex<Option<Vec<u8>>>>,
    );
    impl rustls::client::danger::ServerCertVerifier for Any {
        fn verify_server_cert(
            &self,
            _: &rustls::pki_types::CertificateDer<'_>,
            _: &[rustls::pki_types::CertificateDer<'_>],
            _: &rustls::pki_types::ServerName<'_>,
            ocsp: &[u8],
            _: rustls::pki_types::UnixTime,
        ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
            if !ocsp.is_empty() {
                *self.1.lock() = Some(ocsp.to_vec());
            }
            Ok(rustls::client::danger::ServerCertVerified::assertion())
        }
        fn verify_tls12_signature(
            &self,
            m: &[u8],
            c: &rustls::pki_types::CertificateDer<'_>,
            d: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(
                m,
                c,
                d,
                &self.0.signature_verification_algorithms,
            )
        }
        fn verify_tls13_signature(
            &self,
            m: &[u8],
            c: &rustls::pki_types::CertificateDer<'_>,
            d: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(
                m,
                c,
                d,
                &self.0.signature_verification_algorithms,
            )
        }
        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            self.0.signature_verification_algorithms.supported_schemes()
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Any(provider, ocsp)))
        .with_no_client_auth();
    Arc::new(config)
}
