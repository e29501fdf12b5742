//! One listener certificate read from its PEM files: the chain, the key that must
//! match it, the names it serves and when it expires. Every failure names the file.

use rustls::pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use sluice_config::Certificate;
use std::hash::{DefaultHasher, Hasher};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

/// PEM files larger than this are refused: no real chain is near it.
const MAX_PEM_BYTES: u64 = 1024 * 1024;

#[derive(Debug, Clone, thiserror::Error)]
#[error("{file}: {reason}")]
pub struct CertError {
    pub file: String,
    pub reason: String,
}

fn failed(path: &Path, reason: impl Into<String>) -> CertError {
    CertError {
        file: path.display().to_string(),
        reason: reason.into(),
    }
}

/// What a leaf certificate says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeafInfo {
    /// DNS names of the subjectAltName (lowercase; `*.x` kept as written).
    pub dns_names: Vec<String>,
    /// The subject's common name, if any (shown, never matched: SNI uses SANs only).
    pub common_name: Option<String>,
    pub not_before: SystemTime,
    pub not_after: SystemTime,
}

impl LeafInfo {
    /// Time left before expiry (zero when expired).
    pub fn remaining(&self, now: SystemTime) -> Duration {
        self.not_after.duration_since(now).unwrap_or_default()
    }

    pub fn expired(&self, now: SystemTime) -> bool {
        now >= self.not_after
    }
}

/// A certificate ready to serve.
#[derive(Debug, Clone)]
pub struct LoadedCert {
    pub key: Arc<CertifiedKey>,
    pub info: LeafInfo,
    pub is_default: bool,
    /// The certificate file, for messages and the expiry metric.
    pub cert_file: String,
    /// Hash of every byte read (chain, key, OCSP), stable within the process: a reload
    /// compares it to tell a renewed certificate from an untouched one.
    pub fingerprint: u64,
    /// The chain as read, leaf first (`sluice check` verifies it).
    pub chain: Vec<CertificateDer<'static>>,
}

/// Which of the two PEM inputs a problem is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Chain,
    Key,
}

/// A chain and its key, parsed and checked to belong together.
pub struct KeyPair {
    pub key: CertifiedKey,
    pub info: LeafInfo,
    pub chain: Vec<CertificateDer<'static>>,
}

/// Parses a PEM chain (leaf first) and its private key, and checks that the key is
/// the leaf's: what a certificate file pair and a `kubernetes.io/tls` Secret share.
pub fn key_pair(cert_pem: &[u8], key_pem: &[u8]) -> Result<KeyPair, (Part, String)> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| (Part::Chain, format!("not a PEM certificate chain: {e}")))?;
    let Some(leaf) = chain.first() else {
        return Err((Part::Chain, "no CERTIFICATE block".into()));
    };
    let info = leaf_info(leaf).map_err(|r| (Part::Chain, r))?;
    let key = PrivateKeyDer::from_pem_slice(key_pem)
        .map_err(|e| (Part::Key, format!("no usable private key: {e}")))?;
    let signer = rustls::crypto::ring::sign::any_supported_type(&key)
        .map_err(|e| (Part::Key, format!("unsupported private key: {e}")))?;
    let certified = CertifiedKey::new(chain.clone(), signer);
    // A key for another certificate would fail every handshake; refuse it here.
    certified.keys_match().map_err(|_| {
        (
            Part::Key,
            "this key does not belong to the certificate".to_string(),
        )
    })?;
    Ok(KeyPair {
        key: certified,
        info,
        chain,
    })
}

/// Reads and checks one `certificates[]` entry.
pub fn load(c: &Certificate) -> Result<LoadedCert, CertError> {
    let read = |p: &Path| sluice_config::read_bounded(p, MAX_PEM_BYTES).map_err(|e| failed(p, e));
    let cert_pem = read(&c.cert_file)?;
    let key_pem = read(&c.key_file)?;
    let pair = key_pair(&cert_pem, &key_pem).map_err(|(part, reason)| match part {
        Part::Chain => failed(&c.cert_file, reason),
        Part::Key => failed(
            &c.key_file,
            format!("{reason} (in {})", c.cert_file.display()),
        ),
    })?;
    let mut certified = pair.key;
    let mut hash = DefaultHasher::new();
    hash.write(&cert_pem);
    hash.write(&key_pem);
    if let Some(path) = &c.ocsp_file {
        let ocsp = read(path)?;
        if ocsp.is_empty() {
            return Err(failed(path, "empty OCSP response"));
        }
        hash.write(&ocsp);
        certified.ocsp = Some(ocsp);
    }
    Ok(LoadedCert {
        key: Arc::new(certified),
        info: pair.info,
        is_default: c.default,
        cert_file: c.cert_file.display().to_string(),
        fingerprint: hash.finish(),
        chain: pair.chain,
    })
}

/// Names and validity of a DER certificate.
pub fn leaf_info(der: &CertificateDer<'_>) -> Result<LeafInfo, String> {
    let (_, cert) = X509Certificate::from_der(der.as_ref())
        .map_err(|e| format!("the certificate does not parse: {e}"))?;
    let mut dns_names = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for n in &san.value.general_names {
            if let GeneralName::DNSName(d) = n {
                dns_names.push(d.to_ascii_lowercase());
            }
        }
    }
    let common_name = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map(str::to_owned);
    let at = |t: i64| UNIX_EPOCH + Duration::from_secs(u64::try_from(t).unwrap_or(0));
    Ok(LeafInfo {
        dns_names,
        common_name,
        not_before: at(cert.validity().not_before.timestamp()),
        not_after: at(cert.validity().not_after.timestamp()),
    })
}

/// The identity a verified client certificate carries: its first URI SAN (a SPIFFE
/// ID, say), else its first DNS SAN, else its subject's common name.
pub fn client_identity(der: &CertificateDer<'_>) -> Option<String> {
    let (_, cert) = X509Certificate::from_der(der.as_ref()).ok()?;
    let mut dns = None;
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for n in &san.value.general_names {
            match n {
                GeneralName::URI(u) => return Some((*u).to_owned()),
                GeneralName::DNSName(d) if dns.is_none() => dns = Some(d.to_ascii_lowercase()),
                _ => {}
            }
        }
    }
    dns.or_else(|| {
        cert.subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .map(str::to_owned)
    })
}

/// Checks that each certificate of `chain` is issued and signed by the next one (a
/// chain in the wrong order, or with a missing intermediate, fails clients that do
/// not fetch intermediates themselves). The last one's issuer is the client's to know.
pub fn verify_chain(chain: &[CertificateDer<'_>]) -> Result<(), String> {
    let parsed: Vec<X509Certificate<'_>> = chain
        .iter()
        .enumerate()
        .map(|(i, der)| {
            X509Certificate::from_der(der.as_ref())
                .map(|(_, c)| c)
                .map_err(|e| format!("certificate {} of the chain does not parse: {e}", i + 1))
        })
        .collect::<Result<_, _>>()?;
    for (i, pair) in parsed.windows(2).enumerate() {
        let (child, parent) = (&pair[0], &pair[1]);
        if child.issuer() != parent.subject() {
            return Err(format!(
                "certificate {} is issued by \"{}\", but the next one in the file is \"{}\": \
                 the chain is out of order or misses an intermediate",
                i + 1,
                child.issuer(),
                parent.subject()
            ));
        }
        child
            .verify_signature(Some(parent.public_key()))
            .map_err(|e| format!("certificate {} is not signed by the next one: {e}", i + 1))?;
    }
    Ok(())
}
