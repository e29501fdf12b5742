//! Sockets: listeners that accept clients (TCP, Unix), connectors that reach upstream
//! servers (TCP, Unix), TLS origination and termination with rustls.

mod connect;
mod listener;
mod stream;
mod tls;
mod tls_cert;
mod tls_server;
mod tls_sni;

pub use connect::{
    ConnectError, ConnectErrorKind, ConnectTimings, Connector, Endpoint, SocketOptions, Target,
};
pub use listener::{bind, ClientAddr, Listener};
pub use stream::{ClientStream, PlainStream, UpstreamStream};
pub use tls::{TlsClientConfig, TlsError};
pub use tls_cert::{
    client_identity, key_pair, leaf_info, verify_chain, CertError, KeyPair, LeafInfo, LoadedCert,
    Part,
};
pub use tls_server::{alpn, ServerTls};
pub use tls_sni::SniResolver;
