//! The admin plane's handle on the process: `POST /reload` runs a reload on the main
//! runtime (the admin's own runtime only waits for it), `GET /config` and `GET /pools`
//! read snapshots.

use crate::reload::{self, Reloader, Trigger};
use futures_util::FutureExt;
use http::StatusCode;
use sluice_admin::{Control, ReloadFuture};
use std::sync::Arc;
use tokio::runtime::Handle;

pub struct ProcessControl {
    pub reloader: Arc<Reloader>,
    /// The data path's runtime: reload tasks (DNS, checks, listeners) belong there.
    pub main: Handle,
    /// What was decided at start and is not in the file (workers and why).
    pub process: serde_json::Value,
}

impl Control for ProcessControl {
    fn reload(&self) -> ReloadFuture {
        let reloader = self.reloader.clone();
        let task = self
            .main
            .spawn(async move { reloader.reload(Trigger::Admin).await });
        async move {
            match task.await {
                Ok(outcome) => {
                    let (status, body) = reload::answer(&outcome);
                    (
                        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                        body,
                    )
                }
                Err(e) => (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    serde_json::json!({"result": "rejected", "error": format!("the reload task failed: {e}")})
                        .to_string(),
                ),
            }
        }
        .boxed()
    }

    fn config(&self) -> String {
        reload::config_json(&self.reloader.view(), &self.process)
    }

    fn pools(&self) -> String {
        sluice_proxy::pools_json(self.reloader.proxy()).to_string()
    }
}
