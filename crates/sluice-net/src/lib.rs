//! Sockets: listeners that accept clients (TCP, Unix), connectors that reach upstream
//! servers (TCP, Unix), and TLS origination with rustls.

mod connect;
mod listener;
mod stream;
mod tls;

pub use connect::{
    ConnectError, ConnectErrorKind, ConnectTimings, Connector, Endpoint, SocketOptions, Target,
};
pub use listener::{bind, ClientAddr, Listener};
pub use stream::{ClientStream, PlainStream, UpstreamStream};
pub use tls::{TlsClientConfig, TlsError};
