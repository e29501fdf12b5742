//! What the connections of a TLS listener know of TLS: the listener's settings, and
//! what each handshake settled (the name asked for, the version, the client's
//! verified identity). Plain data, shared by the accept path and the request path.

use sluice_net::ClientAddr;
use std::sync::Arc;
use std::time::Duration;

/// A listener's TLS as its connections use it.
#[derive(Debug)]
pub struct TlsSettings {
    pub server: sluice_net::ServerTls,
    /// The settings it was built from.
    pub source: sluice_config::ListenerTls,
    pub http2: bool,
}

impl TlsSettings {
    /// Built from the same settings and the same file contents: nothing to swap.
    pub fn same(&self, other: &Self) -> bool {
        self.server.fingerprint == other.server.fingerprint
            && self.source == other.source
            && self.http2 == other.http2
    }

    pub(crate) fn handshake_timeout(&self) -> Duration {
        self.source.handshake_timeout.get()
    }
}

/// What the handshake settled, for routing, the Host check and the access log.
#[derive(Debug)]
pub struct TlsInfo {
    /// Lowercase, as the client sent it.
    pub sni: Option<Box<str>>,
    pub version: &'static str,
    pub cipher: &'static str,
    /// The verified client certificate's identity (mTLS), see
    /// [`sluice_net::client_identity`].
    pub identity: Option<Box<str>>,
    pub host_must_match_sni: bool,
}

impl TlsInfo {
    /// Whether a request for `host` (normalised: lowercase, no port) may be served on
    /// this connection. A handshake without SNI (a client that dialled an address)
    /// has no name to hold the request to.
    pub fn allows_host(&self, host: &str) -> bool {
        match &self.sni {
            Some(sni) if self.host_must_match_sni => sni.as_ref() == host,
            _ => true,
        }
    }
}

/// Who is on the other end of a client connection.
#[derive(Debug, Clone)]
pub struct Peer {
    pub addr: ClientAddr,
    pub tls: Option<Arc<TlsInfo>>,
}
