//! sluice's end-to-end tests: the real binary, real sockets, real TLS, in-process
//! origins. One test binary rather than one per file, so the suite links once: with
//! about thirty files that was several minutes of every CI run.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod reload_support;

mod admin_views;
mod broken_origins;
mod cli;
mod client_framing;
mod config_limits;
mod dashboard;
mod demo;
mod dns;
mod doctor;
mod errors;
mod faults;
mod forward;
mod grpc;
mod health;
mod host_limits;
mod hostile_clients;
mod http2;
mod http2_clients;
mod idle_clients;
mod kubernetes;
mod kubernetes_endpoints;
mod kubernetes_gateway;
mod kubernetes_status;
mod kubernetes_tls;
mod limits;
mod monitoring;
mod pooling;
mod reload;
mod reload_churn;
mod reload_live;
mod request_limits;
mod resilience;
mod routing;
mod routing_headers;
mod shutdown;
mod smuggling;
mod sockets;
mod streaming;
mod tls_listeners;
mod tunnels;
mod upstream_h1;
mod weights;
