//! TLS termination for a listener: the rustls server config built from its
//! certificates, versions, ALPN and client-certificate policy.

use crate::tls::provider;
use crate::tls_cert::{self, CertError, LoadedCert};
use crate::tls_sni::SniResolver;
use rustls::pki_types::{pem::PemObject, CertificateDer};
use rustls::server::{ProducesTickets, WebPkiClientVerifier};
use rustls::{RootCertStore, ServerConfig};
use sluice_config::{ClientAuth, ListenerTls, TlsVersion};
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

/// A listener's TLS, ready for handshakes. Built whole (every file read and checked)
/// before it replaces the one serving, so a bad renewal changes nothing.
#[derive(Debug)]
pub struct ServerTls {
    pub config: Arc<ServerConfig>,
    pub certs: Vec<LoadedCert>,
    pub mtls: bool,
    /// Of every file read: equal means nothing on disk changed.
    pub fingerprint: u64,
}

/// The session-ticket keys of one listener and client-certificate policy, kept across
/// reloads (new keys at every renewal would stop every resumption). Never shared
/// between listeners or policies: a resumed session skips the client certificate
/// check, so a ticket from a listener without mTLS, or trusting another CA, must not
/// resume on this one.
fn ticketer(scope: String) -> Option<Arc<dyn ProducesTickets>> {
    type Keys = parking_lot::Mutex<HashMap<String, Arc<dyn ProducesTickets>>>;
    static TICKETERS: OnceLock<Keys> = OnceLock::new();
    let mut all = TICKETERS.get_or_init(Keys::default).lock();
    if let Some(t) = all.get(&scope) {
        return Some(t.clone());
    }
    let t = rustls::crypto::ring::Ticketer::new().ok()?;
    all.insert(scope, t.clone());
    Some(t)
}

/// ALPN protocols a listener offers, preferred first.
pub fn alpn(http2: bool) -> Vec<Vec<u8>> {
    if http2 {
        vec![b"h2".to_vec(), b"http/1.1".to_vec()]
    } else {
        vec![b"http/1.1".to_vec()]
    }
}

impl ServerTls {
    /// Reads every file `tls` names and builds the server config of `listener`.
    pub fn load(listener: &str, tls: &ListenerTls, http2: bool) -> Result<Self, CertError> {
        let certs: Vec<LoadedCert> = tls
            .certificates
            .iter()
            .map(tls_cert::load)
            .collect::<Result<_, _>>()?;
        // Empty only where validation allowed it (the listener Kubernetes fills).
        let resolver = SniResolver::new(&certs);
        let versions: &[&'static rustls::SupportedProtocolVersion] = match tls.min_version {
            TlsVersion::V1_2 => &[&rustls::version::TLS13, &rustls::version::TLS12],
            TlsVersion::V1_3 => &[&rustls::version::TLS13],
        };
        let builder = ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(versions)
            .map_err(|e| CertError {
                file: String::new(),
                reason: e.to_string(),
            })?;
        let mut fingerprint = certs
            .iter()
            .fold(0u64, |h, c| h.rotate_left(7) ^ c.fingerprint);
        let mut client_policy = String::from("none");
        let builder = match &tls.client_ca_file {
            None => builder.with_no_client_auth(),
            Some(path) => {
                let fail = |reason: String| CertError {
                    file: path.display().to_string(),
                    reason,
                };
                let pem = sluice_config::read_bounded(path, sluice_config::limits::MAX_FILE_BYTES)
                    .map_err(fail)?;
                fingerprint = fingerprint.rotate_left(7) ^ content_hash(&pem);
                client_policy = format!("{:?} {:x}", tls.client_auth, content_hash(&pem));
                let mut roots = RootCertStore::empty();
                for c in CertificateDer::pem_slice_iter(&pem) {
                    let c = c.map_err(|e| fail(format!("not a PEM CA bundle: {e}")))?;
                    roots
                        .add(c)
                        .map_err(|e| fail(format!("a CA certificate is unusable: {e}")))?;
                }
                if roots.is_empty() {
                    return Err(fail("no CA certificate in the file".into()));
                }
                let v = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider());
                let v = match tls.client_auth {
                    ClientAuth::Required => v,
                    ClientAuth::Optional => v.allow_unauthenticated(),
                };
                let verifier = v.build().map_err(|e| fail(e.to_string()))?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let mut config = builder.with_cert_resolver(Arc::new(resolver));
        config.alpn_protocols = alpn(http2);
        if let Some(t) = ticketer(format!("{listener}\0{client_policy}")) {
            config.ticketer = t;
        }
        Ok(Self {
            config: Arc::new(config),
            certs,
            mtls: tls.client_ca_file.is_some(),
            fingerprint,
        })
    }
}

fn content_hash(bytes: &[u8]) -> u64 {
    use std::hash::{DefaultHasher, Hasher};
    let mut h = DefaultHasher::new();
    h.write(bytes);
    h.finish()
}
