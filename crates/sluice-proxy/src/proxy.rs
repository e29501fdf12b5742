//! One request through the proxy: route it, rewrite its head, send it over a pooled
//! connection (retrying once on a fresh one if the pooled one turns out closed), and
//! stream the response back.

use crate::access::{Completion, LogFields};
use crate::backend::{Backend, Server};
use crate::body::{ReqBody, RespBody};
use crate::error::ProxyError;
use crate::headers::{self, X_REQUEST_ID};
use crate::metrics::{CauseLabels, Metrics, Name, RequestLabels};
use crate::router::normalize_host;
use crate::runtime::Runtime;
use crate::upstream::{self, Upstream, H1};
use http::header::{HeaderValue, HOST};
use http::request::Parts;
use http::{Method, Request, Response, Uri, Version};
use hyper::body::{Body, Incoming};
use sluice_net::{ClientAddr, Connector};
use sluice_pool::Pool;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::time::Instant;

/// The data path's shared state: the config snapshot, the one upstream pool, metrics.
pub struct Proxy {
    runtime: Arc<Runtime>,
    pool: Pool<H1>,
    connector: Connector,
    metrics: Metrics,
    ids: RequestIds,
    /// The `-` label of requests that matched no route (shared, not allocated per request).
    dash: Name,
}

/// Who is asking, on which listener.
#[derive(Debug, Clone)]
pub struct ClientInfo {
    pub listener: Name,
    pub addr: ClientAddr,
}

const NO_ROUTE: &str = "-";

impl Proxy {
    pub fn new(runtime: Runtime, metrics: Metrics) -> Self {
        Self {
            runtime: Arc::new(runtime),
            pool: Pool::new(),
            connector: Connector::new(),
            metrics,
            ids: RequestIds::new(),
            dash: Name::new(NO_ROUTE),
        }
    }

    pub fn pool(&self) -> &Pool<H1> {
        &self.pool
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Answers one client request. Never fails: errors become 4xx/5xx responses that
    /// carry a `sluice-error` header.
    pub async fn handle(&self, req: Request<Incoming>, client: &ClientInfo) -> Response<RespBody> {
        let start = Instant::now();
        let rt = self.runtime.clone();
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
        });
        let mut done = Completion {
            start,
            requests: self.metrics.requests.clone(),
            labels: RequestLabels {
                listener: client.listener.clone(),
                route: self.dash.clone(),
                backend: self.dash.clone(),
                status: 0,
            },
            duration: None,
            cause: None,
            log,
        };

        let host = match request_host(&parts) {
            Ok(h) => h,
            Err(e) => return self.fail(e, done, &request_id, None),
        };
        if let Some(l) = &mut done.log {
            l.host.clone_from(&host);
        }
        let Some(route) = rt.router.find(&host, parts.uri.path()) else {
            return self.fail(ProxyError::no_route(&host), done, &request_id, None);
        };
        let backend = &route.backend;
        done.labels.route = route.label.clone();
        done.labels.backend = backend.name.clone();
        done.duration = Some(backend.metrics.duration.clone());
        let Some(server) = backend.pick() else {
            return self.fail(
                ProxyError {
                    status: http::StatusCode::SERVICE_UNAVAILABLE,
                    cause: "no_server",
                    detail: String::new(),
                },
                done,
                &request_id,
                Some(backend),
            );
        };
        if let Some(l) = &mut done.log {
            l.upstream = Some(server.label.clone());
        }

        prepare_upstream_head(&mut parts, client.addr, &host);
        let body = if body.is_end_stream() {
            ReqBody::Empty
        } else {
            ReqBody::Stream(body)
        };
        let req = Request::from_parts(parts, body);

        match self.exchange(backend, server, req).await {
            Ok((resp, up, reused)) => {
                if let Some(l) = &mut done.log {
                    l.reused = reused;
                }
                let (mut rparts, rbody) = resp.into_parts();
                headers::strip_hop_by_hop(&mut rparts.headers);
                rparts.headers.insert(X_REQUEST_ID.clone(), request_id);
                done.labels.status = rparts.status.as_u16();
                let mut body = RespBody::upstream(rbody, Some(up));
                body.on_complete(done);
                Response::from_parts(rparts, body)
            }
            Err(e) => self.fail(e, done, &request_id, Some(backend)),
        }
    }

    /// Sends `req` to `server`. A pooled connection the origin has already closed gets
    /// one retry on a fresh connection: always when hyper hands the request back
    /// unsent, and for idempotent requests without a body otherwise.
    async fn exchange(
        &self,
        backend: &Backend,
        server: &Server,
        mut req: Request<ReqBody>,
    ) -> Result<(Response<Incoming>, Upstream, bool), ProxyError> {
        let replayable = is_idempotent(req.method()) && matches!(req.body(), ReqBody::Empty);
        let mut fresh = false;
        loop {
            let (mut up, reused) =
                upstream::acquire(&self.pool, &self.connector, backend, server, fresh).await?;
            if reused {
                backend.metrics.reused.inc();
            }
            let replay = (reused && replayable).then(|| clone_head(&req));
            up.pooled.note_request();
            let sent = tokio::time::timeout(
                backend.response_timeout,
                up.pooled.conn.tx.try_send_request(req),
            )
            .await;
            match sent {
                Ok(Ok(resp)) => return Ok((resp, up, reused)),
                Err(_) => return Err(ProxyError::response_timeout(backend.response_timeout)),
                Ok(Err(mut e)) => {
                    let err = ProxyError::upstream(e.error());
                    // Unsent: always safe to resend. Sent but cut by a close or reset:
                    // resend only what is safe to repeat (idempotent, no body).
                    let retry = match (reused, e.take_message()) {
                        (false, _) => None,
                        (true, Some(unsent)) => Some(unsent),
                        (true, None) => replay.filter(|_| err.is_upstream_closed()),
                    };
                    match retry {
                        Some(again) => {
                            tracing::debug!(backend = %backend.name.as_str(), error = %err.detail, "pooled connection was closed; retrying on a fresh one");
                            backend.metrics.retries.inc();
                            req = again;
                            fresh = true;
                        }
                        None => return Err(err),
                    }
                }
            }
        }
    }

    fn fail(
        &self,
        e: ProxyError,
        mut done: Completion,
        request_id: &HeaderValue,
        backend: Option<&Backend>,
    ) -> Response<RespBody> {
        if let Some(b) = backend {
            self.metrics
                .upstream_errors
                .get_or_create(&CauseLabels {
                    backend: b.name.clone(),
                    cause: e.cause,
                })
                .inc();
        }
        if e.status.is_server_error() {
            tracing::warn!(
                request_id = %request_id_str(request_id),
                backend = %backend.map_or("-", |b| b.name.as_str()),
                cause = e.cause,
                status = e.status.as_u16(),
                detail = %e.detail,
                "upstream request failed"
            );
        } else {
            tracing::debug!(cause = e.cause, status = e.status.as_u16(), detail = %e.detail, "request rejected");
        }
        let mut resp = e.to_response();
        resp.headers_mut()
            .insert(X_REQUEST_ID.clone(), request_id.clone());
        done.labels.status = e.status.as_u16();
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

/// The host the request is for: the authority of an absolute-form URI (forward-proxy
/// style, `GET http://api.example.com/x`), else the `Host` header.
fn request_host(parts: &Parts) -> Result<String, ProxyError> {
    if let Some(auth) = parts.uri.authority() {
        return Ok(normalize_host(auth.as_str()).into_owned());
    }
    let Some(raw) = parts.headers.get(HOST) else {
        return Err(ProxyError::bad_request(
            "missing_host",
            "the request has no Host header",
        ));
    };
    let Ok(raw) = raw.to_str() else {
        return Err(ProxyError::bad_request(
            "invalid_host",
            "the Host header is not valid text",
        ));
    };
    let host = normalize_host(raw.trim());
    if host.is_empty() {
        return Err(ProxyError::bad_request(
            "missing_host",
            "the Host header is empty",
        ));
    }
    if !host
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b':'))
    {
        return Err(ProxyError::bad_request(
            "invalid_host",
            format!("invalid Host header {raw:?}"),
        ));
    }
    Ok(host.into_owned())
}

/// Rewrites the request head for the upstream hop: origin-form URI, HTTP/1.1,
/// hop-by-hop headers removed, forwarding headers added, `Host` kept (or taken from an
/// absolute-form URI, which RFC 9112 §3.2.2 says wins).
fn prepare_upstream_head(parts: &mut Parts, client: ClientAddr, host: &str) {
    if let Some(auth) = parts.uri.authority().cloned() {
        if let Ok(v) = HeaderValue::from_str(auth.as_str()) {
            parts.headers.insert(HOST, v);
        } else if let Ok(v) = HeaderValue::from_str(host) {
            parts.headers.insert(HOST, v);
        }
        let pq = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
        parts.uri = Uri::try_from(pq).unwrap_or_else(|_| Uri::from_static("/"));
    }
    parts.version = Version::HTTP_11;
    headers::strip_hop_by_hop(&mut parts.headers);
    // hyper has already answered `Expect: 100-continue` towards the client when the
    // body is read; the origin gets the body without waiting.
    parts.headers.remove(http::header::EXPECT);
    headers::add_forwarded(&mut parts.headers, client);
}

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

    fn next(&self) -> HeaderValue {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        HeaderValue::try_from(format!("{:08x}{n:012x}", self.prefix))
            .unwrap_or(HeaderValue::from_static("0"))
    }
}
