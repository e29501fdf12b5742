//! TLS origination: one rustls `ClientConfig` per distinct TLS setting, so connections
//! that share settings also share the session-resumption cache.

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{pem::PemObject, CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use sluice_config::{Protocol, Tls};
use std::path::Path;
use std::sync::{Arc, OnceLock};

/// Why a TLS setting could not be turned into a client config.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read CA file {path}: {reason}")]
    CaFile { path: String, reason: String },
    #[error("CA file {0} holds no usable certificate")]
    EmptyCaFile(String),
    #[error("no trusted CA certificates found in the system store; set tls.ca_file")]
    NoSystemRoots,
    #[error("invalid TLS server name {0:?}")]
    BadServerName(String),
    #[error("TLS setup failed: {0}")]
    Rustls(#[from] rustls::Error),
}

/// A ready rustls client configuration plus the settings it was made from.
#[derive(Debug, Clone)]
pub struct TlsClientConfig {
    pub config: Arc<ClientConfig>,
}

pub(crate) fn provider() -> Arc<CryptoProvider> {
    static P: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    P.get_or_init(|| Arc::new(rustls::crypto::ring::default_provider()))
        .clone()
}

/// The system trust store, loaded once per process (it is a few hundred files).
fn system_roots() -> Result<Arc<RootCertStore>, TlsError> {
    static ROOTS: OnceLock<Arc<RootCertStore>> = OnceLock::new();
    if let Some(r) = ROOTS.get() {
        return Ok(r.clone());
    }
    let loaded = rustls_native_certs::load_native_certs();
    let mut store = RootCertStore::empty();
    let (added, _ignored) = store.add_parsable_certificates(loaded.certs);
    if added == 0 {
        return Err(TlsError::NoSystemRoots);
    }
    Ok(ROOTS.get_or_init(|| Arc::new(store)).clone())
}

/// Reads a PEM bundle: a regular file of bounded size (read whole, then parsed), so
/// `/dev/zero` or a huge file is an error rather than a hang that fills memory.
fn file_roots(path: &Path) -> Result<Arc<RootCertStore>, TlsError> {
    let shown = path.display().to_string();
    let failed = |reason: String| TlsError::CaFile {
        path: shown.clone(),
        reason,
    };
    let pem =
        sluice_config::read_bounded(path, sluice_config::limits::MAX_FILE_BYTES).map_err(failed)?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<_, _>>()
        .map_err(|e| failed(e.to_string()))?;
    let mut store = RootCertStore::empty();
    let (added, _) = store.add_parsable_certificates(certs);
    if added == 0 {
        return Err(TlsError::EmptyCaFile(shown));
    }
    Ok(Arc::new(store))
}

impl TlsClientConfig {
    /// Builds the client config for one backend's TLS settings. ALPN offers what
    /// `protocol` allows: `http/1.1`, `h2`, or both (h2 first) for `auto`.
    pub fn new(tls: &Tls, protocol: Protocol) -> Result<Self, TlsError> {
        let builder = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?;
        let mut config = if tls.verify {
            let roots = match &tls.ca_file {
                Some(path) => file_roots(path)?,
                None => system_roots()?,
            };
            builder.with_root_certificates(roots).with_no_client_auth()
        } else {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(NoVerify(provider())))
                .with_no_client_auth()
        };
        config.alpn_protocols = match protocol {
            Protocol::Http1 => vec![b"http/1.1".to_vec()],
            Protocol::Http2 => vec![b"h2".to_vec()],
            Protocol::Auto => vec![b"h2".to_vec(), b"http/1.1".to_vec()],
        };
        Ok(Self {
            config: Arc::new(config),
        })
    }

    /// Parses a server name for SNI and verification.
    pub fn server_name(name: &str) -> Result<ServerName<'static>, TlsError> {
        ServerName::try_from(name.to_string())
            .map_err(|_| TlsError::BadServerName(name.to_string()))
    }
}

/// `verify: false`: accepts any certificate, but still checks that the handshake was
/// signed by the key in it (so the connection is at least not trivially hijacked mid-way).
#[derive(Debug)]
struct NoVerify(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::{file_roots, TlsError};
    use std::path::Path;

    fn reason(path: &Path) -> String {
        match file_roots(path) {
            Err(TlsError::CaFile { reason, .. }) => reason,
            Err(e) => format!("other error: {e}"),
            Ok(_) => "loaded".into(),
        }
    }

    #[test]
    fn a_ca_file_must_be_a_regular_file_of_bounded_size() -> std::io::Result<()> {
        // Used to read /dev/zero forever, growing by ~800 MB/s.
        assert_eq!(
            reason(Path::new("/dev/zero")),
            "not a regular file (a character device)"
        );
        assert_eq!(reason(Path::new("/")), "not a regular file (a directory)");

        let dir = std::env::temp_dir().join(format!("sluice-net-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let big = dir.join("big.pem");
        let limit = sluice_config::limits::MAX_FILE_BYTES;
        std::fs::write(&big, vec![b'\n'; limit as usize + 1])?;
        assert_eq!(reason(&big), "larger than 16 MiB (the limit)");
        let garbage = dir.join("garbage.pem");
        std::fs::write(&garbage, "not a certificate\n")?;
        assert!(matches!(
            file_roots(&garbage),
            Err(TlsError::EmptyCaFile(_))
        ));
        std::fs::remove_dir_all(&dir)?;
        Ok(())
    }
}
