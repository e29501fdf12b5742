//! The client-facing half of a listener that terminates TLS, and its HTTP/2 settings.
//!
//! Only the schema and the checks that need no file live here: reading the PEM files
//! (and refusing a bad one with the file and why) is the loader's job at start, at
//! `sluice check` and at every reload, so a broken renewal never replaces a working
//! certificate.

use crate::duration::HumanDuration;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerTls {
    /// Picked by SNI from each certificate's DNS names (exact before wildcard); a
    /// handshake without SNI, or naming none of them, gets the `default: true` one (or
    /// the first, when none is marked).
    pub certificates: Vec<Certificate>,
    /// PEM bundle of CAs: set, clients must present a certificate they signed (mTLS).
    #[serde(default)]
    pub client_ca_file: Option<PathBuf>,
    /// With `client_ca_file`: `required` (default) refuses a handshake without a
    /// client certificate; `optional` lets it through without an identity.
    #[serde(default)]
    pub client_auth: ClientAuth,
    /// Oldest protocol version accepted: `"1.2"` (default) or `"1.3"`.
    #[serde(default)]
    pub min_version: TlsVersion,
    /// A handshake must finish within this; else the connection is closed.
    #[serde(default = "default_handshake_timeout")]
    pub handshake_timeout: HumanDuration,
    /// `true` (default): a request whose `Host` (or `:authority`) is not the name the
    /// connection's SNI asked for gets `421 Misdirected Request`, so a client cannot
    /// use one tenant's certificate to reach another's routes.
    #[serde(default = "yes")]
    pub host_must_match_sni: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Certificate {
    /// PEM: the leaf first, then its intermediates.
    pub cert_file: PathBuf,
    /// PEM: PKCS#8, PKCS#1 (RSA) or SEC1 (EC) private key of the leaf.
    pub key_file: PathBuf,
    /// A DER OCSP response to staple (refreshed by whoever writes the file; it is
    /// re-read with the certificate).
    #[serde(default)]
    pub ocsp_file: Option<PathBuf>,
    #[serde(default)]
    pub default: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientAuth {
    #[default]
    Required,
    Optional,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
pub enum TlsVersion {
    #[default]
    #[serde(rename = "1.2")]
    V1_2,
    #[serde(rename = "1.3")]
    V1_3,
}

/// HTTP/2 towards clients. The defaults follow what HAProxy, NGINX and Envoy ship and
/// keep a single connection from holding much memory.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Http2Settings {
    /// Streams a client may have open at once on one connection.
    #[serde(default = "default_max_concurrent_streams")]
    pub max_concurrent_streams: u32,
    /// Bytes a client may send on one stream before sluice reads them.
    #[serde(default = "default_stream_window")]
    pub initial_stream_window: u32,
    /// Bytes a client may send on the whole connection before sluice reads them.
    #[serde(default = "default_connection_window")]
    pub initial_connection_window: u32,
    #[serde(default = "default_max_frame_size")]
    pub max_frame_size: u32,
    /// Largest request head (decoded, HPACK-expanded), CONTINUATION frames included:
    /// the bound that answers a CONTINUATION flood.
    #[serde(default = "default_max_header_list_size")]
    pub max_header_list_size: u32,
    /// Streams a client may open and reset before sluice has even looked at them
    /// (CVE-2023-44487, "rapid reset"); beyond this the connection gets GOAWAY.
    #[serde(default = "default_max_pending_resets")]
    pub max_pending_reset_streams: usize,
    /// Streams sluice itself may reset because of the client's protocol errors before
    /// it closes the connection (CVE-2025-8671, "MadeYouReset").
    #[serde(default = "default_max_local_resets")]
    pub max_local_error_reset_streams: usize,
    /// Pings sent on a connection idle this long, to find dead clients; `0s`: none.
    #[serde(default = "default_ping_interval")]
    pub keepalive_interval: HumanDuration,
    /// A ping unanswered this long closes the connection.
    #[serde(default = "default_ping_timeout")]
    pub keepalive_timeout: HumanDuration,
}

impl Default for Http2Settings {
    fn default() -> Self {
        Self {
            max_concurrent_streams: default_max_concurrent_streams(),
            initial_stream_window: default_stream_window(),
            initial_connection_window: default_connection_window(),
            max_frame_size: default_max_frame_size(),
            max_header_list_size: default_max_header_list_size(),
            max_pending_reset_streams: default_max_pending_resets(),
            max_local_error_reset_streams: default_max_local_resets(),
            keepalive_interval: default_ping_interval(),
            keepalive_timeout: default_ping_timeout(),
        }
    }
}

fn yes() -> bool {
    true
}
fn default_handshake_timeout() -> HumanDuration {
    HumanDuration::secs(10)
}
fn default_max_concurrent_streams() -> u32 {
    100
}
fn default_stream_window() -> u32 {
    256 * 1024
}
fn default_connection_window() -> u32 {
    1024 * 1024
}
fn default_max_frame_size() -> u32 {
    16 * 1024
}
fn default_max_header_list_size() -> u32 {
    64 * 1024
}
fn default_max_pending_resets() -> usize {
    20
}
fn default_max_local_resets() -> usize {
    1024
}
fn default_ping_interval() -> HumanDuration {
    HumanDuration::secs(0)
}
fn default_ping_timeout() -> HumanDuration {
    HumanDuration::secs(20)
}

/// Checks a listener's TLS and HTTP/2 settings that need no file; `at` is the
/// listener's path (`listeners[0]`); `kubernetes`: `sources.kubernetes.tls_listener`
/// names it, so its certificates may all come from there.
pub(crate) fn check(
    tls: Option<&ListenerTls>,
    h2: &Http2Settings,
    tcp: bool,
    kubernetes: bool,
    at: &str,
) -> Result<(), (String, String)> {
    let bad = |f: &str, why: &str| Err((format!("{at}.{f}"), why.to_string()));
    if let Some(t) = tls {
        if !tcp {
            return bad(
                "tls",
                "TLS listeners must bind a TCP address, not a unix: socket",
            );
        }
        if t.certificates.is_empty() && !kubernetes {
            return bad(
                "tls.certificates",
                "at least one certificate is required (or name this listener in sources.kubernetes.tls_listener)",
            );
        }
        if t.certificates.iter().filter(|c| c.default).count() > 1 {
            return bad(
                "tls.certificates",
                "at most one certificate may be default: true",
            );
        }
        if t.handshake_timeout.get().is_zero() {
            return bad("tls.handshake_timeout", "must be greater than 0");
        }
    }
    // RFC 9113 §6.5.2 bounds; 0 streams would refuse every request.
    if h2.max_concurrent_streams == 0 {
        return bad(
            "http2_settings.max_concurrent_streams",
            "must be at least 1",
        );
    }
    if !(16_384..=16_777_215).contains(&h2.max_frame_size) {
        return bad(
            "http2_settings.max_frame_size",
            "must be between 16384 and 16777215 (RFC 9113)",
        );
    }
    for (f, v) in [
        ("initial_stream_window", h2.initial_stream_window),
        ("initial_connection_window", h2.initial_connection_window),
    ] {
        if !(65_535..=0x7fff_ffff).contains(&v) {
            return bad(
                &format!("http2_settings.{f}"),
                "must be between 65535 and 2147483647 bytes",
            );
        }
    }
    if h2.max_pending_reset_streams == 0 {
        return bad(
            "http2_settings.max_pending_reset_streams",
            "must be at least 1 (0 would end a connection at its first cancelled stream)",
        );
    }
    if !h2.keepalive_interval.get().is_zero() && h2.keepalive_timeout.get().is_zero() {
        return bad(
            "http2_settings.keepalive_timeout",
            "must be greater than 0 when keepalive_interval is set",
        );
    }
    if h2.max_header_list_size < 1024 {
        return bad(
            "http2_settings.max_header_list_size",
            "must be at least 1024 bytes",
        );
    }
    Ok(())
}
