//! End-to-end test toolkit for sluice: real sockets on port 0, real TLS, no sleeps.
//!
//! * [`Certs`]: a throw-away CA and a server certificate it signed.
//! * [`Origin`]: an in-process HTTP/1.1 or HTTP/2 origin (TCP, TLS or Unix socket) that
//!   counts connections and requests and echoes what it received; it can be made
//!   unhealthy, stopped and resumed on the same address, and bound to any loopback IP.
//! * [`RawConn`]: a client connection written and read by hand, that tells a clean
//!   close from a reset.
//! * [`FaultOrigin`]: a raw-TCP origin that misbehaves on purpose (never answers, stalls
//!   mid-body, resets, never reads) and counts how each connection ended.
//! * [`TestDns`]: a DNS server (UDP and TCP) whose answers a test changes at runtime.
//! * [`Sluice`]: the real binary as a child process, with its logs collected.
//! * [`client`]: one-connection-per-call clients, raw sockets, streaming uploads and
//!   downloads.
//! * [`WsOrigin`], [`WsClient`]: a WebSocket echo origin and client, for tunnels.
//! * [`GrpcOrigin`], [`GrpcClient`]: a tonic gRPC origin (`test.Echo`, h2c or TLS) and
//!   client, for trailers and streaming calls through HTTP/2 listeners.
//! * [`h2_raw`]: HTTP/2 frames written and read by hand (floods, limits a client
//!   ignores) and [`H2Client`], a well-behaved h2c client.
//! * [`reload`]: rewriting a running sluice's config and reloading it (SIGHUP, admin
//!   `POST /reload`, file watch), and reading the outcome (`/config`, metrics, log).
//!
//! ```no_run
//! use sluice_testkit::{get, Certs, Origin, Sluice};
//!
//! # async fn demo(sluice_bin: &str) {
//! let certs = Certs::new(&["127.0.0.1"]);
//! let origin = Origin::builder().tls(&certs).start().await;
//! let yaml = format!(
//!     r#"
//! log: {{format: json}}
//! listeners: [{{name: egress, bind: "127.0.0.1:0"}}]
//! routes: [{{host: "*", backend: app}}]
//! backends:
//!   - name: app
//!     servers: ["{server}"]
//!     tls: {{ca_file: "{ca}"}}
//! "#,
//!     server = origin.server_spec(),
//!     ca = certs.ca_file().display(),
//! );
//! let sluice = Sluice::start(sluice_bin, &yaml).await; // env!("CARGO_BIN_EXE_sluice")
//!
//! let response = get(sluice.listener_addr("egress"), "app.test", "/").await;
//! assert_eq!(response.status, 200);
//! assert_eq!(response.text(), "hello from origin");
//! assert_eq!(origin.accepted(), 1);
//! # }
//! ```
//!
//! Waiting is always on an event (a log line, a counter) with a bounded timeout, never a
//! sleep: see [`Origin::wait_until`], [`Sluice::wait_for_stderr`],
//! [`Sluice::wait_for_access_log`] and [`Conn::closed_within`].

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod body;
mod certs;
pub mod client;
pub mod dns;
pub mod fault;
pub mod grpc;
mod h2_client;
pub mod h2_raw;
mod kube_api;
mod kube_rbac;
mod logs;
pub mod origin;
mod process;
pub mod raw;
pub mod recording;
pub mod reload;
pub mod strict_h1;
pub mod tls_client;
mod veth;
mod wait;
pub mod ws;

#[cfg(test)]
mod tests;

pub use certs::Certs;
pub use client::{
    download, get, get_unix, raw, request, send, send_tls, send_unix, spawn_download, upload,
    BoxError, Conn, Download, Response,
};
pub use dns::TestDns;
pub use fault::{Fault, FaultOrigin, FaultStats};
pub use grpc::{GrpcClient, GrpcOrigin};
pub use h2_client::H2Client;
pub use kube_api::KubeApi;
pub use origin::{Origin, OriginBuilder, OriginStats};
pub use process::{peak_rss_kib, rss_kib, Sluice, EXIT_TIMEOUT, STARTUP_TIMEOUT};
pub use raw::{assert_sluice_answer, exchange, Ending, RawConn};
pub use recording::{Message, RecordingOrigin};
pub use reload::{check_config, ReloadCounts};
pub use tls_client::TlsConn;
pub use veth::Veth;
pub use wait::DEFAULT_WAIT;
pub use ws::{WsClient, WsCounts, WsOrigin};
pub use {k8s_openapi, kube};

/// Re-exported so tests need no direct dependency to build requests and bodies.
pub use {bytes, http, http_body_util, serde_json, tempfile};

/// A fresh temporary directory (removed when dropped), e.g. for Unix socket paths in a config.
pub fn scratch_dir() -> tempfile::TempDir {
    tempfile::tempdir().expect("create temp dir")
}

/// The usual test config: JSON logs (which [`Sluice::start`] needs), an admin listener
/// and an `egress` listener on `127.0.0.1:0`, every host routed to one backend `app`
/// on `servers`. `backend` is appended to the backend (lines indented by four spaces,
/// e.g. `"    limits: {maxconn_per_server: 4}"`); top-level settings can go before it
/// (`format!("limits: {{...}}\n{}", app_config(..))`).
pub fn app_config(servers: &[String], backend: &str) -> String {
    let servers = servers
        .iter()
        .map(|s| format!("\"{s}\""))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        r#"
log: {{format: json}}
admin: {{bind: "127.0.0.1:0"}}
listeners: [{{name: egress, bind: "127.0.0.1:0"}}]
routes: [{{host: "*", backend: app}}]
backends:
  - name: app
    servers: [{servers}]
{backend}
"#
    )
}
