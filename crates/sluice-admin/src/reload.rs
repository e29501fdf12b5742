//! `POST /reload`: read off the (ignored) request body within bounds, then run the
//! binary's reload and answer with its result.

use crate::response::{self, Reply};
use crate::Control;
use http::StatusCode;
use http_body_util::{BodyExt, Limited};
use hyper::body::{Body, Incoming};
use std::sync::Arc;
use std::time::Duration;

/// The body means nothing to a reload; this much is read off so that a client that sends
/// one (`curl -d`) keeps its connection, and no more, so nobody can make us buffer a lot.
pub(crate) const MAX_BODY: u64 = 64 * 1024;

/// A client that announces a body and then trickles it must not hold the request open.
const BODY_DEADLINE: Duration = Duration::from_secs(10);

/// A reload compiles the config off the admin runtime; when it takes this long something
/// is stuck, and the client deserves an answer. The reload itself is not cancelled.
const RELOAD_DEADLINE: Duration = Duration::from_secs(60);

pub(crate) async fn reload(body: Incoming, control: Arc<dyn Control>) -> Reply {
    if body.size_hint().lower() > MAX_BODY {
        return response::closing(
            StatusCode::PAYLOAD_TOO_LARGE,
            "POST /reload takes no body\n",
        );
    }
    match tokio::time::timeout(BODY_DEADLINE, Limited::new(body, body_limit()).collect()).await {
        Ok(Ok(_ignored)) => {}
        // Limited's error is either the limit or the body's own (the client went away or
        // sent a malformed chunk); either way the connection cannot carry another request.
        Ok(Err(_)) => {
            return response::closing(
                StatusCode::PAYLOAD_TOO_LARGE,
                "POST /reload takes no body\n",
            )
        }
        Err(_) => {
            return response::closing(
                StatusCode::REQUEST_TIMEOUT,
                "request body not received in time\n",
            )
        }
    }
    // Spawned so that a client hanging up mid-reload does not drop the future and leave
    // the binary's reload half-observed; the admin runtime only waits for it.
    let task = tokio::spawn(control.reload());
    match tokio::time::timeout(RELOAD_DEADLINE, task).await {
        Ok(Ok((status, body))) => response::json(status, body),
        Ok(Err(_)) => response::json(
            StatusCode::INTERNAL_SERVER_ERROR,
            r#"{"error":"the reload task failed"}"#.to_string(),
        ),
        Err(_) => response::json(
            StatusCode::GATEWAY_TIMEOUT,
            format!(
                r#"{{"error":"reload still running after {}s; see the log and GET /config"}}"#,
                RELOAD_DEADLINE.as_secs()
            ),
        ),
    }
}

fn body_limit() -> usize {
    usize::try_from(MAX_BODY).unwrap_or(usize::MAX)
}
