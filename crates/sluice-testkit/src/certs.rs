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
    leaf_pem: String,
    leaf_key_pem: String,
    /// Kept to sign more leaves and client certificates with the same CA.
    ca: Arc<(rcgen::Certificate, KeyPair)>,
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
            leaf_pem: leaf.pem(),
            leaf_key_pem: leaf_key.serialize_pem(),
            ca: Arc::new((ca, ca_key)),
            dir: Arc::new(dir),
        }
    }

    /// Another server leaf for `names`, signed by the same CA (one CA, several
    /// listener certificates).
    pub fn sibling(&self, names: &[&str]) -> Self {
        let (cert, key) = self.issue(names, ExtendedKeyUsagePurpose::ServerAuth, None, 365);
        let mut s = self.clone();
        s.names = names.iter().map(|n| (*n).to_owned()).collect();
        s.leaf_der = cert.der().clone();
        s.leaf_pem = cert.pem();
        s.leaf_key_der = key.serialize_der();
        s.leaf_key_pem = key.serialize_pem();
        s
    }

    /// A server leaf for the same names from the same CA that expires in `days`.
    pub fn expiring_in(&self, days: i64) -> Self {
        let names: Vec<&str> = self.names.iter().map(String::as_str).collect();
        let (cert, key) = self.issue(&names, ExtendedKeyUsagePurpose::ServerAuth, None, days);
        let mut s = self.clone();
        s.leaf_der = cert.der().clone();
        s.leaf_pem = cert.pem();
        s.leaf_key_der = key.serialize_der();
        s.leaf_key_pem = key.serialize_pem();
        s
    }

    fn issue(
        &self,
        names: &[&str],
        usage: ExtendedKeyUsagePurpose,
        uri: Option<&str>,
        days: i64,
    ) -> (rcgen::Certificate, KeyPair) {
        let key = KeyPair::generate().expect("generate key");
        let mut params =
            CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())
                .expect("leaf names");
        if let Some(first) = names.first() {
            params.distinguished_name.push(DnType::CommonName, *first);
        }
        if let Some(u) = uri {
            params
                .subject_alt_names
                .insert(0, rcgen::SanType::URI(u.try_into().expect("URI SAN")));
        }
        params.extended_key_usages = vec![usage];
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::days(1);
        params.not_after = now + time::Duration::days(days);
        let (ca, ca_key) = &*self.ca;
        let cert = params.signed_by(&key, ca, ca_key).expect("sign");
        (cert, key)
    }

    /// Writes the leaf's certificate and key as PEM files (named after `tag`) for a
    /// listener's `tls.certificates`; returns (cert_file, key_file).
    pub fn write_leaf(&self, tag: &str) -> (PathBuf, PathBuf) {
        let cert = self.dir.path().join(format!("{tag}.pem"));
        let key = self.dir.path().join(format!("{tag}.key"));
        std::fs::write(&cert, &self.leaf_pem).expect("write leaf pem");
        std::fs::write(&key, &self.leaf_key_pem).expect("write leaf key");
        (cert, key)
    }

    /// The leaf certificate and its key, PEM (a `kubernetes.io/tls` Secret's
    /// `tls.crt` and `tls.key`).
    pub fn leaf_pem(&self) -> (&str, &str) {
        (&self.leaf_pem, &self.leaf_key_pem)
    }

    /// The leaf certificate, DER (to tell which certificate a server presented).
    pub fn leaf_der(&self) -> &CertificateDer<'static> {
        &self.leaf_der
    }

    /// A client config trusting this CA that presents a client certificate from the
    /// same CA with `uri` as its URI SAN (a SPIFFE ID, say) and `name` as DNS SAN.
    pub fn client_config_with_identity(&self, name: &str, uri: &str) -> Arc<rustls::ClientConfig> {
        self.client_config_with_identity_from(self, name, uri)
    }

    /// Like [`Certs::client_config_with_identity`], but the client certificate is
    /// issued by `issuer`'s CA (another CA than the one the server trusts, say).
    pub fn client_config_with_identity_from(
        &self,
        issuer: &Certs,
        name: &str,
        uri: &str,
    ) -> Arc<rustls::ClientConfig> {
        let (cert, key) = issuer.issue(&[name], ExtendedKeyUsagePurpose::ClientAuth, Some(uri), 30);
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca_der.clone()).expect("add CA to roots");
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let mut config = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_root_certificates(roots)
            .with_client_auth_cert(vec![cert.der().clone()], key)
            .expect("client certificate");
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(config)
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
