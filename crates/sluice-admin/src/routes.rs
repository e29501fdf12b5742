//! Which endpoint a request is for, and the method each one takes.

use crate::reload;
use crate::response::{self, Reply};
use crate::{AdminState, Control};
use bytes::Bytes;
use http::{Method, Request, StatusCode};
use hyper::body::Incoming;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// The answer to an unknown path, so a person poking at the port learns what is there.
const ENDPOINTS: &str =
    "endpoints: GET / (dashboard) /metrics /healthz /readyz /config /pools, POST /reload\n";

/// The live dashboard: one self-contained page polling `/pools`, `/config` and
/// `/metrics` (no asset from anywhere else).
const DASHBOARD: &str = include_str!("dashboard.html");

const NO_CONTROL: &str = "not available: this admin listener has no config control \
     (endpoints: GET /metrics /healthz /readyz)\n";

/// The endpoints that need no [`crate::Control`].
enum Plain {
    Metrics,
    Healthz,
    Readyz,
}

/// The endpoints served through the binary's [`crate::Control`].
enum Controlled {
    Dashboard,
    Config,
    Pools,
    Reload,
}

enum Endpoint {
    Plain(Plain),
    Controlled(Controlled),
}

impl Endpoint {
    fn of(path: &str) -> Option<Self> {
        Some(match path {
            "/metrics" => Self::Plain(Plain::Metrics),
            "/healthz" => Self::Plain(Plain::Healthz),
            "/readyz" => Self::Plain(Plain::Readyz),
            "/" | "/dashboard" => Self::Controlled(Controlled::Dashboard),
            "/config" => Self::Controlled(Controlled::Config),
            "/pools" => Self::Controlled(Controlled::Pools),
            "/reload" => Self::Controlled(Controlled::Reload),
            _ => return None,
        })
    }
}

pub(crate) async fn route(req: Request<Incoming>, state: &AdminState) -> Reply {
    match Endpoint::of(req.uri().path()) {
        None => response::text(StatusCode::NOT_FOUND, ENDPOINTS),
        Some(Endpoint::Plain(e)) => plain(e, req.method(), state),
        Some(Endpoint::Controlled(e)) => match &state.control {
            None => response::text(StatusCode::NOT_FOUND, NO_CONTROL),
            Some(control) => controlled(e, req, control).await,
        },
    }
}

fn plain(endpoint: Plain, method: &Method, state: &AdminState) -> Reply {
    if !is_read(method) {
        return read_only();
    }
    match endpoint {
        Plain::Metrics => metrics(state),
        Plain::Healthz => response::text(StatusCode::OK, "ok\n"),
        Plain::Readyz if state.overloaded.load(Ordering::Relaxed) => response::text(
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: overloaded (shedding clients at limits.max_client_connections)\n",
        ),
        Plain::Readyz if state.ready.load(Ordering::Relaxed) => {
            response::text(StatusCode::OK, "ready\n")
        }
        Plain::Readyz => response::text(
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready (starting or draining)\n",
        ),
    }
}

async fn controlled(
    endpoint: Controlled,
    req: Request<Incoming>,
    control: &Arc<dyn Control>,
) -> Reply {
    match endpoint {
        Controlled::Reload if req.method() == Method::POST => {
            reload::reload(req.into_body(), control.clone()).await
        }
        Controlled::Reload => response::method_not_allowed("POST", "only POST\n"),
        _ if !is_read(req.method()) => read_only(),
        Controlled::Dashboard => response::with_type(
            StatusCode::OK,
            Bytes::from_static(DASHBOARD.as_bytes()),
            "text/html; charset=utf-8",
        ),
        Controlled::Config => response::json(StatusCode::OK, control.config()),
        Controlled::Pools => response::json(StatusCode::OK, control.pools()),
    }
}

/// HEAD is answered like GET; hyper leaves the body out.
fn is_read(method: &Method) -> bool {
    method == Method::GET || method == Method::HEAD
}

fn read_only() -> Reply {
    response::method_not_allowed("GET, HEAD", "only GET and HEAD\n")
}

fn metrics(state: &AdminState) -> Reply {
    let mut out = String::with_capacity(16 * 1024);
    if prometheus_client::encoding::text::encode(&mut out, &state.registry).is_err() {
        return response::text(
            StatusCode::INTERNAL_SERVER_ERROR,
            "metrics encoding failed\n",
        );
    }
    response::with_type(
        StatusCode::OK,
        Bytes::from(out),
        "application/openmetrics-text; version=1.0.0; charset=utf-8",
    )
}
