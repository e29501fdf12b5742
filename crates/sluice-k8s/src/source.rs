//! The watchers: kube-runtime reflectors keep a live copy of the objects sluice reads;
//! every change wakes the translator, which waits for the burst to settle
//! (`debounce`), translates everything and hands the result on when it differs
//! from the last one. A re-list or a resync that changes nothing is counted and
//! dropped here.

use crate::translate::{translate, Report, Selector, Snapshot, Translation};
use futures_util::StreamExt;
use k8s_openapi::api::core::v1::{ObjectReference, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use sluice_config::KubernetesSource;
use std::collections::BTreeSet;
use std::fmt::Debug;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// Where translations go: the reloader, in sluice.
pub trait Sink: Send {
    /// A translation that differs from the last one: apply it. Returns what the
    /// apply refused (an Ingress whose settings do not validate with the rest), to be
    /// reported on those objects like the translation's own reports.
    fn apply(&mut self, translation: Translation) -> impl Future<Output = Vec<Report>> + Send;
    /// Objects changed but the translation did not (a re-list, a resync, a label, a
    /// shuffled EndpointSlice): nothing is rebuilt.
    fn unchanged(&mut self);
}

/// The longest a steady stream of changes can hold a translation back.
const MAX_DEBOUNCE_FACTOR: u32 = 10;

/// Watches until the process ends; `sink` gets the first full translation once
/// every watcher has listed, then each one that differs. Errs only when no client
/// can be built; watch errors are retried with backoff (and logged).
pub async fn run(settings: KubernetesSource, mut sink: impl Sink) -> Result<(), String> {
    let client = client(&settings).await?;
    let notify = Arc::new(Notify::new());
    let ns = &settings.namespaces;
    let ingresses = reflect::<Ingress>(&client, ns, &notify);
    let services = reflect::<Service>(&client, ns, &notify);
    let slices = reflect::<EndpointSlice>(&client, ns, &notify);
    let classes = vec![spawn(Api::<IngressClass>::all(client.clone()), &notify)];
    for s in &ingresses {
        s.wait_until_ready().await.map_err(|e| e.to_string())?;
    }
    for s in &services {
        s.wait_until_ready().await.map_err(|e| e.to_string())?;
    }
    for s in &slices {
        s.wait_until_ready().await.map_err(|e| e.to_string())?;
    }
    for s in &classes {
        s.wait_until_ready().await.map_err(|e| e.to_string())?;
    }
    tracing::info!(namespaces = ?settings.namespaces, ingress_class = %settings.ingress_class, "kubernetes: initial list complete");
    let selector = Selector {
        class: settings.ingress_class.clone(),
    };
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: sluice_config::INGRESS_CONTROLLER.into(),
            instance: std::env::var("POD_NAME").ok(),
        },
    );
    let debounce = settings.debounce.get();
    let mut last: Option<Translation> = None;
    let mut reported: BTreeSet<Report> = BTreeSet::new();
    loop {
        let snap = Snapshot {
            ingresses: all(&ingresses),
            services: all(&services),
            classes: all(&classes),
            endpoint_slices: all(&slices),
        };
        let t = translate(&snap, &selector);
        if last.as_ref() == Some(&t) {
            tracing::debug!("kubernetes: objects changed, translation unchanged");
            sink.unchanged();
        } else {
            let mut reports = t.reports.clone();
            reports.extend(sink.apply(t.clone()).await);
            publish(&recorder, &reports, &mut reported).await;
            last = Some(t);
        }
        notify.notified().await;
        settle(&notify, debounce).await;
    }
}

/// Waits until no change arrived for `debounce` (at most ten times that in all).
async fn settle(notify: &Notify, debounce: Duration) {
    let deadline = tokio::time::Instant::now() + debounce * MAX_DEBOUNCE_FACTOR;
    while tokio::time::timeout_at(
        deadline.min(tokio::time::Instant::now() + debounce),
        notify.notified(),
    )
    .await
    .is_ok()
    {}
}

async fn client(settings: &KubernetesSource) -> Result<Client, String> {
    let config = match &settings.kubeconfig {
        Some(path) => {
            let kc = kube::config::Kubeconfig::read_from(path)
                .map_err(|e| format!("sources.kubernetes.kubeconfig: {}: {e}", path.display()))?;
            kube::Config::from_custom_kubeconfig(kc, &Default::default())
                .await
                .map_err(|e| format!("sources.kubernetes.kubeconfig: {}: {e}", path.display()))?
        }
        None => kube::Config::infer()
            .await
            .map_err(|e| format!("kubernetes: no in-cluster or kubeconfig credentials: {e}"))?,
    };
    Client::try_from(config).map_err(|e| format!("kubernetes client: {e}"))
}

/// One reflector per namespace (or one for all), each waking `notify` on every event.
fn reflect<K>(client: &Client, namespaces: &[String], notify: &Arc<Notify>) -> Vec<Store<K>>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone,
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
{
    let apis: Vec<Api<K>> = if namespaces.is_empty() {
        vec![Api::all(client.clone())]
    } else {
        namespaces
            .iter()
            .map(|ns| Api::namespaced(client.clone(), ns))
            .collect()
    };
    apis.into_iter().map(|api| spawn(api, notify)).collect()
}

fn spawn<K>(api: Api<K>, notify: &Arc<Notify>) -> Store<K>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone,
{
    let (reader, writer) = reflector::store();
    let stream =
        reflector::reflector(writer, watcher(api, watcher::Config::default())).default_backoff();
    let notify = notify.clone();
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(event) = stream.next().await {
            match event {
                Ok(_) => notify.notify_one(),
                Err(e) => {
                    tracing::warn!(kind = %K::kind(&K::DynamicType::default()), error = %e, "kubernetes watch failed; retrying")
                }
            }
        }
    });
    reader
}

fn all<K>(stores: &[Store<K>]) -> Vec<Arc<K>>
where
    K: Resource + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    stores.iter().flat_map(|s| s.state()).collect()
}

/// A Warning Event and a log line for each report not made before (a resync of an
/// unchanged broken object says nothing new).
async fn publish(recorder: &Recorder, reports: &[Report], done: &mut BTreeSet<Report>) {
    let now: BTreeSet<Report> = reports.iter().cloned().collect();
    for r in now.difference(done) {
        tracing::warn!(ingress = %format!("{}/{}", r.namespace, r.name), reason = r.reason, "{}", r.message);
        let reference = ObjectReference {
            api_version: Some("networking.k8s.io/v1".into()),
            kind: Some("Ingress".into()),
            namespace: Some(r.namespace.clone()),
            name: Some(r.name.clone()),
            ..Default::default()
        };
        let event = Event {
            type_: EventType::Warning,
            reason: r.reason.into(),
            note: Some(r.message.clone()),
            action: "Translate".into(),
            secondary: None,
        };
        if let Err(e) = recorder.publish(&event, &reference).await {
            tracing::warn!(error = %e, "kubernetes: cannot write Event");
        }
    }
    *done = now;
}
