//! A client connection on a TLS listener: the handshake (bounded by
//! `tls.handshake_timeout`, counted by version, cipher and result), then HTTP/2 or
//! HTTP/1.1 as ALPN agreed.

use crate::conn_ctx::ConnContext;
use crate::metrics::{HandshakeLabels, ListenerLabel};
use crate::tls_info::{Peer, TlsInfo};
use sluice_net::{ClientAddr, ClientStream};
use std::sync::Arc;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Instant;

/// Runs the handshake, then serves the connection.
pub async fn serve(
    tcp: TcpStream,
    addr: ClientAddr,
    ctx: ConnContext,
    stop: watch::Receiver<bool>,
) {
    let Some(tls) = ctx.shared.tls.clone() else {
        return;
    };
    let started = Instant::now();
    let acceptor = tokio_rustls::TlsAcceptor::from(tls.server.config.clone());
    let m = &ctx.shared.proxy.metrics().tls;
    let listener = ctx.shared.listener.clone();
    let failed = |result: &'static str| {
        m.handshakes
            .get_or_create(&HandshakeLabels {
                listener: listener.clone(),
                version: "-",
                cipher: "-",
                result,
            })
            .inc();
    };
    let stream = match tokio::time::timeout(tls.handshake_timeout(), acceptor.accept(tcp)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            let closed = matches!(
                e.kind(),
                std::io::ErrorKind::UnexpectedEof
                    | std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::BrokenPipe
            );
            failed(if closed { "client_closed" } else { "error" });
            tracing::debug!(listener = %listener.as_str(), client = ?addr, error = %e, "TLS handshake failed");
            return;
        }
        Err(_) => {
            failed("timeout");
            tracing::debug!(listener = %listener.as_str(), client = ?addr, "TLS handshake timed out");
            return;
        }
    };
    let (_, conn) = stream.get_ref();
    let info = TlsInfo {
        sni: conn
            .server_name()
            .map(|n| n.trim_end_matches('.').to_ascii_lowercase().into()),
        version: conn
            .protocol_version()
            .and_then(|v| v.as_str())
            .unwrap_or("-"),
        cipher: conn
            .negotiated_cipher_suite()
            .and_then(|c| c.suite().as_str())
            .unwrap_or("-"),
        identity: conn
            .peer_certificates()
            .and_then(|chain| chain.first())
            .and_then(sluice_net::client_identity)
            .map(Into::into),
        host_must_match_sni: tls.source.host_must_match_sni,
    };
    let h2 = conn.alpn_protocol() == Some(b"h2");
    m.handshakes
        .get_or_create(&HandshakeLabels {
            listener: listener.clone(),
            version: info.version,
            cipher: info.cipher,
            result: "ok",
        })
        .inc();
    m.handshake_seconds
        .get_or_create(&ListenerLabel {
            listener: listener.clone(),
        })
        .observe(started.elapsed().as_secs_f64());
    let peer = Peer {
        addr,
        tls: Some(Arc::new(info)),
    };
    let stream = ClientStream::Tls(Box::new(stream));
    if h2 {
        crate::client_h2::serve(stream, peer, ctx, stop).await;
    } else {
        crate::client_conn::run(stream, peer, ctx, stop).await;
    }
}
