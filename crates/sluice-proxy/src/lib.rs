//! The sluice data path: HTTP server connections, routing, forwarding over the shared
//! upstream pool, and the answers sluice gives itself when something fails.

mod access;
mod backend;
mod background;
mod balance;
mod budget;
mod build;
mod cause;
mod client_body;
mod client_conn;
mod client_h1;
mod client_h2;
mod client_io;
mod client_respond;
mod client_tls;
mod client_tunnel;
mod clock;
mod conn_ctx;
mod conn_state;
mod connect;
mod dns;
mod egress;
mod error;
mod forward;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
mod h1_chunked;
mod h1_conn;
mod h1_wire;
mod head;
mod headers;
mod health;
mod idle;
mod idle_tick;
mod inspect;
mod limit;
mod metrics;
mod park;
mod passive;
mod proxy;
mod registry;
mod req_body;
mod resp_body;
mod router;
mod runtime;
mod server;
mod shed;
mod tls_info;
mod tunnel;
mod upgrade;
mod upstream;

pub use background::{start as start_background, start_backends, start_maintenance, stop_backends};
pub use cause::{Cause, Party};
pub use client_h1::head::HeadLimits;
pub use error::{ProxyError, ERROR_HEADER};
/// For benches (`H1::unmetered`): the pooled HTTP/1.1 connection type.
#[doc(hidden)]
pub use h1_conn::H1;
pub use inspect::pools as pools_json;
pub use metrics::Metrics;
pub use proxy::{ClientInfo, Proxy};
pub use registry::Registry;
pub use resp_body::RespBody;
pub use runtime::{compile, retire_forwards, Runtime};
pub use server::{serve, Drain, ListenerSettings, TlsSettings};
