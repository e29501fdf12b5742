//! Picks a listener's certificate by the SNI a client sent: an exact name first, then
//! a wildcard covering exactly one more label (`*.example.com` serves
//! `a.example.com`, never `example.com` or `a.b.example.com`, as RFC 6125 and browsers
//! have it), then the default.

use crate::tls_cert::LoadedCert;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::collections::HashMap;
use std::sync::Arc;

#[derive(Debug)]
pub struct SniResolver {
    exact: HashMap<String, Arc<CertifiedKey>>,
    /// Keyed by the part after `*.`.
    wildcard: HashMap<String, Arc<CertifiedKey>>,
    /// `None` only for a listener whose certificates all come from Kubernetes and
    /// none has arrived yet: every handshake is refused until one does.
    default: Option<Arc<CertifiedKey>>,
}

impl SniResolver {
    /// `certs` in config order; the first certificate to claim a name keeps it.
    pub fn new(certs: &[LoadedCert]) -> Self {
        let default = certs
            .iter()
            .find(|c| c.is_default)
            .or_else(|| certs.first())
            .map(|c| c.key.clone());
        let mut exact = HashMap::new();
        let mut wildcard = HashMap::new();
        for c in certs {
            for name in &c.info.dns_names {
                match name.strip_prefix("*.") {
                    Some(parent) => wildcard.entry(parent.to_string()),
                    None => exact.entry(name.clone()),
                }
                .or_insert_with(|| c.key.clone());
            }
        }
        Self {
            exact,
            wildcard,
            default,
        }
    }

    /// The certificate for `sni` (already lowercase, as rustls hands it over).
    pub fn pick(&self, sni: Option<&str>) -> Option<&Arc<CertifiedKey>> {
        // A fully qualified name (`a.example.com.`) is the same name.
        let Some(name) = sni.map(|n| n.strip_suffix('.').unwrap_or(n)) else {
            return self.default.as_ref();
        };
        if let Some(k) = self.exact.get(name) {
            return Some(k);
        }
        if let Some((_, parent)) = name.split_once('.') {
            if let Some(k) = self.wildcard.get(parent) {
                return Some(k);
            }
        }
        self.default.as_ref()
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.pick(hello.server_name()).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls_cert::LeafInfo;
    use std::time::UNIX_EPOCH;

    fn cert(names: &[&str], is_default: bool, tag: &str) -> LoadedCert {
        // The chain's bytes only tell the certificates apart in these tests.
        let der = rustls::pki_types::CertificateDer::from(tag.as_bytes().to_vec());
        let key = rustls::crypto::ring::sign::any_supported_type(&test_key())
            .unwrap_or_else(|e| unreachable!("{e}"));
        LoadedCert {
            key: Arc::new(CertifiedKey::new(vec![der.clone()], key)),
            info: LeafInfo {
                dns_names: names.iter().map(|n| (*n).to_string()).collect(),
                common_name: None,
                not_before: UNIX_EPOCH,
                not_after: UNIX_EPOCH,
            },
            is_default,
            cert_file: tag.into(),
            fingerprint: 0,
            chain: vec![der],
        }
    }

    fn test_key() -> rustls::pki_types::PrivateKeyDer<'static> {
        let k = rcgen::KeyPair::generate().unwrap_or_else(|e| unreachable!("{e}"));
        rustls::pki_types::PrivateKeyDer::Pkcs8(k.serialize_der().into())
    }

    fn tag(k: Option<&Arc<CertifiedKey>>) -> String {
        k.map(|k| String::from_utf8_lossy(k.cert[0].as_ref()).into_owned())
            .unwrap_or_default()
    }

    #[test]
    fn exact_beats_wildcard_and_unknown_names_get_the_default() {
        let r = SniResolver::new(&[
            cert(&["*.example.com"], false, "wild"),
            cert(&["api.example.com"], false, "api"),
            cert(&["other.test"], true, "dflt"),
        ]);
        assert_eq!(tag(r.pick(Some("api.example.com"))), "api");
        assert_eq!(tag(r.pick(Some("www.example.com"))), "wild");
        assert_eq!(
            tag(r.pick(Some("a.b.example.com"))),
            "dflt",
            "one label only"
        );
        assert_eq!(tag(r.pick(Some("example.com"))), "dflt", "not the apex");
        assert_eq!(tag(r.pick(Some("nobody.test"))), "dflt");
        assert_eq!(tag(r.pick(None)), "dflt");
    }

    #[test]
    fn without_a_marked_default_the_first_certificate_is_it() {
        let r = SniResolver::new(&[cert(&["a.test"], false, "a"), cert(&["b.test"], false, "b")]);
        assert_eq!(tag(r.pick(Some("c.test"))), "a");
        assert_eq!(tag(r.pick(Some("b.test"))), "b");
        assert!(
            SniResolver::new(&[]).pick(Some("a.test")).is_none(),
            "no certificate: the handshake is refused"
        );
    }
}
