//! Throw-away certificates: a private CA and a server certificate it signed.

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use std::{
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
};
use tempfile::TempDir;

/// A fresh CA plus a leaf certificate for `names`, signed by that CA.
///
/// Every call to [`Certs::new`] makes a new CA, so two `Certs` never trust each other.
///
/// ```no_run
/// # use sluice_testkit::Certs;
/// let certs = Certs::new(&["api.example.test", "127.0.0.1"]);
/// let ca_path = certs.ca_file(); // put this in the backend's `tls.ca_file`
/// let server = certs.server_config(); // give this to an origin
/// ```
#[derive(Clone)]
pub struct Certs {
    names: Vec<String>,
    ca_pem: String,
    ca_der: CertificateDer<'static>,
    leaf_der: CertificateDer<'static>,
    leaf_key_der: Vec<u8>,
    dir: Arc<TempDir>,
}

impl Certs {
    /// A new CA and a leaf for `names`: DNS names, or IP literals (`"127.0.0.1"`, `"::1"`).
    pub fn new(names: &[&str]) -> Self {
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();

        let ca_key = KeyPair::generate().expect("generate CA key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        // A distinct name per CA, so a verifier trusting another one reports an unknown
        // issuer rather than finding a same-named CA and a bad signature.
        static SERIAL: AtomicU64 = AtomicU64::new(1);
        let serial = SERIAL.fetch_add(1, Ordering::Relaxed);
        ca_params.distinguished_name.push(
            DnType::CommonName,
            format!("sluice-testkit CA {} #{serial}", std::process::id()),
        );
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca = ca_params.self_signed(&ca_key).expect("self-sign CA");

        let leaf_key = KeyPair::generate().expect("generate leaf key");
        let mut leaf_params = CertificateParams::new(names.clone()).expect("leaf names");
        if let Some(first) = names.first() {
            leaf_params
                .distinguished_name
                .push(DnType::CommonName, first.as_str());
        }
        leaf_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let leaf = leaf_params
            .signed_by(&leaf_key, &ca, &ca_key)
            .expect("sign leaf");

        let dir = tempfile::tempdir().expect("temp dir for certificates");
        std::fs::write(dir.path().join("ca.pem"), ca.pem()).expect("write ca.pem");

        Self {
            names,
            ca_pem: ca.pem(),
            ca_der: ca.der().clone(),
            leaf_der: leaf.der().clone(),
            leaf_key_der: leaf_key.serialize_der(),
            dir: Arc::new(dir),
        }
    }

    /// A certificate for the same names, signed by a *different*, unrelated CA: a server
    /// presenting it fails verification by anyone trusting `self`.
    pub fn signed_by_another_ca(&self) -> Self {
        let names: Vec<&str> = self.names.iter().map(String::as_str).collect();
        Self::new(&names)
    }

    /// The names the leaf certificate is valid for.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The CA certificate, PEM encoded.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// Path of a file holding [`Certs::ca_pem`]; it lives as long as any clone of `self`.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// The directory [`Certs::ca_file`] is in.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A rustls server config (ring provider, ALPN `http/1.1`) presenting the leaf.
    pub fn server_config(&self) -> Arc<rustls::ServerConfig> {
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.leaf_key_der.clone()));
        let mut config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_no_client_auth()
            .with_single_cert(vec![self.leaf_der.clone()], key)
            .expect("server certificate");
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(config)
    }

    /// A rustls client config that trusts only this CA (ALPN `http/1.1`).
    pub fn client_config(&self) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca_der.clone()).expect("add CA to roots");
        let mut config = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(config)
    }
}

impl std::fmt::Debug for Certs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Certs")
            .field("names", &self.names)
            .field("ca_file", &self.ca_file())
            .finish_non_exhaustive()
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}
