//! `CONNECT host:port` on a forward listener that allows it (`forward.connect`): the
//! port must be listed, the destination must pass the policy (before the lookup, and
//! each resolved address), and sluice dials exactly an address it allowed. Then
//! `200` and a byte tunnel, timed and counted like an upgrade's. Everywhere else a
//! `CONNECT` is refused (405, never forwarded).

use crate::cause::Cause;
use crate::conn_state::ConnState;
use crate::egress;
use crate::error::ProxyError;
use crate::forward::Forward;
use crate::metrics::{Name, TunnelLabels, TunnelMetrics};
use crate::resp_body::RespBody;
use crate::tunnel::{Far, Pending, Tunnels};
use http::request::Parts;
use http::Response;
use sluice_policy::{Host, Verdict};
use std::net::{IpAddr, SocketAddr};
use tokio::net::TcpStream;

/// What a `CONNECT` needs besides the request.
pub struct Ctx<'a> {
    pub conn: &'a ConnState,
    pub tunnels: &'a Tunnels,
    pub metrics: &'a TunnelMetrics,
}

/// Opens the tunnel a `CONNECT` asks for, or says why not.
pub async fn open(
    forward: Option<&Forward>,
    parts: &mut Parts,
    ctx: Ctx<'_>,
) -> Result<Response<RespBody>, ProxyError> {
    let refused = |why: String| ProxyError::new(Cause::ConnectNotAllowed, why);
    let Some(f) = forward else {
        return Err(refused(
            "CONNECT is taken only by a forward listener with forward.connect".into(),
        ));
    };
    let Some(allowed_ports) = &f.config.connect else {
        return Err(refused(format!(
            "listener {} does not take CONNECT (forward.connect is not set)",
            f.listener.as_str()
        )));
    };
    let bad = |why: &str| ProxyError::new(Cause::BadRequest, why);
    let Some(authority) = parts.uri.authority() else {
        return Err(bad("CONNECT needs a host:port target"));
    };
    if authority.as_str().contains('@') {
        return Err(ProxyError::new(
            Cause::CredentialsInUri,
            "the CONNECT target carries credentials; send them in Proxy-Authorization",
        ));
    }
    let Some(port) = authority.port_u16() else {
        return Err(bad("CONNECT needs a port in its target"));
    };
    let host = Host::parse(authority.host())
        .map_err(|e| ProxyError::new(Cause::InvalidHost, format!("invalid CONNECT host: {e}")))?;
    if !allowed_ports.ports.contains(&port) {
        return Err(f.denied(
            &host,
            port,
            "forward.connect.ports",
            "is not a CONNECT port",
        ));
    }
    match f.policy.precheck(&host, port) {
        Some(Verdict::Denied(why)) => {
            return Err(f.denied(&host, port, &why.to_string(), "is not allowed"))
        }
        Some(v) => egress::audit(f.config.audit_log, &f.listener, &host, port, host.ip(), &v),
        None => {}
    }
    let ips = match &host {
        Host::Ip(ip) => vec![*ip],
        Host::Name(name) => {
            f.resolver()
                .lookup(name)
                .await
                .map_err(|e| ProxyError::new(Cause::DnsFailed, e))?
                .0
        }
    };
    // The same check (and counting, logging, audit) as a destination's addresses.
    let egress = f.egress(&host, port);
    let allowed = egress.filter("", port, &ips);
    if allowed.is_empty() {
        let why = egress
            .denial()
            .unwrap_or_else(|| format!("{host}:{port} has no address"));
        return Err(ProxyError::new(Cause::DeniedByPolicy, why));
    }
    let (idle, connect_timeout) = f.tunnel_timeouts();
    let stream = dial(&allowed, port, connect_timeout).await?;
    ctx.conn.set_tunnel(Pending::new(
        (Far::Tcp(stream), None),
        TunnelLabels {
            route: f.route.clone(),
            backend: Name::new("connect"),
        },
        idle,
        ctx.tunnels,
        ctx.metrics,
    ));
    Ok(Response::new(RespBody::empty()))
}

/// Connects to the first of `ips` that answers, each within `limit`.
async fn dial(
    ips: &[IpAddr],
    port: u16,
    limit: std::time::Duration,
) -> Result<TcpStream, ProxyError> {
    let mut last = None;
    for ip in ips {
        let addr = SocketAddr::new(*ip, port);
        match tokio::time::timeout(limit, TcpStream::connect(addr)).await {
            Ok(Ok(s)) => {
                let _ = s.set_nodelay(true);
                return Ok(s);
            }
            Ok(Err(e)) => {
                let cause = if e.kind() == std::io::ErrorKind::ConnectionRefused {
                    Cause::ConnectRefused
                } else {
                    Cause::ConnectFailed
                };
                last = Some(ProxyError::new(cause, format!("{addr}: {e}")));
            }
            Err(_) => {
                last = Some(ProxyError::new(
                    Cause::ConnectTimeout,
                    format!("{addr} after {limit:?}"),
                ))
            }
        }
    }
    Err(last.unwrap_or_else(|| ProxyError::new(Cause::ConnectFailed, "no address to connect to")))
}
