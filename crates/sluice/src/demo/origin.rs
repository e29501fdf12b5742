//! The demo's HTTPS origin: a certificate made at start (a CA and a leaf for
//! `demo.sluice.test`), hyper serving HTTP/1.1 keep-alive behind rustls, and a count
//! of the TCP connections it accepted, which is the number the demo is about.

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use rustls::pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

pub const NAME: &str = "demo.sluice.test";

pub struct Origin {
    pub addr: SocketAddr,
    /// PEM of the CA that signed the origin's certificate.
    pub ca_pem: String,
    pub ca_der: CertificateDer<'static>,
    accepted: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Origin {
    pub async fn start() -> Result<Self, String> {
        let bad = |what: &str, e: &dyn std::fmt::Display| format!("demo origin: {what}: {e}");
        let ca_key = KeyPair::generate().map_err(|e| bad("CA key", &e))?;
        let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(|e| bad("CA", &e))?;
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "sluice demo CA (made at start)");
        let ca = ca.self_signed(&ca_key).map_err(|e| bad("CA", &e))?;
        let leaf_key = KeyPair::generate().map_err(|e| bad("key", &e))?;
        let leaf = CertificateParams::new(vec![NAME.to_string()])
            .map_err(|e| bad("certificate", &e))?
            .signed_by(&leaf_key, &ca, &ca_key)
            .map_err(|e| bad("certificate", &e))?;
        let key = PrivateKeyDer::from_pem_slice(leaf_key.serialize_pem().as_bytes())
            .map_err(|e| bad("key", &e))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut tls = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| bad("TLS", &e))?
            .with_no_client_auth()
            .with_single_cert(vec![leaf.der().clone()], key)
            .map_err(|e| bad("TLS", &e))?;
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| bad("bind", &e))?;
        let addr = listener.local_addr().map_err(|e| bad("bind", &e))?;
        let accepted = Arc::new(AtomicU64::new(0));
        let count = accepted.clone();
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::Relaxed);
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = service_fn(|_req| async {
                        let body = Full::new(Bytes::from_static(b"hello from the demo origin\n"));
                        Ok::<_, std::convert::Infallible>(hyper::Response::new(body))
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        Ok(Self {
            addr,
            ca_pem: ca.pem(),
            ca_der: ca.der().clone(),
            accepted,
            task,
        })
    }

    /// TCP connections accepted so far.
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        self.task.abort();
    }
}
