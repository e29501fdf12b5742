//! The reflectors: a live copy of each kind sluice reads, every event waking the
//! translator. Gateway API kinds are read only when the cluster serves their CRDs.

use futures_util::StreamExt;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use std::fmt::Debug;
use std::sync::Arc;
use tokio::sync::Notify;

/// One reflector per namespace (or one for all), each waking `notify` on every event.
pub fn reflect<K>(client: &Client, namespaces: &[String], notify: &Arc<Notify>) -> Vec<Store<K>>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone,
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
{
    reflect_stripped(client, namespaces, notify, |_| {})
}

/// Like [`reflect`], keeping of each object only what `strip` leaves.
pub fn reflect_stripped<K>(
    client: &Client,
    namespaces: &[String],
    notify: &Arc<Notify>,
    strip: fn(&mut K),
) -> Vec<Store<K>>
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
    apis.into_iter()
        .map(|api| spawn_stripped(api, Default::default(), notify, strip))
        .collect()
}

/// A Gateway API kind (`gateway.networking.k8s.io/v1`), if the cluster serves it:
/// without the CRDs installed, sluice serves Ingresses alone (and says so once).
pub async fn gateway_kind(client: &Client, kind: &str) -> Option<ApiResource> {
    let gvk = GroupVersionKind::gvk("gateway.networking.k8s.io", "v1", kind);
    match kube::discovery::pinned_kind(client, &gvk).await {
        Ok((resource, _)) => Some(resource),
        Err(e) => {
            tracing::info!(kind, error = %e, "kubernetes: Gateway API kind not served; not watched (restart sluice after installing the CRDs)");
            None
        }
    }
}

/// Like [`reflect`] for a kind known at run time; `cluster`: not namespaced.
pub fn reflect_dynamic(
    client: &Client,
    namespaces: &[String],
    resource: Option<&ApiResource>,
    cluster: bool,
    notify: &Arc<Notify>,
) -> Vec<Store<DynamicObject>> {
    let Some(r) = resource else {
        return Vec::new();
    };
    let apis: Vec<Api<DynamicObject>> = if cluster || namespaces.is_empty() {
        vec![Api::all_with(client.clone(), r)]
    } else {
        namespaces
            .iter()
            .map(|ns| Api::namespaced_with(client.clone(), ns, r))
            .collect()
    };
    apis.into_iter()
        .map(|api| spawn(api, r.clone(), notify))
        .collect()
}

pub fn spawn<K>(api: Api<K>, dyntype: K::DynamicType, notify: &Arc<Notify>) -> Store<K>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone + Send + Sync,
{
    spawn_stripped(api, dyntype, notify, |_| {})
}

fn spawn_stripped<K>(
    api: Api<K>,
    dyntype: K::DynamicType,
    notify: &Arc<Notify>,
    strip: fn(&mut K),
) -> Store<K>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone + Send + Sync,
{
    let writer = reflector::store::Writer::new(dyntype.clone());
    let reader = writer.as_reader();
    let events = watcher(api, watcher::Config::default()).modify(strip);
    let stream = reflector::reflector(writer, events).default_backoff();
    let notify = notify.clone();
    let kind = K::kind(&dyntype).to_string();
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(event) = stream.next().await {
            match event {
                Ok(_) => notify.notify_one(),
                Err(e) => tracing::warn!(%kind, error = %e, "kubernetes watch failed; retrying"),
            }
        }
    });
    reader
}

pub fn all<K>(stores: &[Store<K>]) -> Vec<Arc<K>>
where
    K: Resource + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    stores.iter().flat_map(|s| s.state()).collect()
}

/// Waits until every store has its first full list.
pub async fn listed<K>(stores: &[Store<K>]) -> Result<(), String>
where
    K: Resource + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    for s in stores {
        s.wait_until_ready().await.map_err(|e| e.to_string())?;
    }
    Ok(())
}
