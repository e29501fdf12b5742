//! One request through the proxy: refuse what cannot be forwarded, route it, rewrite
//! its head, take a slot on a server (balancing, limits, queue), send it over a pooled
//! HTTP/1.1 connection or an HTTP/2 stream (retrying as `Proxy::forward` documents),
//! feed passive health, and stream the response back.

use crate::access::{Completion, Counters, LogFields};
use crate::backend::{Backend, Server};
use crate::cause::Party;
use crate::client_body::ClientBody;
use crate::conn_state::ConnState;
use crate::connect;
use crate::error::{self, ProxyError, Retry};
use crate::forward::{self, Forward};
use crate::head;
use crate::headers::{self, X_REQUEST_ID};
use crate::limit;
use crate::metrics::{Metrics, Name, RequestLabels, TunnelLabels};
use crate::passive;
use crate::registry::Registry;
use crate::req_body::{ReqBody, Upload};
use crate::resp_body::{RespBody, UpBody};
use crate::runtime::Runtime;
use crate::upgrade::{self, Switch};
use crate::upstream::h1::{self, Failed};
use crate::upstream::{self, Conn, Pools, Upstream};
use arc_swap::ArcSwap;
use http::header::HeaderValue;
use http::request::Parts;
use http::{Method, Request, Response, StatusCode};
use hyper::body::Body;
use sluice_net::ClientAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The data path's shared state: the config snapshot, the upstream pools, metrics.
pub struct Proxy {
    /// The current generation; each request reads it once and keeps it to the end.
    runtime: ArcSwap<Runtime>,
    registry: Arc<Registry>,
    /// Shared by reference: one reference-count bump per request, not three.
    counters: Arc<Counters>,
    ids: RequestIds,
    /// The `-` label of requests that matched no route (shared, not allocated per request).
    dash: Name,
}

/// Who is asking, on which listener and connection.
#[derive(Debug, Clone)]
pub struct ClientInfo {
    pub listener: Name,
    pub addr: ClientAddr,
    pub conn: Arc<ConnState>,
    /// `request_body_idle_timeout` of the listener.
    pub body_idle: Duration,
    /// What the TLS handshake settled, on a TLS listener.
    pub tls: Option<Arc<crate::tls_info::TlsInfo>>,
}

const NO_ROUTE: &str = "-";

impl Proxy {
    pub fn new(runtime: Runtime, registry: Arc<Registry>) -> Self {
        let metrics = &registry.metrics;
        let counters = Arc::new(Counters {
            requests: metrics.requests.clone(),
            request_series: metrics.request_series.clone(),
            client_errors: metrics.client_errors.clone(),
            upstream_errors: metrics.upstream_errors.clone(),
        });
        Self {
            runtime: ArcSwap::from_pointee(runtime),
            registry,
            counters,
            ids: RequestIds::new(),
            dash: Name::new(NO_ROUTE),
        }
    }

    pub fn pools(&self) -> &Pools {
        &self.registry.pools
    }

    /// The current generation.
    pub fn runtime(&self) -> Arc<Runtime> {
        self.runtime.load_full()
    }

    /// Makes `next` the generation new requests see; returns the one it replaced.
    /// Requests already running keep theirs.
    pub fn swap(&self, next: Arc<Runtime>) -> Arc<Runtime> {
        self.runtime.swap(next)
    }

    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    pub fn metrics(&self) -> &Metrics {
        &self.registry.metrics
    }

    /// Closes every tunnel: sluice's drain time is over.
    pub fn close_tunnels(&self) {
        self.registry.tunnels.close_all();
    }

    /// Answers one client request. Never fails: errors become 4xx/5xx responses that
    /// carry a `sluice-error` header.
    pub async fn handle(
        &self,
        req: Request<ClientBody>,
        client: &ClientInfo,
    ) -> Response<RespBody> {
        let rt = self.runtime.load_full();
        let (mut parts, body) = req.into_parts();
        let request_id = self.request_id(&mut parts);
        let log = rt.access_log.then(|| LogFields {
            request_id: request_id_str(&request_id),
            client: match client.addr {
                ClientAddr::Tcp(a) => a.to_string(),
                ClientAddr::Unix => "unix".into(),
            },
            method: parts.method.clone(),
            host: String::new(),
            path: parts.uri.path().to_string(),
            upstream: None,
            reused: false,
            tls: client.tls.clone(),
        });
        let labels = RequestLabels {
            listener: client.listener.clone(),
            route: self.dash.clone(),
            backend: self.dash.clone(),
            status: 0,
        };
        let mut done = Completion::new(self.counters.clone(), labels, log, client.conn.clone());

        let forward = match rt.forward.is_empty() {
            true => None,
            false => rt.forward.get(client.listener.as_str()),
        };
        if let Some(f) = forward {
            if let Err(e) = f.authorize(&parts.headers) {
                return self.fail(e, done, &request_id, None);
            }
        }
        if parts.method == Method::CONNECT {
            return self
                .connect(forward.map(|f| &**f), parts, done, request_id, client)
                .await;
        }
        let host = match head::request_host(&parts) {
            Ok(h) => h,
            Err(e) => return self.fail(e, done, &request_id, None),
        };
        if let Some(l) = &mut done.log {
            l.host.clone_from(&host);
        }
        // A forward proxy's SNI names the proxy, its requests' hosts the destinations.
        let checked = forward.is_none().then_some(client.tls.as_deref()).flatten();
        if let Some(tls) = checked.filter(|t| !t.allows_host(&host)) {
            let e = ProxyError::new(
                crate::cause::Cause::MisdirectedRequest,
                format!(
                    "this TLS connection was opened for {:?} (SNI), not for {host:?}",
                    tls.sni.as_deref().unwrap_or_default()
                ),
            );
            return self.fail(e, done, &request_id, None);
        }
        // Configured routes win; on a forward listener the rest goes to the
        // destination the request names.
        let destination;
        let (route_label, backend, max_body) = match (
            rt.router.find(&host, parts.uri.path(), &parts.headers),
            forward,
        ) {
            (Some(route), _) => {
                let identity = client.tls.as_deref().and_then(|t| t.identity.as_deref());
                if !route.admits(identity) {
                    let e = ProxyError::new(
                        crate::cause::Cause::ClientIdentityDenied,
                        format!(
                            "route {} admits only listed client identities, not {}",
                            route.label.as_str(),
                            identity.map_or("a client without one".into(), |i| format!("{i:?}"))
                        ),
                    );
                    return self.fail(e, done, &request_id, None);
                }
                (&route.label, &route.backend, route.max_body)
            }
            (None, Some(f)) => {
                let found = match forward::target(&parts, &host) {
                    Ok((h, port)) => f.destination(&self.registry, &h, port).await,
                    Err(e) => Err(e),
                };
                match found {
                    Ok(b) => destination = b,
                    Err(e) => return self.fail(e, done, &request_id, None),
                }
                (&f.route, &destination, None)
            }
            (None, None) => {
                let e = ProxyError::new(
                    crate::cause::Cause::NoRoute,
                    format!("no route for host {host:?}"),
                );
                return self.fail(e, done, &request_id, None);
            }
        };
        done.labels.route = route_label.clone();
        done.labels.backend = backend.name.clone();
        done.duration = Some(backend.metrics.duration.clone());
        backend.budget.request();
        let hash = backend.hash_key(
            &parts.headers,
            match client.addr {
                ClientAddr::Tcp(a) => Some(a.ip()),
                ClientAddr::Unix => None,
            },
        );

        let upgrade = upgrade::requested(&parts);
        let switching = upgrade.is_some();
        head::prepare_upstream_head(&mut parts, client.addr, client.tls.is_some(), &host);
        if let Some(u) = upgrade {
            upgrade::keep_on(&mut parts.headers, u);
        }
        if let Some(max) = max_body.filter(|max| body.size_hint().lower() > *max) {
            let e = ProxyError::new(
                crate::cause::Cause::RequestBodyTooLarge,
                format!(
                    "the request declares a {}-byte body; route {} takes at most {max} bytes \
                     (routes[].max_request_body)",
                    body.size_hint().lower(),
                    route_label.as_str()
                ),
            );
            return self.fail(e, done, &request_id, None);
        }
        let (body, upload) = if body.is_end_stream() {
            (ReqBody::Empty, None)
        } else {
            let (body, upload) = ReqBody::from_client(body, client.body_idle, max_body);
            (body, Some(upload))
        };
        let req = Request::from_parts(parts, body);

        // The server last tried, for the log of a request that failed there.
        let mut tried = None;
        match self
            .forward(backend, req, hash, upload.as_deref(), switching, &mut tried)
            .await
        {
            Ok((resp, up, reused)) => {
                if let Some(l) = &mut done.log {
                    l.reused = reused;
                    l.upstream = Some(up.slot.member().label.clone());
                }
                if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
                    let s = Switch {
                        conn: &client.conn,
                        labels: TunnelLabels {
                            route: route_label.clone(),
                            backend: backend.name.clone(),
                        },
                        idle: backend.settings.tunnel_idle,
                        tunnels: &self.registry.tunnels,
                        metrics: &self.registry.metrics.tunnels,
                    };
                    let server = up.slot.member().label.clone();
                    return match upgrade::switch(resp, up, s, request_id.clone()) {
                        Ok(mut resp) => {
                            done.labels.status = resp.status().as_u16();
                            resp.body_mut().on_complete(done);
                            resp
                        }
                        Err(e) => self.fail_at(e, done, &request_id, Some(backend), Some(&server)),
                    };
                }
                let (mut rparts, rbody) = resp.into_parts();
                // An HTTP/1.1 head sluice parsed itself has none left.
                if matches!(rbody, UpBody::H2(_)) {
                    headers::strip_hop_by_hop(&mut rparts.headers);
                }
                rparts.headers.insert(X_REQUEST_ID.clone(), request_id);
                done.labels.status = rparts.status.as_u16();
                let idle = backend.settings.response_body_idle;
                let mut body = RespBody::upstream(rbody, up, idle, upload);
                body.on_complete(done);
                Response::from_parts(rparts, body)
            }
            Err(e) => {
                let server = tried.map(|s| s.label.clone());
                if let Some(l) = &mut done.log {
                    l.upstream.clone_from(&server);
                }
                self.fail_at(e, done, &request_id, Some(backend), server.as_ref())
            }
        }
    }

    /// Sends `req` to a server of `backend` and returns the response head. `upgrade`:
    /// the request asks for a protocol switch, so it goes over HTTP/1.1 and a `101`
    /// may answer it. `tried` is set to each server as it is tried.
    ///
    /// Retries:
    /// - a request hyper hands back unsent, or one cut by the origin closing a pooled
    ///   connection under it (stale connection) if it is replayable, goes once more on a
    ///   fresh connection to the same server, outside the budget (the origin never
    ///   processed it);
    /// - a connect failure, or an HTTP/2 stream the server refused (GOAWAY,
    ///   REFUSED_STREAM), is retried on another server when there is one, up to
    ///   `retries.attempts` times and only while the retry budget allows.
    async fn forward(
        &self,
        backend: &Arc<Backend>,
        mut req: Request<ReqBody>,
        hash: Option<u64>,
        upload: Option<&Upload>,
        upgrade: bool,
        tried: &mut Option<Arc<Server>>,
    ) -> Result<(Response<UpBody>, Upstream, bool), ProxyError> {
        let settings = &backend.settings;
        let replayable = matches!(req.body(), ReqBody::Empty)
            && (is_idempotent(req.method()) || settings.retry_non_idempotent);
        let mut attempts_left = settings.retry_attempts;
        let mut stale_retry_used = false;
        let mut drains_left = MAX_DRAIN_RESENDS;
        let mut avoid: Option<Arc<Server>> = None;
        let mut fresh = false;
        loop {
            let slot = limit::acquire(backend, hash, avoid.as_ref()).await?;
            let server = slot.member().clone();
            *tried = Some(server.clone());
            let acquired = upstream::acquire(
                self.pools(),
                self.metrics(),
                backend,
                &server,
                fresh,
                upgrade,
            )
            .await;
            let (conn, reused) = match acquired {
                Ok(c) => c,
                Err(e) => {
                    let e = e.unsent();
                    self.passive(backend, &server, &e);
                    drop(slot);
                    // Nothing was sent: safe to retry for any method.
                    if attempts_left > 0
                        && e.retry == Retry::NotSent
                        && self.budgeted_retry(backend, &e)
                    {
                        attempts_left -= 1;
                        avoid = Some(server);
                        fresh = false;
                        continue;
                    }
                    return Err(e);
                }
            };
            if reused {
                backend.metrics.reused.inc();
                server.reused.fetch_add(1, Ordering::Relaxed);
            }
            let mut up = Upstream::new(conn, self.pools().clone(), slot);
            // A copy to replay after a refused h2 stream (or a stale connection): an
            // HTTP/1.1 exchange hands its request back when it fails, so it needs none.
            let h2 = matches!(up.conn_mut(), Some(Conn::H2(_)));
            let replay = (replayable && h2).then(|| clone_head(&req));
            let timeout = settings.response_timeout;
            let sent = match up.conn_mut() {
                Some(Conn::H1(p)) => {
                    p.note_request();
                    head::to_h1_form(&mut req);
                    response_head(h1::send(&mut p.conn, req, upgrade), timeout, upload)
                        .await
                        .map(|r| r.map(|resp| resp.map(UpBody::H1)))
                }
                Some(Conn::H2(s)) => {
                    let mut tx = s.sender();
                    head::to_h2_form(&mut req, settings.tls);
                    response_head(tx.try_send_request(req), timeout, upload)
                        .await
                        .map(|r| r.map(|resp| resp.map(UpBody::H2)).map_err(h2_failed))
                }
                None => return Err(ProxyError::upstream_gone()),
            };
            match sent {
                Some(Ok(resp)) => {
                    let failed = resp.status().is_server_error()
                        && settings.passive.as_ref().is_some_and(|p| p.on_5xx);
                    // A success counts once the body is complete (`RespBody` records
                    // it, bodiless answers included): counted at the head, it would
                    // reset the failures of bodies that break after it, and such a
                    // server would never be ejected. A switch has no body to wait for.
                    up.succeeded = !failed;
                    if failed || resp.status() == StatusCode::SWITCHING_PROTOCOLS {
                        passive::record(self.metrics(), backend, &server, !failed, || {
                            self.pools().forget(&server)
                        });
                    }
                    return Ok((resp, up, reused));
                }
                None => {
                    let e = ProxyError::response_timeout(timeout);
                    self.passive(backend, &server, &e);
                    return Err(e);
                }
                Some(Err(failed)) => {
                    // hyper's HTTP/2 client reports a failed request body as a reset
                    // stream, and a write can fail because the client's body did: the
                    // upload says whose fault it was.
                    let Failed {
                        error: err,
                        mut unsent,
                        replay: handed_back,
                        stream_only,
                    } = failed;
                    let mut replay = replay.or(handed_back.filter(|_| replayable).map(|r| *r));
                    let err = match upload.and_then(Upload::failure) {
                        Some(f) => ProxyError::new(f.cause(), f.to_string()),
                        None => err,
                    };
                    if err.cause.party() == Party::Client {
                        // The client's body failed or it left: nothing to retry, and
                        // nothing against the server (the upstream exchange is dropped).
                        return Err(err);
                    }
                    // A reset of one stream (e.g. REFUSED_STREAM under load) says
                    // nothing about the connection: its other streams go on.
                    if let Some(Conn::H2(s)) = up.conn_mut().filter(|_| !stream_only) {
                        s.retire();
                    }
                    drop(up);
                    // The server was closing this connection gracefully and never
                    // took the stream: the normal end of a connection's life, not a
                    // failure, so it spends neither `attempts` nor the budget. Capped,
                    // so an origin that GOAWAYs every connection at once cannot loop.
                    if drains_left > 0 && error::is_drained(&err) {
                        if let Some(again) = unsent.take().map(|r| *r).or_else(|| replay.take()) {
                            tracing::debug!(backend = %backend.name.as_str(), "stream not taken before the server's GOAWAY; re-sending");
                            backend.metrics.retries.inc();
                            drains_left -= 1;
                            req = again;
                            fresh = false;
                            avoid = None;
                            continue;
                        }
                    }
                    // A stale pooled connection: the origin never saw the request.
                    if reused && !stale_retry_used && !stream_only {
                        let again = unsent
                            .map(|r| *r)
                            .or(replay.filter(|_| err.retry != Retry::Never));
                        if let Some(again) = again {
                            tracing::debug!(backend = %backend.name.as_str(), error = %err.detail, "pooled connection was closed; retrying on a fresh one");
                            backend.metrics.retries.inc();
                            stale_retry_used = true;
                            req = again;
                            fresh = true;
                            avoid = None;
                            continue;
                        }
                        self.passive(backend, &server, &err);
                        return Err(err);
                    }
                    // Refused, or never sent on a new connection: another server may do.
                    let again = unsent
                        .map(|r| *r)
                        .or(replay.filter(|_| err.retry == Retry::NotSent));
                    if let Some(again) = again {
                        if attempts_left > 0 && self.budgeted_retry(backend, &err) {
                            attempts_left -= 1;
                            req = again;
                            fresh = false;
                            avoid = Some(server);
                            continue;
                        }
                    }
                    self.passive(backend, &server, &err);
                    return Err(err);
                }
            }
        }
    }

    /// A `CONNECT`: a tunnel where the listener allows it (see `connect.rs`).
    async fn connect(
        &self,
        forward: Option<&Forward>,
        mut parts: Parts,
        mut done: Completion,
        request_id: HeaderValue,
        client: &ClientInfo,
    ) -> Response<RespBody> {
        if let Some(f) = forward {
            done.labels.route = f.route.clone();
        }
        if let Some(l) = &mut done.log {
            l.host = parts
                .uri
                .authority()
                .map(|a| a.to_string())
                .unwrap_or_default();
        }
        let ctx = connect::Ctx {
            conn: &client.conn,
            tunnels: &self.registry.tunnels,
            metrics: &self.registry.metrics.tunnels,
        };
        match connect::open(forward, &mut parts, ctx).await {
            Ok(mut resp) => {
                resp.headers_mut().insert(X_REQUEST_ID.clone(), request_id);
                done.labels.status = resp.status().as_u16();
                resp.body_mut().on_complete(done);
                resp
            }
            Err(e) => self.fail(e, done, &request_id, None),
        }
    }

    /// Takes a retry from the budget (counting it), or logs why not.
    fn budgeted_retry(&self, backend: &Backend, e: &ProxyError) -> bool {
        if backend.budget.try_retry() {
            tracing::debug!(backend = %backend.name.as_str(), cause = e.cause.as_str(), detail = %e.detail, "retrying on another server");
            backend.metrics.retries.inc();
            true
        } else {
            tracing::debug!(backend = %backend.name.as_str(), cause = e.cause.as_str(), "retry budget spent; not retrying");
            false
        }
    }

    /// A failure on `server`, fed to passive health if the server caused it.
    fn passive(&self, backend: &Backend, server: &Server, e: &ProxyError) {
        if e.cause.counts_against_server() && !e.health_fed {
            passive::record(self.metrics(), backend, server, false, || {
                self.pools().forget(server)
            });
        }
    }

    fn fail(
        &self,
        e: ProxyError,
        done: Completion,
        request_id: &HeaderValue,
        backend: Option<&Backend>,
    ) -> Response<RespBody> {
        self.fail_at(e, done, request_id, backend, None)
    }

    /// [`Self::fail`] for a request that failed at `server`.
    fn fail_at(
        &self,
        e: ProxyError,
        mut done: Completion,
        request_id: &HeaderValue,
        backend: Option<&Backend>,
        server: Option<&Name>,
    ) -> Response<RespBody> {
        if e.cause.party() == Party::Client {
            tracing::debug!(cause = e.cause.as_str(), status = e.cause.code(), detail = %e.detail, "request rejected");
        } else {
            tracing::warn!(
                request_id = %request_id_str(request_id),
                backend = %backend.map_or("-", |b| b.name.as_str()),
                upstream = %server.map_or("-", Name::as_str),
                cause = e.cause.as_str(),
                status = e.cause.code(),
                detail = %e.detail,
                "upstream request failed"
            );
        }
        let mut resp = RespBody::error_response(&e);
        resp.headers_mut()
            .insert(X_REQUEST_ID.clone(), request_id.clone());
        done.labels.status = e.cause.code();
        done.cause = Some(e.cause);
        resp.body_mut().on_complete(done);
        resp
    }

    /// The client's `X-Request-Id` if it sent a sane one, else a new one (set on the request).
    fn request_id(&self, parts: &mut Parts) -> HeaderValue {
        if let Some(v) = parts.headers.get(&X_REQUEST_ID) {
            if !v.is_empty() && v.len() <= 128 {
                return v.clone();
            }
        }
        let v = self.ids.next();
        parts.headers.insert(X_REQUEST_ID.clone(), v.clone());
        v
    }
}

/// Waits for the response head: at most `timeout` after the request's last byte went
/// upstream. While the upload waits on the client the clock does not run (the client's
/// own idle timeout bounds those pauses), so a slow client is never taken for a slow
/// server; an origin that stops taking the upload still times out.
async fn response_head<F: std::future::Future>(
    send: F,
    timeout: Duration,
    upload: Option<&Upload>,
) -> Option<F::Output> {
    let Some(upload) = upload else {
        return tokio::time::timeout(timeout, send).await.ok();
    };
    tokio::pin!(send);
    let sleep = tokio::time::sleep(timeout);
    tokio::pin!(sleep);
    loop {
        tokio::select! {
            biased;
            out = &mut send => return Some(out),
            () = &mut sleep => {
                let now = tokio::time::Instant::now();
                let due = if upload.waiting_on_client() {
                    now + timeout
                } else {
                    upload.last_progress() + timeout
                };
                if due <= now {
                    return None;
                }
                sleep.as_mut().reset(due);
            }
        }
    }
}

/// hyper's HTTP/2 client failure as the exchange's: the request back if it was not
/// sent, and whether only this stream was reset.
fn h2_failed(mut e: hyper::client::conn::TrySendError<Request<ReqBody>>) -> Failed {
    Failed {
        unsent: e.take_message().map(Box::new),
        replay: None,
        stream_only: error::is_stream_reset(e.error()),
        error: ProxyError::exchange(e.into_error()),
    }
}

/// Re-sends per request of streams a server's graceful GOAWAY left untaken.
const MAX_DRAIN_RESENDS: u32 = 3;

fn is_idempotent(m: &Method) -> bool {
    matches!(
        *m,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    )
}

fn clone_head(req: &Request<ReqBody>) -> Request<ReqBody> {
    let mut r = Request::new(ReqBody::Empty);
    *r.method_mut() = req.method().clone();
    *r.uri_mut() = req.uri().clone();
    *r.version_mut() = req.version();
    *r.headers_mut() = req.headers().clone();
    r
}

fn request_id_str(v: &HeaderValue) -> String {
    String::from_utf8_lossy(v.as_bytes()).into_owned()
}

/// Request ids: a random per-process prefix and a counter, unique without a lock.
struct RequestIds {
    prefix: u32,
    next: AtomicU64,
}

impl RequestIds {
    fn new() -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos() ^ (d.as_secs() as u32));
        let mut h = std::collections::hash_map::DefaultHasher::new();
        std::hash::Hash::hash(&(nanos, std::process::id()), &mut h);
        Self {
            prefix: std::hash::Hasher::finish(&h) as u32,
            next: AtomicU64::new(1),
        }
    }

    /// 20 lowercase hex digits: the prefix, then the counter's low 48 bits. Written
    /// by hand into one buffer: `format!` cost 2.5k instructions per request.
    fn next(&self) -> HeaderValue {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let mut id = [0u8; 20];
        let value = (u128::from(self.prefix) << 48) | u128::from(n & 0xffff_ffff_ffff);
        for (i, b) in id.iter_mut().enumerate() {
            let nibble = (value >> (4 * (19 - i))) & 0xf;
            *b = b"0123456789abcdef"[nibble as usize];
        }
        HeaderValue::from_bytes(&id).unwrap_or(HeaderValue::from_static("0"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_the_prefix_then_the_counter_in_hex() {
        let ids = RequestIds {
            prefix: 0x0731_d837,
            next: AtomicU64::new(0x2c),
        };
        assert_eq!(ids.next(), "0731d83700000000002c");
        assert_eq!(ids.next(), "0731d83700000000002d");
        ids.next.store(0xfedc_ba98_7654, Ordering::Relaxed);
        assert_eq!(ids.next(), "0731d837fedcba987654");
    }
}
