//! Status writes, from one replica: every replica translates and serves on its own,
//! but only the holder of a `coordination.k8s.io` Lease writes the objects' status,
//! so replicas never fight over it. A status is written when it differs from the
//! last one this holder wrote (times aside); a new holder writes everything once.

use crate::model::{StatusPatch, GATEWAY_CONTROLLER};
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::Client;
use kube_lease_manager::LeaseManagerBuilder;
use serde_json::Value;
use std::collections::HashMap;
use std::time::Duration;
use tokio::sync::watch;

/// Where the Lease is and who this replica is.
#[derive(Debug, Clone)]
pub struct LeaseSettings {
    pub namespace: String,
    pub name: String,
    pub duration: Duration,
    /// Unique among replicas: `$POD_NAME`, else host name and pid.
    pub identity: String,
}

/// How long to wait before trying again after the Lease or a write failed.
const RETRY: Duration = Duration::from_secs(5);

pub fn identity() -> String {
    if let Ok(pod) = std::env::var("POD_NAME") {
        if !pod.is_empty() {
            return pod;
        }
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    format!("{}-{}", host.trim(), std::process::id())
}

/// Runs until `desired` closes: takes part in the election and, while holding the
/// Lease, writes the latest desired statuses.
pub async fn run(
    client: Client,
    lease: LeaseSettings,
    mut desired: watch::Receiver<Vec<StatusPatch>>,
) {
    let secs = lease.duration.as_secs().max(2);
    let manager = loop {
        let built = LeaseManagerBuilder::new(client.clone(), &lease.name)
            .with_namespace(&lease.namespace)
            .with_identity(&lease.identity)
            .with_duration(secs)
            .with_grace((secs / 3).max(1))
            .build()
            .await;
        match built {
            Ok(m) => break m,
            Err(e) => {
                tracing::warn!(lease = %format!("{}/{}", lease.namespace, lease.name), error = %e, "kubernetes: cannot use the status Lease; no status written until it works");
                tokio::time::sleep(RETRY).await;
                if desired.has_changed().is_err() {
                    return;
                }
            }
        }
    };
    let (mut leader, _task) = manager.watch().await;
    let mut writer = Writer::new(client, &lease.identity);
    loop {
        let holding = *leader.borrow_and_update();
        if holding {
            let statuses = desired.borrow_and_update().clone();
            writer.write(&statuses).await;
        } else {
            writer.forget();
        }
        tokio::select! {
            changed = leader.changed() => {
                if changed.is_err() {
                    return;
                }
                let now = *leader.borrow();
                tracing::info!(identity = %lease.identity, holding = now, "kubernetes: status Lease {}", if now { "acquired" } else { "lost" });
                // A new holder cannot know what the last one wrote.
                writer.forget();
            }
            changed = desired.changed() => if changed.is_err() { return },
            // Writes that failed are retried.
            _ = tokio::time::sleep(RETRY), if writer.failed => {}
        }
    }
}

/// An object: kind, namespace, name.
type ObjectKey = (String, Option<String>, String);

struct Writer {
    client: Client,
    params: PatchParams,
    /// What was last written per object, as desired (times unset).
    written: HashMap<ObjectKey, Value>,
    /// When each condition last changed status: (object, path to it) → (status, time).
    times: HashMap<(ObjectKey, String), (String, String)>,
    failed: bool,
}

impl Writer {
    fn new(client: Client, identity: &str) -> Self {
        let mut manager = format!("sluice-{identity}");
        manager.truncate(128);
        Self {
            client,
            params: PatchParams {
                field_manager: Some(manager),
                ..Default::default()
            },
            written: HashMap::new(),
            times: HashMap::new(),
            failed: false,
        }
    }

    fn forget(&mut self) {
        self.written.clear();
    }

    async fn write(&mut self, statuses: &[StatusPatch]) {
        self.failed = false;
        for s in statuses {
            let key = (s.kind.clone(), s.namespace.clone(), s.name.clone());
            if self.written.get(&key) == Some(&s.status) {
                continue;
            }
            let mut status = s.status.clone();
            self.stamp(&key, "", &mut status);
            match self.patch(s, status).await {
                Ok(()) => {
                    self.written.insert(key, s.status.clone());
                }
                // Deleted since the translation: nothing to write.
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => {
                    tracing::warn!(kind = %s.kind, object = %format!("{}/{}", s.namespace.as_deref().unwrap_or(""), s.name), error = %e, "kubernetes: status write failed; will retry");
                    self.failed = true;
                }
            }
        }
    }

    async fn patch(&self, s: &StatusPatch, status: Value) -> Result<(), kube::Error> {
        let (group, version) = match s.api_version.split_once('/') {
            Some((g, v)) => (g, v),
            None => ("", s.api_version.as_str()),
        };
        let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, &s.kind));
        let api: Api<DynamicObject> = match &s.namespace {
            Some(ns) => Api::namespaced_with(self.client.clone(), ns, &resource),
            None => Api::all_with(self.client.clone(), &resource),
        };
        let mut status = status;
        // Routes and policies are shared between controllers: their `parents` and
        // `ancestors` entries of other controllers are kept, ours replaced (a merge
        // patch replaces a whole array).
        for list in ["parents", "ancestors"] {
            if status.get(list).is_some() {
                let current = api.get_status(&s.name).await?;
                let theirs: Vec<Value> = current
                    .data
                    .pointer(&format!("/status/{list}"))
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter(|e| {
                        e.get("controllerName").and_then(Value::as_str) != Some(GATEWAY_CONTROLLER)
                    })
                    .cloned()
                    .collect();
                if let Some(Value::Array(ours)) = status.get_mut(list) {
                    ours.extend(theirs);
                }
            }
        }
        let body = serde_json::json!({ "status": status });
        api.patch_status(&s.name, &self.params, &Patch::Merge(&body))
            .await
            .map(|_| ())
    }

    /// Puts a real `lastTransitionTime` in every condition under `v`: the time its
    /// status last changed, so rewriting an unchanged condition keeps its time.
    fn stamp(&mut self, key: &ObjectKey, path: &str, v: &mut Value) {
        match v {
            Value::Object(map) => {
                let is_condition = map.contains_key("type") && map.contains_key("status");
                if is_condition {
                    let ty = map
                        .get("type")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string();
                    let status = map
                        .get("status")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string();
                    let k = (key.clone(), format!("{path}/{ty}"));
                    let time = match self.times.get(&k) {
                        Some((s, t)) if *s == status => t.clone(),
                        _ => {
                            let t = now_rfc3339();
                            self.times.insert(k, (status, t.clone()));
                            t
                        }
                    };
                    map.insert("lastTransitionTime".into(), Value::String(time));
                }
                for (name, child) in map.iter_mut() {
                    self.stamp(key, &format!("{path}/{name}"), child);
                }
            }
            Value::Array(items) => {
                for (i, child) in items.iter_mut().enumerate() {
                    self.stamp(key, &format!("{path}[{i}]"), child);
                }
            }
            _ => {}
        }
    }
}

/// RFC 3339 in UTC, seconds precision, as Kubernetes writes `metav1.Time`.
fn now_rfc3339() -> String {
    let t = k8s_openapi::jiff::Timestamp::now();
    format!("{}", t.round(k8s_openapi::jiff::Unit::Second).unwrap_or(t))
}
